"""A live stream grows one stored input a chunk at a time
(EmbeddingStore.append): readers see whole chunks only, a reader holding
an older count of it is never confused by the rows appended since."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lancedb")

from pipeline.engine.base import EmbeddedInput  # noqa: E402
from pipeline.store.db import EmbeddingStore  # noqa: E402
from pipeline.types import DecodeStats, Sampling  # noqa: E402

DIM = 8


def _chunk(start: int, n: int, notes=()) -> EmbeddedInput:
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return EmbeddedInput(path="rtsp://***@cam/stream", indices=np.arange(start, start + n) * 5,
                         times_s=np.arange(start, start + n) * 0.5, embeddings=vectors,
                         stats=DecodeStats(strategy="live", notes=list(notes)))


def _append(store: EmbeddingStore, chunk: EmbeddedInput) -> str:
    return store.append(chunk, chash="live:abc", sampling=Sampling(every_seconds=0.5), sampling_desc="0.5 s",
                        model_id="tiny/model", revision=None, precision="fp32")


def test_chunks_make_one_input_of_every_frame_in_order(tmp_path):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    keys = {_append(store, _chunk(0, 4)), _append(store, _chunk(4, 4)),
            _append(store, _chunk(8, 3, notes=["gap 5.500-6.000 s: connection closed"]))}
    (video,) = store.videos()
    assert len(keys) == 1 and video.frames == 11
    assert video.stats.notes == ["gap 5.500-6.000 s: connection closed"]  # the newest chunk's stats
    stored = store.embedded(video)
    assert list(stored.times_s) == list(np.arange(11) * 0.5)
    assert list(stored.indices) == list(np.arange(11) * 5)


def test_a_reader_with_an_older_count_sees_its_frames_only(tmp_path):
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    _append(store, _chunk(0, 4))
    (old,) = EmbeddingStore.open(tmp_path / "store").videos()  # read before the next chunk lands
    _append(store, _chunk(4, 4))
    stored = EmbeddingStore.open(tmp_path / "store").embedded(old)  # no "inconsistent" error
    assert list(stored.times_s) == [0.0, 0.5, 1.0, 1.5]
    (new,) = EmbeddingStore.open(tmp_path / "store").videos()
    assert new.frames == 8
