"""Clustering stored frames: two different clips form two clusters, an odd
frame is flagged; outputs and CLI."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_assets import CONFIG as DEMO_CONFIG
from demo_assets import needs_demo
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import parse_config
from pipeline.explore.cluster import cluster
from pipeline.run.job import RunOptions, run_job

pytest.importorskip("lancedb")
pytest.importorskip("sklearn")
runner = CliRunner()
ODD_AT = 5  # frame index of the injected odd frame in red.mp4


def _scene(colour: tuple[int, int, int], i: int) -> np.ndarray:
    """A flat colour with a square in the opposite colour sliding along."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:] = colour
    x = (i * 4) % 48
    img[12:28, x:x + 16] = 255 - np.array(colour)
    return img


def _write_clip(path: Path, images: list[np.ndarray]) -> str:
    import av
    from media import _encode_all, _open_video_out

    container, stream = _open_video_out(path, "libx264", 10, (64, 48), "yuv420p", None)
    _encode_all(container, stream, (av.VideoFrame.from_ndarray(im, format="rgb24") for im in images))
    return str(path)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, tiny_model_dir, tiny_embedder):
    folder = tmp_path_factory.mktemp("cluster")
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    red = [_scene((200, 30, 30), i) for i in range(12)]
    red[ODD_AT] = noise
    blue = [_scene((30, 30, 200), i) for i in range(12)]
    clips = [_write_clip(folder / "red.mp4", red), _write_clip(folder / "blue.mp4", blue)]
    config = parse_config({"model": {"id": str(tiny_model_dir), "device": "cpu", "precision": "fp32"},
                           "sampling": {"every_n_frames": 1}, "decoder": {"strategy": "exact"},
                           "labels": [{"name": "red"}, {"name": "blue"}]})
    run = run_job(clips, config, folder / "out", RunOptions(progress=False), embedder=tiny_embedder)
    assert run.exit_code == 0
    return folder / "out" / "store"


def test_cli_kmeans_separates_clips_and_flags_odd_frame(store_dir, tmp_path):
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--k", "2", "--outliers", "1",
                                 "-o", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "clusters.csv")
    assert list(table.columns) == ["input", "time_s", "frame_index", "cluster", "distance", "is_outlier"]
    assert len(table) == 24
    red = table[table["input"].str.endswith("red.mp4")]
    blue = table[table["input"].str.endswith("blue.mp4")]
    red_normal = red[red["frame_index"] != ODD_AT]
    assert red_normal["cluster"].nunique() == 1 and blue["cluster"].nunique() == 1
    assert red_normal["cluster"].iloc[0] != blue["cluster"].iloc[0]
    outliers = pd.read_csv(tmp_path / "outliers.csv")
    assert len(outliers) == 1 and outliers["frame_index"][0] == ODD_AT
    assert outliers["input"][0].endswith("red.mp4")
    assert table["is_outlier"].sum() == 1
    assert (tmp_path / "clusters.png").stat().st_size > 1000
    page = (tmp_path / "clusters.html").read_text()
    assert page.count("<title>") == len(table) + 1  # one tooltip per frame, plus the page's
    assert page.count("<title>outlier: ") == int(table["is_outlier"].sum())
    assert_cluster_page(page, table)


def assert_cluster_page(page: str, table: pd.DataFrame) -> None:
    """Legend with every cluster's size, axes, thumbnails as bounded inline
    JPEGs, nothing fetched from anywhere."""
    import base64
    import json
    import re

    from pipeline.explore.cluster_page import THUMB_MAX, THUMB_SIDE

    for label, n in table["cluster"].value_counts().items():
        name = "noise (DBSCAN)" if label == -1 else f"cluster {label}"
        assert f"{name}: {n} frame" in page
    assert ">PC 1</text>" in page and ">PC 2</text>" in page and "<g class=axes>" in page
    data = json.loads(re.search(r"<script type='application/json' id=cluster-data>(.*?)</script>",
                                page, re.S).group(1))
    thumbs = data["thumbs"]
    assert 0 < len(thumbs) <= min(THUMB_MAX, len(table))
    outlier_rows = [str(i) for i in np.flatnonzero(table["is_outlier"].to_numpy())]
    assert set(outlier_rows) <= set(thumbs)  # outliers always get theirs
    from PIL import Image

    for uri in thumbs.values():
        head, b64 = uri.split(",", 1)
        assert head == "data:image/jpeg;base64"
        with Image.open(__import__("io").BytesIO(base64.b64decode(b64))) as im:
            assert im.height <= THUMB_SIDE and im.format == "JPEG"
    assert "http" not in page.replace("http-equiv", "") and "src=\"//" not in page


