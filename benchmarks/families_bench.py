"""Model families side by side: image-tower throughput of each family scenetag
scores natively, at ViT-B size with random weights, in one process.

Run ``make bench`` (which runs this after ``bench.py``) or
``.venv/bin/python benchmarks/families_bench.py [--quick]``. It builds, once,
into ``benchmarks/.cache/`` (gitignored), through the same builders the tests
use and the production loader (``pipeline.embed.load_embedder``):

* ``clip-vit-b32``: ``transformers.CLIPConfig()`` defaults (ViT-B/32, 224 px,
  49 patches) — the default model's shape;
* ``siglip-b16-224``: a SigLIP with ViT-B towers, 224 px, patch 16 (196
  patches) — the shape of ``google/siglip-base-patch16-224`` and
  ``google/siglip2-base-patch16-224``;
* ``siglip2-b16-naflex256``: a SigLIP 2 NaFlex model, patch 16, at most 256
  patches (``google/siglip2-base-patch16-naflex``).

Each embeds the same 16:9 frames (as the decoder delivers them at the model's
input size) at fp32 and at the precision ``auto`` picks, after one warm-up
call. Rows are comparable within one run only; the ratio to ViT-B/32 is the
number to read. Random weights cost the same as trained ones: only the shapes
matter here. Results go to ``benchmarks/families_results.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CACHE = HERE / ".cache"
# ViT-B/16 towers: what the SigLIP base checkpoints use
VIT_B = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def build_models(cache: Path, tiny: bool) -> dict[str, Path]:
    """Model folders by row name, built once per shape (a marker file says which)."""
    from tiny_families import build_tiny_siglip, build_tiny_siglip2

    bench = _load_bench()
    tower, tag = (TINY, "tiny") if tiny else (VIT_B, "vit-b")
    builders = {
        "clip-vit-b32": lambda d: bench.build_model(d, tiny=tiny),
        "siglip-b16-224": lambda d: build_tiny_siglip(d, image_size=224 if not tiny else 32,
                                                      patch_size=16 if not tiny else 8, tower=tower),
        "siglip2-b16-naflex256": lambda d: build_tiny_siglip2(d, patch_size=16 if not tiny else 8,
                                                              max_num_patches=256 if not tiny else 16,
                                                              tower=tower),
    }
    folders = {}
    for name, build in builders.items():
        folder = cache / f"family-{name}-{tag}"
        if not (folder / "config.json").exists():
            build(folder)
        folders[name] = folder
    return folders


def _load_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scenetag_bench", HERE / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def frames_for(embedder, count: int, seed: int = 0) -> np.ndarray:
    """16:9 uint8 frames whose short side is the model's input size (what the
    decoder hands the embedder), with texture rather than flat colour."""
    short = embedder.input_size
    long = round(short * 16 / 9)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(count, short // 8 + 1, long // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(base.repeat(8, axis=1).repeat(8, axis=2)[:, :short, :long])


def measure(folder: Path, precision: str, batch: int, repeats: int) -> dict:
    """Images per second of one model at one precision; its family and rule."""
    from pipeline.embed import load_embedder

    embedder = load_embedder(str(folder), device="cpu", precision=precision, batch_size=batch)
    images = frames_for(embedder, batch)
    embedder.embed_images(images[:4])  # warm-up: first-call allocations
    start = time.perf_counter()
    for _ in range(repeats):
        embedder.embed_images(images)
    wall = time.perf_counter() - start
    return {"family": embedder.family, "scoring_rule": embedder.scoring_rule,
            "precision": embedder.precision, "input_size": embedder.input_size,
            "img_per_s": round(repeats * batch / wall, 2)}


def run(args: argparse.Namespace) -> dict:
    import torch

    from pipeline.embed import resolve_precision

    folders = build_models(Path(args.cache), tiny=args.tiny_model)
    precisions = list(dict.fromkeys(["fp32", resolve_precision("auto", "cpu")]))  # one row if the same
    rows: dict[str, dict] = {}
    for name, folder in folders.items():
        for precision in precisions:
            row = measure(folder, precision, args.batch_size, args.repeats)
            rows[f"{name} {row['precision']}"] = row
    reference = {r["precision"]: r["img_per_s"] for n, r in rows.items() if n.startswith("clip-vit-b32")}
    for row in rows.values():
        row["vs_clip_b32"] = round(row["img_per_s"] / reference[row["precision"]], 3)
    bench = _load_bench()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": bench.machine(), "batch": args.batch_size, "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(), "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if not args.silent:
        print_table(result)
    return result


def print_table(result: dict) -> None:
    print(f"families bench, {result['date']}, batch {result['batch']} x {result['repeats']}, "
          f"{result['machine']['cpu']} ({result['machine']['cores']} cores)")
    print(f"{'row':34} {'family':8} {'rule':8} {'input':>5} {'img/s':>8} {'vs B/32':>8}")
    for name, r in result["rows"].items():
        print(f"{name:34} {r['family']:8} {r['scoring_rule']:8} {r['input_size']:>5} "
              f"{r['img_per_s']:>8.2f} {r['vs_clip_b32']:>8.3f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one pass per row")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--tiny-model", action="store_true", help="tiny towers (smoke tests)")
    p.add_argument("--cache", default=str(CACHE))
    p.add_argument("--out", default=str(HERE / "families_results.json"))
    p.add_argument("--silent", action="store_true")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    return args


if __name__ == "__main__":
    run(parse_args())
