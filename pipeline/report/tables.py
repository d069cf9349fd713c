"""Tabular outputs: per-frame scores, segments, the per-video summary, the run
index and the still-image table. Every file is written atomically."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.about import version
from pipeline.analysis.cues import CUE_KINDS
from pipeline.atomic import atomic_path, atomic_write_text
from pipeline.report.notes import partial_note
from pipeline.report.text import csv_cell
from pipeline.types import Segment, VideoResult

SEGMENT_COLUMNS = ["label", "kind", "start_s", "end_s", "duration_s", "peak", "mean",
                   "start_frame", "end_frame", "refined"]
INDEX_COLUMNS = ["name", "input", "status", "error", "duration_s", "frames_scored", "tags", "nsfw_verdict",
                 "notes"]
VIDEO_FIELDS = ["container", "codec", "width", "height", "duration_s", "avg_fps", "nominal_fps",
                "frame_count", "rotation", "start_time_s", "pix_fmt"]
TIME_DECIMALS = 3
SCORE_DECIMALS = 6


# --------------------------------------------------------------------------- tables


def frames_table(result: VideoResult) -> pd.DataFrame:
    """One row per scored frame: ``frame_index``, ``time_s``, then per track
    (in order) ``score:<label>`` (raw) and ``smoothed:<label>``, then
    ``refine``: 1 for a frame edge refinement scored between the samples
    (its ``smoothed:`` cells are empty: only samples are smoothed), 0 for a
    sample. Rows are in frame order.

    Times are rounded to milliseconds, scores to 6 decimals.
    """
    columns: dict[str, Any] = {
        "frame_index": np.asarray(result.frame_indices, dtype=np.int64),
        "time_s": np.round(np.asarray(result.times_s, dtype=np.float64), TIME_DECIMALS),
    }
    for track in result.tracks:
        columns[f"score:{track.name}"] = np.round(np.asarray(track.raw, np.float64), SCORE_DECIMALS)
        columns[f"smoothed:{track.name}"] = np.round(np.asarray(track.smoothed, np.float64), SCORE_DECIMALS)
    columns["refine"] = np.zeros(len(columns["frame_index"]), np.int64)
    extra = result.refine
    if extra is None or not len(extra.indices):
        return pd.DataFrame(columns)
    more: dict[str, Any] = {"frame_index": np.asarray(extra.indices, np.int64),
                            "time_s": np.round(np.asarray(extra.times_s, np.float64), TIME_DECIMALS)}
    for i, track in enumerate(result.tracks):
        more[f"score:{track.name}"] = np.round(np.asarray(extra.scores[:, i], np.float64), SCORE_DECIMALS)
        more[f"smoothed:{track.name}"] = np.full(len(extra.indices), np.nan)
    more["refine"] = np.ones(len(extra.indices), np.int64)
    order = np.argsort(np.concatenate([columns["frame_index"], more["frame_index"]]), kind="stable")
    return pd.DataFrame({k: np.concatenate([columns[k], more[k]])[order] for k in columns})


def segments_table(segments: Sequence[Segment]) -> pd.DataFrame:
    """One row per segment, columns ``label, kind, start_s, end_s,
    duration_s, peak, mean, start_frame, end_frame, refined`` (the frames
    as :func:`segment_dict` gives them, blank for an edge refinement did
    not pin; ``refined``: ``both``, ``start``, ``end`` or ``none``)."""
    table = pd.DataFrame([segment_dict(seg) for seg in segments], columns=SEGMENT_COLUMNS)
    # whole frame numbers, blank for an edge left at its coarse time
    return table.astype({"start_frame": "Int64", "end_frame": "Int64"})


def segment_dict(seg: Segment) -> dict[str, Any]:
    """A segment as every output writes it (``SEGMENT_COLUMNS``). Frames are
    half-open, ``start_frame <= n < end_frame``: ``start_frame`` is the frame
    shown at ``start_s``, ``end_frame`` the first frame after the segment,
    shown at ``end_s`` (as Python ranges, OpenTimelineIO and an EDL's
    record-out count)."""
    return {"label": seg.label, "kind": seg.kind,
            "start_s": round(seg.start_s, TIME_DECIMALS), "end_s": round(seg.end_s, TIME_DECIMALS),
            "duration_s": round(seg.duration_s, TIME_DECIMALS),
            "peak": round(seg.peak, SCORE_DECIMALS), "mean": round(seg.mean, SCORE_DECIMALS),
            "start_frame": seg.start_frame, "end_frame": frame_after(seg.end_frame),
            "refined": seg.refined}


def frame_after(last_frame: int | None) -> int | None:
    """The exclusive end the outputs write for a segment whose last frame
    is ``last_frame`` (:class:`~pipeline.types.Segment` keeps the last one)."""
    return None if last_frame is None else last_frame + 1


def last_frame(end_frame: int | None) -> int | None:
    """The segment's last frame from an output's exclusive ``end_frame``."""
    return None if end_frame is None else end_frame - 1


def write_frames_csv(result: VideoResult, out_dir: str | Path) -> Path:
    """Write ``frames.csv`` (see :func:`frames_table`). Returns its path."""
    return write_csv(frames_table(result), Path(out_dir) / "frames.csv")


def write_segments_csv(result: VideoResult, out_dir: str | Path) -> Path:
    """Write ``segments.csv`` (see :func:`segments_table`). Returns its path."""
    return write_csv(segments_table(result.segments), Path(out_dir) / "segments.csv")


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as UTF-8 CSV (RFC 4180), atomically, with every text cell and
    header cell passed through :func:`~pipeline.report.text.csv_cell` (no
    cell a spreadsheet would run as a formula). Every CSV the tool writes
    goes through here. Returns the path."""
    safe = frame.copy()
    safe.columns = [csv_cell(str(c)) for c in frame.columns]
    for i in range(safe.shape[1]):  # by position: a label may repeat a column name
        column = safe.iloc[:, i]
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            safe.isetitem(i, column.map(csv_cell))
    path = Path(path)
    with atomic_path(path) as tmp:
        # CRLF rows (RFC 4180): with "\n" rows a lone CR inside a cell goes unquoted
        safe.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\r\n")
    return path



