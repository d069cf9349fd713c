"""Exports for players and editors: WebVTT cues, CMX 3600 EDL markers and a
plain ``segments.json``. Every file is written atomically; labels pass
through :func:`~pipeline.report.text.clean_label` (no control, separator or
bidi characters) on their way into any of them.

Editors count frames, not seconds, so timecodes come from exact frame
numbers: ``frame = round(t * fps)`` with the frame rate as a
:class:`~fractions.Fraction` (``30000/1001``, not ``29.97``), then converted
to timecode. EDLs are written at a SMPTE rate (:func:`edl_rate`) in
non-drop timecode; ``segments.json`` gives drop-frame timecode (``;``
before the frames field) for NTSC rates (29.97, 59.94). Rounding the rate
to a float, or converting seconds straight to hh:mm:ss:ff with a nominal
30 fps, drifts by 3.6 s per hour at 29.97.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text
from pipeline.report.tables import frame_after
from pipeline.report.text import clean_label, hms
from pipeline.types import LabelTrack, Segment, VideoInfo, VideoResult

# NTSC rates a container's average fps approximates (29.97002997...).
_NTSC = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(48000, 1001),
         Fraction(60000, 1001), Fraction(120000, 1001))
DEFAULT_FPS = Fraction(25)
# The SMPTE rates an EDL may carry: editors and OpenTimelineIO's CMX 3600
# reader parse timecode at these only (not 16.05, 15, 10 or 100/7).
EDL_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
             Fraction(50), Fraction(60000, 1001), Fraction(60))
# Resolve's marker colours; tags cycle through these, NSFW is always red.
_EDL_COLOURS = ("Blue", "Cyan", "Green", "Yellow", "Pink", "Purple", "Fuchsia", "Rose",
                "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream")
# Avid locator colours (which OpenTimelineIO also knows), red kept for NSFW.
_LOC_COLOURS = ("BLUE", "CYAN", "GREEN", "YELLOW", "MAGENTA", "WHITE")


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


def timecode(frame: int, fps: Fraction, drop: bool | None = None) -> str:
    """SMPTE timecode of a 0-based frame number.

    Drop-frame (``hh:mm:ss;ff``) for 29.97/59.94: frame numbers 0 and 1 (2 and
    3 at 59.94) are skipped at the start of every minute except every tenth,
    so the timecode keeps up with the wall clock. Otherwise non-drop
    (``hh:mm:ss:ff``) counting the nominal (rounded-up) frames per second.
    Hours wrap at 24 as timecode does. ``drop=False`` forces non-drop
    counting at 29.97/59.94 (as EDLs here use).
    """
    if frame < 0:
        raise ValueError(f"frame must be >= 0, got {frame}")
    nominal = math.ceil(fps)
    sep = ":"
    if is_drop_frame(fps) and drop is not False:
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


def edl_rate(fps: float | Fraction | None) -> Fraction:
    """The SMPTE rate an EDL is written at: the stream's rate (see
    :func:`exact_fps`) when it is one of :data:`EDL_RATES`, else the nearest
    of them (a VFR clip averaging 16.05 fps, or 15 fps footage, → 23.976).
    Editors and OpenTimelineIO read timecode at those rates only."""
    rate = exact_fps(fps)
    return rate if rate in EDL_RATES else min(EDL_RATES, key=lambda r: abs(r - rate))


def stream_rate(info: VideoInfo | None) -> float | None:
    """The rate an EDL of this video starts from: the stream's nominal rate
    when it is a SMPTE rate (a VFR film's 23.976, whose average rate may be
    16.05), else its average rate."""
    if info is None:
        return None
    if info.nominal_fps and exact_fps(info.nominal_fps) in EDL_RATES:
        return info.nominal_fps
    return info.avg_fps


def rate_name(rate: float | Fraction) -> str:
    """``24000/1001`` → ``"23.976"``, ``30000/1001`` → ``"29.97"``, ``25`` → ``"25"``."""
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def edl_text(result: VideoResult, fps: float | Fraction | None = None) -> str:
    """The ``markers.edl`` document: a CMX 3600 marker list.

    One one-frame event per distinct start frame (source and record
    timecode from 00:00:00:00, the video's first frame). Under it, one
    Avid/Premiere ``* LOC:`` locator per segment starting there, and one
    DaVinci Resolve marker line ``|C:<colour> |M:<labels> |D:<frames>`` (the
    labels joined with ``" + "``, the longest segment's length). Labels
    starting at the same frame share an event, so record times never
    overlap (OpenTimelineIO rejects overlapping record-ins) and every
    segment keeps its locator.

    The rate is :func:`edl_rate` of ``fps`` (default: :func:`stream_rate`),
    named in the ``TITLE:`` line; frame numbers come from seconds
    (``round(t * rate)``), so markers land within half a frame of
    ``segments.csv`` whatever the stream's timing. Timecode is always
    non-drop (``hh:mm:ss:ff``), 29.97 and 59.94 included: OpenTimelineIO's
    reader takes ``* LOC:`` timecode with colons only (and reads colons as
    non-drop), and Resolve's own marker export from a default (non-drop)
    timeline looks the same.
    """
    stream = fps if fps is not None else stream_rate(result.info)
    rate = edl_rate(stream)
    clip = _edl_safe(Path(result.input_path).name) or "clip"
    lines = [f"TITLE: {_edl_safe(result.name) or 'scenetag'} {_rate_note(rate, stream)}",
             "FCM: NON-DROP FRAME", ""]
    colours = _colours(result)
    for n, (start, group) in enumerate(_by_start_frame(result.segments, rate), start=1):
        tc_in, tc_out = timecode(start, rate, drop=False), timecode(start + 1, rate, drop=False)
        lines += [f"{n:03d}  AX       V     C        {tc_in} {tc_out} {tc_in} {tc_out}",
                  f"* FROM CLIP NAME: {clip}"]
        lines += [f"* LOC: {tc_in} {colours[_key(seg)][1]:<7} {_marker_name(seg)} {seg.peak:.2f}"
                  for seg in group]
        frames = max(max(frame_number(seg.end_s, rate) - start, 1) for seg in group)
        names = " + ".join(_marker_name(seg) for seg in group)
        lines += [f" |C:ResolveColor{colours[_key(group[0])][0]} |M:{names} |D:{frames}", ""]
    return "\n".join(lines)


def write_edl(result: VideoResult, out_dir: str | Path, fps: float | Fraction | None = None) -> Path:
    """Write ``markers.edl`` (see :func:`edl_text`). Returns its path."""
    return atomic_write_text(Path(out_dir) / "markers.edl", edl_text(result, fps))


def _rate_note(rate: Fraction, stream: float | Fraction | None) -> str:
    if not stream:
        return f"({rate_name(rate)} fps NDF, stream rate unknown)"
    if exact_fps(stream) == rate:
        return f"({rate_name(rate)} fps NDF)"
    return f"({rate_name(rate)} fps NDF, nearest SMPTE rate to the stream's {rate_name(stream)} fps)"


def _by_start_frame(segments: Sequence[Segment], rate: Fraction) -> list[tuple[int, list[Segment]]]:
    groups: dict[int, list[Segment]] = {}
    for seg in _ordered(segments):
        groups.setdefault(max(frame_number(seg.start_s, rate), 0), []).append(seg)
    return sorted(groups.items())


def _marker_name(seg: Segment) -> str:
    return _edl_safe(("NSFW " if seg.kind == "nsfw" else "") + seg.label) or "segment"


def _edl_safe(text: str) -> str:
    # EDL is line-based (readers split on U+2028 too) and Resolve splits marker fields on "|"
    return " ".join(clean_label(text).replace("|", " ").split())


def _key(seg: Segment) -> tuple[str, str]:
    return seg.label, seg.kind


def _colours(result: VideoResult) -> dict[tuple[str, str], tuple[str, str]]:
    """(Resolve colour, locator colour) per label, from the label's place
    among the run's tag labels (the tracks, in the config's order), so every
    file of a run gives a label the same colour; NSFW is always red."""
    tags = [(t.name, t.kind) for t in result.tracks if t.kind != "nsfw"]
    tags += [_key(s) for s in _ordered(result.segments) if s.kind != "nsfw"]  # labels without a track
    out = {}
    for i, key in enumerate(dict.fromkeys(tags)):
        out[key] = (_EDL_COLOURS[i % len(_EDL_COLOURS)], _LOC_COLOURS[i % len(_LOC_COLOURS)])
    out.update({_key(s): ("Red", "RED") for s in result.segments if s.kind == "nsfw"})
    return out


# --------------------------------------------------------------------------- segments.json


def segments_dict(result: VideoResult) -> dict[str, Any]:
    """Segments with seconds, exact frame numbers and timecodes, plus each
    label's kind and thresholds (which ``scenetag report`` reads back)."""
    rate = exact_fps(result.info.avg_fps if result.info else None)
    segments = []
    for seg in _ordered(result.segments):
        # pinned edges give their true frames; end_frame is exclusive, as in segments.csv
        start = seg.start_frame if seg.start_frame is not None else frame_number(seg.start_s, rate)
        end = frame_after(seg.end_frame) if seg.end_frame is not None else frame_number(seg.end_s, rate)
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
    return " ".join(clean_label(text).split())
