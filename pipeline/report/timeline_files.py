"""One input's timeline files for editors and players, from its finished
result (the run's, or one read back by ``scenetag report``): the formats
``otio`` (``timeline.otio``), ``fcpxml`` (``timeline.fcpxml``), ``chapters``
(``chapters.txt`` in FFmetadata, plus ``youtube.txt`` when YouTube's chapter
rules can be met) and ``edl-events`` (one CMX 3600 events EDL per label in
``edl/``). The timelines themselves are :mod:`pipeline.report.timelines`.
Also ``shots.csv`` and ``cues.csv`` (:func:`write_shots_csv`,
:func:`write_cues_csv`) for a run that looked for shots.

Shots, when the input has them (``shots.csv``: see
:func:`read_shots`), make the timeline's first track and the chapters;
without them the first track is one clip of the whole video and chapters
follow the tag segments.

OpenTimelineIO and its FCPXML adapter are optional: without them ``otio``
and ``fcpxml`` are skipped with one warning per process, not a failure.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import atomic_write_text
from pipeline.report.text import csv_cell, uncsv_cell
from pipeline.types import VideoResult

log = logging.getLogger(__name__)

TIMELINE_FORMATS = ("otio", "fcpxml", "chapters", "edl-events")
SHOTS_CSV = "shots.csv"

_warned: set[str] = set()


@dataclass(frozen=True)
class ShotRow:
    """One row of ``shots.csv``: a shot's number, times, frames and tags."""

    shot: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    tags: str = ""


@dataclass(frozen=True)
class CueRow:
    """One row of ``cues.csv``: a technical cue's kind and times (what a run's
    :class:`~pipeline.analysis.cues.Cue` keeps there)."""

    kind: str
    start_s: float
    end_s: float


def read_shots(folder: str | Path) -> list[ShotRow]:
    """The shots of ``folder/shots.csv``; none when there is no such file
    (or it cannot be read: the timelines then go without shots)."""
    path = Path(folder) / SHOTS_CSV
    try:
        return parse_shots(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return []


def parse_shots(text: str) -> list[ShotRow]:
    """The rows of a ``shots.csv`` text.

    Raises:
        ValueError, KeyError, TypeError: it is not one.
    """
    return [ShotRow(int(r["shot"]), float(r["start_s"]), float(r["end_s"]),
                    int(r["start_frame"]), int(r["end_frame"]), str(uncsv_cell(r.get("tags") or "")))
            for r in csv.DictReader(io.StringIO(text, newline=""))]


def parse_cues(text: str) -> list[CueRow]:
    """The rows of a ``cues.csv`` text.

    Raises:
        ValueError, KeyError, TypeError: it is not one.
    """
    return [CueRow(str(r["kind"]), float(r["start_s"]), float(r["end_s"]))
            for r in csv.DictReader(io.StringIO(text, newline=""))]


def write_shots_csv(shots: Sequence[ShotRow], out_dir: str | Path) -> Path:
    """``shots.csv``: ``shot,start_s,end_s,start_frame,end_frame,tags`` (end
    frame exclusive; tags ``; ``-separated, best first)."""
    rows = [[s.shot, f"{s.start_s:.6f}", f"{s.end_s:.6f}", s.start_frame, s.end_frame, csv_cell(s.tags)]
            for s in shots]
    return _write_rows(Path(out_dir) / SHOTS_CSV,
                       ["shot", "start_s", "end_s", "start_frame", "end_frame", "tags"], rows)


def write_cues_csv(cues: Sequence, out_dir: str | Path) -> Path:
    """``cues.csv``: ``kind,start_s,end_s`` per cue (black, frozen,
    fade_in, fade_out), in time order."""
    rows = [[c.kind, f"{c.start_s:.6f}", f"{c.end_s:.6f}"] for c in cues]
    return _write_rows(Path(out_dir) / "cues.csv", ["kind", "start_s", "end_s"], rows)


def _write_rows(path: Path, header: list[str], rows: list[list]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _have_otio(fcpxml: bool = False) -> bool:
    try:
        import opentimelineio as otio
    except ImportError:
        _warn_once("otio", "timeline.otio and timeline.fcpxml skipped: opentimelineio is not "
                           "installed (pip install opentimelineio)")
        return False
    if fcpxml and "fcpx_xml" not in otio.adapters.available_adapter_names():
        _warn_once("fcpx", "timeline.fcpxml skipped: otio-fcpx-xml-adapter is not installed "
                           "(pip install otio-fcpx-xml-adapter)")
        return False
    return True


def duration_of(result: VideoResult) -> float:
    """The input's length in seconds: the container's, else the end of its
    last segment or sample."""
    info = result.info
    if info is not None and info.duration_s:
        return float(info.duration_s)
    ends = [s.end_s for s in result.segments]
    if len(result.times_s):
        ends.append(float(result.times_s[-1]))
    return max(ends, default=0.0)


def write_timeline_files(result: VideoResult, out_dir: str | Path, formats: Sequence[str],
                         labels: Sequence[str] = ()) -> list[Path]:
    """Write the timeline formats among ``formats`` for one finished input
    into ``out_dir`` (failed inputs get none). ``labels`` orders the tag
    tracks. Returns the paths written."""
    from pipeline.report import timelines as tl

    wanted = set(formats) & set(TIMELINE_FORMATS)
    if result.status != "ok" or not wanted:
        return []
    out = Path(out_dir)
    info = result.info
    fps = info.avg_fps if info is not None else None
    duration = duration_of(result)
    tags = [s for s in result.segments if s.kind != "nsfw"]
    nsfw = [s for s in result.segments if s.kind == "nsfw"]
    shots = (result.shots if result.shots is not None else read_shots(out)) or None
    name = Path(result.input_path).stem or result.name
    written: list[Path] = []
    if "otio" in wanted and _have_otio():
        timeline = tl.build_timeline(result.input_path, fps, duration, tags, nsfw, shots,
                                     name=name, labels=labels)
        written.append(tl.write_otio(out / "timeline.otio", timeline))
    if "fcpxml" in wanted and _have_otio(fcpxml=True):
        written.append(tl.write_fcpxml(out / "timeline.fcpxml", result.input_path, fps, duration,
                                       tags, nsfw, shots, name=name, labels=labels,
                                       width=info.width if info else None,
                                       height=info.height if info else None))
    if "chapters" in wanted:
        chapters = (tl.chapters_from_shots(shots, [s.tags.replace("; ", " + ") for s in shots])
                    if shots else tl.chapters_from_segments(tags, duration))
        written.append(tl.write_ffmetadata(out / "chapters.txt", chapters, title=name))
        youtube = tl.youtube_chapters(chapters)
        if youtube.text is not None:
            written.append(atomic_write_text(out / "youtube.txt", youtube.text))
        for note in youtube.notes:
            log.info("%s: YouTube chapters: %s", result.name, note)
        if youtube.text is None:
            log.info("%s: no youtube.txt (YouTube's chapter rules cannot be met)", result.name)
    if "edl-events" in wanted and tags:
        edl_dir = out / "edl"
        edl_dir.mkdir(parents=True, exist_ok=True)
        written += list(tl.write_label_edls(edl_dir, tags, result.input_path, fps, name=name).values())
    return written