# --------------------------------------------------------------------------- summary


def summary_dict(result: VideoResult, config_summary: dict | None = None) -> dict[str, Any]:
    """Everything known about one input, as strict-JSON-ready data.

    NaN and infinities become ``None``; numpy values become Python values.
    ``config_summary``, when given, is stored under ``"config"``.
    """
    info = result.info
    summary: dict[str, Any] = {
        "input": result.input_path,
        "name": result.name,
        "status": result.status,
        "error": result.error,
        "video": {k: getattr(info, k) for k in VIDEO_FIELDS} if info is not None else None,
        "sampling": _sampling_dict(result),
        "decode": dataclasses.asdict(result.decode) if result.decode is not None else None,
        "frames_scored": len(result.frame_indices),
        "model": {"id": result.model_id, "family": result.model_family or None,
                  "revision": result.model_revision,
                  "precision": result.precision, "runtime": result.runtime or None,
                  "auto": _json_safe(result.model_auto)},
        "scoring": {"mode": result.scoring_mode or None},  # the rule used: auto resolved
        "config_hash": result.config_hash,
        "segments": [segment_dict(seg) for seg in result.segments],
        "refine": _refine_dict(result),
        "totals": {tot.label: {"kind": tot.kind, "seconds_present": round(tot.seconds_present, 3),
                               "fraction": round(tot.fraction, 6),
                               "frames_over_threshold": tot.frames_over_threshold,
                               "max_score": round(tot.max_score, 6)}
                   for tot in result.totals},
        "tags": list(result.tags),
        "nsfw_verdict": result.nsfw_verdict,
        "wall_time_s": result.wall_time_s,
        "scenetag_version": version(),
    }
    if result.shots is not None:
        summary["shots"] = len(result.shots)
        summary["cues"] = {kind: sum(c.kind == kind for c in result.cues or []) for kind in CUE_KINDS}
    if config_summary is not None:
        summary["config"] = config_summary
    return _json_safe(summary)


