"""``scenetag serve`` benchmark: text-query latency over HTTP on a 100k-frame store.

    .venv/bin/python benchmarks/serve_bench.py                 # 100,000 frames x 512-d
    .venv/bin/python benchmarks/serve_bench.py --rows 20000 --model DIR

A real server (uvicorn on 127.0.0.1, a free port) over a LanceDB store of
N synthetic 512-d frames (100 inputs, IVF-PQ index built as a run builds
it), queried through ``GET /api/search`` with a keep-alive connection:

* **cold**: prompts neither in the store's prompt cache nor seen by the
  server: each runs the text tower once;
* **cached**: prompts in the store's prompt cache (embedded beforehand, as
  a run or rescore leaves them), new to the server;
* **repeated**: one prompt again and again (the server's memory).

The model is loaded once before the clock starts, as ``scenetag serve``
does. Without ``--model`` it is a CLIP of ViT-B/32's shape (text tower 12 x
512, as OpenAI's) with random weights and the demo model's tokenizer: the
timing of a real ViT-B/32, which this machine cannot download. Target: p50
≤ 100 ms. Takes ~1-2 min (model build, store write, index); not part of
``make bench``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from search_bench import synthetic  # noqa: E402  (the same clustered vectors)

from pipeline.engine.base import EmbeddedInput  # noqa: E402
from pipeline.store.db import EmbeddingStore  # noqa: E402
from pipeline.store.keys import sampling_key  # noqa: E402
from pipeline.types import Sampling  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "scenetag-demo-clip"
SAMPLING = Sampling(every_seconds=1.0)
OBJECTS = ["cup", "ball", "tree", "car", "house", "dog", "cat", "bike", "boat", "chair", "lamp", "door",
           "phone", "book", "clock", "shoe", "bird", "horse", "train", "plane"]
PLACES = ["kitchen", "street", "park", "beach", "office", "garden", "room", "road"]


def vit_b32_shaped(folder: Path) -> Path:
    """A random-weight CLIP with ViT-B/32's shape and the demo tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    demo = json.loads((DEMO / "config.json").read_text())["text_config"]
    config = CLIPConfig(text_config={"vocab_size": 49408, "max_position_embeddings": 77,
                                     "eos_token_id": demo["eos_token_id"],
                                     "bos_token_id": demo["bos_token_id"],
                                     "pad_token_id": demo["pad_token_id"]},
                        vision_config={}, projection_dim=512)  # defaults: ViT-B/32
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                 "preprocessor_config.json", "special_tokens_map.json"):
        if (DEMO / name).exists():
            shutil.copy(DEMO / name, folder / name)
    return folder


def prompts(n: int, offset: int) -> list[str]:
    out = [f"a photo of a {o} in a {p}." for p in PLACES for o in OBJECTS]
    return out[offset:offset + n]


def fill(store: EmbeddingStore, embedder, rows: int, inputs: int) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, embedder.dim)) / np.sqrt(embedder.dim)
    per = rows // inputs
    for i in range(inputs):
        store.put(EmbeddedInput(path=f"/synthetic/video{i:04d}.mp4", indices=np.arange(per),
                                times_s=np.arange(per, dtype=np.float64),
                                embeddings=synthetic(rng, per, centres)),
                  chash=f"{i:032x}", sampling=SAMPLING, sampling_desc=sampling_key(SAMPLING),
                  model_id=embedder.model_id, revision=embedder.revision,
                  precision=embedder.precision, family=embedder.family)
        if (i + 1) % 32 == 0:
            store.compact()
    store.compact(0)


def timed(conn: http.client.HTTPConnection, query: str, top: int) -> float:
    start = time.perf_counter()
    conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": query, "top": top}))
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status == 200, body[:300]
    assert len(json.loads(body)["hits"]) == top
    return elapsed


def summary(name: str, ms: list[float]) -> dict:
    ms = sorted(ms)
    row = {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
           "queries": len(ms)}
    print(f"{name:11s} p50 {row['p50_ms']:6.1f} ms   p95 {row['p95_ms']:6.1f} ms   ({len(ms)} queries)")
    return row


def measure(store: EmbeddingStore, embedder, work: Path, top: int, cached: list[str],
            cold: list[str], repeats: int) -> dict:
    """Latency rows of one fresh server asked for ``top`` hits."""
    from pipeline.serve.app import create_app
    from pipeline.serve.server import start_in_thread

    start = time.perf_counter()
    app = create_app(store, embedder, thumbs=work / "thumbs")
    running = start_in_thread(app)
    print(f"top {top}: server up in {time.perf_counter() - start:.1f} s "
          f"({len(app.state.scenetag.library)} inputs)")
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(running.url).netloc, timeout=60)
    try:
        timed(conn, "warm up the connection and the table handles.", top)
        return {"cold": summary("  cold", [timed(conn, q, top) for q in cold]),
                "cached": summary("  cached", [timed(conn, q, top) for q in cached]),
                "repeated": summary("  repeated", [timed(conn, cached[0], top) for _ in range(repeats)])}
    finally:
        conn.close()
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--queries", type=int, default=40, help="per kind (cold, cached)")
    parser.add_argument("--top", type=int, nargs="+", default=[20, 50],
                        help="hits asked for (20: the page's default)")
    parser.add_argument("--model", type=Path, default=None, help="default: a ViT-B/32-shaped random CLIP")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the model and store here and reuse them next time "
                             "(default: a temporary folder, removed)")
    parser.add_argument("--threads", type=int, default=1, help="model CPU threads (serve --threads)")
    args = parser.parse_args()

    from pipeline.serve.server import limit_model_threads

    limit_model_threads(args.threads)  # before torch is imported, as `scenetag serve` does
    from pipeline.embed import load_embedder

    work = args.work or Path(tempfile.mkdtemp(prefix="scenetag-serve-bench-"))
    try:
        t0 = time.perf_counter()
        model = args.model or (work / "model" if (work / "model" / "config.json").exists()
                               else vit_b32_shaped(work / "model"))
        embedder = load_embedder(str(model), device="cpu")
        t1 = time.perf_counter()
        store = EmbeddingStore.open(work / "store", create=True)
        if store.count() != args.rows:  # a kept store of another size is rebuilt
            shutil.rmtree(work / "store", ignore_errors=True)
            store = EmbeddingStore.open(work / "store", create=True)
            fill(store, embedder, args.rows, args.inputs)
        t2 = time.perf_counter()
        indexed = store.ensure_index()
        t3 = time.perf_counter()
        cached = prompts(args.queries, 0)
        store.put_texts(cached, embedder.embed_texts(cached), model_id=embedder.model_id,
                        revision=embedder.revision, precision=embedder.precision,
                        logit_scale=embedder.logit_scale, family=embedder.family)
        print(f"model {t1 - t0:.1f} s; store {store.count():,} x {embedder.dim}: write {t2 - t1:.1f} s, "
              f"index {'built' if indexed else 'none'} {t3 - t2:.1f} s")
        rows = {}
        for n, top in enumerate(args.top):  # a fresh server each: new to its memory
            rows[f"top{top}"] = measure(store, embedder, work, top, cached,
                                        prompts(args.queries, (n + 1) * args.queries), args.queries)
        result = {"rows": store.count(), "dim": embedder.dim, "indexed": indexed, "threads": args.threads,
                  "model": "ViT-B/32-shaped random CLIP" if args.model is None else str(args.model),
                  **rows}
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        target = all(r[k]["p50_ms"] <= 100 for r in rows.values() for k in ("cold", "cached"))
        print(f"target p50 <= 100 ms (cold and cached): {'PASS' if target else 'FAIL'}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
