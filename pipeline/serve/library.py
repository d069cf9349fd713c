"""What the server may show: the store's inputs and the reports that match
them, each input known by an opaque id.

This is the server's allow-list. A request names an input by its id (a hash
of the path the store holds), never by a path: nothing a client sends is
joined onto a folder. Reports are found by walking ``--reports`` through
folder descriptors, following no symlink, and each report file is read only
when it is a regular file (:func:`pipeline.report.readback.read_report_file`).
An input is served from one open descriptor, and only while that descriptor
is the file the store embedded (its content hash, as
:func:`pipeline.store.keys.content_hash` computes it, matches): a file
replaced or re-pointed by a symlink since, even between the check and the
read, is refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import statistics
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.report.readback import read_report_file
from pipeline.serve.files import OpenedFile, open_regular
from pipeline.store.db import EmbeddingStore
from pipeline.store.keys import content_hash
from pipeline.store.rows import StoredVideo
from pipeline.types import PipelineError

log = logging.getLogger(__name__)

REPORT_DEPTH = 3  # reports/<run>/<batch>/<input>/summary.json at most
REPORT_LIMIT = 100_000  # summaries read at most (a --reports pointed at / stops here)


@dataclass
class Report:
    """One input's report folder, as ``scenetag run`` wrote it. The summary
    is a file anyone may have edited: values of the wrong type are ignored."""

    folder: Path
    summary: dict
    root: Path | None = None  # the --reports folder it was found in (read through no symlink)
    mtime: float | None = None  # summary.json's, when it was read

    @property
    def tags(self) -> list[str]:
        tags = self.summary.get("tags")
        return [str(t) for t in tags if isinstance(t, str | int | float)] if isinstance(tags, list) else []

    @property
    def nsfw_verdict(self) -> str:
        verdict = self.summary.get("nsfw_verdict")
        return verdict if isinstance(verdict, str) and verdict else "n/a"

    def segments(self) -> list[dict]:
        segments = self.summary.get("segments")
        return [s for s in segments if isinstance(s, dict)] if isinstance(segments, list) else []

    @functools.cached_property
    def _nsfw_spans(self) -> list[tuple[float, float]]:
        spans = []
        for s in self.segments():
            if s.get("kind") != "nsfw":
                continue
            try:
                start, end = float(s.get("start_s", 0)), float(s.get("end_s", 0))
            except (TypeError, ValueError):
                continue
            if not (math.isnan(start) or math.isnan(end)):
                spans.append((start, end))
        return spans

    def nsfw_at(self, time_s: float) -> bool:
        """True when ``time_s`` lies in one of the report's NSFW segments."""
        return any(start <= time_s <= end for start, end in self._nsfw_spans)


@dataclass
class Input:
    """One stored input the server may show and play."""

    id: str
    path: str  # absolute, as the store holds it
    hashes: frozenset[str]  # content hashes the store holds for this path
    duration_s: float | None
    step_s: float  # sampling step: stored frames are this far apart
    times: dict[int, float] = field(default_factory=dict)  # stored frame index -> time (s)
    sampled_frames: int = 0  # stored frames that were sampled (not edge-refinement frames)
    report: Report | None = None

    @functools.cached_property
    def poster(self) -> int | None:
        """The stored frame nearest the middle: the input's thumbnail in lists."""
        middle = (self.duration_s or max(self.times.values(), default=0.0)) / 2
        return min(self.times, key=lambda i: abs(self.times[i] - middle)) if self.times else None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def nsfw_at(self, time_s: float) -> bool:
        return self.report is not None and self.report.nsfw_at(time_s)


def input_id(path: str) -> str:
    """An input's id in URLs: a hash of its path (no path in any URL)."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Library:
    """The stored inputs and their reports (built by :meth:`load`)."""

    def __init__(self, inputs: list[Input]) -> None:
        self._inputs = {i.id: i for i in inputs}
        self._by_path = {i.path: i for i in inputs}
        self._verified: dict[str, tuple] = {}  # id -> stat signature of the descriptor checked
        self._lock = threading.Lock()

    @classmethod
    def load(cls, store: EmbeddingStore, reports: Path | None = None) -> Library:
        """Read the store's inputs and frame times, and match reports to them."""
        videos: dict[str, list[StoredVideo]] = {}
        for video in store.videos():
            videos.setdefault(video.input_path, []).append(video)
        rows = store.frames(vectors=False)
        times: dict[str, dict[int, float]] = {}
        sampled: dict[str, list[float]] = {}
        for path, index, t, edge in zip(rows.input_path, rows.frame_index, rows.time_s, rows.refine_mask()):
            times.setdefault(str(path), {})[int(index)] = float(t)
            if not edge:  # an edge-refinement frame says nothing of the sampling step
                sampled.setdefault(str(path), []).append(float(t))
        inputs = [_input(path, vs, times.get(path, {}), sampled.get(path, []))
                  for path, vs in videos.items()]
        if reports is not None:
            _attach_reports(inputs, find_reports(reports))
        return cls(sorted(inputs, key=lambda i: (i.name, i.path)))

    def __len__(self) -> int:
        return len(self._inputs)

    def inputs(self) -> list[Input]:
        return list(self._inputs.values())

    def get(self, ident: str) -> Input | None:
        return self._inputs.get(ident)

    def by_path(self, path: str) -> Input | None:
        return self._by_path.get(path)

    def open_file(self, ident: str) -> OpenedFile | None:
        """The input's file, open, when it is still the file the store
        embedded; else None. The caller closes it (``with``).

        The path is opened once (following a symlink: an input may be one;
        never blocking: a named pipe is refused) and everything after is
        done on that descriptor: the check (the content hash of what is
        open, or a descriptor with the device, inode, size and mtime of one
        checked before) and every read, so a path re-pointed in between
        cannot change what is served.
        """
        entry = self._inputs.get(ident)
        if entry is None:
            return None
        opened = open_regular(entry.path)
        if opened is None:
            return None
        st = opened.stat
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if self._verified.get(ident) == signature:
                return opened
        try:
            same = content_hash(opened.path) in entry.hashes  # the open file, not the path again
        except OSError:
            same = None
        if not same:
            opened.close()
            if same is False:
                log.warning("not serving %s: it changed since it was stored (rerun `scenetag run`)",
                            entry.path)
            return None
        with self._lock:
            self._verified[ident] = signature
        return opened


