"""Reading a finished input's report folder back into a :class:`VideoResult`
(:func:`load_result`): what ``scenetag report``, ``scenetag eval`` and the
server's report view start from, with no model.

Only what the run wrote is read: ``summary.json`` (required), then
``frames.csv``, ``segments.csv``, ``segments.json``, and ``shots.csv`` and
``cues.csv`` (a ``--shots`` run's) when present. A number
missing from them comes back as NaN (a threshold, a peak), so an older
folder still renders.

Every file is opened once, without following a symlink and without
blocking (:func:`read_report_file`): only a regular file of at most
:data:`MAX_REPORT_FILE_BYTES` is read, so a symlink to a file elsewhere or a
named pipe in a report folder is an error, never a read or a hang. A file
that does not parse is a one-line :class:`PipelineError` naming it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.notes import decode_stats
from pipeline.report.tables import last_frame
from pipeline.report.text import uncsv_cell
from pipeline.report.timeline_files import SHOTS_CSV, parse_cues, parse_shots
from pipeline.types import LabelTotals, LabelTrack, PipelineError, Sampling, Segment, VideoInfo, VideoResult

MAX_REPORT_FILE_BYTES = 256 << 20  # a report file larger than this is refused, unread
# Errors a parser of a malformed file raises (pandas' own are ValueErrors).
_MALFORMED = (KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError, RecursionError)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_report_file(path: str | Path, *, dir_fd: int | None = None) -> bytes | None:
    """The bytes of one report file; None when there is none.

    The file is opened once with ``O_NOFOLLOW | O_NONBLOCK`` and checked on
    that descriptor: a symlink, named pipe, device or folder in its place is
    refused (a pipe is never waited on), and so is a file over
    :data:`MAX_REPORT_FILE_BYTES`. ``dir_fd``: open ``path``'s name in that
    folder (``path`` is then only what messages show).

    Raises:
        PipelineError: the file is not a regular file, too large, or unreadable.
    """
    path = Path(path)
    try:
        fd = os.open(path.name if dir_fd is not None else path, _FLAGS | _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as ex:
        if ex.errno in (errno.ELOOP, errno.EMLINK):  # what O_NOFOLLOW says of a symlink
            raise PipelineError(f"{path}: a symlink, not a regular file: not read") from None
        raise PipelineError(f"{path}: cannot read ({ex.strerror or ex})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else \
                "a folder" if stat.S_ISDIR(st.st_mode) else "a socket or device"
            raise PipelineError(f"{path}: {kind}, not a regular file: not read")
        cap = MAX_REPORT_FILE_BYTES
        if st.st_size > cap:
            raise PipelineError(f"{path}: {st.st_size:,} bytes, over the {cap:,} a report file may "
                                "hold: not read")
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:  # it grew while read
            raise PipelineError(f"{path}: over the {cap:,} bytes a report file may hold: not read")
        return b"".join(chunks)
    except OSError as ex:
        raise PipelineError(f"{path}: cannot read ({ex.strerror or ex})") from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def report_folder(folder: str | Path, within: str | Path | None = None) -> Iterator[int]:
    """A descriptor of ``folder`` to read its files with (:func:`read_report_file`).

    ``within``: ``folder`` must lie inside that folder and be reached from it
    through real folders only, each opened with ``O_NOFOLLOW`` (so a folder
    swapped for a symlink on the way is refused, not followed).

    Raises:
        PipelineError: the folder cannot be opened, or is not inside ``within``.
    """
    folder = Path(folder)
    directory = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        if within is None:
            fd = os.open(folder, directory)
        else:
            root = Path(os.path.realpath(within))
            try:
                parts = folder.relative_to(root).parts
            except ValueError:
                raise PipelineError(f"{folder}: not inside {root}") from None
            fd = os.open(root, directory)
            for part in parts:
                try:
                    step = os.open(part, directory | _NOFOLLOW, dir_fd=fd)
                finally:
                    os.close(fd)
                fd = step
    except OSError as ex:
        raise PipelineError(f"{folder}: cannot open the report folder ({ex.strerror or ex})") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _parsing(path: Path) -> Iterator[None]:
    """A malformed file's parse error as one line naming the file."""
    try:
        yield
    except _MALFORMED as ex:
        detail = " ".join(str(ex).split())[:200] or type(ex).__name__
        raise PipelineError(f"{path}: malformed ({type(ex).__name__}: {detail})") from None


def load_result(folder: str | Path, *, within: str | Path | None = None) -> VideoResult:
    """Rebuild one input's :class:`VideoResult` from its report folder:
    ``summary.json`` (required), ``frames.csv`` (scores over time),
    ``segments.csv`` (else the summary's segments) and, when present,
    ``segments.json`` (each label's kind and thresholds), ``shots.csv`` and
    ``cues.csv`` (``shots`` and ``cues``; None without ``shots.csv``).

    ``within``: the folder must lie inside this one, reached through no
    symlink (see :func:`report_folder`; ``scenetag serve`` reads ``--reports``
    so).

    Raises:
        PipelineError: ``summary.json`` is missing; a file is not a regular
            file, too large, unreadable or malformed (one line naming it).
    """
    folder = Path(folder)
    with report_folder(folder, within) as fd:
        return _load(folder, lambda name: read_report_file(folder / name, dir_fd=fd))


