"""Several processes on one store: writers take turns (a lock file), a
replace is atomic, and readers never see a duplicate or half an input."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.engine.base import EmbeddedInput
from pipeline.explore.search import search
from pipeline.store.db import EmbeddingStore
from pipeline.store.keys import sampling_key
from pipeline.types import Sampling, StoreError

lancedb = pytest.importorskip("lancedb")
ROOT = Path(__file__).resolve().parents[1]
SAMPLING = Sampling(every_seconds=0.5)
DIM = 16

# A writer process: waits for the go file, then replaces one shared input
# `rounds` times (a different frame count each time) and adds one of its own.
WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from pipeline.engine.base import EmbeddedInput
from pipeline.store.db import EmbeddingStore
from pipeline.store.keys import sampling_key
from pipeline.types import Sampling

root, go, seed, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
while not go.exists():
    time.sleep(0.002)
sampling = Sampling(every_seconds=0.5)
store = EmbeddingStore.open(root, create=True)
for i in range(rounds + 1):
    n = 20 + (seed * 7 + i) % 5
    v = np.random.default_rng(seed * 100 + i).normal(size=(n, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    path, chash = ("shared.mp4", "same") if i < rounds else (f"own{seed}.mp4", f"own{seed}")
    store.put(EmbeddedInput(path=path, indices=np.arange(n), times_s=np.arange(n) * 0.5, embeddings=v),
              chash=chash, sampling=sampling, sampling_desc=sampling_key(sampling), model_id="m",
              revision=None, precision="fp32")
"""

# Holds the write lock until the release file appears; touches `ready` once it has it.
HOLDER = """
import sys, time
from pathlib import Path
from pipeline.store.db import EmbeddingStore

store = EmbeddingStore.open(Path(sys.argv[1]), create=True)
with store.writing("hold for a test"):
    Path(sys.argv[2]).touch()
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _spawn(tmp_path: Path, script: str, *args: str) -> subprocess.Popen:
    path = tmp_path / f"script-{abs(hash(script))}.py"
    path.write_text(script)
    return subprocess.Popen([sys.executable, str(path), *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return err


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _put(store: EmbeddingStore, n: int, seed: int, path: str = "a.mp4", chash: str = "h", **kw) -> None:
    store.put(EmbeddedInput(path=path, indices=np.arange(n), times_s=np.arange(n) * 0.5,
                            embeddings=_vectors(n, seed)), chash=chash, sampling=SAMPLING,
              sampling_desc=sampling_key(SAMPLING), model_id="m", revision=None, precision="fp32", **kw)


def _assert_consistent(store: EmbeddingStore, *, synthetic: bool = True) -> None:
    """Every stored input whole, once (each read is its own moment: a writer
    may commit between two of them)."""
    videos = store.videos()
    assert len({v.key for v in videos}) == len(videos)
    for video, embedded in zip(videos, store.embedded_many(videos)):
        if synthetic:  # whole (a newer copy, when a writer replaced it since `videos`)
            np.testing.assert_array_equal(embedded.indices, np.arange(len(embedded.indices)))
        else:  # sampled frames plus the edge refinement frames kept with them
            extra = len(embedded.refine) if embedded.refine is not None else 0
            assert len(embedded.indices) + extra == video.frames
    rows = store.frames()
    for key in set(rows.key):
        mine = rows.key == key
        assert len(set(rows.generation[mine])) == 1  # one copy, never old and new at once
        if synthetic:  # the writers store frames 0..n-1: all of them, each once
            np.testing.assert_array_equal(np.sort(rows.frame_index[mine]), np.arange(mine.sum()))


# --------------------------------------------------------------------------- real processes


def test_two_writer_processes_leave_one_whole_copy(tmp_path):
    """Two processes create a fresh store at the same moment and replace the
    same input over and over, while this process reads: no 'table already
    exists', no duplicated rows, and every read sees whole inputs."""
    root, go = tmp_path / "store", tmp_path / "go"
    writers = [_spawn(tmp_path, WRITER, root, go, seed, 6) for seed in (1, 2)]
    time.sleep(1.5)  # both imported and waiting
    go.touch()
    reads = 0
    while any(w.poll() is None for w in writers):
        try:
            store = EmbeddingStore.open(root)
        except StoreError as ex:  # only before the first writer has created it
            assert "empty" in str(ex) or "no embedding store" in str(ex), ex
            continue
        _assert_consistent(store)
        reads += 1
    for w in writers:
        _finish(w)
    store = EmbeddingStore.open(root)
    _assert_consistent(store)
    assert len(store.frames()) == sum(v.frames for v in store.videos())
    assert sorted(Path(v.input_path).name for v in store.videos()) == ["own1.mp4", "own2.mp4",
                                                                      "shared.mp4"]
    assert store.count() == sum(v.frames for v in store.videos())  # no leftover copies
    hits = search(store, _vectors(1, 0)[0], top_k=500)
    assert len({(h.input_path, h.frame_index) for h in hits}) == len(hits) == store.count()
    assert reads > 0


