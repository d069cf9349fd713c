"""What a long live stream costs the store: chunks appended to one input
(pipeline.store.db.EmbeddingStore.append, compacted every 32 as the live
session does), then the whole stream read back as rescore reads it.

    python benchmarks/live_store_bench.py [--chunks 500] [--chunk 64] [--dim 512] [--no-compact]

Prints one JSON object: append milliseconds (first and last 50 chunks,
median), fragments before each compaction, and the read-back time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np

from pipeline.engine.base import EmbeddedInput
from pipeline.store.db import COMPACT_MIN_FRAGMENTS, EmbeddingStore
from pipeline.types import DecodeStats, Sampling


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--no-compact", action="store_true", help="never compact (the trap, for comparison)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sampling = Sampling(every_seconds=0.5)
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddingStore.open(folder, create=True)
        took, compact_s = [], []
        for c in range(args.chunks):
            n0 = c * args.chunk
            vectors = rng.normal(size=(args.chunk, args.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            chunk = EmbeddedInput(path="rtsp://cam/stream", indices=np.arange(n0, n0 + args.chunk) * 12,
                                  times_s=np.arange(n0, n0 + args.chunk) * 0.5, embeddings=vectors,
                                  stats=DecodeStats(strategy="live"))
            started = time.perf_counter()
            store.append(chunk, chash="live:bench", sampling=sampling, sampling_desc="every 0.5 s",
                         model_id="bench/model", revision=None, precision="fp32")
            took.append(1000 * (time.perf_counter() - started))
            if (c + 1) % COMPACT_MIN_FRAGMENTS == 0 and not args.no_compact:
                started = time.perf_counter()
                store.compact()
                compact_s.append(time.perf_counter() - started)
        (video,) = store.videos()
        started = time.perf_counter()
        embedded = store.embedded(video)
        read_s = time.perf_counter() - started
    print(json.dumps({
        "frames": int(len(embedded.times_s)), "compact": not args.no_compact, "chunks": args.chunks,
        "chunk": args.chunk, "dim": args.dim,
        "append_ms_median_first50": round(statistics.median(took[:50]), 1),
        "append_ms_median_last50": round(statistics.median(took[-50:]), 1),
        "compact_s_median": round(statistics.median(compact_s), 3) if compact_s else None,
        "read_whole_stream_s": round(read_s, 3)}))


if __name__ == "__main__":
    main()
