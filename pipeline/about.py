"""What scenetag says about itself: its installed version (one source for the
CLI's ``--version``, reports, the store's meta table and the web app)."""

from __future__ import annotations

UNKNOWN_VERSION = "0+unknown"  # a source tree that was never installed


def version() -> str:
    """The installed scenetag version, or ``"0+unknown"`` when not installed."""
    from importlib import metadata

    try:
        return metadata.version("scenetag")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
