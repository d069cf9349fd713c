"""User strings in figures are plain text (a `$` is no mathtext), and times
for people read mm:ss.mmm: search's table and contact sheet, timeline.png,
clusters.png."""

from __future__ import annotations

import numpy as np
import pytest
from test_exports import make_result

from pipeline.explore.search import Hit, format_table, write_contact_sheet
from pipeline.report import plot
from pipeline.types import Segment

DOLLARS = ["$$", "cost $_$ total", r"$\frac{", "a$b$c$"]


def test_search_table_shows_milliseconds():
    hits = [Hit(1, "/v/a.mp4", 5.533, 1, 0.5), Hit(2, "/v/a.mp4", 3.533, 2, 0.4),
            Hit(3, "/v/a.mp4", 4.0, 3, 0.3), Hit(4, "/v/a.mp4", 3725.5, 4, 0.2)]
    table = format_table(hits)
    for stamp in ("00:05.533", "00:03.533", "00:04.000", "1:02:05.500"):
        assert f" {stamp} " in table, table
    from pipeline.explore.search import caption

    assert caption(hits[0]) == "a.mp4  00:05.533  0.500"


def test_contact_sheet_with_dollar_title_and_file_name(tmp_path):
    clip = tmp_path / "cost $_$ total.mp4"  # unreadable: grey tile, caption still drawn
    clip.write_bytes(b"")
    hits = [Hit(1, str(clip), 5.533, 1, 0.5), Hit(2, str(tmp_path / "$$.mp4"), 1.0, 1, 0.4)]
    path = write_contact_sheet(hits, tmp_path, title="search: '$$' a$_b$")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("label", DOLLARS)
def test_timeline_png_with_dollar_labels(tmp_path, label):
    segs = [Segment(label, "tag", 1.0, 3.0, 0.9, 0.8), Segment("ok", "nsfw", 4.0, 5.0, 0.9, 0.9)]
    result = make_result(segs, name=f"video {label}", input_path=f"/in/{label}.mp4")
    result.tags = [label]
    assert plot.write_timeline_png(result, tmp_path).stat().st_size > 1000


def test_clusters_png_with_dollar_file_names(tmp_path):
    pytest.importorskip("sklearn")
    from pipeline.explore.cluster import cluster
    from pipeline.explore.cluster_outputs import write_outputs
    from pipeline.store.rows import FrameRows

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(10, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = np.array([f"/in/{DOLLARS[i % 4]}.mp4" for i in range(10)], dtype=object)
    rows = FrameRows(input_path=paths, key=paths.copy(), frame_index=np.arange(10),
                     time_s=np.arange(10) * 0.5, vectors=vectors)
    written = write_outputs(rows, cluster(vectors, k=2, outliers=2), tmp_path)
    assert (tmp_path / "clusters.png") in written and (tmp_path / "clusters.png").stat().st_size > 1000
