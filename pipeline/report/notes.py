"""What the decoder's notes (:class:`~pipeline.types.DecodeStats`) mean for
the reports: whether an input was decoded only in part, where a live
stream had no frames (its gaps), and how the ``decode`` block of a
``summary.json`` reads back.

The notes are the contract: they reach ``summary.json`` and the store, and a
report rebuilt from either (``--resume``, ``scenetag report``, the run index
over earlier runs' folders) says the same as the run that wrote them.

Standard library only: ``pipeline.run.job`` asks before any table is written.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from pipeline.types import DecodeStats, VideoResult

# pipeline.decode.pyav's words for a stream that ends before the container's
# claimed duration, and for a demuxer that gave up part way (truncated or
# garbled file); a claimed duration far beyond the video is a lying header,
# not a partial input, and has words of its own.
_ENDED_EARLY = re.compile(r"^stream ended at (\d+(?:\.\d+)?) s of (\d+(?:\.\d+)?) s")
_STOPPED_EARLY = "stopped reading early: "


def partial_note(result: VideoResult) -> str | None:
    """One line saying the input was decoded only in part, or None.

    ``partial: decoded 27.73 s of the 48.00 s the container claims
    (truncated?)`` when the stream ended before its claimed duration;
    ``partial: reading stopped early (<why>)`` when the demuxer gave up on
    an error. The input is still ``ok``: everything decoded was scored.
    """
    notes = result.decode.notes if result.decode is not None else []
    for note in notes:
        ended = _ENDED_EARLY.match(note)
        if ended:
            decoded, claimed = ended.groups()
            return f"partial: decoded {decoded} s of the {claimed} s the container claims (truncated?)"
    for note in notes:
        if note.startswith(_STOPPED_EARLY):
            return f"partial: reading stopped early ({note[len(_STOPPED_EARLY):]})"
    return None


def decode_stats(block: dict[str, Any] | None) -> DecodeStats | None:
    """The :class:`DecodeStats` of a ``summary.json``'s ``decode`` block
    (keys this build does not know are ignored), None without one."""
    if not isinstance(block, dict) or not block:
        return None
    known = {f.name for f in dataclasses.fields(DecodeStats)}
    return DecodeStats(**{k: v for k, v in block.items() if k in known})


@dataclass(frozen=True)
class Gap:
    """A stretch of a live stream with no frames (a reconnect, a stall)."""

    start_s: float
    end_s: float
    reason: str


def gaps(result: VideoResult) -> list[Gap]:
    """The gaps noted in the result's decode stats, in time order (none for
    a file). The note's format is the live stream's
    (:func:`pipeline.decode.gaps.gap_note`), read back as the store does."""
    from pipeline.decode.gaps import gap_note, gaps_of

    notes = result.decode.notes if result.decode is not None else []
    found = []
    for start, end in gaps_of(result.decode):
        prefix = gap_note(start, end, "")
        found.append(Gap(start, end, next((n[len(prefix):] for n in notes if n.startswith(prefix)), "")))
    return found