def test_second_writer_waits_then_gives_up_in_one_line(tmp_path, caplog, tiny_model_dir):
    from media import make_clip
    from tiny_model import tiny_config

    from pipeline.cli import app

    root, ready = tmp_path / "store", tmp_path / "ready"
    release = tmp_path / "release"
    holder = _spawn(tmp_path, HOLDER, root, ready, release)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(StoreError, match="busy") as err:
        _put(EmbeddingStore.open(root, create=True, wait_s=0.3), 5, 1, chash="h2")
    assert time.monotonic() - started < 3 and f"pid {holder.pid}" in str(err.value)

    clip = make_clip(tmp_path / "clip.mp4", seconds=1, fps=10, size=(64, 48))
    cfg = tiny_config(tmp_path, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\nlabels: [{name: cat}, {name: dog}]\n")
    result = CliRunner().invoke(app, ["run", clip, "-c", str(cfg), "-o", str(tmp_path / "out"), "-q",
                                      "--store", str(root), "--store-wait", "0.3"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "busy" in lines[0], result.output
    assert "--store-wait" in lines[0]

    caplog.clear()
    caplog.set_level(logging.WARNING)  # the CLI above set the root logger to errors only (-q)
    threading.Timer(1.0, release.touch).start()
    _put(EmbeddingStore.open(root, create=True, wait_s=120), 5, 1, chash="h2")  # waits it out
    assert "waiting up to 120 s" in caplog.text
    _finish(holder)
    assert len(EmbeddingStore.open(root).videos()) == 1


def test_concurrent_no_cache_runs_then_a_cached_run(tmp_path, tiny_model_dir, tiny_embedder,
                                                    monkeypatch):
    """The issue's case: two `run --no-cache` of the same input into one store
    at once, then a cached run, a rescore and a search all work."""
    from media import make_clip
    from tiny_model import tiny_config

    from pipeline.config import load_config
    from pipeline.run import job as run_mod
    from pipeline.run import rescore as rescore_mod
    from pipeline.run.job import RunOptions, run_job
    from pipeline.run.rescore import rescore_job

    clip = make_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size=(64, 48))
    cfg = tiny_config(tmp_path, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\nlabels: [{name: cat}, {name: dog}]\n")
    root = tmp_path / "store"
    runs = [subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", clip, "-c", str(cfg),
                              "-o", str(tmp_path / f"out{i}"), "--store", str(root), "--no-cache",
                              "-q", "--device", "cpu"], env=_env(), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in (1, 2)]
    for proc in runs:
        _finish(proc, timeout=400)
    store = EmbeddingStore.open(root)
    [video] = store.videos()  # one copy, not two
    assert store.count() == video.frames and len(store.embedded(video).indices) == 4  # + edge frames
    _assert_consistent(store, synthetic=False)

    def no_decode(*args, **kwargs):
        raise AssertionError("the decoder was opened")

    monkeypatch.setattr(run_mod, "open_decoder", no_decode)
    monkeypatch.setattr(rescore_mod, "open_decoder", no_decode)
    config = load_config(cfg)
    cached = run_job([clip], config, tmp_path / "cached", RunOptions(progress=False, store=root),
                     embedder=tiny_embedder)
    assert cached.exit_code == 0
    assert rescore_job(config, root, tmp_path / "re", embedder=tiny_embedder).exit_code == 0
    hits = search(store, tiny_embedder.embed_texts(["a cat"])[0], top_k=10)
    # every stored frame (edge refinement's too) once: no second copy
    assert len(hits) == video.frames and len({h.frame_index for h in hits}) == len(hits)


# --------------------------------------------------------------------------- interleavings


def test_reader_holding_an_old_row_reads_the_new_copy(tmp_path):
    """A writer replaces an input between a reader's videos read and its frames
    read: the reader retries and gets the new copy whole, not an error."""
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, 6, 1)
    reader = EmbeddingStore.open(tmp_path / "s")
    [old] = reader.videos()
    _put(EmbeddingStore.open(tmp_path / "s", create=True), 9, 2)  # another writer
    [embedded] = list(reader.embedded_many([old]))
    assert len(embedded.indices) == 9
    np.testing.assert_array_equal(embedded.embeddings, _vectors(9, 2))


def test_cluster_read_during_a_replace_loses_no_input(tmp_path, monkeypatch):
    """All frames (what `cluster` reads) while a writer replaces an input
    between the reader's videos read and frames read: the input is read again,
    not silently left out."""
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, 6, 1)
    _put(store, 4, 3, path="b.mp4", chash="hb")
    reader = EmbeddingStore.open(tmp_path / "s")
    real, calls = reader.videos, []

    def videos_then_a_replace():
        out = real()
        if not calls:
            calls.append(1)
            _put(EmbeddingStore.open(tmp_path / "s", create=True), 9, 2)  # another writer
        return out

    monkeypatch.setattr(reader, "videos", videos_then_a_replace)
    rows = reader.frames(unique=True)
    assert sorted(np.unique(rows.key, return_counts=True)[1]) == [4, 9]


