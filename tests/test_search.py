"""Semantic search over the store: the queried frame ranks first; moments are
the whole stretch the query shows in; the CLI writes the hits, the moments and
the contact sheet (NSFW frames blurred) under names of their own per query;
clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_assets import needs_demo
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config, parse_config
from pipeline.explore.search import format_table, output_stem, search
from pipeline.run.job import RunOptions, run_job
from pipeline.store.db import EmbeddingStore

pytest.importorskip("lancedb")
runner = CliRunner()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_model_dir, tiny_embedder):
    """Two clips whose frames all differ (index bit patterns), stored at 0.5 s."""
    from media import make_clip

    folder = tmp_path_factory.mktemp("search")
    clips = [make_clip(folder / "alpha.mp4", seconds=4, fps=10, size=(64, 48)),
             make_clip(folder / "beta.mp4", seconds=2, fps=10, size=(64, 48), pattern="solid")]
    config = parse_config({"model": {"id": str(tiny_model_dir), "device": "cpu", "precision": "fp32"},
                           "sampling": {"every_seconds": 0.5}, "decoder": {"strategy": "exact"},
                           "labels": [{"name": "cat"}, {"name": "dog"}],
                           "segments": {"refine": False}})  # counts stored frames
    run = run_job(clips, config, folder / "out", RunOptions(progress=False), embedder=tiny_embedder)
    assert run.exit_code == 0
    return folder, folder / "out" / "store", clips


def _query_image(folder: Path, clip: str, time_s: float, size: int) -> Path:
    from PIL import Image

    from pipeline.decode import read_frames_at

    [frame] = read_frames_at(clip, [time_s], short_side=size)
    path = folder / f"query-{time_s}.png"
    Image.fromarray(frame.image).save(path)
    return path


def test_image_query_finds_its_frame_first(indexed, tiny_embedder):
    from pipeline.explore.search import embed_query

    folder, store_dir, clips = indexed
    store = EmbeddingStore.open(store_dir)
    for t in (0.0, 1.5, 3.0):
        query = embed_query(tiny_embedder, image=_query_image(folder, clips[0], t,
                                                              tiny_embedder.input_size))
        hits = search(store, query, top_k=3)
        assert hits[0].input_path == clips[0] and hits[0].time_s == pytest.approx(t)
        assert hits[0].score > 0.999 and hits[0].score >= hits[1].score


def test_video_filter(indexed, tiny_embedder):
    _, store_dir, clips = indexed
    store = EmbeddingStore.open(store_dir)
    query = tiny_embedder.embed_texts(["a cat"])[0]
    hits = search(store, query, top_k=50, video="beta")
    assert len(hits) == 4 and {h.input_path for h in hits} == {clips[1]}
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert "beta.mp4" in format_table(hits)


def test_cli_image_search_writes_csv_and_sheet(indexed, tiny_model_dir):
    folder, store_dir, clips = indexed
    query = _query_image(folder, clips[0], 2.5, 32)
    out = folder / "cli"
    result = runner.invoke(app, ["search", "--image", str(query), "--store", str(store_dir),
                                 "--top", "5", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stem = output_stem(image=query)
    assert stem == "search-image_query-2_5"
    table = pd.read_csv(out / f"{stem}.csv")
    assert list(table.columns) == ["rank", "input", "time_s", "frame_index", "score"]
    assert len(table) == 5 and table["time_s"][0] == pytest.approx(2.5)
    assert table["input"][0] == clips[0] and table["frame_index"][0] == 25
    assert (out / f"{stem}.png").stat().st_size > 1000
    assert "00:02" in result.stdout or "00:03" in result.stdout


def test_cli_text_search(indexed):
    folder, store_dir, _ = indexed
    result = runner.invoke(app, ["search", "a coffee cup", "--store", str(store_dir), "--top", "3",
                                 "--video", "alpha.mp4", "-o", str(folder / "text")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(folder / "text" / "search-a_coffee_cup.csv")) == 3


def test_repeated_text_query_needs_no_model(indexed, monkeypatch):
    """A query embedded once is kept in the store: asking again loads no model."""
    folder, store_dir, _ = indexed
    args = ["search", "a striped kitten", "--store", str(store_dir), "--top", "4"]
    assert runner.invoke(app, args + ["-o", str(folder / "q1")]).exit_code == 0

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("pipeline.embed.load_embedder", no_model)
    result = runner.invoke(app, args + ["-o", str(folder / "q2")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    name = "search-a_striped_kitten.csv"
    assert (folder / "q1" / name).read_text() == (folder / "q2" / name).read_text()
    other = runner.invoke(app, ["search", "a new query", "--store", str(store_dir), "--debug"])
    assert other.exit_code != 0 and "the model was loaded" in str(other.exception or other.output)


@pytest.mark.parametrize("args, message", [
    (["search", "x", "--store", "{missing}"], "no embedding store"),
    (["search", "--store", "{store}"], "give a text QUERY or --image"),
    (["search", "x", "--store", "{store}", "--video", "nope"], "no stored input matches"),
])
def test_cli_errors_are_one_line(indexed, tmp_path, args, message):
    _, store_dir, _ = indexed
    args = [a.format(store=store_dir, missing=tmp_path / "none") for a in args]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("scenetag: error:")


def test_other_dimension_model_is_rejected(indexed, tmp_path, tiny_model_dir):
    import shutil

    from transformers import CLIPConfig, CLIPModel

    _, store_dir, _ = indexed
    other = tmp_path / "wide"
    shutil.copytree(tiny_model_dir, other)
    config = CLIPConfig.from_pretrained(other)
    config.projection_dim = 24
    CLIPModel(config).save_pretrained(other, safe_serialization=True)
    result = runner.invoke(app, ["search", "x", "--store", str(store_dir), "--model", str(other)],
                           catch_exceptions=False)
    assert result.exit_code == 2 and "(dim 16)" in result.stderr
    assert "24-d vectors" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_nearest_on_synthetic_vectors(tmp_path):
    from pipeline.engine.base import EmbeddedInput
    from pipeline.store.keys import sampling_key
    from pipeline.types import Sampling

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(200, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    store.put(EmbeddedInput(path="v.mp4", indices=np.arange(200), times_s=np.arange(200) * 0.1,
                            embeddings=vectors), chash="c", sampling=Sampling(every_seconds=0.1),
              sampling_desc=sampling_key(Sampling(every_seconds=0.1)), model_id="m", revision=None,
              precision="fp32")
    rows, scores = store.nearest(vectors[123], 5)
    assert rows.frame_index[0] == 123 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(scores) <= 1e-9)
    expected = np.argsort(-(vectors @ vectors[123]))[:5]
    np.testing.assert_array_equal(rows.frame_index, expected)


# --------------------------------------------------------------------------- one store, two samplings


@pytest.fixture(scope="module")
def two_samplings(tmp_path_factory, tiny_model_dir, tiny_embedder):
    """One clip stored by two runs: every 0.5 s (8 frames) and every 1 s (4
    frames, all of them also among the 8)."""
    from media import make_clip

    folder = tmp_path_factory.mktemp("samplings")
    clip = make_clip(folder / "clip.mp4", seconds=4, fps=10, size=(64, 48))
    for every in (0.5, 1.0):
        config = parse_config({"model": {"id": str(tiny_model_dir), "device": "cpu", "precision": "fp32"},
                               "sampling": {"every_seconds": every}, "decoder": {"strategy": "exact"},
                               "labels": [{"name": "cat"}, {"name": "dog"}],
                           "segments": {"refine": False}})  # counts stored frames
        assert run_job([clip], config, folder / "out", RunOptions(progress=False),
                       embedder=tiny_embedder).exit_code == 0
    store = folder / "out" / "store"
    assert EmbeddingStore.open(store).count() == 12
    return folder, store, clip


def test_search_lists_a_frame_once_across_samplings(two_samplings, tiny_embedder):
    _, store_dir, _ = two_samplings
    hits = search(EmbeddingStore.open(store_dir), tiny_embedder.embed_texts(["a cat"])[0], top_k=50)
    assert sorted(h.frame_index for h in hits) == list(range(0, 40, 5))
    assert [h.rank for h in hits] == list(range(1, 9))


def test_sampling_option_picks_one_sampling(two_samplings, tiny_embedder):
    _, store_dir, _ = two_samplings
    store = EmbeddingStore.open(store_dir)
    hits = search(store, tiny_embedder.embed_texts(["a cat"])[0], top_k=50, sampling="every 1 s")
    assert sorted(h.frame_index for h in hits) == [0, 10, 20, 30]
    from pipeline.types import StoreError

    with pytest.raises(StoreError, match="the store holds: 'every 0.5 s"):
        search(store, tiny_embedder.embed_texts(["a cat"])[0], sampling="every 2 s")


def test_cli_cluster_counts_each_frame_once(two_samplings):
    folder, store_dir, _ = two_samplings
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--k", "2", "-o",
                                 str(folder / "cl")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "8 frames" in result.stderr
    table = pd.read_csv(folder / "cl" / "clusters.csv")
    assert len(table) == 8 and not table.duplicated(["input", "frame_index"]).any()
    result = runner.invoke(app, ["cluster", "--store", str(store_dir), "--k", "2", "--sampling",
                                 "every 1 s", "-o", str(folder / "cl1")], catch_exceptions=False)
    assert result.exit_code == 0 and "4 frames" in result.stderr
    result = runner.invoke(app, ["search", "a cat", "--store", str(store_dir), "--top", "50",
                                 "--sampling", "every 0.5 s; exact; pyav", "-o", str(folder / "s")],
                           catch_exceptions=False)
    assert result.exit_code == 0 and len(pd.read_csv(folder / "s" / "search-a_cat.csv")) == 8


# --------------------------------------------------------------------------- any working directory


def test_store_keeps_absolute_paths_and_works_from_anywhere(tmp_path, tiny_model_dir, monkeypatch,
                                                            caplog):
    """A run with a relative input and a relative model folder; search, its
    thumbnails and a cached re-run then work from another folder."""
    import shutil

    from media import make_clip

    work = tmp_path / "work"
    (work / "media").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, work / "model")
    make_clip(work / "media" / "clip.mp4", seconds=2, fps=10, size=(64, 48))
    monkeypatch.chdir(work)
    config = parse_config({"model": {"id": "model", "device": "cpu", "precision": "fp32"},
                           "sampling": {"every_seconds": 0.5}, "labels": [{"name": "cat"}, {"name": "dog"}],
                           "segments": {"refine": False}})  # counts stored frames
    assert run_job(["media/clip.mp4"], config, Path("out"), RunOptions(progress=False)).exit_code == 0
    store = EmbeddingStore.open(work / "out" / "store")
    assert store.model_id == str(work / "model")
    assert [v.input_path for v in store.videos()] == [str(work / "media" / "clip.mp4")]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["search", "a red square", "--store", str(work / "out" / "store"),
                                 "--top", "3", "-o", str(elsewhere)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "cannot read thumbnails" not in result.output + caplog.text
    assert pd.read_csv(elsewhere / "search-a_red_square.csv")["input"][0] == str(work / "media" / "clip.mp4")
    caplog.set_level("INFO", logger="pipeline.store.cache")
    run_job([str(work / "media" / "clip.mp4")], config.model_copy(
        update={"model": config.model.model_copy(update={"id": str(work / "model")})}),
        elsewhere / "out", RunOptions(progress=False, store=work / "out" / "store"))
    assert store.count() == 4 and len(EmbeddingStore.open(work / "out" / "store").videos()) == 1
    assert "taken from the embedding store" in caplog.text  # same model and input, named another way


# --------------------------------------------------------------------------- outputs named by query


def test_searches_into_one_folder_keep_each_others_files(indexed):
    folder, store_dir, clips = indexed
    out = folder / "two"
    for query in ("a coffee cup", "a red car"):
        result = runner.invoke(app, ["search", query, "--store", str(store_dir), "--top", "3",
                                     "-o", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".scenetag-output",  # later runs over this folder skip what search wrote
        "search-a_coffee_cup.csv", "search-a_coffee_cup.moments.csv", "search-a_coffee_cup.png",
        "search-a_red_car.csv", "search-a_red_car.moments.csv", "search-a_red_car.png"]
    hits = pd.read_csv(out / "search-a_red_car.csv")
    moments = pd.read_csv(out / "search-a_red_car.moments.csv")
    assert list(moments.columns) == ["rank", "input", "start_s", "end_s", "best_time_s", "best_frame_index",
                                     "best_score", "hits"]
    assert moments["best_score"].iloc[0] == pytest.approx(hits["score"].max(), abs=1e-6)
    for hit in hits.itertuples():  # a hit lies in at most one moment; the best one in one
        owners = moments[(moments.input == hit.input) & (moments.start_s <= hit.time_s)
                         & (hit.time_s < moments.end_s)]
        assert len(owners) <= 1 and (hit.rank > 1 or len(owners) == 1)


def test_output_names_are_safe_and_distinct():
    assert output_stem("a photo of a coffee cup.") == "search-a_photo_of_a_coffee_cup"
    assert output_stem(image="/photos/my cup.JPG") == "search-image_my_cup"
    long = "a photo of " + "a very " * 20
    a, b = output_stem(long + "red cup"), output_stem(long + "blue cup")
    assert a != b and len(a.encode()) <= 7 + 60 and a.startswith("search-a_photo_of_a_very_")
    odd = output_stem("???")
    assert odd.startswith("search-") and odd != output_stem("!!!") and "?" not in odd
    assert output_stem("../../etc/passwd") == "search-etc_passwd"
    assert output_stem("\udcff cup") == "search-cup"  # a lone surrogate raised UnicodeEncodeError


def test_search_outputs_are_never_taken_for_inputs(indexed, tmp_path):
    """`scenetag run OUT -o OUT` finds the videos beside the reports, not the contact sheets."""
    from pipeline.run.inputs import expand_inputs

    folder, store_dir, _ = indexed
    out = tmp_path / "out"
    result = runner.invoke(app, ["search", "a cat", "--store", str(store_dir), "-o", str(out)])
    assert result.exit_code == 0 and (out / "search-a_cat.png").is_file()
    (out / "mine.png").write_bytes((out / "search-a_cat.png").read_bytes())
    paths, errors = expand_inputs([str(out)], out, store_dir)
    assert paths == [str(out / "mine.png")] and not errors


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_blank_query_is_a_usage_error(indexed, query):
    """Issue 26 §6.4: "" was `internal error: AttributeError` (exit 3); "   " returned 10 hits."""
    _, store_dir, _ = indexed
    result = runner.invoke(app, ["search", query, "--store", str(store_dir)], catch_exceptions=False)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenetag: error: QUERY: "), result.stderr
    assert "blank" in lines[0] and "scenetag search --help" in lines[0]


def test_a_query_that_is_not_text_is_a_usage_error(indexed):
    """Bytes that are not UTF-8 (a lone surrogate in argv) were `internal error: TypeError` (exit 3)."""
    _, store_dir, _ = indexed
    result = runner.invoke(app, ["search", "\udcff cup", "--store", str(store_dir)], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("scenetag: error: QUERY: not UTF-8 text"), result.stderr


# --------------------------------------------------------------------------- the demo store


def _demo_query(label: str) -> str:
    from demo_assets import CONFIG

    return load_config(CONFIG).scoring.templates[0].format(f"a {label}")


def _assert_one_moment_per_true_interval(truth: dict, label: str, moments: list[tuple[str, float, float]]):
    """Each true interval of ``label`` meets exactly one moment, which covers at
    least 90% of it and whose edges lie within one frame of it (§6.2)."""
    for clip, meta in truth.items():
        for iv in (iv for iv in meta["intervals"] if iv["label"] == label):
            start, end = iv["start_s"], iv["end_s"]
            meeting = [(a, b) for path, a, b in moments if Path(path).name == clip and a < end and b > start]
            assert len(meeting) == 1, (label, clip, start, end, moments)
            a, b = meeting[0]
            assert (min(b, end) - max(a, start)) / (end - start) >= 0.9, (label, a, b)
            frame = 1 / meta["fps"] + 1e-3
            assert abs(a - start) <= frame and abs(b - end) <= frame, (label, a, b, start, end)


@needs_demo
@pytest.mark.parametrize("top", [1, 5, 50])
@pytest.mark.parametrize("label", ["coffee cup", "car", "skull"])
def test_demo_moments_are_the_true_intervals_for_any_top(demo_run, label, top):
    """Issue 26 §2: top 5 for the cup (on screen 2-6 s) gave 2.0-4.5 and 5.53-6.03 s."""
    from pipeline.explore.search import find_moments, query_vector

    truth, out = demo_run
    store = EmbeddingStore.open(out / "store")
    vector = query_vector(store, lambda: pytest.fail("the demo run cached its prompts"), _demo_query(label))
    hits = search(store, vector, top_k=top)
    moments = find_moments(store, vector, hits)
    _assert_one_moment_per_true_interval(truth, label, [(m.input_path, m.start_s, m.end_s) for m in moments])
    assert moments[0].best_score == pytest.approx(hits[0].score) and moments[0].hits == min(top, 10)


@needs_demo
def test_cli_writes_the_moments_and_blurs_nsfw_frames(demo_run, tmp_path):
    """moments.csv beside the hits; the contact sheet blurs a frame in one of
    its report's NSFW segments (issue 26 §6.9), as the HTML report and serve do."""
    from PIL import Image

    truth, out = demo_run
    query = _demo_query("skull")
    sheets = {}
    for name, reports in (("blurred", []), ("sharp", ["--reports", str(tmp_path / "no-reports")])):
        (tmp_path / "no-reports").mkdir(exist_ok=True)
        result = runner.invoke(app, ["search", query, "--store", str(out / "store"), "--top", "5",
                                     "-o", str(tmp_path / name), *reports], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        moments = pd.read_csv(tmp_path / name / f"{output_stem(query)}.moments.csv")
        _assert_one_moment_per_true_interval(truth, "skull", list(zip(moments.input, moments.start_s,
                                                                      moments.end_s)))
        assert "00:07.000–00:11.000" in result.stdout
        with Image.open(tmp_path / name / f"{output_stem(query)}.png") as im:
            sheets[name] = _tile_detail(im.convert("L"), tiles=5)
    assert all(b < 0.5 * s for b, s in zip(sheets["blurred"], sheets["sharp"], strict=True)), sheets


def _tile_detail(sheet, tiles: int) -> list[float]:
    """Edge strength in the middle of each tile of a one-row contact sheet
    (the caption, the tile's border and the red frame left out)."""
    from PIL import ImageFilter, ImageStat

    w, h = sheet.size
    middles = [sheet.crop((int((i + 0.3) * w / tiles), int(0.4 * h), int((i + 0.7) * w / tiles),
                           int(0.85 * h))) for i in range(tiles)]
    return [ImageStat.Stat(m.filter(ImageFilter.FIND_EDGES)).mean[0] for m in middles]
