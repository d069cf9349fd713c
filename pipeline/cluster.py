"""Cluster stored frame embeddings: KMeans (fixed seed, k given or chosen by
silhouette) or DBSCAN (cosine metric), then flag the frames least like their
cluster. Writes ``clusters.csv``, ``outliers.csv``, ``clusters.png`` and an
interactive ``clusters.html`` (self-contained SVG; hover a point for its frame).

Vectors are L2-normalised, so distances here are cosine distances
(``1 - cos``) to the L2-normalised cluster mean.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.store import FrameRows
from pipeline.types import PipelineError

log = logging.getLogger(__name__)

RANDOM_STATE = 0
AUTO_K_RANGE = range(2, 11)
AUTO_K_SAMPLE = 5000  # silhouette is quadratic: score a fixed-seed sample


@dataclass(frozen=True)
class Clustering:
    """Per-frame cluster labels (``-1`` = DBSCAN noise), cosine distance to the
    frame's cluster centre (NaN for noise), and the outlier flags."""

    labels: np.ndarray
    distances: np.ndarray
    is_outlier: np.ndarray
    k: int
    method: str


def cluster(vectors: np.ndarray, *, k: int | None = None, dbscan_eps: float | None = None,
            min_samples: int = 3, outliers: int = 10) -> Clustering:
    """Cluster ``vectors`` (N x D, L2-normalised).

    Args:
        k: KMeans clusters; chosen by silhouette over 2..10 when None.
        dbscan_eps: use DBSCAN with this cosine-distance radius instead.
        min_samples: DBSCAN core-point neighbourhood size.
        outliers: with KMeans, how many frames (farthest from their centre)
            are flagged; with DBSCAN the noise frames are the outliers.

    Raises:
        PipelineError: too few frames for the requested clustering.
    """
    n = len(vectors)
    if n < 2:
        raise PipelineError(f"need at least 2 stored frames to cluster, found {n}")
    x = np.asarray(vectors, np.float64)
    if dbscan_eps is not None:
        from sklearn.cluster import DBSCAN

        labels = DBSCAN(eps=dbscan_eps, min_samples=min_samples, metric="cosine").fit_predict(x)
        distances = _distances(x, labels)
        k_found = len(set(labels.tolist()) - {-1})
        return Clustering(labels, distances, labels == -1, k_found, f"dbscan eps={dbscan_eps:g}")
    if k is not None and not 1 <= k <= n:
        raise PipelineError(f"--k must be between 1 and the number of frames ({n}), got {k}")
    k = k or auto_k(x)
    labels = _kmeans(x, k).labels_
    distances = _distances(x, labels)
    flagged = np.zeros(n, bool)
    flagged[np.argsort(-distances, kind="stable")[:max(0, min(outliers, n))]] = True
    return Clustering(labels, distances, flagged, k, f"kmeans k={k}")


def auto_k(x: np.ndarray) -> int:
    """The k in 2..10 with the best silhouette score (cosine)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(RANDOM_STATE)
    sample = x if len(x) <= AUTO_K_SAMPLE else x[rng.choice(len(x), AUTO_K_SAMPLE, replace=False)]
    best, best_score = 2, -np.inf
    for k in AUTO_K_RANGE:
        if k >= len(sample):
            break
        labels = _kmeans(sample, k).labels_
        if len(set(labels.tolist())) < 2:
            continue
        score = silhouette_score(sample, labels, metric="cosine")
        if score > best_score + 1e-9:
            best, best_score = k, score
    log.info("auto k: %d (silhouette %.3f)", best, best_score)
    return best


def _kmeans(x: np.ndarray, k: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, random_state=RANDOM_STATE, n_init=10).fit(x)


def _distances(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine distance of each row to its cluster's normalised mean."""
    out = np.full(len(x), np.nan)
    for label in set(labels.tolist()) - {-1}:
        members = labels == label
        centre = x[members].mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        out[members] = 1.0 - x[members] @ centre
    return out


# --------------------------------------------------------------------------- outputs