def test_interrupted_replace_keeps_the_old_copy_whole(tmp_path, monkeypatch):
    """The replace fails after the new frames were written (disk full before
    the videos row): readers still see the old copy, whole, once."""
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, 6, 1)
    real_add = lancedb.table.LanceTable.add

    def add(self, data, *args, **kwargs):
        if self.name == "videos":
            raise OSError(28, "No space left on device")
        return real_add(self, data, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(lancedb.table.LanceTable, "add", add)
        with pytest.raises(StoreError):
            _put(EmbeddingStore.open(tmp_path / "s", create=True), 9, 2)
    reader = EmbeddingStore.open(tmp_path / "s")
    [video] = reader.videos()
    assert video.frames == 6
    np.testing.assert_array_equal(reader.embedded(video).embeddings, _vectors(6, 1))
    assert len(reader.frames()) == 6
    hits = search(reader, _vectors(9, 2)[0], top_k=20)
    assert len(hits) == 6
    _put(EmbeddingStore.open(tmp_path / "s", create=True), 9, 2)  # the retry cleans up
    assert EmbeddingStore.open(tmp_path / "s").count() == 9


def test_format_1_store_is_read_and_upgraded(tmp_path):
    """A store written before the generation column still opens, reads, and
    takes new inputs (the column is added on first write)."""
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, 6, 1)
    db = lancedb.connect(str(tmp_path / "s"))
    for name in ("frames", "videos"):
        db.open_table(name).drop_columns(["generation"])
    db.open_table("meta").update(values={"format_version": 1})
    old = EmbeddingStore.open(tmp_path / "s")
    [video] = old.videos()
    assert video.generation is None and len(old.embedded(video).indices) == 6
    _put(EmbeddingStore.open(tmp_path / "s", create=True), 4, 2, path="b.mp4", chash="h2")
    _put(EmbeddingStore.open(tmp_path / "s", create=True), 3, 3)  # replaces the old input
    again = EmbeddingStore.open(tmp_path / "s")
    assert again.meta["format_version"] == 5 and "refine" in again._table("frames").schema.names
    assert "refine_json" in again._table("videos").schema.names
    _assert_consistent(again)
    assert sorted(v.frames for v in again.videos()) == [3, 4]