def _refine_dict(result: VideoResult) -> dict[str, Any] | None:
    """Edge refinement's cost (frames beyond the sampled ones) and outcome."""
    r = result.refine
    if r is None:
        return None
    return {"frames_decoded": r.frames_decoded, "frames_embedded": r.frames_embedded,
            "frames_kept": r.frames_kept, "frames_scored": len(r.indices),
            "edges": r.edges, "edges_pinned": r.edges_pinned, "edges_by_cut": r.edges_by_cut,
            "edges_by_bisection": r.edges_pinned - r.edges_by_cut,
            "edges_unpinned": r.edges - r.edges_pinned}


def _sampling_dict(result: VideoResult) -> dict[str, Any] | None:
    s = result.sampling
    if s is None:
        return None
    return {"rule": s.describe(), "interval_s": s.interval_s, "every_n_frames": s.every_n_frames,
            "every_seconds": s.every_seconds, "target_fps": s.target_fps, "max_frames": s.max_frames}


def write_summary_json(result: VideoResult, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write ``summary.json`` (see :func:`summary_dict`); ``extra`` keys are
    added at the top level. Returns its path."""
    summary = summary_dict(result)
    if extra:
        summary.update(_json_safe(extra))
    text = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_text(Path(out_dir) / "summary.json", text)


def _json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN/inf → None, numpy → Python, tuples → lists."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- run-level tables


def write_index_csv(results: Sequence[VideoResult], out_dir: str | Path) -> Path:
    """Write ``index.csv``: one row per input, failures included, with columns
    ``name, input, status, error, duration_s, frames_scored, tags,
    nsfw_verdict, notes`` (tags joined with ``"; "``; ``duration_s`` the
    container's; ``notes`` says when an ``ok`` input was decoded only in
    part, see :func:`~pipeline.report.notes.partial_note`). Returns its path."""
    rows = [{"name": r.name, "input": r.input_path, "status": r.status, "error": r.error,
             "duration_s": r.info.duration_s if r.info is not None else None,
             "frames_scored": len(r.frame_indices), "tags": "; ".join(r.tags),
             "nsfw_verdict": r.nsfw_verdict, "notes": partial_note(r)}
            for r in results]
    return write_csv(pd.DataFrame(rows, columns=INDEX_COLUMNS), Path(out_dir) / "index.csv")


def write_images_csv(images: Sequence[Any], out_dir: str | Path) -> Path:
    """Write ``images.csv``: per still image (a
    :class:`pipeline.analysis.analyse.ImageResult`) the columns ``input, top_label,
    top_score, tags, nsfw_verdict``, one column per label with its score (tag
    labels, then NSFW labels), and ``summary`` such as ``"parking lot: 0.9987,
    park: 0.0013"`` (tag labels, best first, 4 decimals).

    Scores are those a video frame would get (the config's mode); ``tags``
    are the tag labels at or above their threshold (``label: score``, best
    first, joined with ``"; "``, as in ``index.csv``), and may be empty.
    Label columns follow the labels' first appearance. Returns its path.
    """
    labels = list(dict.fromkeys(label for image in images for label in image.scores))
    columns = ["input", "top_label", "top_score", "tags", "nsfw_verdict", *labels, "summary"]
    data = [_image_row(image, labels) for image in images]
    # built from lists so a label named like a fixed column cannot overwrite it
    return write_csv(pd.DataFrame(data, columns=columns), Path(out_dir) / "images.csv")


def _image_row(image: Any, labels: list[str]) -> list[Any]:
    scores, kinds = image.scores, image.kinds
    ranked = sorted(((lab, s) for lab, s in scores.items() if kinds.get(lab, "tag") == "tag"),
                    key=lambda kv: -kv[1])
    top_label, top_score = ranked[0] if ranked else (None, None)
    summary = ", ".join(f"{label}: {score:.4f}" for label, score in ranked)
    tags = "; ".join(f"{label}: {scores[label]:.4f}" for label in image.tags)
    cells = [round(float(scores[lab]), SCORE_DECIMALS) if lab in scores else None for lab in labels]
    top = round(float(top_score), SCORE_DECIMALS) if top_score is not None else None
    return [image.input_path, top_label, top, tags, image.nsfw_verdict, *cells, summary]