def _load(folder: Path, read) -> VideoResult:
    raw = read("summary.json")
    if raw is None:
        raise PipelineError(f"{folder}: cannot read summary.json: there is none")
    exported = read("segments.json")
    with _parsing(folder / "summary.json"):
        summary = json.loads(raw.decode("utf-8"))
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
        result = _from_summary(folder, summary)
        labels = _label_meta(exported, summary)
    frames = read("frames.csv")
    if frames is not None:
        with _parsing(folder / "frames.csv"):
            _load_frames(frames, result, labels)
    segments = read("segments.csv")
    with _parsing(folder / ("segments.csv" if segments is not None else "summary.json")):
        result.segments = _load_segments(segments, summary)
    shots = read(SHOTS_CSV)
    if shots is not None:  # the run looked for shots (its cues.csv beside it)
        with _parsing(folder / SHOTS_CSV):
            result.shots = parse_shots(shots.decode("utf-8"))
        cues = read("cues.csv")
        with _parsing(folder / "cues.csv"):
            result.cues = parse_cues(cues.decode("utf-8")) if cues is not None else []
    return result


def _from_summary(folder: Path, summary: dict) -> VideoResult:
    return VideoResult(
        input_path=str(summary.get("input", "")), name=folder.resolve().name,  # where the page is
        status=summary.get("status", "ok"), error=summary.get("error"),
        info=_info(summary), sampling=_sampling(summary.get("sampling")),
        tags=list(summary.get("tags") or []), nsfw_verdict=summary.get("nsfw_verdict", "n/a"),
        model_id=(summary.get("model") or {}).get("id", ""),
        model_revision=(summary.get("model") or {}).get("revision"),
        precision=(summary.get("model") or {}).get("precision", ""),
        config_hash=summary.get("config_hash", ""), wall_time_s=summary.get("wall_time_s") or 0.0,
        decode=decode_stats(summary.get("decode")), totals=_totals(summary.get("totals")))


def _label_meta(exported_raw: bytes | None, summary: dict) -> dict[str, dict]:
    """Each label's kind (from the summary's totals) and thresholds (from
    ``segments.json``, optional: a malformed one leaves them unknown)."""
    totals = summary.get("totals") or {}
    meta = {name: {"kind": t.get("kind", "tag")} for name, t in totals.items()}
    if exported_raw is None:
        return meta
    try:
        exported = json.loads(exported_raw.decode("utf-8"))
        for lab in exported.get("labels", []):
            if isinstance(lab, dict) and isinstance(lab.get("name"), str):
                meta[lab["name"]] = lab
    except _MALFORMED:
        pass  # optional: thresholds are then unknown
    return meta


def _info(summary: dict) -> VideoInfo | None:
    video = summary.get("video")
    if not video:
        return None
    known = {f.name for f in dataclasses.fields(VideoInfo)} - {"path"}
    fields = {"container": "", "codec": "", "width": 0, "height": 0, "duration_s": None,
              "avg_fps": None, "frame_count": None}
    fields.update({k: v for k, v in video.items() if k in known})
    return VideoInfo(path=str(summary.get("input", "")), **fields)


def _sampling(s: dict | None) -> Sampling | None:
    if not s:
        return None
    return Sampling(every_n_frames=s.get("every_n_frames"), every_seconds=s.get("every_seconds"),
                    target_fps=s.get("target_fps"), max_frames=s.get("max_frames"))


def _totals(totals: dict | None) -> list[LabelTotals]:
    return [LabelTotals(label=name, kind=t.get("kind", "tag"),
                        seconds_present=t.get("seconds_present") or 0.0,
                        fraction=_nan(t.get("fraction")),
                        frames_over_threshold=t.get("frames_over_threshold") or 0,
                        max_score=_nan(t.get("max_score")))
            for name, t in (totals or {}).items()]


def _load_frames(raw: bytes, result: VideoResult, labels: dict[str, dict]) -> None:
    import pandas as pd

    frames = pd.read_csv(io.BytesIO(raw))
    if "refine" in frames.columns:  # refinement frames are not on the sampled tracks
        frames = frames[frames["refine"] != 1].reset_index(drop=True)
    result.frame_indices = frames["frame_index"].to_numpy(np.int64)
    result.times_s = frames["time_s"].to_numpy(np.float64)
    for column in frames.columns:
        if not column.startswith("score:"):
            continue
        name = column[len("score:"):]
        meta = labels.get(name, {})
        raw = frames[column].to_numpy(np.float64)
        smoothed = frames[f"smoothed:{name}"].to_numpy(np.float64) \
            if f"smoothed:{name}" in frames.columns else raw
        result.tracks.append(LabelTrack(name, meta.get("kind", "tag"), raw, smoothed,
                                        _nan(meta.get("threshold")), _nan(meta.get("exit_threshold"))))


def _load_segments(raw: bytes | None, summary: dict) -> list[Segment]:
    import pandas as pd

    if raw is not None:
        # labels like "nan" or "null" must stay strings
        rows = pd.read_csv(io.BytesIO(raw), keep_default_na=False, dtype={"label": str, "kind": str})
        rows = rows.to_dict("records")
    else:
        rows = summary.get("segments") or []
    return [Segment(label=str(uncsv_cell(r["label"])), kind=str(r.get("kind") or "tag"),
                    start_s=float(r["start_s"]), end_s=float(r["end_s"]),
                    peak=_nan(r.get("peak")), mean=_nan(r.get("mean")),
                    start_frame=_frame_or_none(r.get("start_frame")),
                    end_frame=last_frame(_frame_or_none(r.get("end_frame"))),  # exclusive there
                    refined=str(r.get("refined") or "none")) for r in rows]


def _frame_or_none(v: Any) -> int | None:
    value = _nan(v)
    return int(value) if np.isfinite(value) else None


def _nan(v: Any) -> float:
    try:
        return float(v) if v is not None and v != "" else float("nan")
    except (TypeError, ValueError):
        return float("nan")
