"""The store never lies: damaged vectors, a read-only store and a creation
cut short (disk full) each give one clear line, and a half-made store is
rebuilt instead of broken for good."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.engine.base import EmbeddedInput
from pipeline.explore.search import search
from pipeline.store.db import EmbeddingStore
from pipeline.store.keys import sampling_key
from pipeline.types import Sampling, StoreError

lancedb = pytest.importorskip("lancedb")
runner = CliRunner()
SAMPLING = Sampling(every_seconds=0.5)
DIM = 16


def _vectors(n: int = 40, seed: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _put(store: EmbeddingStore, vectors: np.ndarray, name: str = "v.mp4", chash: str = "c") -> None:
    n = len(vectors)
    store.put(EmbeddedInput(path=name, indices=np.arange(n), times_s=np.arange(n) * 0.5,
                            embeddings=vectors), chash=chash, sampling=SAMPLING,
              sampling_desc=sampling_key(SAMPLING), model_id="m", revision=None, precision="fp32")


def _damage(root: Path, vector: np.ndarray, junk: bytes) -> None:
    """Overwrite 8 bytes of one stored vector inside the frames data file."""
    for data in (root / "frames.lance" / "data").glob("*.lance"):
        blob = bytearray(data.read_bytes())
        at = blob.find(vector.tobytes())
        if at >= 0:
            blob[at + 4:at + 12] = junk
            data.write_bytes(bytes(blob))
            return
    raise AssertionError("vector bytes not found in the data files")


# --------------------------------------------------------------------------- damaged vectors


@pytest.mark.parametrize("junk", [b"\xff" * 8, b"\x41" * 8, b"\x00" * 8],
                         ids=["nan", "garbage", "zeros"])
@pytest.mark.parametrize("row", [3, 17], ids=["the-best-hit", "not-a-hit"])
def test_search_detects_damaged_vectors(tmp_path, junk, row):
    """8 bytes overwritten in the frames data: search says corrupt, never
    prints plausible-looking hits (NaN rows LanceDB silently drops included)."""
    vectors = _vectors()
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, vectors)
    _damage(tmp_path / "s", vectors[row], junk)
    with pytest.raises(StoreError, match="corrupt") as err:
        search(EmbeddingStore.open(tmp_path / "s"), vectors[3], top_k=5)
    assert "\n" not in str(err.value)


def test_cli_search_on_damaged_store_is_one_line_exit_2(tmp_path):
    vectors = _vectors()
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, vectors)
    store.put_texts(["a cat"], vectors[5:6], model_id="m", revision=None, precision="fp32",
                    logit_scale=100.0)  # cached: the query needs no model
    ok = runner.invoke(app, ["search", "a cat", "--store", str(tmp_path / "s"), "-o", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    _damage(tmp_path / "s", vectors[9], b"\x41" * 8)
    result = runner.invoke(app, ["search", "a cat", "--store", str(tmp_path / "s"), "-o", str(tmp_path)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "corrupt" in lines[0], result.output
    assert "rank" not in result.stdout  # no table of garbage hits


def test_intact_store_passes_the_checks(tmp_path):
    vectors = _vectors()
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, vectors)
    hits = search(EmbeddingStore.open(tmp_path / "s"), vectors[3], top_k=40)
    assert len(hits) == 40 and hits[0].frame_index == 3
    assert len(EmbeddingStore.open(tmp_path / "s").frames()) == 40


# --------------------------------------------------------------------------- read-only


def test_refused_write_says_read_only(tmp_path, monkeypatch):
    """Tests run as root (chmod does not stop root): the refusal is injected
    as LanceDB reports it, an OS error 13 in its message."""
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, _vectors())

    def refused(self, *args, **kwargs):
        raise OSError("LanceError(IO): Generic LocalFileSystem error: Unable to open file "
                      "/s/frames.lance/data/x.lance: Permission denied (os error 13)")

    monkeypatch.setattr(lancedb.table.LanceTable, "add", refused)
    with pytest.raises(StoreError) as err:
        _put(EmbeddingStore.open(tmp_path / "s"), _vectors(seed=2), name="w.mp4", chash="d")
    assert "read-only" in str(err.value) and "corrupt" not in str(err.value)


def test_unwritable_lock_file_says_read_only(tmp_path, monkeypatch):
    store = EmbeddingStore.open(tmp_path / "s", create=True)
    _put(store, _vectors())

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pipeline.store.lock.open", denied, raising=False)
    with pytest.raises(StoreError, match="read-only") as err:
        EmbeddingStore.open(tmp_path / "s", create=True).check_writable()
    assert "corrupt" not in str(err.value)
    assert len(EmbeddingStore.open(tmp_path / "s").frames()) == 40  # reading needs no lock


# --------------------------------------------------------------------------- half-made


def _fail_creating_meta(monkeypatch, how: str) -> None:
    real = lancedb.db.LanceDBConnection.create_table

    def create_table(self, name, *args, **kwargs):
        if name != "meta":
            return real(self, name, *args, **kwargs)
        if how == "broken-meta":  # the table folder is left without its manifest
            table = real(self, name, *args, **kwargs)
            shutil.rmtree(Path(table.uri) / "_versions")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lancedb.db.LanceDBConnection, "create_table", create_table)


@pytest.mark.parametrize("how", ["no-meta", "broken-meta"])
def test_creation_cut_short_is_rebuilt(tmp_path, monkeypatch, caplog, how):
    root = tmp_path / "s"
    with monkeypatch.context() as patch:
        _fail_creating_meta(patch, how)
        with pytest.raises(StoreError):
            _put(EmbeddingStore.open(root, create=True), _vectors())
    assert (root / "frames.lance").exists()  # half made, as a full disk leaves it
    assert (root / "meta.lance").exists() == (how == "broken-meta")
    with pytest.raises(StoreError, match="creation did not finish") as err:
        EmbeddingStore.open(root)  # a reader: one line, no rebuild
    assert "\n" not in str(err.value)
    store = EmbeddingStore.open(root, create=True)
    _put(store, _vectors())
    assert "rebuilding it" in caplog.text
    again = EmbeddingStore.open(root)
    assert again.model_id == "m" and len(again.videos()) == 1 and len(again.frames()) == 40


def test_half_made_store_with_data_is_not_wiped(tmp_path):
    root = tmp_path / "s"
    _put(EmbeddingStore.open(root, create=True), _vectors())
    shutil.rmtree(root / "meta.lance")
    with pytest.raises(StoreError, match="partial or corrupt"):
        EmbeddingStore.open(root, create=True)
    assert lancedb.connect(str(root)).open_table("frames").count_rows() == 40
