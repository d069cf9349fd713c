"""Reports: per-video CSV, timeline plot and summary JSON, plus run-level
tables. Plain functions; every file is written atomically.

pandas and matplotlib are imported on first use, not when this package is
imported, so the CLI stays quick to start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.types import VideoResult

log = logging.getLogger(__name__)

FORMATS = ("csv", "plot", "json")


def write_video_outputs(result: VideoResult, out_dir: str | Path,
                        formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write one input's reports into ``out_dir`` (created as needed).

    ``csv`` writes ``frames.csv`` and ``segments.csv``, ``plot`` writes
    ``timeline.png``, ``json`` writes ``summary.json``. ``summary.json`` is
    always written last, so its presence marks a finished input (resume
    relies on that). A failed input gets only ``summary.json``: it has no
    frames to tabulate or plot. Format names this build cannot write are
    skipped with a warning.

    Returns:
        the paths written.
    """
    from pipeline.report import plot, tables

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(formats)
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        log.warning("report formats not available, skipped: %s", ", ".join(unknown))
    written: list[Path] = []
    if result.status == "ok" and "csv" in wanted:
        written += [tables.write_frames_csv(result, out), tables.write_segments_csv(result, out)]
    if result.status == "ok" and "plot" in wanted:
        written.append(plot.write_timeline_png(result, out))
    if "json" in wanted:
        written.append(tables.write_summary_json(result, out))
    return written


def write_run_outputs(results: Sequence[VideoResult], out_dir: str | Path) -> list[Path]:
    """Write the run-level ``index.csv`` (one row per input, failures
    included) into ``out_dir``. Returns the paths written."""
    from pipeline.report import tables

    return [tables.write_index_csv(results, out_dir)]


def write_images_csv(rows: Sequence[tuple[str, dict[str, float]]], out_dir: str | Path) -> Path:
    """Write ``images.csv`` for still images; see
    :func:`pipeline.report.tables.write_images_csv`."""
    from pipeline.report import tables

    return tables.write_images_csv(rows, out_dir)
