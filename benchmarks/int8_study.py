"""OpenVINO int8 with some ops kept float: which ops, how close, how fast (issue 15).

    python benchmarks/int8_study.py quantise --model DIR --out WORK [--variants ...]
    python benchmarks/int8_study.py speed --model DIR --out WORK [--rounds 3]

``quantise`` exports the model's fp32 OpenVINO graph (into WORK's own cache),
then for each variant writes an int8 image graph beside a copy of the text
graph (``WORK/<variant>/``) and measures, against torch fp32, the min cosine on
the sample photos with their mirrors, ``auto``'s held-out flat and drawn scenes,
the bench clip's frames and the demo clips' frames; with the quantisation time
and how many MatMuls stayed float. ``speed`` then times torch bf16, OpenVINO bf16
and every variant on the bench clip's frames (batch 32), each row in a fresh
process, the rows interleaved over ``--rounds`` rounds (best pass kept).
Variants: ``ptq`` (plain NNCF post-training quantisation, the old graph),
``ac-<target>`` (NNCF accuracy control to that validation min cosine, the
product's method; ``acnosq-<target>`` without SmoothQuant), ``fc2-float``
(every MLP output MatMul ignored: a fixed scope, for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH_CLIP = HERE / ".cache" / "clip_1280x720_60s.mp4"  # built by bench.py


def check_sets(size: int) -> dict[str, np.ndarray]:
    import bench

    from pipeline.embed import choose
    from pipeline.embed.scenes import drawn_scenes

    sets = {"photos": choose.check_images(choose.sample_photos(), size),
            "flat_held_out": np.stack(choose.flat_scenes(size, choose.FLAT_SCENES, seed=1)),
            "drawn_held_out": np.stack(drawn_scenes(size, choose.DRAWN_SCENES,
                                                    seed=choose.DRAWN_SEEDS["check"]))}
    clip = BENCH_CLIP if BENCH_CLIP.exists() else bench.CACHE / "clip_1280x720_60s.mp4"
    if clip.exists():
        sets["bench_frames"] = bench.sample_frames(clip, size, 64)
    demo = bench.check_sets(size).get("demo_frames")
    if demo is not None:
        sets["demo_frames"] = demo
    return sets


def quantise(args: argparse.Namespace) -> None:
    from pipeline.embed import choose, load_embedder
    from pipeline.embed import runtime as runtime_mod
    from pipeline.embed.load import _exported_builder
    from pipeline.embed.runtime import OpenVinoRuntime

    work = Path(args.out)
    os.environ["XDG_CACHE_HOME"] = str(work / "xdg")
    ref = load_embedder(args.model, device="cpu", precision="fp32", runtime="torch", batch_size=32)
    sets = check_sets(ref.input_size)
    refs = {name: ref.embed_images(images) for name, images in sets.items()}
    fp32 = _exported_builder(ref, "openvino", ref._family)("fp32")
    cal = choose.calibration(ref)
    samples = [[p.numpy()] for p in cal.pixels]
    rows = {}
    for variant in args.variants:
        folder = work / variant
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(fp32.folder, folder)
        for path in folder.glob("image.*"):
            path.unlink()
        started = time.perf_counter()
        if variant.startswith(("ac-", "acnosq-")):
            runtime_mod.SMOOTH_QUANT = variant.startswith("ac-")
            report = OpenVinoRuntime.quantize_tower(fp32.folder / "image.xml", folder / "image.xml", samples,
                                                    validation=[[p.numpy()] for p in cal.validation],
                                                    target=float(variant.split("-", 1)[1]))
        elif variant == "ptq":
            report = OpenVinoRuntime.quantize_tower(fp32.folder / "image.xml", folder / "image.xml", samples)
        elif variant == "fc2-float":
            report = ignored_scope_variant(fp32.folder / "image.xml", folder / "image.xml", samples,
                                           [r".*mlp\.fc2.*"])
        else:
            raise SystemExit(f"unknown variant {variant}")
        seconds = time.perf_counter() - started
        ref.runtime = OpenVinoRuntime(folder, "int8")
        cos = {name: round(float(np.min(np.sum(ref.embed_images(images) * refs[name], axis=1))), 6)
               for name, images in sets.items()}
        rows[variant] = {"quantise_s": round(seconds, 1), "float_ops": len(report.get("float_ops", [])),
                         "int8_ops": report.get("int8_ops"),
                         "validation_min_cosine": report.get("validation_min_cosine"), **cos}
        print(variant, json.dumps(rows[variant]), flush=True)
        record = {"model": args.model, "sets": {k: len(v) for k, v in sets.items()}, "rows": rows,
                  "load": os.getloadavg(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (work / "quantise.json").write_text(json.dumps(record, indent=1))
        (folder / "report.json").write_text(json.dumps(report, indent=1))


def ignored_scope_variant(path: Path, out: Path, samples: list, patterns: list[str]) -> dict:
    import contextlib
    import io

    import openvino as ov

    from pipeline.embed.runtime import _import_nncf, int8_census

    nncf = _import_nncf()
    graph = ov.Core().read_model(str(path))
    with contextlib.redirect_stdout(io.StringIO()):
        quantised = nncf.quantize(graph, nncf.Dataset(samples), subset_size=len(samples),
                                  model_type=nncf.ModelType.TRANSFORMER,
                                  ignored_scope=nncf.IgnoredScope(patterns=patterns))
    ov.save_model(quantised, str(out), compress_to_fp16=False)
    return {"method": f"nncf-ptq-ignored:{patterns}", **int8_census(quantised)}


def speed(args: argparse.Namespace) -> None:
    work = Path(args.out)
    rows = ["torch:bf16", "openvino-fp32:bf16"] + [f"{v}:int8" for v in args.variants]
    best: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for row in rows:
            cmd = [sys.executable, __file__, "row", "--model", args.model, "--out", str(work), "--row", row]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                print(row, "failed:", out.stderr.strip().splitlines()[-1:], flush=True)
                continue
            passes = json.loads(out.stdout.strip().splitlines()[-1])
            best.setdefault(row, []).extend(passes)
            print(f"round {round_} {row}: {passes} load {os.getloadavg()[0]:.2f}", flush=True)
    table = {row: {"img_s": max(p), "passes": p} for row, p in best.items()}
    base = table.get("torch:bf16", {}).get("img_s")
    for row in table.values():
        row["x_torch_bf16"] = round(row["img_s"] / base, 2) if base else None
    (work / "speed.json").write_text(json.dumps({"rows": table, "load_end": os.getloadavg(),
                                                 "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                                indent=1))
    print(json.dumps(table, indent=1))


def row(args: argparse.Namespace) -> None:
    import bench

    from pipeline.embed import load_embedder
    from pipeline.embed.runtime import OpenVinoRuntime

    work = Path(args.out)
    name, precision = args.row.split(":")
    if name == "torch":
        embedder = load_embedder(args.model, device="cpu", precision=precision, runtime="torch",
                                 batch_size=32)
    else:
        embedder = load_embedder(args.model, device="cpu", precision="fp32", runtime="torch", batch_size=32)
        folder = work / name if name != "openvino-fp32" else next((work / "xdg" / "scenetag" / "exports")
                                                                  .glob("openvino-*"))
        embedder.runtime = OpenVinoRuntime(folder, precision)
    images = bench.sample_frames(BENCH_CLIP, embedder.input_size, 64)
    passes = [round(bench.measure_model(embedder.embed_images, images)["fps"], 2) for _ in range(3)]
    print(json.dumps(passes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["quantise", "speed", "row"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", nargs="*", default=["ptq", "ac-0.9995"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--row")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    {"quantise": quantise, "speed": speed, "row": row}[args.command](args)


if __name__ == "__main__":
    main()
