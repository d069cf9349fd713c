"""A live stream's report folder, kept current while the stream plays.

``frames.csv``, ``segments.csv`` and ``events.jsonl`` grow a row at a time,
flushed as each row is known (a reader tailing them sees whole rows only:
each row is one write). ``summary.json`` and ``timeline.png`` are rewritten
atomically (see :mod:`pipeline.atomic`) now and then and at the end:
``summary.json`` says ``"live": {"state": "running"}`` until the stream has
ended. At the end come the exports a file run writes (``tags.vtt``,
``markers.edl``, ``segments.json``, ``report.html``, ``thumbs/``), then
``summary.json`` last. Text cells pass the same formula guard as every other CSV
(:func:`pipeline.report.text.csv_cell`).

A full disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``) never leaves half a row: a
row that does not fit is cut off again (the file truncated to where it
began), :attr:`StreamOutputs.full` says which file it was, and nothing more
is appended; the stream ends (:class:`pipeline.live.stream.LiveStream`) and
its final ``summary.json`` is written into the room its share of the run's
:class:`~pipeline.live.reserve.SpaceReserve` kept.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.atomic import remove_dir
from pipeline.live.reserve import SpaceReserve, is_disk_full
from pipeline.report.tables import SCORE_DECIMALS, SEGMENT_COLUMNS, TIME_DECIMALS, segment_dict
from pipeline.report.text import csv_cell
from pipeline.types import Segment, VideoResult

log = logging.getLogger(__name__)


class StreamOutputs:
    """The files of one stream's folder.

    Args:
        folder: ``<output>/<name>``; a previous run's folder of that name is replaced.
        labels: the label names, in track order.
        formats: the run's formats (every one applies; ``--top-frames`` does not).
        reserve: the run's space reserve, where this stream has a share
            under its folder's name (None: none kept).

    Attributes:
        full: the file (``<folder name>/<file>``) a write found no room
            for; None while every write fits.
    """

    def __init__(self, folder: Path, labels: Sequence[str], formats: Sequence[str],
                 reserve: SpaceReserve | None = None):
        self.folder = folder
        self.labels = list(labels)
        self.formats = set(formats)
        self.reserve = reserve
        self.full: str | None = None
        self._files: dict[str, int] = {}  # name → descriptor, appending
        self._sizes: dict[str, int] = {}  # name → bytes of whole rows

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            remove_dir(self.folder)
        if self.reserve is not None:
            self.reserve.add(self.folder.name)
        try:
            self.folder.mkdir(parents=True)
        except OSError as ex:
            if not is_disk_full(ex):
                raise
            self._no_room(self.folder.name)
            return
        self._write("events.jsonl", "")
        if "csv" in self.formats:
            columns = ["frame_index", "time_s", "wall_time"]
            for label in self.labels:
                columns += [f"score:{label}", f"smoothed:{label}"]
            self._row("frames.csv", columns)
            self._row("segments.csv", SEGMENT_COLUMNS)

    def frame_row(self, index: int, time_s: float, wall_time: str,
                  raw: Sequence[float], smoothed: Sequence[float]) -> None:
        if "csv" in self.formats:
            cells: list = [index, round(time_s, TIME_DECIMALS), wall_time]
            for r, s in zip(raw, smoothed):
                cells += [round(float(r), SCORE_DECIMALS), round(float(s), SCORE_DECIMALS)]
            self._row("frames.csv", cells)

    def segment_row(self, segment: Segment) -> None:
        if "csv" in self.formats:
            row = segment_dict(segment)
            self._row("segments.csv", [row[c] for c in SEGMENT_COLUMNS])

    def event(self, event: dict) -> None:
        self._write("events.jsonl", json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n")

    def snapshot(self, result: VideoResult, extra: dict) -> None:
        """Rewrite ``timeline.png`` (with ``plot``) and ``summary.json``, atomically."""
        from pipeline.report import plot, tables

        if self.full:
            return
        name = "timeline.png"
        try:
            if "plot" in self.formats and result.status == "ok":
                plot.write_timeline_png(result, self.folder)
            name = "summary.json"
            self._summary_written(tables.write_summary_json(result, self.folder, extra))
        except OSError as ex:  # an atomic write: the previous file stands
            if not is_disk_full(ex):
                raise
            self._no_room(f"{self.folder.name}/{name}")

    def exports(self, result: VideoResult, pictures=None) -> None:
        """The stream has ended: ``timeline.png`` and the exports a file
        run writes (``vtt``, ``edl``, ``html`` with its thumbnails,
        ``thumbs``, through :func:`pipeline.report.write_exports`; the
        thumbnails from ``pictures``, as the stream cannot be read again),
        each file atomically. An export that fails is a warning (no room
        for it: :attr:`full`, and no warning): the stream's tables and
        summary stand. Not tried once the disk is full."""
        from pipeline import report
        from pipeline.report import plot

        if self.full:
            return
        wanted = [f for f in report.EXPORT_FORMATS if f in self.formats]
        try:
            if "plot" in self.formats and result.status == "ok":
                plot.write_timeline_png(result, self.folder)
            report.write_exports(result, self.folder, wanted, pictures=pictures)
        except Exception as ex:  # a report bug must not cost the stream its summary
            log.debug("exports of %s failed", result.input_path, exc_info=True)
            if is_disk_full(ex):
                self._no_room(f"{self.folder.name}/{Path(ex.filename).name}" if ex.filename else
                              f"{self.folder.name}/ ({', '.join(wanted)})")
                return
            log.warning("%s: cannot write %s: %s", result.input_path, ", ".join(wanted),
                        " ".join(str(ex).split()) or type(ex).__name__)

    def final_summary(self, result: VideoResult, extra: dict) -> None:
        """``summary.json``, last, atomically, into the room this stream's
        share of the reserve kept (given back first). A summary that still
        finds no room is an error line: the previous one stands."""
        from pipeline.report import tables

        if self.reserve is not None:
            self.reserve.release(self.folder.name)
        try:
            tables.write_summary_json(result, self.folder, extra)
        except OSError as ex:
            if not is_disk_full(ex):
                raise
            log.error("%s: cannot write %s/summary.json: the disk is full", result.input_path,
                      self.folder.name)

    def discard_tables(self) -> None:
        """A stream that never gave a frame keeps only ``summary.json`` and
        ``events.jsonl``, as a failed file input keeps only its summary."""
        for name in ("frames.csv", "segments.csv", "timeline.png"):
            fd = self._files.pop(name, None)
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def _row(self, name: str, cells: Sequence) -> None:
        buffer = io.StringIO()
        # CRLF rows, as every CSV of the tool (RFC 4180); strings through the formula guard
        csv.writer(buffer, lineterminator="\r\n").writerow(
            [csv_cell(c) if isinstance(c, str) else c for c in cells])
        self._write(name, buffer.getvalue())

    def _write(self, name: str, text: str) -> None:
        """Append ``text`` (whole rows) to ``name``: all of it or, on a
        failed write, none of it (the file is cut back to where it was)."""
        if self.full:
            return
        try:
            fd = self._files.get(name)
            if fd is None:
                fd = self._files[name] = os.open(self.folder / name,
                                                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                self._sizes[name] = os.fstat(fd).st_size
            data = text.encode("utf-8")
            append(fd, data, self._sizes[name])
            self._sizes[name] += len(data)
        except OSError as ex:
            if not is_disk_full(ex):
                raise
            self._no_room(f"{self.folder.name}/{name}")

    def _summary_written(self, path: Path) -> None:
        if self.reserve is not None:
            with contextlib.suppress(OSError):
                self.reserve.need(self.folder.name, path.stat().st_size)

    def _no_room(self, where: str) -> None:
        log.debug("no room for %s", where, exc_info=True)
        self.full = self.full or where


def append(fd: int, data: bytes, size: int) -> None:
    """Write ``data`` at the end of ``fd`` (opened to append), whose whole
    rows end at ``size``: every byte, or, when a write fails (a full disk
    may take part of it first), the file cut back to ``size`` and the
    error raised."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise
