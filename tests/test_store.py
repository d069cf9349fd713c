"""The embedding store: round trip, run cache, --no-cache, rescore, and clear
errors for incompatible or damaged stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_model import tiny_config

from pipeline.config import parse_config
from pipeline.engine.base import EmbeddedInput
from pipeline.run import job as run_mod
from pipeline.run import rescore as rescore_mod
from pipeline.run.job import RunOptions, run_job
from pipeline.run.rescore import rescore_job
from pipeline.store.db import EmbeddingStore
from pipeline.store.keys import content_hash, content_hashes, sampling_key
from pipeline.store.schema import FORMAT_VERSION
from pipeline.types import DecodeStats, Sampling, StoreError, VideoInfo

pytest.importorskip("lancedb")

SAMPLING = Sampling(every_seconds=0.5)


def _config(model_dir, labels=("red", "blue"), **extra):
    # refinement off: these tests count decoder opens and stored frames
    # (test_refine.py covers what refinement adds to the store)
    extra.setdefault("segments", {"refine": False})
    return parse_config({"model": {"id": str(model_dir), "device": "cpu", "precision": "fp32"},
                         "sampling": {"every_seconds": 0.5},
                         "labels": [{"name": n} for n in labels], **extra})


def _embedded(path: str, n: int = 5, dim: int = 8, seed: int = 0) -> EmbeddedInput:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    info = VideoInfo(path=path, container="mov,mp4", codec="h264", width=64, height=48,
                     duration_s=2.5, avg_fps=10.0, frame_count=25)
    return EmbeddedInput(path=path, info=info, indices=np.arange(n, dtype=np.int64) * 5,
                         times_s=np.arange(n) * 0.5, embeddings=vectors,
                         stats=DecodeStats(frames_decoded=25, frames_sampled=n, notes=["x"]))


def _put(store: EmbeddingStore, embedded: EmbeddedInput, chash: str = "h1", model: str = "m"):
    return store.put(embedded, chash=chash, sampling=SAMPLING, sampling_desc=sampling_key(SAMPLING),
                     model_id=model, revision="r1", precision="fp32")


def _counting_opener(monkeypatch) -> list[str]:
    """Record every decoder opened by the run (the engine's opener)."""
    opened: list[str] = []
    real = run_mod.open_decoder

    def spy(path, *args, **kwargs):
        opened.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(run_mod, "open_decoder", spy)
    return opened


# --------------------------------------------------------------------------- unit


def test_round_trip(tmp_path):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    original = _embedded("/videos/a.mp4")
    key = _put(store, original)

    again = EmbeddingStore.open(tmp_path / "store")
    assert (again.model_id, again.model_revision, again.dim) == ("m", "r1", 8)
    assert again.meta["format_version"] == FORMAT_VERSION == 5
    [video] = again.videos()
    assert video.key == key and video.frames == 5 and video.sampling_obj == SAMPLING
    back = again.embedded(video)
    assert back.info == original.info and back.stats == original.stats
    np.testing.assert_array_equal(back.indices, original.indices)
    np.testing.assert_array_equal(back.times_s, original.times_s)
    np.testing.assert_array_equal(back.embeddings, original.embeddings)


def test_put_replaces_rows(tmp_path):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    _put(store, _embedded("a.mp4", seed=1))
    _put(store, _embedded("a.mp4", seed=2))
    assert store.count() == 5 and len(store.videos()) == 1
    np.testing.assert_array_equal(store.embedded(store.videos()[0]).embeddings,
                                  _embedded("a.mp4", seed=2).embeddings)


def _many(store: EmbeddingStore, count: int) -> dict[str, EmbeddedInput]:
    stored = {}
    for i in range(count):
        stored[f"v{i}.mp4"] = _embedded(f"v{i}.mp4", n=3 + i % 3, seed=i)
        _put(store, stored[f"v{i}.mp4"], chash=f"h{i}")
    return stored


def test_embedded_many_reads_in_batches_and_matches(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.store.db.READ_BATCH", 2)
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    stored = _many(store, 5)
    videos = store.videos()
    queries = []
    real = store._read_rows
    monkeypatch.setattr(store, "_read_rows", lambda chunk, **kw: queries.append(chunk) or real(chunk, **kw))
    back = list(store.embedded_many(videos))
    assert [len(q) for q in queries] == [2, 2, 1]
    for video, got in zip(videos, back):
        want = stored[Path(video.input_path).name]
        assert got.path == video.input_path
        np.testing.assert_array_equal(got.times_s, want.times_s)
        np.testing.assert_array_equal(got.embeddings, want.embeddings)


def test_compact_merges_fragments_and_keeps_every_row(tmp_path):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    stored = _many(store, 12)
    store.put_texts(["a cat"], stored["v0.mp4"].embeddings[:1], model_id="m", revision="r1",
                    precision="fp32", logit_scale=100.0)

    def fragments(name):
        return store._table(name).stats()["fragment_stats"]["num_fragments"]

    assert fragments("frames") >= 12
    assert store.compact(min_fragments=4) == ["frames", "videos"]  # texts has one fragment
    assert fragments("frames") == fragments("videos") == 1
    again = EmbeddingStore.open(tmp_path / "store")
    assert again.count() == sum(len(e.indices) for e in stored.values())
    for video in again.videos():
        np.testing.assert_array_equal(again.embedded(video).embeddings,
                                      stored[Path(video.input_path).name].embeddings)
    assert "a cat" in again.text_vectors("m", "r1", ["a cat"])[0]


def test_run_compacts_the_store_it_grew(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    monkeypatch.setattr("pipeline.store.db.COMPACT_MIN_FRAGMENTS", 2)  # compact() default
    monkeypatch.setattr("pipeline.store.cache.COMPACT_MIN_FRAGMENTS", 2)  # how often a run compacts
    clips = [_clip(tmp_path, f"c{i}.mp4", seconds=1 + i / 2) for i in range(3)]
    run_job(clips, _config(tiny_model_dir), tmp_path / "out", RunOptions(progress=False),
            embedder=tiny_embedder)
    store = EmbeddingStore.open(tmp_path / "out" / "store")
    assert store._table("frames").stats()["fragment_stats"]["num_fragments"] <= 2
    assert len(store.videos()) == 3 and store.count() == 2 + 3 + 4  # every 0.5 s


def test_content_hash_changes_with_content(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 3_000_000)
    first = content_hash(path)
    assert content_hash(path) == first
    path.write_bytes(b"a" * 2_999_999 + b"b")
    assert content_hash(path) != first


def test_content_hashes_of_many_files_skip_the_unreadable(tmp_path):
    files = []
    for i in range(20):
        files.append(str(tmp_path / f"{i}.bin"))
        Path(files[-1]).write_bytes(bytes([i]) * (i * 100_000))
    asked = files + [str(tmp_path / "missing.mp4"), str(tmp_path)]  # a folder cannot be read
    hashes = content_hashes(asked, workers=4)
    assert hashes == {f: content_hash(f) for f in files}
    assert len(set(hashes.values())) == len(files)


@pytest.mark.parametrize("problem", ["dim", "model"])
def test_incompatible_model_is_store_error(tmp_path, problem):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    _put(store, _embedded("a.mp4"))
    with pytest.raises(StoreError) as err:
        if problem == "dim":
            _put(store, _embedded("b.mp4", dim=16), chash="h2")
        else:
            _put(store, _embedded("b.mp4"), chash="h2", model="other")
    assert "\n" not in str(err.value) and str(tmp_path / "store") in str(err.value)


def test_missing_store_is_store_error(tmp_path):
    with pytest.raises(StoreError, match="no embedding store"):
        EmbeddingStore.open(tmp_path / "nowhere")


def test_newer_format_is_store_error(tmp_path):
    import lancedb

    store = EmbeddingStore.open(tmp_path / "store", create=True)
    _put(store, _embedded("a.mp4"))
    lancedb.connect(str(tmp_path / "store")).open_table("meta").update(values={"format_version": 99})
    with pytest.raises(StoreError, match="format version 99"):
        EmbeddingStore.open(tmp_path / "store")


@pytest.mark.parametrize("damage", ["truncate", "delete", "drop_table"])
def test_corrupt_store_is_store_error(tmp_path, damage):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    _put(store, _embedded("a.mp4"))
    frames_dir = tmp_path / "store" / "frames.lance"
    data = sorted((frames_dir / "data").glob("*.lance"))
    if damage == "truncate":
        for f in data:
            f.write_bytes(f.read_bytes()[:50])
    elif damage == "delete":
        for f in data:
            f.unlink()
    else:
        shutil.rmtree(frames_dir)
    with pytest.raises(StoreError) as err:
        reopened = EmbeddingStore.open(tmp_path / "store")
        reopened.embedded(reopened.videos()[0])
    message = str(err.value)
    assert "\n" not in message and ("corrupt" in message or "partial" in message)


# --------------------------------------------------------------------------- run cache


def _clip(folder: Path, name: str = "clip.mp4", seconds: float = 2) -> str:
    from media import make_clip

    return make_clip(folder / name, seconds=seconds, fps=10, size=(64, 48))


def test_second_run_uses_store_not_decoder(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    clip = _clip(tmp_path)
    config = _config(tiny_model_dir)
    opened = _counting_opener(monkeypatch)
    first = run_job([clip], config, tmp_path / "out1", RunOptions(progress=False),
                    embedder=tiny_embedder)
    assert first.exit_code == 0 and opened == [clip]
    store = EmbeddingStore.open(tmp_path / "out1" / "store")
    rows = store.count()
    assert rows == len(first.results[0].times_s) == 4

    monkeypatch.setattr(run_mod, "open_decoder", _must_not_decode)
    opts = RunOptions(progress=False, store=tmp_path / "out1" / "store")
    second = run_job([clip], config, tmp_path / "out2", opts, embedder=tiny_embedder)
    assert second.exit_code == 0
    a = json.loads((tmp_path / "out1" / "clip" / "summary.json").read_text())
    b = json.loads((tmp_path / "out2" / "clip" / "summary.json").read_text())
    assert a["segments"] == b["segments"] and a["video"] == b["video"]
    assert (tmp_path / "out1" / "clip" / "frames.csv").read_text() == \
        (tmp_path / "out2" / "clip" / "frames.csv").read_text()
    assert store.count() == rows


def test_no_cache_decodes_again_without_duplicates(tmp_path, tiny_model_dir, tiny_embedder,
                                                    monkeypatch):
    clip = _clip(tmp_path)
    config = _config(tiny_model_dir)
    opened = _counting_opener(monkeypatch)
    run_job([clip], config, tmp_path / "out", RunOptions(progress=False), embedder=tiny_embedder)
    run_job([clip], config, tmp_path / "out", RunOptions(progress=False, use_cache=False),
            embedder=tiny_embedder)
    assert opened == [clip, clip]
    store = EmbeddingStore.open(tmp_path / "out" / "store")
    assert store.count() == 4 and len(store.videos()) == 1


def test_other_sampling_misses_cache(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    clip = _clip(tmp_path)
    opened = _counting_opener(monkeypatch)
    run_job([clip], _config(tiny_model_dir), tmp_path / "out", RunOptions(progress=False),
            embedder=tiny_embedder)
    other = _config(tiny_model_dir).model_copy(update={"sampling": _config(tiny_model_dir).sampling
                                                       .model_copy(update={"every_seconds": 1.0})})
    run_job([clip], other, tmp_path / "out", RunOptions(progress=False), embedder=tiny_embedder)
    assert opened == [clip, clip]
    assert len(EmbeddingStore.open(tmp_path / "out" / "store").videos()) == 2


def test_no_store_writes_nothing(tmp_path, tiny_model_dir, tiny_embedder):
    clip = _clip(tmp_path)
    run_job([clip], _config(tiny_model_dir), tmp_path / "out",
            RunOptions(progress=False, use_store=False), embedder=tiny_embedder)
    assert not (tmp_path / "out" / "store").exists()


def test_rescore_writes_reports_without_decoding(tmp_path, tiny_model_dir, tiny_embedder,
                                                 monkeypatch):
    clip = _clip(tmp_path)
    run_job([clip], _config(tiny_model_dir), tmp_path / "out", RunOptions(progress=False),
            embedder=tiny_embedder)
    monkeypatch.setattr(rescore_mod, "open_decoder", _must_not_decode)
    monkeypatch.setattr("pipeline.decode.open_decoder", _must_not_decode)
    new = _config(tiny_model_dir, labels=("cat", "dog", "tree"))
    report = rescore_job(new, tmp_path / "out" / "store", tmp_path / "re", embedder=tiny_embedder)
    assert report.exit_code == 0
    summary = json.loads((tmp_path / "re" / "clip" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["frames_scored"] == 4
    assert summary["sampling"]["every_seconds"] == 0.5
    header = (tmp_path / "re" / "clip" / "frames.csv").read_text().splitlines()[0]
    assert "score:cat" in header and "score:red" not in header
    assert (tmp_path / "re" / "index.csv").exists() and (tmp_path / "re" / "clip" / "timeline.png").exists()


def _must_not_decode(*args, **kwargs):
    raise AssertionError("the decoder was opened")


def test_cli_run_store_options_and_rescore(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    clip = _clip(tmp_path)
    cfg = tiny_config(tmp_path, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\nlabels: [{name: cat}, {name: dog}]\n")
    shared = tmp_path / "shared-store"
    result = runner.invoke(app, ["run", clip, "-c", str(cfg), "-o", str(tmp_path / "a"), "-q",
                                 "--store", str(shared), "--no-refine"], catch_exceptions=False)
    assert result.exit_code == 0 and EmbeddingStore.open(shared).count() == 4
    assert not (tmp_path / "a" / "store").exists()
    result = runner.invoke(app, ["run", clip, "-c", str(cfg), "-o", str(tmp_path / "b"), "-q",
                                 "--no-store"], catch_exceptions=False)
    assert result.exit_code == 0 and not (tmp_path / "b" / "store").exists()
    new = tmp_path / "new.yaml"
    new.write_text("labels: [{name: tree}, {name: car}]\n")
    result = runner.invoke(app, ["rescore", "-c", str(new), "--store", str(shared),
                                 "-o", str(tmp_path / "re"), "--device", "cpu"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "score:tree" in (tmp_path / "re" / "clip" / "frames.csv").read_text()
    for f in (shared / "frames.lance" / "data").glob("*.lance"):
        f.unlink()
    result = runner.invoke(app, ["rescore", "-c", str(new), "--store", str(shared),
                                 "-o", str(tmp_path / "re2"), "--device", "cpu"],
                           catch_exceptions=False)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "corrupt" in lines[0]


# --------------------------------------------------------------------------- prompt cache


def test_text_cache_round_trip_is_per_model(tmp_path):
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    vectors = _embedded("a.mp4", n=2).embeddings
    store.put_texts(["a cat", "a dog"], vectors, model_id="m", revision="r1", precision="bf16",
                    logit_scale=100.0)
    found, scale = store.text_vectors("m", "r1", ["a dog", "a cat", "a tree"])
    assert set(found) == {"a cat", "a dog"} and scale == 100.0
    np.testing.assert_array_equal(found["a dog"], vectors[1])
    assert EmbeddingStore.open(tmp_path / "s").text_vectors("m", "r2", ["a cat"]) == ({}, None)
    assert store.text_vectors("other", "r1", ["a cat"]) == ({}, None)


def test_rescore_with_cached_prompts_loads_no_model(tmp_path, tiny_model_dir, tiny_embedder,
                                                   monkeypatch):
    """Prompts embedded once (by the run, or by an earlier rescore) come from the
    store: re-scoring with them needs no model, and scores exactly the same."""
    clip = _clip(tmp_path)
    run_job([clip], _config(tiny_model_dir), tmp_path / "out", RunOptions(progress=False),
            embedder=tiny_embedder)
    store_dir = tmp_path / "out" / "store"
    new = _config(tiny_model_dir, labels=("cat", "dog"))
    rescore_job(new, store_dir, tmp_path / "with-model", embedder=tiny_embedder)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("pipeline.prepare.load_model", no_model)
    for config, out in ((_config(tiny_model_dir), "run-prompts"), (new, "cached")):
        assert rescore_job(config, store_dir, tmp_path / out).exit_code == 0
    assert (tmp_path / "cached" / "clip" / "frames.csv").read_text() == \
        (tmp_path / "with-model" / "clip" / "frames.csv").read_text()
    assert (tmp_path / "run-prompts" / "clip" / "frames.csv").read_text() == \
        (tmp_path / "out" / "clip" / "frames.csv").read_text()
    summary = json.loads((tmp_path / "cached" / "clip" / "summary.json").read_text())
    assert summary["model"]["id"] == tiny_embedder.model_id
    with pytest.raises(AssertionError, match="model was loaded"):  # a new prompt needs the model
        rescore_job(_config(tiny_model_dir, labels=("cat", "tree")), store_dir, tmp_path / "new")


def test_unwritable_prompt_cache_still_scores(tmp_path, tiny_model_dir, tiny_embedder,
                                              monkeypatch, caplog):
    clip = _clip(tmp_path)
    run_job([clip], _config(tiny_model_dir), tmp_path / "out", RunOptions(progress=False),
            embedder=tiny_embedder)

    def read_only(self, *args, **kwargs):
        raise StoreError("embedding store is read-only")

    monkeypatch.setattr(EmbeddingStore, "put_texts", read_only)
    report = rescore_job(_config(tiny_model_dir, labels=("cat", "dog", "tree")),
                         tmp_path / "out" / "store", tmp_path / "re", embedder=tiny_embedder)
    assert report.exit_code == 0
    assert "score:tree" in (tmp_path / "re" / "clip" / "frames.csv").read_text()
    assert "prompt embeddings not cached" in caplog.text


def test_failed_compaction_costs_the_run_nothing(tmp_path, tiny_model_dir, tiny_embedder,
                                                 monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise StoreError("embedding store is unreadable or corrupt (compact failed: disk full)")

    monkeypatch.setattr(EmbeddingStore, "compact", broken)
    monkeypatch.setattr(EmbeddingStore, "ensure_index", broken)
    report = run_job([_clip(tmp_path)], _config(tiny_model_dir), tmp_path / "out",
                     RunOptions(progress=False), embedder=tiny_embedder)
    assert report.exit_code == 0 and (tmp_path / "out" / "index.csv").exists()
    assert EmbeddingStore.open(tmp_path / "out" / "store").count() == 4
    assert "maintenance skipped" in caplog.text


def test_damaged_prompt_cache_is_a_miss(tmp_path, tiny_model_dir, tiny_embedder, caplog):
    clip = _clip(tmp_path)
    run_job([clip], _config(tiny_model_dir), tmp_path / "out", RunOptions(progress=False),
            embedder=tiny_embedder)
    store_dir = tmp_path / "out" / "store"
    for data in (store_dir / "texts.lance" / "data").glob("*.lance"):
        data.write_bytes(b"garbage")
    report = rescore_job(_config(tiny_model_dir), store_dir, tmp_path / "re", embedder=tiny_embedder)
    assert report.exit_code == 0
    assert (tmp_path / "re" / "clip" / "frames.csv").read_text() == \
        (tmp_path / "out" / "clip" / "frames.csv").read_text()
    assert "prompt cache not used" in caplog.text


def test_a_still_stored_before_stills_were_resized_as_the_processor_does_is_embedded_again(
        tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    """Stills once shared video frames' resize; their stored vectors are
    another picture's. A store from then must not pass them off as current:
    such a still is embedded again (and kept), then reused."""
    from PIL import Image

    from pipeline.store.keys import content_hash as hash_of

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)).save(photo)
    config = _config(tiny_model_dir)
    store_dir = tmp_path / "store"
    old = EmbeddingStore.open(store_dir, create=True)
    old.put(EmbeddedInput(path=str(photo), indices=np.array([0]), times_s=np.array([0.0]),
                          embeddings=np.eye(1, tiny_embedder.dim, dtype=np.float32)),
            chash=hash_of(str(photo)), sampling=config.sampling.to_sampling(),
            sampling_desc=sampling_key(config.sampling.to_sampling()), model_id=tiny_embedder.model_id,
            revision=tiny_embedder.revision, precision="fp32")
    opened = _counting_opener(monkeypatch)
    opts = RunOptions(progress=False, store=store_dir)
    assert run_job([str(photo)], config, tmp_path / "a", opts, embedder=tiny_embedder).exit_code == 0
    assert opened == [str(photo)]  # not taken from the old row
    assert run_job([str(photo)], config, tmp_path / "b", opts, embedder=tiny_embedder).exit_code == 0
    assert opened == [str(photo)]  # the new row serves the second run


@pytest.mark.parametrize("uri", ["s3://bucket/store", "gs://bucket/store", "s3:/bucket/store"])
def test_an_object_store_uri_is_refused_in_one_line(uri, tmp_path, monkeypatch):
    # its writer lock and picture cache are files: an s3:// store used to fail deep in LanceDB
    # ("Could not parse bucket from url: s3:/bucket") after a Path folded its slashes
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="not an object-store URI"):
        EmbeddingStore.open(uri, create=True)
    assert not any(tmp_path.iterdir())  # no folder named "s3:" made here
