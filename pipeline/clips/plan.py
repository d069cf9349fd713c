"""Which clips to cut from a finished run: one input's segments (plain
values, as ``segments.csv`` holds them) filtered by label, padded, and
named ``<label>-<n>-<mm.ss.mmm>.<ext>`` (``n`` counts that label's
segments from 1 in time order; the time is the segment's start). Reading the
run's files is the caller's (``scenetag clips``); this module decides.

Frame numbers decide a clip's frames when the segment has them and no
padding moves its edges; padded clips go by seconds, clipped to
``[0, duration]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import bounded_name
from pipeline.clips.cut import FORMATS, Part

LABEL_BYTES = 60  # a label's share of a clip's file name


@dataclass(frozen=True)
class PlannedClip:
    """One clip to cut: its file ``name`` (without folder) and its ``part``."""

    label: str
    n: int
    name: str
    part: Part


def stamp(t: float) -> str:
    """``mm.ss.mmm`` of ``t`` seconds (minutes past 99 keep their digits)."""
    ms = max(int(round(t * 1000)), 0)
    return f"{ms // 60000:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def extension(source: str, mode: str) -> str:
    """The clip's extension: the source's when a clip can be written so,
    else ``.mp4`` (re-encoded) or ``.mkv`` (copied packets fit Matroska)."""
    ext = Path(source).suffix.lower()
    if ext in FORMATS:
        return ext
    return ".mp4" if mode == "exact" else ".mkv"


def plan_clips(source: str, segments: Iterable[Any], *, labels: Sequence[str] = (), pad_s: float = 0.0,
               duration_s: float | None = None, mode: str = "exact") -> list[PlannedClip]:
    """The clips of one input. ``segments``: objects with ``label``,
    ``start_s``, ``end_s`` and optionally ``start_frame`` and an exclusive
    ``end_frame`` (``None`` when unknown); ``labels`` keeps only those (all
    when empty). Empty or reversed segments are skipped."""
    wanted = set(labels)
    chosen = sorted((s for s in segments if not wanted or s.label in wanted),
                    key=lambda s: (float(s.start_s), float(s.end_s), s.label))
    ext = extension(source, mode)
    counts: dict[str, int] = {}
    used: set[str] = set()
    out = []
    for seg in chosen:
        start, end = float(seg.start_s), float(seg.end_s)
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            continue
        a, b = getattr(seg, "start_frame", None), getattr(seg, "end_frame", None)
        if pad_s > 0:
            start, end, a, b = max(start - pad_s, 0.0), end + pad_s, None, None
            if duration_s:
                end = min(end, float(duration_s))
        n = counts[seg.label] = counts.get(seg.label, 0) + 1
        stem = f"{bounded_name(seg.label, LABEL_BYTES) or 'segment'}-{n}-{stamp(float(seg.start_s))}"
        name, k = stem + ext, 2
        while name.casefold() in used:  # two labels with one safe name
            name, k = f"{stem}-{k}{ext}", k + 1
        used.add(name.casefold())
        out.append(PlannedClip(seg.label, n, name, Part(source, start, end, a, b)))
    return out
