"""Search benchmark: N synthetic D-d unit vectors in an embedding store,
build the IVF-PQ index, time top-10 queries (p50/p95) and measure recall@10
against exact search.

    .venv/bin/python benchmarks/search_bench.py            # 1,000,000 x 512
    .venv/bin/python benchmarks/search_bench.py --rows 200000 --store /tmp/s

Not part of the test suite (minutes and a few GB of disk). Target: top-10
p50 ≤ 50 ms at 1M x 512. The vectors are clustered (random centres + noise)
so that, like frames of videos, neighbours are meaningful.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.engine.base import EmbeddedInput
from pipeline.store.db import EmbeddingStore
from pipeline.store.keys import sampling_key
from pipeline.types import Sampling

SAMPLING = Sampling(every_seconds=1.0)


def synthetic(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)) / np.sqrt(dim)
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill(store: EmbeddingStore, rows: int, dim: int, chunk: int, seed: int) -> np.ndarray:
    """Write ``rows`` vectors as inputs of ``chunk`` frames; returns the centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)) / np.sqrt(dim)
    for i, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        vectors = synthetic(rng, n, centres)
        store.put(EmbeddedInput(path=f"/synthetic/video{i:04d}.mp4", indices=np.arange(n),
                                times_s=np.arange(n, dtype=np.float64), embeddings=vectors),
                  chash=f"hash{i}", sampling=SAMPLING, sampling_desc=sampling_key(SAMPLING),
                  model_id="synthetic", revision=None, precision="fp32")
    return centres


def exact_top(store: EmbeddingStore, query: np.ndarray, k: int) -> set[tuple[str, int]]:
    rows = store.frames()
    best = np.argsort(-(rows.vectors @ query))[:k]
    return {(rows.input_path[i], int(rows.frame_index[i])) for i in best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=20)
    parser.add_argument("--store", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the store folder")
    args = parser.parse_args()
    root = args.store or Path(tempfile.mkdtemp(prefix="scenetag-bench-")) / "store"
    store = EmbeddingStore.open(root, create=True)

    t0 = time.perf_counter()
    centres = fill(store, args.rows, args.dim, chunk=100_000, seed=0)
    t1 = time.perf_counter()
    print(f"write   {args.rows:,} x {args.dim}: {t1 - t0:.1f} s")
    indexed = store.ensure_index()
    t2 = time.perf_counter()
    print(f"index   IVF-PQ ({'built' if indexed else 'none: below threshold'}): {t2 - t1:.1f} s")

    rng = np.random.default_rng(1)
    queries = synthetic(rng, args.queries, centres)
    store.nearest(queries[0], 10)  # warm caches
    latencies = []
    for q in queries:
        start = time.perf_counter()
        store.nearest(q, 10)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"query   top-10 over {args.queries} queries: p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms")

    if args.recall_queries:
        recalls = []
        for q in queries[:args.recall_queries]:
            rows, _ = store.nearest(q, 10)
            got = {(p, int(f)) for p, f in zip(rows.input_path, rows.frame_index, strict=True)}
            recalls.append(len(got & exact_top(store, q, 10)) / 10)
        print(f"recall  @10 vs exact over {len(recalls)} queries: {np.mean(recalls):.3f}")
    if not args.keep and args.store is None:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
