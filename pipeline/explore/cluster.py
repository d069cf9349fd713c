"""Cluster stored frame embeddings: KMeans (fixed seed, k given or chosen by
silhouette over a range set by the frame count) or DBSCAN (cosine metric),
then flag the frames far from their cluster (a robust distance rule, see
:func:`far_from_cluster`) and, given a config, name each cluster by its
nearest label or background prompt (:func:`nearest_names`); each cluster's
colour (:func:`colour`). The model only: its files are written by
:mod:`pipeline.explore.cluster_outputs`, its page drawn by
:mod:`pipeline.explore.cluster_page`, both above this module.

Vectors are L2-normalised, so distances here are cosine distances
(``1 - cos``) to the L2-normalised cluster mean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.types import PipelineError

log = logging.getLogger(__name__)

RANDOM_STATE = 0
AUTO_K_MIN, AUTO_K_CAP = 2, 30  # silhouette search: 2..k_max, k_max from the frame count
AUTO_K_SAMPLE = 5000  # silhouette is quadratic: score a fixed-seed sample
# A frame is an outlier when its distance to its cluster's centre exceeds the
# cluster's median distance by OUTLIER_MADS robust standard deviations
# (1.4826 x MAD), the spread taken as at least MIN_SPREAD so near-identical
# frames (a static shot) do not make every small change "far".
OUTLIER_MADS = 3.0
MIN_SPREAD = 0.01
MIN_CLUSTER_FOR_OUTLIERS = 5


@dataclass(frozen=True)
class Clustering:
    """Per-frame cluster labels (``-1`` = DBSCAN noise), cosine distance to the
    frame's cluster centre (NaN for noise), and the outlier flags."""

    labels: np.ndarray
    distances: np.ndarray
    is_outlier: np.ndarray
    k: int
    method: str
    # cluster -> (its nearest label or prompt, cosine similarity); see nearest_names
    holds: dict[int, tuple[str, float]] = field(default_factory=dict)

    def caption(self, label: int) -> str:
        """What cluster ``label`` holds, as ``name (cos 0.66)``; empty when unnamed."""
        if label not in self.holds:
            return ""
        name, cos = self.holds[label]
        return f"{name} (cos {cos:.2f})"


def cluster(vectors: np.ndarray, *, k: int | None = None, dbscan_eps: float | None = None,
            min_samples: int = 3, outliers: int = 10) -> Clustering:
    """Cluster ``vectors`` (N x D, L2-normalised).

    Args:
        k: KMeans clusters; chosen by silhouette over :func:`auto_k_range`
            when None.
        dbscan_eps: use DBSCAN with this cosine-distance radius instead.
        min_samples: DBSCAN core-point neighbourhood size.
        outliers: with KMeans, the most frames flagged: those far from their
            cluster (see :func:`far_from_cluster`), farthest first; with
            DBSCAN the noise frames are the outliers.

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
    method = f"kmeans k={k}"
    if k is None:
        k, searched = auto_k(x)
        method = f"kmeans k={k} (auto: best silhouette of k={searched.start}..{searched.stop - 1})"
    labels = _kmeans(x, k).labels_
    distances = _distances(x, labels)
    flagged = far_from_cluster(labels, distances)
    if flagged.sum() > outliers:  # a cap: keep the farthest
        keep = np.argsort(-np.where(flagged, distances, -np.inf), kind="stable")[:max(outliers, 0)]
        flagged = np.zeros(n, bool)
        flagged[keep] = True
    return Clustering(labels, distances, flagged, k, method)


def far_from_cluster(labels: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Frames whose distance exceeds their cluster's median by more than
    ``OUTLIER_MADS`` x max(1.4826 x MAD, ``MIN_SPREAD``) (a robust z-score
    over 3). Clusters under ``MIN_CLUSTER_FOR_OUTLIERS`` frames have none."""
    out = np.zeros(len(labels), bool)
    for label in set(labels.tolist()) - {-1}:
        members = np.flatnonzero(labels == label)
        if len(members) < MIN_CLUSTER_FOR_OUTLIERS:
            continue
        d = distances[members]
        median = float(np.median(d))
        spread = max(1.4826 * float(np.median(np.abs(d - median))), MIN_SPREAD)
        out[members] = d > median + OUTLIER_MADS * spread
    return out


def auto_k_range(n: int) -> range:
    """The k searched for ``n`` frames: 2 .. max(10, sqrt(n / 2)), at most
    ``AUTO_K_CAP`` and below the number of frames scored."""
    top = min(max(10, int(np.sqrt(n / 2))), AUTO_K_CAP, n - 1)
    return range(AUTO_K_MIN, max(top, AUTO_K_MIN) + 1)


