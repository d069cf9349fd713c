"""What a run reads back from its output folder: the ``summary.json`` of
earlier inputs (``--resume``, and the run index over every report folder
there), and the run-level files it writes at the end (``index.csv``,
``index.html``, ``images.csv``).

Runs that share an output folder merge: the index lists every complete
input folder in it, not only this run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline import report
from pipeline.analysis.analyse import ImageResult
from pipeline.config import Config
from pipeline.decode import is_image
from pipeline.report.folders import mark_output_folder
from pipeline.types import VideoInfo, VideoResult


def read_summary(folder: Path) -> dict | None:
    """``folder``'s ``summary.json``, parsed; None when there is none or it
    is not JSON."""
    try:
        return json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, path: str, config: Config) -> bool:
    """A finished input has a summary.json (written last) for the same input
    and the same effective config."""
    summary = read_summary(folder)
    return bool(summary) and summary.get("status") == "ok" and \
        summary.get("config_hash") == config.hash() and summary.get("input") == path


def load_previous(out_dir: Path, names: dict[str, str], paths: Sequence[str],
                  todo: Sequence[str]) -> list[VideoResult]:
    """Resumed inputs still appear in the run's results, rebuilt from their summary.json."""
    pending = set(todo)
    return [_result_from_summary(path, names[path], read_summary(out_dir / names[path]) or {})
            for path in paths if path not in pending and not is_image(path)]


def _result_from_summary(path: str, name: str, summary: dict) -> VideoResult:
    video = summary.get("video") or {}
    known = {f.name for f in dataclasses.fields(VideoInfo)} - {"path"}
    info = VideoInfo(path=path, **{k: v for k, v in video.items() if k in known}) if video else None
    return VideoResult(input_path=path, name=name, status=summary.get("status", "ok"), info=info,
                       error=summary.get("error"), tags=list(summary.get("tags") or []),
                       nsfw_verdict=summary.get("nsfw_verdict", "n/a"),
                       frame_indices=np.zeros(int(summary.get("frames_scored") or 0), np.int64),
                       config_hash=summary.get("config_hash", ""),
                       decode=report.decode_stats(summary.get("decode")))  # a partial input stays one


def write_run_outputs(results: list[VideoResult], images: list[ImageResult], out_dir: Path,
                      formats: Sequence[str] = ()) -> None:
    """Mark ``out_dir`` as an output folder and write its run index
    (``index.csv``, and ``index.html`` when ``formats`` ask) and this run's
    ``images.csv``. Sorts ``results`` (a run's) by folder name, in place."""
    mark_output_folder(out_dir)
    results.sort(key=_index_order)
    report.write_run_outputs(_index_rows(results, images, out_dir), out_dir, formats)
    if images:
        report.write_images_csv(images, out_dir)


def _index_order(r: VideoResult) -> str:
    return r.name or r.input_path


def _index_rows(results: list[VideoResult], images: list[ImageResult], out_dir: Path) -> list[VideoResult]:
    """What ``index.csv``/``index.html`` list: every complete input folder in
    ``out_dir`` (read from its ``summary.json`` now, so runs that share an
    output merge instead of the last one winning), this run's results for
    its own inputs, and the still images (this run's, else the
    ``images.csv`` already there)."""
    mine = {r.name.lower() for r in results if r.name}
    inputs = {r.input_path for r in results}
    others = []
    for folder in sorted(p for p in out_dir.iterdir() if not p.name.startswith(".")
                         and p.name.lower() not in mine and p.is_dir()):
        summary = read_summary(folder)
        if isinstance(summary, dict) and isinstance(summary.get("input"), str) \
                and summary["input"] not in inputs:
            with contextlib.suppress(TypeError, ValueError):  # a summary.json not of ours
                others.append(_result_from_summary(summary["input"], folder.name, summary))
    rows = [_image_row(image.input_path, _tag_cells(image), image.nsfw_verdict)
            for image in images] or _images_from_csv(out_dir)
    return sorted([*results, *others], key=_index_order) + rows


def _image_row(path: str, tags: list[str], verdict: str) -> VideoResult:
    """A still image as an index row: its tags (``label: score``, best
    first) and NSFW verdict, as in ``images.csv``."""
    return VideoResult(input_path=path, name="", tags=tags, nsfw_verdict=verdict,
                       frame_indices=np.zeros(1, np.int64))


def _tag_cells(image: ImageResult) -> list[str]:
    return [f"{label}: {image.scores[label]:.4f}" for label in image.tags]


def _images_from_csv(out_dir: Path) -> list[VideoResult]:
    import pandas as pd

    try:
        table = pd.read_csv(out_dir / "images.csv", keep_default_na=False, dtype=str)
        return [_image_row(row["input"], [row["tags"]] if row["tags"] else [],
                           row.get("nsfw_verdict") or "n/a")
                for row in table.to_dict("records")]
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return []  # none yet, or not readable (or an older layout): the index just lists no images