def test_auto_k_and_video_filter(store_dir, tmp_path):
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--video", "blue",
                                 "-o", str(tmp_path), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "clusters.csv")
    assert len(table) == 12 and table["input"].str.endswith("blue.mp4").all()


def test_cli_dbscan_marks_noise(store_dir, tmp_path):
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--dbscan", "--eps", "0.05",
                                 "-o", str(tmp_path), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "clusters.csv")
    odd = table[(table["frame_index"] == ODD_AT) & table["input"].str.endswith("red.mp4")]
    assert odd["cluster"].iloc[0] == -1 and bool(odd["is_outlier"].iloc[0])
    assert (pd.read_csv(tmp_path / "outliers.csv")["cluster"] == -1).all()
    assert_cluster_page((tmp_path / "clusters.html").read_text(), table)


def test_default_outliers_flag_only_the_odd_frame(store_dir, tmp_path):
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--k", "2", "-o", str(tmp_path), "-q"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    outliers = pd.read_csv(tmp_path / "outliers.csv")
    assert outliers["frame_index"].tolist() == [ODD_AT] and outliers["input"][0].endswith("red.mp4")


def test_cluster_on_synthetic_blobs():
    rng = np.random.default_rng(3)
    centres = np.eye(8)[:3]
    x = np.concatenate([c + 0.05 * rng.normal(size=(30, 8)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = cluster(x)
    assert result.k == 3
    assert all(len(set(result.labels[i * 30:(i + 1) * 30])) == 1 for i in range(3))
    assert result.is_outlier.sum() == 0  # tight blobs: nothing is far from its cluster
    again = cluster(x)
    np.testing.assert_array_equal(result.labels, again.labels)


def test_outliers_are_only_frames_far_from_their_cluster():
    rng = np.random.default_rng(4)
    centres = np.eye(8)[:2]
    x = np.concatenate([c + 0.05 * rng.normal(size=(40, 8)) for c in centres])
    x[7] = centres[0] + 0.6 * np.eye(8)[5]  # one frame pulled well away from blob 0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = cluster(x, k=2)
    assert np.flatnonzero(result.is_outlier).tolist() == [7]
    assert cluster(x, k=2, outliers=0).is_outlier.sum() == 0  # --outliers caps


def test_auto_k_is_not_capped_at_ten():
    from pipeline.explore.cluster import auto_k_range

    rng = np.random.default_rng(5)
    centres = np.eye(16)[:12]
    x = np.concatenate([c + 0.03 * rng.normal(size=(50, 16)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = cluster(x)
    assert result.k == 12 and "k=2..17" in result.method
    assert auto_k_range(24) == range(2, 11) and auto_k_range(20_000) == range(2, 31)


def test_cluster_errors_are_one_line(store_dir, tmp_path):
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--k", "2", "--dbscan"],
                           catch_exceptions=False)
    assert result.exit_code == 2 and "not both" in result.stderr
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--k", "999"],
                           catch_exceptions=False)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_cluster_page_strips_controls_and_isolates_names(tmp_path):
    from pipeline.explore.cluster_outputs import write_outputs
    from pipeline.store.rows import FrameRows

    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(8, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = np.array(["/in/\u202eevil\x00.mp4"] * 4 + ["/in/ok\u2028.mp4"] * 4, dtype=object)
    rows = FrameRows(input_path=paths, key=paths.copy(), frame_index=np.arange(8),
                     time_s=np.arange(8) * 0.5, vectors=vectors)
    write_outputs(rows, cluster(vectors, k=2), tmp_path)  # unreadable inputs: no thumbnails
    page = (tmp_path / "clusters.html").read_text(encoding="utf-8")
    assert not any(ch in page for ch in "\x00\u2028\u202e") and "<bdi id=tip-input>" in page
    assert "/in/evil.mp4 · 00:00.000" in page  # tooltips read mm:ss.mmm


def _blobs(count: int, per: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(32)[:count]
    x = np.concatenate([c + 0.03 * rng.normal(size=(per, 32)) for c in centres])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_auto_k_warns_only_when_more_clusters_score_better(caplog):
    """With 100 frames k is searched up to 10: ten true clusters are found
    without a warning (the silhouette falls after 10), fourteen are not and warn."""
    result = cluster(_blobs(10, 10, 7))
    assert result.k == 10 and "k=2..10" in result.method
    assert "largest k" not in caplog.text
    result = cluster(_blobs(14, 7, 8))
    assert result.k == 10 and "largest k searched (10)" in caplog.text


@needs_demo
def test_cluster_legend_says_what_each_cluster_holds(demo_run, tmp_path):
    """The demo's ten scenes (three empty backgrounds, seven objects on them)
    form ten clusters; each is named by its nearest label or background
    prompt of the demo config, with the cosine similarity."""
    truth, out = demo_run
    result = runner.invoke(app, ["cluster", "--store", str(out / "store"), "-c", str(DEMO_CONFIG),
                                 "-o", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and "10 clusters" in result.output
    table = pd.read_csv(tmp_path / "clusters.csv")
    page = (tmp_path / "clusters.html").read_text()
    found = re.findall(r"cluster (\d+): \d+ frames? · (.+?) \(cos (0\.\d\d)\)</li>", page)
    legend = {k: name for k, name, _ in found}
    assert sorted(map(int, legend)) == list(range(10)), page[-3000:]
    for name, clip in truth.items():
        frames = table[table["input"].str.endswith(name)]
        for interval in clip["intervals"]:  # the object's frames, away from its edges
            inside = frames[frames["time_s"].between(interval["start_s"] + 0.5, interval["end_s"] - 0.5)]
            assert {legend[str(k)] for k in inside["cluster"]} == {interval["label"]}, (name, interval)
        empty = frames[frames["time_s"] < min(iv["start_s"] for iv in clip["intervals"]) - 0.5]
        background = Path(name).stem.removeprefix("demo_")
        assert {legend[str(k)] for k in empty["cluster"]} == {f'"a photo of an empty {background}."'}
    assert all(0.3 < float(cos) <= 1.0 for _, _, cos in found)


def test_named_clusters_carry_their_name_in_the_csvs(tmp_path):
    """With names (``-c``), clusters.csv and outliers.csv say what each
    frame's cluster holds and the cosine, as the legends do."""
    from pipeline.explore.cluster import nearest_names
    from pipeline.explore.cluster_outputs import write_outputs
    from pipeline.store.rows import FrameRows

    vectors = _blobs(2, 6, 9)
    vectors[3] = np.eye(32)[5]  # far from both blobs: an outlier of cluster 0
    paths = np.array(["/in/a.mp4"] * 12, dtype=object)
    rows = FrameRows(input_path=paths, key=paths.copy(), frame_index=np.arange(12),
                     time_s=np.arange(12) * 0.5, vectors=vectors)
    result = cluster(vectors, k=2)
    names, table = ["red", "blue"], np.eye(32)[:2]
    named = replace(result, holds=nearest_names(vectors, result.labels, names, table))
    write_outputs(rows, named, tmp_path)
    frames = pd.read_csv(tmp_path / "clusters.csv")
    assert list(frames.columns) == ["input", "time_s", "frame_index", "cluster", "holds", "holds_cos",
                                    "distance", "is_outlier"]
    for label, (name, cos) in named.holds.items():
        mine = frames[frames["cluster"] == label]
        assert (mine["holds"] == name).all() and np.allclose(mine["holds_cos"], round(cos, 4))
    assert set(frames["holds"]) == {"red", "blue"}
    outliers = pd.read_csv(tmp_path / "outliers.csv")
    assert outliers["holds"].tolist() == frames[frames["is_outlier"]]["holds"].tolist()
    write_outputs(rows, result, tmp_path)  # unnamed: the columns as before
    assert "holds" not in pd.read_csv(tmp_path / "clusters.csv").columns
