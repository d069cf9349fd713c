"""Reading a finished input's report folder back into a :class:`VideoResult`
(:func:`load_result`): what ``scenetag report``, ``scenetag eval`` and the
server's report view start from, with no model.

Only what the run wrote is read: ``summary.json`` (required), then
``frames.csv``, ``segments.csv`` and ``segments.json`` when present. A number
missing from them comes back as NaN (a threshold, a peak), so an older
folder still renders.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.notes import decode_stats
from pipeline.report.tables import last_frame
from pipeline.report.text import uncsv_cell
from pipeline.types import LabelTotals, LabelTrack, PipelineError, Sampling, Segment, VideoInfo, VideoResult


def load_result(folder: str | Path) -> VideoResult:
    """Rebuild one input's :class:`VideoResult` from its report folder:
    ``summary.json`` (required), ``frames.csv`` (scores over time),
    ``segments.csv`` (else the summary's segments) and, when present,
    ``segments.json`` (each label's kind and thresholds).

    Raises:
        PipelineError: ``summary.json`` is missing or unreadable.
    """
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as ex:
        raise PipelineError(f"{folder}: cannot read summary.json: {ex}") from ex
    labels = _label_meta(folder, summary)
    result = VideoResult(
        input_path=str(summary.get("input", "")), name=folder.resolve().name,  # where the page is
        status=summary.get("status", "ok"), error=summary.get("error"),
        info=_info(summary), sampling=_sampling(summary.get("sampling")),
        tags=list(summary.get("tags") or []), nsfw_verdict=summary.get("nsfw_verdict", "n/a"),
        model_id=(summary.get("model") or {}).get("id", ""),
        model_revision=(summary.get("model") or {}).get("revision"),
        precision=(summary.get("model") or {}).get("precision", ""),
        config_hash=summary.get("config_hash", ""), wall_time_s=summary.get("wall_time_s") or 0.0,
        decode=decode_stats(summary.get("decode")), totals=_totals(summary.get("totals")))
    _load_frames(folder / "frames.csv", result, labels)
    result.segments = _load_segments(folder / "segments.csv", summary)
    return result


def _label_meta(folder: Path, summary: dict) -> dict[str, dict]:
    meta = {name: {"kind": t.get("kind", "tag")} for name, t in (summary.get("totals") or {}).items()}
    try:
        exported = json.loads((folder / "segments.json").read_text(encoding="utf-8"))
        for lab in exported.get("labels", []):
            meta[lab["name"]] = lab
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
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


def _load_frames(path: Path, result: VideoResult, labels: dict[str, dict]) -> None:
    import pandas as pd

    if not path.is_file():
        return
    frames = pd.read_csv(path)
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


def _load_segments(path: Path, summary: dict) -> list[Segment]:
    import pandas as pd

    if path.is_file():
        # labels like "nan" or "null" must stay strings
        rows = pd.read_csv(path, keep_default_na=False, dtype={"label": str, "kind": str})
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
