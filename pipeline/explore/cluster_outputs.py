"""The files of a clustering (:mod:`pipeline.explore.cluster`):
``clusters.csv`` (every frame with its cluster and distance, and what the
cluster holds when named), ``outliers.csv`` (the outliers, farthest first),
``clusters.png`` (the 2-D PCA projection) and ``clusters.html`` (the same
projection, interactive: :mod:`pipeline.explore.cluster_page`).

Above both the model and the page: this module takes a finished
:class:`~pipeline.explore.cluster.Clustering` and writes; neither of them
imports it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.explore import cluster_page
from pipeline.explore.cluster import RANDOM_STATE, Clustering, colour
from pipeline.store.rows import FrameRows


def write_outputs(rows: FrameRows, result: Clustering, out_dir: str | Path) -> list[Path]:
    """Write ``clusters.csv``, ``outliers.csv``, ``clusters.png`` and ``clusters.html``."""
    import pandas as pd

    from pipeline.report.tables import write_csv

    out = Path(out_dir)
    table = pd.DataFrame({"input": rows.input_path, "time_s": np.round(rows.time_s, 3),
                          "frame_index": rows.frame_index, "cluster": result.labels,
                          **_holds_columns(result),
                          "distance": np.round(result.distances, 6),
                          "is_outlier": result.is_outlier})
    outliers = table[table["is_outlier"]].sort_values("distance", ascending=False,
                                                      kind="stable", na_position="last")
    xy = _pca2(rows.vectors)
    return [write_csv(table, out / "clusters.csv"), write_csv(outliers, out / "outliers.csv"),
            write_plot(xy, result, out / "clusters.png"),
            cluster_page.write_html(xy, rows, result, out / "clusters.html")]


def _holds_columns(result: Clustering) -> dict[str, list]:
    """``holds`` and ``holds_cos`` per frame (its cluster's name and cosine;
    empty for DBSCAN noise) when the clusters are named, else nothing."""
    if not result.holds:
        return {}
    named = [result.holds.get(int(label)) for label in result.labels]
    return {"holds": [h[0] if h else "" for h in named],
            "holds_cos": [round(h[1], 4) if h else np.nan for h in named]}


def write_plot(xy: np.ndarray, result: Clustering, path: Path) -> Path:
    """2-D PCA projection coloured by cluster; outliers drawn as ``x``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pipeline.report.text import plain_text

    fig = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label in sorted(set(result.labels.tolist())):
        members = (result.labels == label) & ~result.is_outlier
        caption = result.caption(label)
        ax.scatter(xy[members, 0], xy[members, 1], s=14, color=colour(label),
                   label="noise" if label == -1 else f"cluster {label}" + (f": {caption}" if caption else ""))
    flagged = result.is_outlier
    if flagged.any():
        ax.scatter(xy[flagged, 0], xy[flagged, 1], s=40, marker="x", color="black", label="outlier")
    ax.set_title(f"{len(xy)} frames, {result.method} (PCA projection)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, loc="best", ncol=1 + len(set(result.labels.tolist())) // 16)
    plain_text(fig)
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