def write_outputs(rows: FrameRows, result: Clustering, out_dir: str | Path) -> list[Path]:
    """Write ``clusters.csv``, ``outliers.csv``, ``clusters.png`` and ``clusters.html``."""
    import pandas as pd

    from pipeline.report.tables import write_csv

    out = Path(out_dir)
    table = pd.DataFrame({"input": rows.input_path, "time_s": np.round(rows.time_s, 3),
                          "frame_index": rows.frame_index, "cluster": result.labels,
                          "distance": np.round(result.distances, 6),
                          "is_outlier": result.is_outlier})
    outliers = table[table["is_outlier"]].sort_values("distance", ascending=False,
                                                      kind="stable", na_position="last")
    xy = _pca2(rows.vectors)
    return [write_csv(table, out / "clusters.csv"), write_csv(outliers, out / "outliers.csv"),
            write_plot(xy, result, out / "clusters.png"),
            write_html(xy, rows, result, out / "clusters.html")]


def write_plot(xy: np.ndarray, result: Clustering, path: Path) -> Path:
    """2-D PCA projection coloured by cluster; outliers drawn as ``x``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pipeline.report.text import plain_text

    fig = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cmap = _colours()
    for label in sorted(set(result.labels.tolist())):
        members = (result.labels == label) & ~result.is_outlier
        colour = "#7f7f7f" if label == -1 else cmap[label % len(cmap)]
        ax.scatter(xy[members, 0], xy[members, 1], s=14, color=colour,
                   label="noise" if label == -1 else f"cluster {label}")
    flagged = result.is_outlier
    if flagged.any():
        ax.scatter(xy[flagged, 0], xy[flagged, 1], s=40, marker="x", color="black", label="outlier")
    ax.set_title(f"{len(xy)} frames, {result.method} (PCA projection)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, loc="best")
    plain_text(fig)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


HTML_MAX_POINTS = 20_000  # an SVG circle each; beyond this a browser crawls
SVG_SIZE = 640


def write_html(xy: np.ndarray, rows: FrameRows, result: Clustering, path: Path) -> Path:
    """The projection as a self-contained page (inline SVG, no network):
    hovering a point shows its input, time, cluster and distance."""
    from pipeline.atomic import atomic_write_text

    shown = np.arange(len(xy))[:HTML_MAX_POINTS]
    size, pad = SVG_SIZE, 20
    lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.ones(2))
    scale = (size - 2 * pad) / np.maximum(hi - lo, 1e-9)
    cmap = _colours()
    marks = [_svg_mark(pad + (xy[i] - lo) * scale, rows, result, i, cmap) for i in shown]
    note = f"<p>showing the first {len(shown):,} of {len(xy):,} frames</p>" if len(shown) < len(xy) else ""
    page = (f"<!doctype html><meta charset=utf-8><title>scenetag clusters</title>"
            f"<style>body{{font:14px sans-serif;margin:20px}}svg{{border:1px solid #ccc}}"
            f"circle:hover{{stroke:#000;stroke-width:2}}</style>"
            f"<h1>{len(xy):,} frames, {html.escape(result.method)} (PCA projection)</h1>{note}"
            f"<p>Hover a point for its frame; crosses are outliers.</p>"
            f"<svg width={size} height={size} viewBox='0 0 {size} {size}'>{''.join(marks)}</svg>")
    return atomic_write_text(path, page)


def _svg_mark(pos: np.ndarray, rows: FrameRows, result: Clustering, i: int, cmap: list[str]) -> str:
    x, y = float(pos[0]), SVG_SIZE - float(pos[1])  # SVG's y axis points down
    label = int(result.labels[i])
    tip = html.escape(f"{rows.input_path[i]} · {_clock(float(rows.time_s[i]))} · "
                      f"{'noise' if label == -1 else f'cluster {label}'} · "
                      f"distance {result.distances[i]:.3f}")
    if result.is_outlier[i]:
        return (f"<g><title>outlier: {tip}</title><path d='M{x-5:.1f},{y-5:.1f}l10,10m0,-10l-10,10' "
                f"stroke='#000' stroke-width='2'/></g>")
    colour = "#7f7f7f" if label == -1 else cmap[label % len(cmap)]
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4' fill='{colour}'><title>{tip}</title></circle>"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:06.3f}"


def _pca2(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    from sklearn.decomposition import PCA

    xy = PCA(n_components=min(2, vectors.shape[1], len(vectors)),
             random_state=RANDOM_STATE).fit_transform(vectors)
    return xy if xy.shape[1] == 2 else np.column_stack([xy[:, 0], np.zeros(len(xy))])


def _colours() -> list[str]:
    return ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#bcbd22", "#17becf", "#393b79"]  # 10: auto k goes up to 10

