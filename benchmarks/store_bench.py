"""Library-scale store benchmark: what a store of many stored inputs costs to
write (a run over a library) and to read back (rescore, or a re-run taken
from the cache), with and without the store's fragment compaction.

    .venv/bin/python benchmarks/store_bench.py                 # 500 inputs x 60 frames x 512-d
    .venv/bin/python benchmarks/store_bench.py --inputs 2000

Every ``put`` adds a LanceDB fragment and every query visits all of them, so
without compaction both writing and reading grow with the number of inputs.
Rows, for one store written the two ways:

* ``write``: ``EmbeddingStore.put`` of every input, as ``RunCache.save`` does
  (compacting every ``COMPACT_MIN_FRAGMENTS`` puts) or never compacting;
* ``read``: ``embedded_many`` over every stored input, one query per input
  (the old way) or ``READ_BATCH`` inputs per query.

Not part of the test suite. Timings move with machine load; compare rows of one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.engine.base import EmbeddedInput  # noqa: E402
from pipeline.store import db as store_mod  # noqa: E402
from pipeline.store.db import EmbeddingStore  # noqa: E402
from pipeline.store.keys import sampling_key  # noqa: E402
from pipeline.types import Sampling  # noqa: E402

SAMPLING = Sampling(every_seconds=1.0)


def write(root: Path, inputs: int, frames: int, dim: int, compact: bool) -> float:
    """Seconds to store ``inputs`` synthetic inputs the way a run does."""
    store = EmbeddingStore.open(root, create=True)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(inputs):
        vectors = rng.normal(size=(frames, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        embedded = EmbeddedInput(path=f"/library/{i}.mp4", info=None, indices=np.arange(frames) * 30,
                                 times_s=np.arange(frames, dtype=np.float64), embeddings=vectors,
                                 stats=None)
        store.put(embedded, chash=f"hash{i}", sampling=SAMPLING, sampling_desc=sampling_key(SAMPLING),
                  model_id="bench", revision="r", precision="bf16")
        if compact and (i + 1) % store_mod.COMPACT_MIN_FRAGMENTS == 0:
            store.compact()
    if compact:
        store.compact()
    return time.perf_counter() - start


def read(root: Path, batch: int) -> tuple[float, int]:
    """Seconds to read every stored input back, ``batch`` inputs per query."""
    saved = store_mod.READ_BATCH
    store_mod.READ_BATCH = batch
    try:
        store = EmbeddingStore.open(root)
        start = time.perf_counter()
        frames = sum(len(e.indices) for e in store.embedded_many(store.videos()))
        return time.perf_counter() - start, frames
    finally:
        store_mod.READ_BATCH = saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=500)
    p.add_argument("--frames", type=int, default=60, help="frames per input")
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for compact in (False, True):
            root = Path(tmp) / ("compacted" if compact else "fragmented")
            label = f"compacted every {store_mod.COMPACT_MIN_FRAGMENTS} puts" if compact \
                else "never compacted"
            rows.append((f"write, {label}", write(root, args.inputs, args.frames, args.dim, compact)))
            for batch in (1, store_mod.READ_BATCH):
                seconds, frames = read(root, batch)
                assert frames == args.inputs * args.frames
                rows.append((f"read, {label}, {batch} input(s) per query", seconds))
    print(f"\n{args.inputs} inputs x {args.frames} frames x {args.dim}-d")
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