def auto_k(x: np.ndarray) -> tuple[int, range]:
    """The k with the best silhouette score (cosine) over
    :func:`auto_k_range`, and the range searched. A best at the largest k
    tried is checked against one more: only when that scores higher (the
    data may hold more clusters) does it warn to pass ``--k``; a peak at
    the top is a peak (the demo's ten scenes are k=10 of 2..10)."""
    rng = np.random.default_rng(RANDOM_STATE)
    sample = x if len(x) <= AUTO_K_SAMPLE else x[rng.choice(len(x), AUTO_K_SAMPLE, replace=False)]
    searched = auto_k_range(len(sample))
    best, best_score = AUTO_K_MIN, -np.inf
    for k in searched:
        score = _silhouette(sample, k)
        if score > best_score + 1e-9:
            best, best_score = k, score
    log.info("auto k: %d (silhouette %.3f over k=%d..%d)", best, best_score, searched.start,
             searched.stop - 1)
    if best == searched.stop - 1 and best > AUTO_K_MIN and _silhouette(sample, best + 1) > best_score + 1e-9:
        log.warning("auto k chose the largest k searched (%d), and k=%d scores higher; there may be "
                    "more clusters: pass --k", best, best + 1)
    return best, searched


def _silhouette(x: np.ndarray, k: int) -> float:
    """The cosine silhouette of KMeans with ``k`` clusters; -inf where it is
    undefined (k not below the frame count, or one cluster found)."""
    from sklearn.metrics import silhouette_score

    if k >= len(x):
        return -np.inf
    labels = _kmeans(x, k).labels_
    if len(set(labels.tolist())) < 2:
        return -np.inf
    return float(silhouette_score(x, labels, metric="cosine"))


def _kmeans(x: np.ndarray, k: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, random_state=RANDOM_STATE, n_init=10).fit(x)


def _centres(x: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Each cluster's normalised mean (DBSCAN noise has none)."""
    out = {}
    for label in sorted(set(labels.tolist()) - {-1}):
        centre = np.asarray(x, np.float64)[labels == label].mean(axis=0)
        out[label] = centre / (np.linalg.norm(centre) or 1.0)
    return out


def _distances(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine distance of each row to its cluster's normalised mean."""
    out = np.full(len(x), np.nan)
    for label, centre in _centres(x, labels).items():
        members = labels == label
        out[members] = 1.0 - x[members] @ centre
    return out


# --------------------------------------------------------------------------- what a cluster holds


def nearest_names(vectors: np.ndarray, labels: np.ndarray, names: list[str],
                  name_vectors: np.ndarray) -> dict[int, tuple[str, float]]:
    """Each cluster's nearest of ``names`` (one unit vector each, in
    ``name_vectors``): the highest cosine similarity to the cluster's
    normalised mean, and that similarity."""
    if not names:
        return {}
    table = np.asarray(name_vectors, np.float64)
    out = {}
    for label, centre in _centres(vectors, labels).items():
        sims = table @ centre
        best = int(np.argmax(sims))
        out[label] = (names[best], float(sims[best]))
    return out


def config_names(config, embed_texts: Callable[[list[str]], np.ndarray]) -> tuple[list[str], np.ndarray]:
    """What a cluster may be named after: each label of ``config`` (its
    prompt ensemble, as scoring builds it; labels with pictures only are
    left out) and each background and NSFW-safe sentence, quoted (an empty
    scene is nearest to those)."""
    from pipeline.analysis.score import ensemble

    names, rows = [], []
    for label in config.labels + config.nsfw.labels:
        if label.prompt_list:
            names.append(label.name)
            rows.append(ensemble(embed_texts, label.prompt_list, config.scoring.templates))
    sentences = list(dict.fromkeys([*config.scoring.background, *config.nsfw.safe]))
    if sentences:
        names += [f'"{s}"' for s in sentences]
        vectors = np.asarray(embed_texts(sentences), np.float64)
        rows += list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return names, np.stack(rows) if rows else np.zeros((0, 0))


# --------------------------------------------------------------------------- colours


_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
          "#e377c2", "#bcbd22", "#17becf", "#393b79")


def colour(label: int) -> str:
    """A cluster's colour: grey for DBSCAN noise, tab10 for the first ten,
    then hues a golden angle apart (auto k may pass ten)."""
    import colorsys

    if label < 0:
        return "#7f7f7f"
    if label < len(_TAB10):
        return _TAB10[label]
    r, g, b = colorsys.hls_to_rgb((label * 0.618034) % 1.0, 0.45, 0.65)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