def _input(path: str, videos: list[StoredVideo], times: dict[int, float],
           sampled_times: list[float]) -> Input:
    durations = [v.info.duration_s for v in videos if v.info and v.info.duration_s]
    steps = [v.sampling_obj.interval_s for v in videos if v.sampling_obj and v.sampling_obj.interval_s]
    if not steps and len(sampled_times) > 1:  # every-N-frames sampling: the sampled times tell
        ordered = sorted(set(sampled_times))
        steps = [statistics.median(b - a for a, b in zip(ordered, ordered[1:]))]
    return Input(id=input_id(path), path=path, hashes=frozenset(v.content_hash for v in videos),
                 duration_s=max(durations) if durations else None,
                 step_s=min(steps) if steps else 1.0, times=times,
                 sampled_frames=len(set(sampled_times)))


# --------------------------------------------------------------------------- reports


def find_reports(root: Path) -> list[Report]:
    """Every readable ``summary.json`` under ``root`` (depth ≤ ``REPORT_DEPTH``).

    The walk goes through folder descriptors (``os.fwalk``) and follows no
    symlink, folder or file; a ``summary.json`` that is not a regular file
    (a symlink, a named pipe) is skipped with a warning, unread and unwaited
    for: only what ``--reports`` really holds is read.
    """
    root = Path(os.path.realpath(root))
    found: list[Report] = []
    for folder, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = [] if depth >= REPORT_DEPTH else sorted(dirs)
        if "summary.json" not in files:
            continue
        report = _read_report(here / "summary.json", dir_fd, root)
        if report is not None:
            found.append(report)
        if len(found) >= REPORT_LIMIT:
            log.warning("--reports: stopped after %d reports", REPORT_LIMIT)
            break
    return found


def _read_report(summary: Path, dir_fd: int, root: Path) -> Report | None:
    try:
        mtime = os.stat(summary.name, dir_fd=dir_fd, follow_symlinks=False).st_mtime
        raw = read_report_file(summary, dir_fd=dir_fd)
        data = json.loads(raw.decode("utf-8")) if raw is not None else None
    except (OSError, PipelineError, ValueError, RecursionError) as ex:
        log.warning("skipping report %s: %s", summary, " ".join(str(ex).split())[:300])
        return None
    if not isinstance(data, dict) or not isinstance(data.get("input"), str):
        return None
    return Report(folder=summary.parent, summary=data, root=root, mtime=mtime)


def match_reports(paths: list[str], reports: list[Report]) -> dict[str, Report]:
    """Each stored path's newest report among ``reports``. A summary names
    its input as the run was given it (often relative to where the run
    started): an absolute path must match exactly; a relative one must end
    the stored path and name a single one of ``paths``."""
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(os.path.basename(path), []).append(path)
    found: dict[str, Report] = {}
    newest: dict[str, float] = {}
    for report in reports:
        path = _owner(report.summary["input"], by_name)
        if path is None:
            continue
        mtime = report.mtime
        if mtime is None:
            try:
                mtime = (report.folder / "summary.json").lstat().st_mtime
            except OSError:  # removed since it was read
                mtime = 0.0
        if mtime >= newest.get(path, float("-inf")):
            found[path], newest[path] = report, mtime
    return found


def _attach_reports(inputs: list[Input], reports: list[Report]) -> None:
    """Give each input its newest report (:func:`match_reports`)."""
    found = match_reports([entry.path for entry in inputs], reports)
    for entry in inputs:
        entry.report = found.get(entry.path, entry.report)


def _owner(named: str, by_name: dict[str, list[str]]) -> str | None:
    candidates = by_name.get(os.path.basename(named), [])
    if os.path.isabs(named):
        wanted = os.path.normpath(named)
        return next((c for c in candidates if os.path.normpath(c) == wanted), None)
    tail = os.sep + os.path.normpath(named).lstrip(os.sep)
    matching = [c for c in candidates if (os.sep + c.lstrip(os.sep)).endswith(tail)]
    return matching[0] if len(matching) == 1 else None
