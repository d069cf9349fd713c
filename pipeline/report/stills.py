"""Still frames re-read from the input by timestamp: a thumbnail per segment
(at its peak) for the HTML report, and the best-scoring frames per label
(``--top-frames``).

Frames come from :func:`pipeline.decode.read_frames_at`, so no model and no
stored pixels are needed: only the input file, still where the run found it.
When it is gone or unreadable the images are skipped with a warning; the
reports are written without them. A live stream cannot be read again: it
hands in the segment pictures it kept while it played
(:mod:`pipeline.live.peaks`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_bytes, bounded_name
from pipeline.types import Frame, LabelTrack, Segment, VideoResult

log = logging.getLogger(__name__)

THUMB_SHORT_SIDE = 180
MAX_THUMBS = 300  # a JPEG each: cap the files on videos with very many segments
THUMBS_DIR = "thumbs"
POSTER = "poster.jpg"  # beside report.html: thumbs/ holds one picture per segment
TOP_FRAMES_DIR = "top_frames"


def peak_time(result: VideoResult, seg: Segment) -> float:
    """The sampled time inside ``seg`` where its label's smoothed score is
    highest (the segment's ``peak``); the segment's middle when unknown."""
    track = _track(result.tracks, seg.label, seg.kind)
    times = np.asarray(result.times_s, dtype=np.float64)
    if track is None or len(times) == 0:
        return (seg.start_s + seg.end_s) / 2
    inside = np.flatnonzero((times >= seg.start_s - 1e-6) & (times <= seg.end_s + 1e-6))
    if len(inside) == 0:
        return (seg.start_s + seg.end_s) / 2
    scores = np.nan_to_num(np.asarray(track.smoothed, np.float64)[inside], nan=-np.inf)
    return float(times[inside[int(np.argmax(scores))]])


def poster_time(result: VideoResult) -> float | None:
    """Where an input's poster (``poster.jpg``, shown in
    ``index.html``) is taken: the peak of its best tag segment, else its
    middle sample; None with no samples."""
    tags = [seg for seg in result.segments if seg.kind != "nsfw"]
    if tags:
        return peak_time(result, max(tags, key=lambda seg: seg.peak))
    times = np.asarray(result.times_s, dtype=np.float64)
    return float(times[len(times) // 2]) if len(times) else None


def thumb_name(n: int, seg: Segment, t_s: float) -> str:
    """``thumbs/<nnn>_<label>_<mm-ss.mmm>.jpg`` for the n-th segment (0-based)."""
    return f"{THUMBS_DIR}/{n:03d}_{safe_label(seg.label)}_{clock(t_s)}.jpg"


def write_segment_thumbs(result: VideoResult, out_dir: str | Path,
                         segments: Sequence[Segment] | None = None, *,
                         pictures: Callable[[list[float]], list[np.ndarray | None]] | None = None
                         ) -> dict[int, str]:
    """Write a JPEG per segment, at its peak time, under ``out_dir/thumbs/``,
    and the input's poster (``out_dir/poster.jpg``, at :func:`poster_time`),
    all from one read of the input.

    Args:
        result: the video's result (input path, times and tracks).
        out_dir: the video's report folder.
        segments: which segments, in report order (default: ``result.segments``).
        pictures: peak times → the pictures there (None: none kept), for an
            input that cannot be read again (a live stream keeps them);
            default: re-read from the input.

    Returns:
        segment position → path relative to ``out_dir``. A thumbnail already
        on disk is reused when the input cannot be read (``scenetag report``
        after the video moved).
    """
    out = Path(out_dir)
    segments = list(result.segments if segments is None else segments)[:MAX_THUMBS]
    times = [peak_time(result, seg) for seg in segments]
    files = [thumb_name(n, seg, t) for n, (seg, t) in enumerate(zip(segments, times, strict=True))]
    if (poster := poster_time(result)) is not None:  # read with the others: one pass over the input
        files, times = [*files, POSTER], [*times, poster]
    if not files:
        return {}
    if pictures is not None:
        images = pictures(times)
    else:
        frames = _read(result.input_path, times, THUMB_SHORT_SIDE)
        images = None if frames is None else [frame.image for frame in frames]
    if images is None:  # unreadable now: keep what an earlier run wrote
        return {n: f for n, f in enumerate(files[:len(segments)]) if (out / f).is_file()}
    for file, image in zip(files, images, strict=True):
        if image is not None:
            _write_jpeg(image, out / file, quality=82)
    return {n: f for n, (f, image) in enumerate(zip(files[:len(segments)], images)) if image is not None}


def write_top_frames(result: VideoResult, out_dir: str | Path, n: int) -> list[Path]:
    """Save the ``n`` best-scoring frames of every label that appears as
    JPEGs, full size: ``top_frames/<label>_<rank>_<mm-ss.mmm>.jpg`` (rank from
    1, by raw score). A label appears when it has a segment or a frame whose
    raw score reaches its threshold; the best frames of a label that never
    does show something else. Returns the paths written."""
    if n <= 0 or result.status != "ok" or len(result.times_s) == 0:
        return []
    times = np.asarray(result.times_s, dtype=np.float64)
    wanted: list[tuple[str, float]] = []
    for track in (t for t in result.tracks if appears(result, t)):
        raw = np.nan_to_num(np.asarray(track.raw, np.float64), nan=-np.inf)
        best = np.argsort(-raw, kind="stable")[:n]
        wanted += [(f"{safe_label(track.name)}_{rank}_{clock(times[i])}.jpg", float(times[i]))
                   for rank, i in enumerate(best, start=1)]
    frames = _read(result.input_path, [t for _, t in wanted], None)
    if frames is None:
        return []
    folder = Path(out_dir) / TOP_FRAMES_DIR
    return [_write_jpeg(frame.image, folder / name, quality=92)
            for (name, _), frame in zip(wanted, frames, strict=True)]


def appears(result: VideoResult, track: LabelTrack) -> bool:
    """Whether ``track``'s label has a segment, or a raw score at or above its
    threshold (an unknown threshold counts as never reached)."""
    if any(seg.label == track.name and seg.kind == track.kind for seg in result.segments):
        return True
    raw = np.asarray(track.raw, np.float64)
    return bool(np.any(raw[np.isfinite(raw)] >= track.threshold))


# --------------------------------------------------------------------------- helpers


def safe_label(label: str, max_bytes: int = 60) -> str:
    """A label as a file-name part: letters/digits (any script), ``-``, ``_``;
    at most ``max_bytes`` UTF-8 bytes (file systems count bytes)."""
    return bounded_name(label, max_bytes) or "label"


def clock(t_s: float) -> str:
    """``mm-ss.mmm`` (minutes keep counting past an hour), safe in file names."""
    ms = max(0, round(float(t_s) * 1000))
    m, rest = divmod(ms, 60_000)
    return f"{m:02d}-{rest // 1000:02d}.{rest % 1000:03d}"


def _read(path: str, times: list[float], short_side: int | None) -> list[Frame] | None:
    from pipeline.decode import read_frames_at

    if not times:
        return []
    if not Path(path).is_file():
        log.warning("%s: input not found; frame images skipped", path)
        return None
    try:
        return read_frames_at(path, times, short_side=short_side)
    except Exception as ex:  # images are optional: never fail a report for them
        log.warning("%s: frame images skipped: %s", path, " ".join(str(ex).split()) or type(ex).__name__)
        return None


def _write_jpeg(image: np.ndarray, path: Path, quality: int) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return atomic_write_bytes(path, buf.getvalue())


def _track(tracks: Sequence[LabelTrack], label: str, kind: str) -> LabelTrack | None:
    for track in tracks:
        if track.name == label and track.kind == kind:
            return track
    return next((t for t in tracks if t.name == label), None)
