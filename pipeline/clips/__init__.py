"""Clips: a segment of a video cut out to a file of its own, exactly to the
frame or by stream copy, and a supercut of many parts (:mod:`pipeline.clips.cut`).

Imports nothing heavy at import time beyond PyAV, which every caller already has.
"""

from __future__ import annotations

from pipeline.clips.cut import ClipError, ClipResult, Part, cut_clip, supercut

__all__ = ["ClipError", "ClipResult", "Part", "cut_clip", "supercut"]
