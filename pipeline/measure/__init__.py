"""Measuring answers against the truth: truth files, ``scenetag eval`` and
``scenetag calibrate``."""
