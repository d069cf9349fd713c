"""Cluster stored frame embeddings: KMeans (fixed seed, k given or chosen by
silhouette) or DBSCAN (cosine metric), then flag the frames least like their
cluster. Writes ``clusters.csv``, ``outliers.csv`` and ``clusters.png``.

Vectors are L2-normalised, so distances here are cosine distances
(``1 - cos``) to the L2-normalised cluster mean.
"""

from __future__ import annotations

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
    """Write ``clusters.csv``, ``outliers.csv`` and ``clusters.png``."""
    import pandas as pd

    out = Path(out_dir)
    table = pd.DataFrame({"input": rows.input_path, "time_s": np.round(rows.time_s, 3),
                          "frame_index": rows.frame_index, "cluster": result.labels,
                          "distance": np.round(result.distances, 6),
                          "is_outlier": result.is_outlier})
    outliers = table[table["is_outlier"]].sort_values("distance", ascending=False,
                                                      kind="stable", na_position="last")
    paths = [_write_csv(table, out / "clusters.csv"), _write_csv(outliers, out / "outliers.csv"),
             write_plot(rows.vectors, result, out / "clusters.png")]
    return paths


def write_plot(vectors: np.ndarray, result: Clustering, path: Path) -> Path:
    """2-D PCA projection coloured by cluster; outliers drawn as ``x``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xy = _pca2(vectors)
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
    ax.set_title(f"{len(vectors)} frames, {result.method} (PCA projection)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _pca2(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    from sklearn.decomposition import PCA

    xy = PCA(n_components=min(2, vectors.shape[1], len(vectors)),
             random_state=RANDOM_STATE).fit_transform(vectors)
    return xy if xy.shape[1] == 2 else np.column_stack([xy[:, 0], np.zeros(len(xy))])


def _colours() -> list[str]:
    return ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#bcbd22", "#17becf"]


def _write_csv(frame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
