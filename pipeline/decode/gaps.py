"""A live stream's gaps, as notes of its :class:`~pipeline.types.DecodeStats`.

A gap (a reconnect, a stall: a stretch with no frames) is noted as
``gap 12.300-15.870 s: connection closed``. The note is the contract: it
reaches ``summary.json`` and the store alike, and is read back from either
(by the reports, by ``rescore``), so its format is written and parsed here
only.
"""

from __future__ import annotations

import re

from pipeline.types import DecodeStats

_GAP = re.compile(r"^gap (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?) s: ")


def gap_note(start_s: float, end_s: float, reason: str) -> str:
    """The note for a gap from ``start_s`` to ``end_s`` (to the millisecond)."""
    return f"gap {start_s:.3f}-{end_s:.3f} s: {reason}"


def is_live(stats: DecodeStats | None) -> bool:
    """Whether these stats are a live stream's (frames, then gaps, appended as it played)."""
    return stats is not None and stats.strategy == "live"


def gaps_of(stats: DecodeStats | None) -> list[tuple[float, float]]:
    """The ``(start_s, end_s)`` of every gap noted in ``stats``, in order."""
    found = [_GAP.match(note) for note in (stats.notes if stats else [])]
    return sorted((float(m.group(1)), float(m.group(2))) for m in found if m)
