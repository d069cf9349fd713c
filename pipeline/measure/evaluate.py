"""How well a run's segments and scores agree with ground truth
(``scenetag eval``): segment precision, recall and F1 at an IoU threshold,
IoU and edge errors of the matched segments, frame-level average precision
and seconds of false tags; written as ``eval.csv``, ``eval.json`` and
``eval.png``.

Matching is one-to-one per input and label: the most pairs with IoU at or
above the threshold, and among those the largest total IoU (the Hungarian
method, scipy's ``linear_sum_assignment``). Greedy matching by IoU can pair
a prediction with the wrong one of two truths it overlaps and lose a match
when the threshold is under 0.5; at 0.5 and above, with non-overlapping
segments, both give the same pairs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.measure.truth import Truth, TruthInterval
from pipeline.types import PipelineError, VideoResult

log = logging.getLogger(__name__)

Span = tuple[float, float]
MATCHING = "one-to-one, most pairs with IoU >= threshold, then largest total IoU (Hungarian)"


def iou(a: Span, b: Span) -> float:
    """Intersection over union of two time intervals (0 when disjoint)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def match(pred: Sequence[Span], truth: Sequence[Span], min_iou: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(pred index, truth index, IoU)`` with IoU >= ``min_iou``:
    as many pairs as possible, then the largest total IoU."""
    if not pred or not truth:
        return []
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    inter = np.clip(np.minimum(p[:, None, 1], t[None, :, 1]) - np.maximum(p[:, None, 0], t[None, :, 0]),
                    0, None)
    union = np.maximum(p[:, None, 1], t[None, :, 1]) - np.minimum(p[:, None, 0], t[None, :, 0])
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    ok = ious >= min_iou - 1e-12
    if (ok.sum(axis=0) <= 1).all() and (ok.sum(axis=1) <= 1).all():  # no conflicts: the usual case
        return [(int(r), int(c), float(ious[r, c])) for r, c in zip(*np.nonzero(ok))]
    from scipy.optimize import linear_sum_assignment

    # a pair is worth more than any sum of IoUs (<= min(n, m)): count first, IoU second
    weight = np.where(ok, min(len(pred), len(truth)) + 1.0 + ious, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return [(int(r), int(c), float(ious[r, c])) for r, c in zip(rows, cols) if ok[r, c]]


def uncovered_s(pred: Sequence[Span], truth: Sequence[Span]) -> float:
    """Seconds of ``pred`` not covered by any of ``truth`` (false tag time)."""
    total = 0.0
    for start, end in pred:
        inside = sum(max(0.0, min(end, b) - max(start, a)) for a, b in _union(truth))
        total += max(0.0, (end - start) - inside)
    return total


def _union(spans: Sequence[Span]) -> list[Span]:
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


@dataclass
class Counts:
    """Segment agreement, summed over inputs (and labels, for the overall row)."""

    truth: int = 0
    predicted: int = 0
    matched: int = 0
    ious: list[float] = field(default_factory=list)
    edges_s: list[float] = field(default_factory=list)
    edges_frames: list[float] = field(default_factory=list)
    false_s: float = 0.0

    def add(self, other: Counts) -> None:
        self.truth, self.predicted = self.truth + other.truth, self.predicted + other.predicted
        self.matched += other.matched
        self.ious += other.ious
        self.edges_s += other.edges_s
        self.edges_frames += other.edges_frames
        self.false_s += other.false_s

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        wrong = self.truth + self.predicted
        return 2 * self.matched / wrong if wrong else 1.0  # nothing to find, nothing found

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0

    def metrics(self) -> dict[str, Any]:
        """The numbers ``eval.csv``/``eval.json`` report (None where undefined)."""
        def stat(values: list[float], fn) -> float | None:
            return round(float(fn(values)), 6) if values else None

        empty = not self.truth and not self.predicted  # nothing to find, nothing found: no score
        return {"truth_segments": self.truth, "predicted_segments": self.predicted,
                "matched": self.matched, "precision": None if empty else round(self.precision, 6),
                "recall": None if empty else round(self.recall, 6),
                "f1": None if empty else round(self.f1, 6),
                "mean_iou": stat(self.ious, np.mean),
                "edge_median_s": stat(self.edges_s, np.median), "edge_max_s": stat(self.edges_s, max),
                "edge_median_frames": stat(self.edges_frames, np.median),
                "edge_max_frames": stat(self.edges_frames, max),
                "false_tag_s": round(self.false_s, 6)}


def compare(pred: Sequence[Span], truth: Sequence[Span], min_iou: float, fps: float | None = None) -> Counts:
    """Agreement of one input's segments of one label with its truth.
    Edge errors (start and end of every matched pair) are also given in
    frames at ``fps`` (none without it)."""
    pairs = match(pred, truth, min_iou)
    edges = [abs(pred[i][k] - truth[j][k]) for i, j, _ in pairs for k in (0, 1)]
    return Counts(truth=len(truth), predicted=len(pred), matched=len(pairs),
                  ious=[v for _, _, v in pairs], edges_s=edges,
                  edges_frames=[e * fps for e in edges] if fps else [],
                  false_s=uncovered_s(pred, truth))


# --------------------------------------------------------------------------- a run against truth


@dataclass
class Evaluation:
    """A run measured against truth: what ``eval`` writes.

    Attributes:
        labels: per label, its counts and frame scores: ``{"counts", "scores",
            "positive", "threshold"}``.
        per_input: per evaluated input, per label, its counts.
    """

    truth_path: str
    min_iou: float
    inputs: list[str]
    skipped: list[str]
    labels: dict[str, dict[str, Any]]
    per_input: dict[str, dict[str, Counts]]

    def overall(self) -> Counts:
        total = Counts()
        for entry in self.labels.values():
            total.add(entry["counts"])
        return total

    def frame_ap(self, label: str) -> float | None:
        """Average precision of the label's frame scores (None without positives)."""
        from sklearn.metrics import average_precision_score

        entry = self.labels[label]
        positive = np.asarray(entry["positive"], dtype=bool)
        if not positive.any():
            return None
        return float(average_precision_score(positive, np.asarray(entry["scores"], dtype=np.float64)))


def evaluate(results: Sequence[VideoResult], truth: Truth, min_iou: float = 0.5) -> Evaluation:
    """Measure ``results`` (one per input, e.g. from
    :func:`pipeline.report.readback.load_result`) against ``truth``. Inputs with
    no truth rows are skipped (one warning names them).

    Raises:
        PipelineError: ``min_iou`` is outside (0, 1], or no input has truth.
        TruthError: a truth row names an input the run does not have.
    """
    if not 0 < min_iou <= 1:
        raise PipelineError(f"--iou must be in (0, 1]; got {min_iou:g}")
    by_input = truth.resolve([r.input_path for r in results])
    failed = [r.input_path for r in results if r.status != "ok" and by_input[r.input_path]]
    if failed:
        log.warning("%d input%s with truth failed in the run and %s not evaluated: %s", len(failed),
                    "" if len(failed) == 1 else "s", "is" if len(failed) == 1 else "are", ", ".join(failed))
    results = [r for r in results if r.status == "ok" or not by_input[r.input_path]]
    used = [r for r in results if by_input[r.input_path]]
    skipped = [r.input_path for r in results if not by_input[r.input_path]]
    if not used:
        raise PipelineError(f"{truth.path}: no input of the run has truth rows")
    if skipped:
        log.warning("%d input%s without truth rows skipped: %s", len(skipped),
                    "" if len(skipped) == 1 else "s", ", ".join(skipped))
    names = list(dict.fromkeys([t.name for r in used for t in r.tracks]
                               + [s.label for r in used for s in r.segments]
                               + [iv.label for r in used for iv in by_input[r.input_path]]))
    labels = {n: {"counts": Counts(), "scores": [], "positive": [], "threshold": None} for n in names}
    per_input: dict[str, dict[str, Counts]] = {}
    for result in used:
        per_input[result.input_path] = _one_input(result, by_input[result.input_path], labels, min_iou)
    return Evaluation(str(truth.path), min_iou, [r.input_path for r in used], skipped, labels, per_input)


def _one_input(result: VideoResult, truth: list[TruthInterval], labels: dict[str, dict[str, Any]],
               min_iou: float) -> dict[str, Counts]:
    fps = _fps(result)
    times = np.asarray(result.times_s, dtype=np.float64)
    tracks = {t.name: t for t in result.tracks}
    counts = {}
    for name, entry in labels.items():
        true = [(iv.start_s, iv.end_s) for iv in truth if iv.label == name]
        pred = [(s.start_s, s.end_s) for s in result.segments if s.label == name]
        counts[name] = compare(pred, true, min_iou, fps)
        entry["counts"].add(counts[name])
        if name in tracks:
            track = tracks[name]
            entry["scores"].extend(np.asarray(track.raw, dtype=np.float64).tolist())
            entry["positive"].extend(inside(times, true).tolist())
            if entry["threshold"] is None and not math.isnan(track.threshold):
                entry["threshold"] = float(track.threshold)
    return counts


def inside(times_s: np.ndarray, spans: Sequence[Span]) -> np.ndarray:
    """Which sample times fall in one of ``spans`` (``start <= t < end``)."""
    hit = np.zeros(len(times_s), dtype=bool)
    for a, b in spans:
        hit |= (times_s >= a) & (times_s < b)
    return hit


def _fps(result: VideoResult) -> float | None:
    info = result.info
    fps = getattr(info, "avg_fps", None) if info is not None else None
    return float(fps) if fps and math.isfinite(fps) and fps > 0 else None


# --------------------------------------------------------------------------- writers


def rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per label, then the overall row (``level`` says which;
    its frame AP is the mean over labels that have positive frames)."""
    out = []
    aps = []
    for name, entry in evaluation.labels.items():
        ap = evaluation.frame_ap(name)
        if ap is not None:
            aps.append(ap)
        out.append({"level": "label", "label": name, **entry["counts"].metrics(),
                    "frame_ap": None if ap is None else round(ap, 6), "threshold": entry["threshold"]})
    out.append({"level": "overall", "label": "", **evaluation.overall().metrics(),
                "frame_ap": round(float(np.mean(aps)), 6) if aps else None, "threshold": None})
    return out


def write_eval(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """Write ``eval.csv``, ``eval.json`` and ``eval.png`` into ``out_dir``, atomically."""
    import json

    import pandas as pd

    from pipeline.atomic import atomic_write_text
    from pipeline.report.tables import write_csv

    out_dir = Path(out_dir)
    table = rows(evaluation)
    paths = [write_csv(pd.DataFrame(table), out_dir / "eval.csv")]
    doc = {"truth": evaluation.truth_path, "iou_threshold": evaluation.min_iou, "matching": MATCHING,
           "frame_positives": "frames with start_s <= time_s < end_s of a true interval",
           "inputs": evaluation.inputs, "skipped": evaluation.skipped,
           "labels": {r["label"]: r for r in table if r["level"] == "label"},
           "overall": table[-1],
           "per_input": {path: {name: c.metrics() for name, c in labels.items()}
                         for path, labels in evaluation.per_input.items()}}
    paths.append(atomic_write_text(out_dir / "eval.json", json.dumps(doc, indent=2, allow_nan=False) + "\n"))
    paths.append(_write_plot(evaluation, out_dir / "eval.png"))
    return paths


def _write_plot(evaluation: Evaluation, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    from pipeline.atomic import atomic_path
    from pipeline.report.text import plain_text

    names = [n for n, e in evaluation.labels.items() if np.any(e["positive"])]
    cols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4 * cols, 3.4 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        entry = evaluation.labels[name]
        y, s = np.asarray(entry["positive"], bool), np.asarray(entry["scores"], np.float64)
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, lw=1.5, drawstyle="steps-post")
        if entry["threshold"] is not None:
            hit = s >= entry["threshold"]
            p = float((hit & y).sum() / hit.sum()) if hit.any() else 1.0
            ax.plot([float((hit & y).sum() / y.sum())], [p], "o", color="C3",
                    label=f"threshold {entry['threshold']:g}")
            ax.legend(loc="lower left", fontsize=8)
        ax.set(xlim=(0, 1.02), ylim=(0, 1.05), xlabel="recall", ylabel="precision")
        ax.set_title(f"{name}  (AP {evaluation.frame_ap(name):.3f})", fontsize=10)
    for ax in axes[len(names):]:
        ax.axis("off")
    if not names:
        axes[0].text(0.5, 0.5, "no label has positive frames", ha="center", va="center", color="0.4")
    fig.suptitle(f"frame precision-recall vs {Path(evaluation.truth_path).name}", fontsize=11)
    plain_text(fig)  # labels and file names as typed: "$" is no mathtext
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def load_run(run_dir: str | Path) -> list[VideoResult]:
    """Every input of a ``scenetag run`` folder (or one input's folder): its
    ``summary.json``, ``segments.csv`` and ``frames.csv``.

    Raises:
        PipelineError: no ``summary.json`` below ``run_dir``.
    """
    from pipeline.report.readback import load_result

    folder = Path(run_dir)
    dirs = [folder] if (folder / "summary.json").is_file() else \
        sorted(p.parent for p in folder.glob("*/summary.json") if not p.parent.name.startswith("."))
    if not dirs:
        raise PipelineError(f"{folder}: no summary.json found; is it a `scenetag run` output folder?")
    return [load_result(d) for d in dirs]
