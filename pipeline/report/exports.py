"""Exports for players and editors: WebVTT cues, CMX 3600 EDL markers and a
plain ``segments.json``. Every file is written atomically.

Editors count frames, not seconds, so EDL timecodes come from exact frame
numbers: ``frame = round(t * fps)`` with the frame rate as a
:class:`~fractions.Fraction` (``30000/1001``, not ``29.97``), then converted
to timecode. NTSC rates (29.97, 59.94) use SMPTE drop-frame timecode (``;``
before the frames field); every other rate, 23.976 included, is non-drop.
Rounding the rate to a float, or converting seconds straight to hh:mm:ss:ff
with a nominal 30 fps, drifts by 3.6 s per hour at 29.97.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text
from pipeline.types import LabelTrack, Segment, VideoResult

# NTSC rates a container's average fps approximates (29.97002997...).
_NTSC = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(48000, 1001),
         Fraction(60000, 1001), Fraction(120000, 1001))
DEFAULT_FPS = Fraction(25)
# Resolve's marker colours; tags cycle through these, NSFW is always red.
_EDL_COLOURS = ("Blue", "Cyan", "Green", "Yellow", "Pink", "Purple", "Fuchsia", "Rose",
                "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream")


# --------------------------------------------------------------------------- time and timecode


def exact_fps(fps: float | Fraction | None) -> Fraction:
    """The exact frame rate a container's (float) average rate stands for.

    Rates within 0.01 of an NTSC rate snap to it (``29.97`` → ``30000/1001``),
    rates within 0.01 of an integer snap to it; anything else is kept as the
    closest fraction with a denominator up to 1001. ``None`` or a non-positive
    rate (stills, unknown) gives 25.
    """
    if isinstance(fps, Fraction):
        return fps
    if fps is None or not math.isfinite(fps) or fps <= 0:
        return DEFAULT_FPS
    for ntsc in _NTSC:
        if abs(fps - float(ntsc)) < 0.01:
            return ntsc
    if abs(fps - round(fps)) < 0.01:
        return Fraction(round(fps))
    return Fraction(fps).limit_denominator(1001)


def is_drop_frame(fps: Fraction) -> bool:
    """Drop-frame timecode applies to the 30000/1001 family (29.97, 59.94)."""
    return fps.denominator == 1001 and fps.numerator % 30000 == 0


def frame_number(t_s: float, fps: Fraction) -> int:
    """The frame shown at ``t_s`` seconds: ``round(t_s * fps)``, halves up,
    computed in exact rational arithmetic."""
    return math.floor(Fraction(t_s) * fps + Fraction(1, 2))


def timecode(frame: int, fps: Fraction) -> str:
    """SMPTE timecode of a 0-based frame number.

    Drop-frame (``hh:mm:ss;ff``) for 29.97/59.94: frame numbers 0 and 1 (2 and
    3 at 59.94) are skipped at the start of every minute except every tenth,
    so the timecode keeps up with the wall clock. Otherwise non-drop
    (``hh:mm:ss:ff``) counting the nominal (rounded-up) frames per second.
    Hours wrap at 24 as timecode does.
    """
    if frame < 0:
        raise ValueError(f"frame must be >= 0, got {frame}")
    nominal = math.ceil(fps)
    sep = ":"
    if is_drop_frame(fps):
        sep = ";"
        drop = 2 * nominal // 30  # 2 at 29.97, 4 at 59.94
        per_min = nominal * 60 - drop
        per_10min = per_min * 10 + drop
        tens, rest = divmod(frame, per_10min)
        frame += 9 * drop * tens + (drop * ((rest - drop) // per_min) if rest > drop else 0)
    ff = frame % nominal
    total_s = frame // nominal
    hh, mm, ss = (total_s // 3600) % 24, (total_s // 60) % 60, total_s % 60
    return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"


def hms(t_s: float) -> str:
    """``hh:mm:ss.mmm`` (WebVTT's timestamp form, also shown in the HTML)."""
    ms = max(0, round(t_s * 1000))
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


# --------------------------------------------------------------------------- WebVTT


def vtt_text(result: VideoResult) -> str:
    """The ``tags.vtt`` document: one cue per segment, in start order.

    A cue reads ``coffee cup (0.93)``; NSFW segments read ``NSFW: <label>``.
    Cue ids are ``seg-<n>``. Text is escaped for WebVTT (``&``, ``<``, ``>``)
    and line breaks inside labels become spaces, so a label cannot end a cue.
    """
    lines = ["WEBVTT", "", f"NOTE scenetag tags for {_one_line(result.name)}", ""]
    for n, seg in enumerate(_ordered(result.segments), start=1):
        prefix = "NSFW: " if seg.kind == "nsfw" else ""
        text = _vtt_escape(f"{prefix}{_one_line(seg.label)} ({seg.peak:.2f})")
        end = max(seg.end_s, seg.start_s + 0.001)
        lines += [f"seg-{n}", f"{hms(seg.start_s)} --> {hms(end)}", text, ""]
    return "\n".join(lines)


def write_vtt(result: VideoResult, out_dir: str | Path) -> Path:
    """Write ``tags.vtt`` (see :func:`vtt_text`). Returns its path."""
    return atomic_write_text(Path(out_dir) / "tags.vtt", vtt_text(result))


def _vtt_escape(text: str) -> str:
    # "-->" can end a cue's timing line only, but escaping ">" removes it anyway
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------- EDL


def edl_text(result: VideoResult, fps: float | Fraction | None = None) -> str:
    """The ``markers.edl`` document: a CMX 3600 EDL with one marker per segment.

    Each segment is a one-frame event at its start (source and record
    timecode from 00:00:00:00, the video's first frame), followed by
    ``* FROM CLIP NAME``, an Avid/Premiere ``* LOC:`` locator and a
    DaVinci Resolve marker line ``|C:<colour> |M:<label> |D:<frames>``
    carrying the segment's length in frames. ``fps`` defaults to the
    video's average rate (see :func:`exact_fps`).
    """
    rate = exact_fps(fps if fps is not None else (result.info.avg_fps if result.info else None))
    drop = is_drop_frame(rate)
    clip = _edl_safe(Path(result.input_path).name) or "clip"
    lines = [f"TITLE: {_edl_safe(result.name) or 'scenetag'}",
             f"FCM: {'DROP FRAME' if drop else 'NON-DROP FRAME'}", ""]
    colours = _colours(result.segments)
    for n, seg in enumerate(_ordered(result.segments), start=1):
        start = frame_number(seg.start_s, rate)
        end = max(frame_number(seg.end_s, rate), start + 1)
        tc_in, tc_out = timecode(start, rate), timecode(start + 1, rate)
        label = _edl_safe(("NSFW " if seg.kind == "nsfw" else "") + seg.label) or "segment"
        colour = "Red" if seg.kind == "nsfw" else colours[seg.label]
        lines += [f"{n:03d}  AX       V     C        {tc_in} {tc_out} {tc_in} {tc_out}",
                  f"* FROM CLIP NAME: {clip}",
                  f"* LOC: {tc_in} {colour.upper():<7} {label} {seg.peak:.2f}",
                  f" |C:ResolveColor{colour} |M:{label} |D:{end - start}", ""]
    return "\n".join(lines)


def write_edl(result: VideoResult, out_dir: str | Path, fps: float | Fraction | None = None) -> Path:
    """Write ``markers.edl`` (see :func:`edl_text`). Returns its path."""
    return atomic_write_text(Path(out_dir) / "markers.edl", edl_text(result, fps))


def _edl_safe(text: str) -> str:
    # EDL is line-based and Resolve splits marker fields on "|"
    return re.sub(r"[\x00-\x1f\x7f|]+", " ", text).strip()


def _colours(segments: Sequence[Segment]) -> dict[str, str]:
    labels = dict.fromkeys(s.label for s in segments if s.kind != "nsfw")
    return {label: _EDL_COLOURS[i % len(_EDL_COLOURS)] for i, label in enumerate(labels)}


# --------------------------------------------------------------------------- segments.json


def segments_dict(result: VideoResult) -> dict[str, Any]:
    """Segments with seconds, exact frame numbers and timecodes, plus each
    label's kind and thresholds (which ``scenetag report`` reads back)."""
    rate = exact_fps(result.info.avg_fps if result.info else None)
    segments = []
    for seg in _ordered(result.segments):
        start, end = frame_number(seg.start_s, rate), frame_number(seg.end_s, rate)
        segments.append({"label": seg.label, "kind": seg.kind, "start_s": round(seg.start_s, 3),
                         "end_s": round(seg.end_s, 3), "duration_s": round(seg.duration_s, 3),
                         "peak": round(seg.peak, 6), "mean": round(seg.mean, 6),
                         "start": hms(seg.start_s), "end": hms(seg.end_s),
                         "start_frame": start, "end_frame": end,
                         "start_tc": timecode(start, rate), "end_tc": timecode(end, rate)})
    return {"input": result.input_path, "name": result.name,
            "fps": f"{rate.numerator}/{rate.denominator}", "drop_frame": is_drop_frame(rate),
            "labels": [_track_dict(t) for t in result.tracks], "segments": segments}


def write_segments_json(result: VideoResult, out_dir: str | Path) -> Path:
    """Write ``segments.json`` (see :func:`segments_dict`). Returns its path."""
    text = json.dumps(segments_dict(result), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_text(Path(out_dir) / "segments.json", text)


def _track_dict(track: LabelTrack) -> dict[str, Any]:
    def num(x: float) -> float | None:
        return round(float(x), 6) if math.isfinite(x) else None

    return {"name": track.name, "kind": track.kind, "threshold": num(track.threshold),
            "exit_threshold": num(track.exit_threshold)}


# --------------------------------------------------------------------------- helpers


def _ordered(segments: Sequence[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.start_s, s.end_s, s.label))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
