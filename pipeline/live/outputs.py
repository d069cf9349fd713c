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
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.atomic import remove_dir
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
    """

    def __init__(self, folder: Path, labels: Sequence[str], formats: Sequence[str]):
        self.folder = folder
        self.labels = list(labels)
        self.formats = set(formats)
        self._files: dict[str, io.TextIOBase] = {}

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            remove_dir(self.folder)
        self.folder.mkdir(parents=True)
        self._open("events.jsonl")
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

        if "plot" in self.formats and result.status == "ok":
            plot.write_timeline_png(result, self.folder)
        tables.write_summary_json(result, self.folder, extra)

    def finish(self, result: VideoResult, extra: dict, pictures=None) -> None:
        """The stream has ended: ``timeline.png``, the exports a file run
        writes (``vtt``, ``edl``, ``html`` with its thumbnails, ``thumbs``,
        through :func:`pipeline.report.write_exports`; the thumbnails from
        ``pictures``, as the stream cannot be read again), and
        ``summary.json`` last, each file atomically. An export that fails
        is a warning: the stream's tables and summary stand."""
        from pipeline import report
        from pipeline.report import plot, tables

        if "plot" in self.formats and result.status == "ok":
            plot.write_timeline_png(result, self.folder)
        wanted = [f for f in report.EXPORT_FORMATS if f in self.formats]
        try:
            report.write_exports(result, self.folder, wanted, pictures=pictures)
        except Exception as ex:  # a report bug must not cost the stream its summary
            log.debug("exports of %s failed", result.input_path, exc_info=True)
            log.warning("%s: cannot write %s: %s", result.input_path, ", ".join(wanted),
                        " ".join(str(ex).split()) or type(ex).__name__)
        tables.write_summary_json(result, self.folder, extra)

    def discard_tables(self) -> None:
        """A stream that never gave a frame keeps only ``summary.json`` and
        ``events.jsonl``, as a failed file input keeps only its summary."""
        for name in ("frames.csv", "segments.csv", "timeline.png"):
            file = self._files.pop(name, None)
            if file is not None:
                file.close()
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()

    def _row(self, name: str, cells: Sequence) -> None:
        buffer = io.StringIO()
        # CRLF rows, as every CSV of the tool (RFC 4180); strings through the formula guard
        csv.writer(buffer, lineterminator="\r\n").writerow(
            [csv_cell(c) if isinstance(c, str) else c for c in cells])
        self._write(name, buffer.getvalue())

    def _write(self, name: str, text: str) -> None:
        file = self._files.get(name) or self._open(name)
        file.write(text)
        file.flush()

    def _open(self, name: str):
        file = (self.folder / name).open("a", encoding="utf-8", newline="")
        self._files[name] = file
        return file
