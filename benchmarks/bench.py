"""Throughput benchmark: scenetag's pipeline against the tutorial loop, in one process.

Run ``make bench`` (or ``.venv/bin/python benchmarks/bench.py [--quick]``). It
builds, once, into ``benchmarks/.cache/`` (gitignored):

* a 60 s 1280x720 30 fps H.264 clip (libx264, GOP 250, panning texture and a
  moving box, scene change every 10 s) — 20 s with ``--quick``;
* a low-resolution 160x90 30 fps clip of 1 min and one of 40 min (1 and 4 min
  with ``--quick``) for the memory rows;
* a ViT-B/32-shaped CLIP with random weights (``transformers.CLIPConfig()``
  defaults), saved as a normal model folder and loaded through
  ``pipeline.embed.load_embedder``.

Then it measures, on the same clip and machine, one after the other:

1. ``naive``: PyAV decodes every frame, keeps every 30th, ``frame.to_image()``
   → ``CLIPImageProcessor`` → model, batch 1, fp32. Over the first
   ``--naive-seconds`` of the clip only (it is slow); frames scored per second.
2. ``decode``: our decoder alone (``open_decoder(short_side=224, strategy="auto")``),
   same sampling (one frame per second ≙ every 30th frame); frames per second.
3. ``model``: our embedder alone on ready uint8 frames of the decoder's output
   size, at its chosen precision and batch; images per second.
4. ``e2e``: ``pipeline.run.job.run_job`` on the whole clip (model preloaded, CSV +
   JSON outputs); frames scored per second.
5. peak RSS of ``run_job`` in a fresh subprocess on the 1 min and 40 min
   low-resolution clips.

It prints a table with PASS/MISS per target (it never fails on a miss) and
writes ``benchmarks/results.json``. The precision study (fp32 / bf16 / int8
dynamic on CPU; fp32 / fp16 and batch 1024 on CUDA) and, with ``--compile``,
``torch.compile`` are measured the same way.

Timings on a shared machine move with its load; compare rows of one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CACHE = HERE / ".cache"
FPS = 30
SAMPLE_EVERY = 30  # frames; at 30 fps this is one frame per second
LABELS = ["a city street", "a forest", "a beach", "an office", "a kitchen"]
TARGETS = {"speedup_vs_naive": 5.0, "efficiency": 0.8, "rss_growth_mb": 50.0}


# --------------------------------------------------------------------------- inputs


def _texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """A colourful texture: blocky noise (cells of ``cell`` px) over a gradient."""
    small = rng.integers(0, 256, (height // cell + 1, width // cell + 1, 3), dtype=np.uint8)
    blocks = np.repeat(np.repeat(small, cell, 0), cell, 1)[:height, :width].astype(np.int16)
    yy, xx = np.mgrid[0:height, 0:width]
    grad = ((xx / width) * 120 + (yy / height) * 60).astype(np.int16)[..., None]
    fine = rng.integers(-24, 24, (height, width, 1), dtype=np.int16)
    return np.clip(blocks // 2 + grad + fine, 0, 255).astype(np.uint8)


def make_clip(path: Path, seconds: float, width: int, height: int, *, fps: int = FPS,
              gop: int = 250, preset: str = "veryfast", seed: int = 0, fixed_gop: bool = False) -> Path:
    """Write an H.264 clip with camera-pan motion, a moving box and a scene
    change every 10 s, so it is neither static nor trivially compressible.
    ``fixed_gop``: no scene-cut keyframes, a keyframe exactly every ``gop``
    frames, as cameras and phones write."""
    import av

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cell = max(2, width // 80)
    scenes = [_texture(rng, height, width * 2, cell) for _ in range(3)]
    box = max(4, height // 6)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "crf": "23", "g": str(gop),
                          **({"x264-params": "scenecut=0"} if fixed_gop else {})}
        stream.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            scene = scenes[(i // (10 * fps)) % len(scenes)]
            x0 = (i * max(1, width // 320)) % width
            img = np.ascontiguousarray(scene[:, x0:x0 + width])
            bx = int((width - box) * (0.5 + 0.5 * np.sin(i / 20)))
            by = int((height - box) * (0.5 + 0.5 * np.cos(i / 31)))
            img[by:by + box, bx:bx + box] = (255, 200 - (i % 100), 40)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.rename(path)
    return path


RESCORE_LABELS = ("a dog", "a bicycle", "a sunset")
BENCH_MODEL_BUILD = {"version": 2, "tokenizer": "word-level BPE"}


def prompt_words() -> list[str]:
    """Every word of the bench's prompts and of the shipped configs' values."""
    import yaml

    def strings(node) -> list[str]:
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    texts = list(LABELS) + list(RESCORE_LABELS)
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        texts += strings(yaml.safe_load(path.read_text(encoding="utf-8")))
    return sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges that make each of ``words`` one token, as the real CLIP
    vocabulary (49,152 merges) does for common English words. Token counts, and
    so the text tower's work, then match the real model's; a bare byte-level
    vocabulary would spell every word out letter by letter."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from train_demo_model import learn_merges as learn
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return learn(words)


def build_model(folder: Path, *, tiny: bool = False, seed: int = 0) -> Path:
    """A CLIP with random weights saved as a model folder (safetensors, a
    word-level BPE tokenizer, CLIPImageProcessor). ViT-B/32 shaped unless ``tiny``."""
    marker = folder / "bench-model.json"  # what built it: an older build is rebuilt
    if (folder / "config.json").exists() and marker.exists() and \
            json.loads(marker.read_text()) == BENCH_MODEL_BUILD:
        return folder
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    merges = learn_merges(prompt_words())
    base = set(tokens)
    tokens += list(dict.fromkeys(a + b for a, b in merges if a + b not in base))
    vocab = {s: i for i, s in enumerate(tokens)}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)  # highest id: CLIP pools text at argmax(input_ids)
    CLIPTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    text = {"vocab_size": len(vocab), "eos_token_id": eos, "bos_token_id": bos, "pad_token_id": eos}
    vision: dict = {}
    image = 224
    if tiny:
        image = 32
        text.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
        vision = {"image_size": image, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                  "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16 if tiny else 512)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": image},
                       crop_size={"height": image, "width": image}).save_pretrained(folder)
    marker.write_text(json.dumps(BENCH_MODEL_BUILD))
    return folder


# --------------------------------------------------------------------------- measurements


def measure_naive(clip: Path, model_dir: Path, seconds: float) -> dict:
    """The tutorial loop: every frame decoded, every 30th to PIL → processor →
    fp32 model at batch 1."""
    import av
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(str(model_dir)).eval()
    processor = CLIPImageProcessor.from_pretrained(str(model_dir))
    limit = int(seconds * FPS)
    scored = 0
    with torch.inference_mode():  # warm-up call, not timed (lazy kernel set-up)
        model.get_image_features(pixel_values=torch.zeros(1, 3, processor.crop_size["height"],
                                                          processor.crop_size["width"]))
    start = time.perf_counter()
    with av.open(str(clip)) as container, torch.inference_mode():
        for i, frame in enumerate(container.decode(video=0)):
            if i >= limit:
                break
            if i % SAMPLE_EVERY:
                continue
            pixels = processor(images=frame.to_image(), return_tensors="pt")["pixel_values"]
            model.get_image_features(pixel_values=pixels)
            scored += 1
    wall = time.perf_counter() - start
    del model
    gc.collect()
    return {"fps": scored / wall, "frames": scored, "wall_s": wall, "seconds_of_video": seconds}


def measure_decode(clip: Path, short_side: int, strategy: str = "auto") -> dict:
    """Our decoder alone, one frame per second, threaded as ``run`` threads it."""
    from pipeline.config import DecoderConfig
    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    threads = DecoderConfig().threads
    cpu0 = cpu_seconds()
    start = time.perf_counter()
    with open_decoder(str(clip), short_side=short_side, strategy=strategy, threads=threads) as decoder:
        frames = sum(1 for _ in decoder.frames(Sampling(every_seconds=SAMPLE_EVERY / FPS)))
        stats = decoder.stats
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    return {"fps": frames / wall, "frames": frames, "wall_s": wall, "strategy": stats.strategy,
            "threads": threads, "frames_decoded": stats.frames_decoded, "cpu_s": cpu,
            "cpu_s_per_frame": cpu / max(frames, 1)}


def cpu_seconds() -> float:
    """CPU time of this process, every thread (decoder and BLAS threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cores() -> int:
    """The cores this process may run on."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def sample_frames(clip: Path, short_side: int, count: int) -> np.ndarray:
    """``count`` frames as the decoder gives them (cycled if the clip is short)."""
    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    with open_decoder(str(clip), short_side=short_side) as decoder:
        frames = [f.image for f in decoder.frames(Sampling(every_seconds=1.0, max_frames=count))]
    return np.stack([frames[i % len(frames)] for i in range(count)])


def measure_model(embed_images, images: np.ndarray, repeats: int = 1) -> dict:
    """Images per second of ``embed_images`` on ready frames (after one warm-up call)."""
    embed_images(images[: max(1, min(len(images), 8))])
    cpu0 = cpu_seconds()
    start = time.perf_counter()
    for _ in range(repeats):
        vectors = embed_images(images)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    return {"fps": repeats * len(images) / wall, "images": repeats * len(images), "wall_s": wall,
            "cpu_s_per_image": cpu / (repeats * len(images)), "vectors": vectors}


def bench_config(model_dir: Path, formats=("csv", "json"), max_frames: int | None = None,
                 strategy: str = "auto"):
    from pipeline.config import load_config

    return load_config(None, {"model.id": str(model_dir),
                              "labels": [{"name": n} for n in LABELS],
                              "sampling.every_seconds": SAMPLE_EVERY / FPS,
                              "sampling.max_frames": max_frames,
                              "decoder.strategy": strategy,
                              # the naive loop and earlier rows place edges at samples;
                              # refinement's cost has its own bench (refine_bench.py)
                              "segments.refine": False,
                              "output.formats": list(formats)})


def run_options(use_store: bool = True):
    """Quiet ``RunOptions``; ``use_store=False`` skips the embedding store
    (where this version of ``run`` has one)."""
    import dataclasses

    from pipeline.run.job import RunOptions

    names = {f.name for f in dataclasses.fields(RunOptions)}
    extra = {"use_store": False} if not use_store and "use_store" in names else {}
    return RunOptions(progress=False, **extra)


def measure_e2e(clip: Path, embedder, model_dir: Path, use_store: bool = True,
                strategy: str = "auto") -> dict:
    """``run_job`` on the clip with the model preloaded; also times the model
    calls so the overlap of decode and embed can be judged. A 2-frame run
    first, untimed, pays the one-off imports (report writers, store)."""
    from pipeline.run.job import run_job

    with tempfile.TemporaryDirectory() as out:
        config = bench_config(model_dir, max_frames=2)
        run_job([str(clip)], config, Path(out), run_options(use_store), embedder=embedder)

    busy = [0.0]
    original = embedder.embed_images

    def timed(images):
        t0 = time.perf_counter()
        try:
            return original(images)
        finally:
            busy[0] += time.perf_counter() - t0

    embedder.embed_images = timed
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            report = run_job([str(clip)], bench_config(model_dir, strategy=strategy), Path(out),
                             run_options(use_store), embedder=embedder)
            wall = time.perf_counter() - start
            rescore_s = measure_rescore(Path(out), embedder, model_dir) if use_store else None
    finally:
        del embedder.embed_images
    result = report.results[0]
    if result.status != "ok":
        raise RuntimeError(f"e2e run failed: {result.error}")
    frames = len(result.frame_indices)
    return {"fps": frames / wall, "frames": frames, "wall_s": wall, "model_busy_s": busy[0],
            "rescore_s": rescore_s,
            "frames_decoded": result.decode.frames_decoded if result.decode else None,
            "strategy": result.decode.strategy if result.decode else None}


def measure_rescore(run_dir: Path, embedder, model_dir: Path) -> dict[str, float]:
    """Wall times of ``rescore_job`` with a different label set on the store the
    e2e run just wrote: what a user pays to try new prompts (issue 5), and
    to rescore again with them (new smoothing, say) once they are cached."""
    from pipeline.config import load_config
    from pipeline.run.rescore import rescore_job

    config = load_config(None, {"model.id": str(model_dir), "output.formats": ["csv", "json"],
                                "labels": [{"name": n} for n in RESCORE_LABELS]})
    times = {}
    for kind in ("new_prompts", "cached_prompts"):  # the second finds the first's prompts stored
        start = time.perf_counter()
        rescore_job(config, run_dir / "store", run_dir / kind, embedder=embedder)
        times[kind] = time.perf_counter() - start
    return times


def rss_child(clip: str, model_dir: str, device: str, precision: str, use_store: bool) -> None:
    """Subprocess body: run the full pipeline on ``clip``, print peak RSS as JSON."""
    from pipeline.embed import load_embedder
    from pipeline.run.job import run_job

    embedder = load_embedder(model_dir, device=device, precision=precision)
    loaded = _proc_status_mb("VmHWM")
    with tempfile.TemporaryDirectory() as out:
        report = run_job([clip], bench_config(Path(model_dir)), Path(out),
                         run_options(use_store), embedder=embedder)
    # VmHWM, not ru_maxrss: after fork+exec, ru_maxrss still counts the
    # parent's resident pages at fork time (the bench holds a ViT-B/32 then).
    peak = _proc_status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The peak may be set by the model load alone; the resident size at the
    # end shows whatever the run itself kept.
    print(json.dumps({"peak_mb": peak, "after_load_mb": loaded, "end_rss_mb": _proc_status_mb("VmRSS"),
                      "frames": len(report.results[0].frame_indices),
                      "status": report.results[0].status}))


def _proc_status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in MB; None off Linux."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def measure_rss(clip: Path, model_dir: Path, device: str, precision: str, use_store: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(clip),
           "--model", str(model_dir), "--device", device, "--precision", precision]
    cmd += [] if use_store else ["--no-store"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def precision_study(model_dir: Path, images: np.ndarray, device: str, batch: int,
                    compile_model: bool, export_cache: Path | None = None,
                    runtimes: tuple | None = None, rounds: int = 1) -> dict:
    """Model-only img/s and cosine to fp32 for each precision this device offers
    (``bf16`` is the whole model in bf16, as the loader does it), and on the CPU
    each installed exported runtime (exports cached under ``export_cache``): the
    ``runtimes`` rows (default :data:`RUNTIME_ROWS`)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.ao.quantization
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")

    from pipeline.embed import load_embedder

    rows: dict[str, dict] = {}
    reference = None
    checks = None
    names = (["fp32", "bf16", "bf16-autocast", "int8-dynamic"] if device == "cpu"
             else ["fp32", "fp16", "bf16"])
    for name in names:
        precision = name if name in ("fp32", "fp16", "bf16") else "fp32"
        # torch's own precisions (auto would run an exported runtime on a CPU: those are the rows below)
        embedder = load_embedder(str(model_dir), device=device, precision=precision, batch_size=batch,
                                 runtime="torch")
        if name == "int8-dynamic":
            from pipeline.embed.runtime import TorchRuntime

            embedder.model = torch.ao.quantization.quantize_dynamic(
                embedder.model, {torch.nn.Linear}, dtype=torch.qint8)
            embedder.runtime = TorchRuntime(embedder.model)  # the runtime runs the towers, not .model
        elif name == "bf16-autocast":  # fp32 weights under torch.autocast (the previous CPU bf16 path)
            embedder.precision = "bf16"
        rows[name] = _study_row(embedder, images, reference)
        if checks is None and device == "cpu":  # the fp32 row: the reference of every agreement
            checks = check_references(embedder, check_sets(embedder.input_size))
        rows[name].update(agreement_row(embedder, checks))
        if reference is None:
            reference = rows[name].pop("vectors")
        else:
            rows[name].pop("vectors")
        del embedder
        gc.collect()
    if compile_model:
        chosen = "bf16" if device == "cpu" else "fp16"
        start = time.perf_counter()
        embedder = load_embedder(str(model_dir), device=device, precision=chosen, batch_size=batch,
                                 compile_model=True)
        embedder.embed_images(images[:batch])  # compile happens here
        warm = time.perf_counter() - start
        row = _study_row(embedder, images, reference)
        row.pop("vectors")
        rows[f"{chosen}+compile"] = {**row, "compile_s": round(warm, 1)}
    runtimes = RUNTIME_ROWS if runtimes is None else runtimes
    if device == "cpu" and runtimes:
        rows.update(runtime_rows(model_dir, images, batch, reference, export_cache, checks, runtimes, rounds))
    return rows


# torch rows again, each in its own process like the others: the ratios use these
WEIGHTS = {"bench_model": "ViT-B/32 shape, random weights (transformers.CLIPConfig() defaults)",
           "demo_model": "models/scenetag-demo-clip, a small CLIP trained on the demo scenes",
           "note": "real CLIP weights have activation outliers that random weights lack: int8 "
                   "agreement measured here does not carry over; precision auto measures each model"}
RUNTIME_ROWS = (("torch", "fp32"), ("torch", "bf16"),
                ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "auto"),
                ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "auto"))


def runtime_rows(model_dir: Path, images: np.ndarray, batch: int, reference,
                 export_cache: Path | None, checks: dict | None = None,
                 selected: tuple = RUNTIME_ROWS, rounds: int = 1) -> dict:
    """``<runtime>-<precision>`` rows for each installed CPU runtime, each measured in a
    fresh process (:func:`row_child`): thread pools and compiled graphs of earlier rows
    cannot slow later ones, and a row sees what a user's run sees. Each row is the best
    of three passes; ``rounds`` > 1 runs all rows that many times, interleaved,
    and keeps each row's best pass (a shared machine's load comes in bursts). ``load_s`` includes a
    first export (``exported``: whether this load exported or reused the cache); ``auto``
    rows name the precision chosen and the measurements it was chosen on."""
    import importlib.util

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        arrays = {"images": images, "reference": reference}
        for name, (check, vectors) in (checks or {}).items():
            arrays[f"check_{name}"], arrays[f"ref_{name}"] = check, vectors
        np.savez(inputs, **arrays)
        for runtime, precision in [row for _ in range(max(1, rounds)) for row in RUNTIME_ROWS]:
            if importlib.util.find_spec(runtime) is None or (runtime, precision) not in selected:
                continue
            cmd = [sys.executable, str(Path(__file__).resolve()), "--row-child", f"{runtime}:{precision}",
                   "--model", str(model_dir), "--row-inputs", str(inputs), "--batch-size", str(batch)]
            env = {**os.environ, **({"XDG_CACHE_HOME": str(export_cache)} if export_cache else {})}
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if out.returncode != 0:
                lines = (out.stderr or out.stdout).strip().splitlines() or ["no output"]
                rows[f"{runtime}-{precision}"] = {"error": lines[-1]}
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            best = rows.get(f"{runtime}-{precision}")  # rounds: the best round's row, every pass kept
            if best and "img_s" in best:
                row["img_s_passes"] = best["img_s_passes"] + row["img_s_passes"]
                row.update(img_s=max(row["img_s_passes"]), load_s=best["load_s"], exported=best["exported"])
            rows[f"{runtime}-{precision}"] = row
    return rows


def row_child(spec: str, model_dir: str, inputs: str, batch: int) -> None:
    """Subprocess body of one runtime row: load, time, compare; print the row as JSON."""
    from pipeline.embed import load_embedder
    from pipeline.embed.runtime import cache_root

    runtime, precision = spec.split(":")
    data = np.load(inputs)
    checks = {k.removeprefix("check_"): (data[k], data["ref_" + k.removeprefix("check_")])
              for k in data.files if k.startswith("check_")}
    before = _cache_entries(cache_root())
    start = time.perf_counter()
    embedder = load_embedder(model_dir, device="cpu", precision=precision, batch_size=batch, runtime=runtime)
    load_s = time.perf_counter() - start
    exported = _cache_entries(cache_root()) != before
    decision = _decision(embedder, runtime) if precision == "auto" else None
    row = _study_row(embedder, data["images"], data["reference"])
    row.pop("vectors")
    # best of three passes: on a shared machine the slow passes measure the neighbours
    passes = [row["img_s"]] + [round(measure_model(embedder.embed_images, data["images"])["fps"], 2)
                               for _ in range(2)]
    row.update(img_s=max(passes), img_s_passes=passes)
    row.update(agreement_row(embedder, checks))
    print(json.dumps({**row, "precision": embedder.precision, "load_s": round(load_s, 1),
                      "exported": exported, **({"decision": decision["measured"]} if decision else {})}))


def _cache_entries(root: Path) -> set:
    return set((root / "exports").glob("*")) | set((root / "exports" / "decisions").glob("*"))


def _decision(embedder, runtime: str) -> dict | None:
    from pipeline.embed import choose

    path = choose._decision_path(embedder, runtime)
    return json.loads(path.read_text()) if path.exists() else None


def check_sets(size: int) -> dict[str, np.ndarray]:
    """The sets agreement is measured on: the sample photos (and their mirrors), and
    frames of the demo clips (sample_videos/demo_*.mp4, where built), at ``size``."""
    from pipeline.embed import choose

    sets = {"photos": choose.check_images(choose.sample_photos(), size)}
    frames = [sample_frames(clip, size, 8) for clip in sorted((ROOT / "sample_videos").glob("demo_*.mp4"))]
    if frames and len({f.shape[1:] for f in frames}) == 1:
        sets["demo_frames"] = np.concatenate(frames)
    return sets


def check_references(embedder, sets: dict[str, np.ndarray]) -> dict:
    """``sets`` with the reference (torch fp32) embedder's vectors for them."""
    return {name: (images, embedder.embed_images(images)) for name, images in sets.items()}


def agreement_row(embedder, checks: dict | None) -> dict:
    """Min cosine to the torch fp32 vectors of each check set."""
    out = {}
    for name, (images, reference) in (checks or {}).items():
        out[f"min_cosine_{name}"] = round(float(np.min(np.sum(embedder.embed_images(images) * reference,
                                                                  axis=1))), 6)
    return out


def demo_agreement(export_cache: Path | None, selected: tuple = RUNTIME_ROWS) -> dict:
    """Agreement with torch fp32 of each runtime x precision on the trained demo model
    (models/scenetag-demo-clip): what real weights say, where the bench model's are random."""
    import importlib.util

    from pipeline.embed import load_embedder

    model = ROOT / "models" / "scenetag-demo-clip"
    if not (model / "model.safetensors").exists() or not selected:
        return {}
    reference = load_embedder(str(model), device="cpu", precision="fp32", runtime="torch")
    checks = check_references(reference, check_sets(reference.input_size))
    rows = {"model": model.name, "sets": {k: len(v[0]) for k, v in checks.items()}}
    for runtime, precision in selected:
        if runtime != "torch" and importlib.util.find_spec(runtime) is None:
            continue
        with _env("XDG_CACHE_HOME", str(export_cache) if export_cache else None):
            try:
                embedder = load_embedder(str(model), device="cpu", precision=precision, runtime=runtime)
            except Exception as ex:  # noqa: BLE001 - reported, as in runtime_rows
                rows[f"{runtime}-{precision}"] = {"error": str(ex).splitlines()[0]}
                continue
        rows[f"{runtime}-{precision}"] = {"precision": embedder.precision, **agreement_row(embedder, checks)}
    return rows


def decode_study(clip: Path, camera_clip: Path) -> dict:
    """``skip_loop_filter`` (none / noref / all) on the fast strategy (the bench clip) and the
    keyframes strategy (the camera-style clip): decode CPU per frame (best of two) and the
    min cosine of the demo model's fp32 embeddings of the frames to the filtered decode's."""
    from pipeline.decode import pyav
    from pipeline.embed import load_embedder

    model = ROOT / "models" / "scenetag-demo-clip"
    if not (model / "model.safetensors").exists():
        model = build_model(CACHE / "tiny-clip", tiny=True)
    embedder = load_embedder(str(model), device="cpu", precision="fp32", runtime="torch")
    saved = dict(pyav.LOOP_FILTER_SKIP)
    rows: dict[str, dict] = {"model": model.name}
    try:
        for path, strategy in ((clip, "fast"), (camera_clip, "keyframes")):
            base = None
            for skip in ("none", "noref", "all"):
                pyav.LOOP_FILTER_SKIP.clear()
                if skip != "none":
                    pyav.LOOP_FILTER_SKIP[strategy] = skip
                runs = [_decode_all(path, embedder.input_size, strategy) for _ in range(2)]
                frames, indices = runs[0][0], runs[0][1]
                cpu = min(r[2] for r in runs) / max(len(frames), 1)
                vectors = embedder.embed_images(frames)
                base = base or (vectors, indices, cpu)
                same = indices == base[1]
                rows[f"{strategy}-{skip}"] = {
                    "clip": path.name, "frames": len(frames), "decode_cpu_ms_per_frame": round(cpu * 1e3, 2),
                    "cpu_vs_filtered": round(cpu / base[2], 3),
                    "min_cosine_vs_filtered": round(float(np.min(np.sum(vectors * base[0], axis=1))), 6)
                    if same else None}
    finally:
        pyav.LOOP_FILTER_SKIP.clear()
        pyav.LOOP_FILTER_SKIP.update(saved)
    return rows


def _decode_all(clip: Path, short_side: int, strategy: str) -> tuple[np.ndarray, list[int], float]:
    from pipeline.config import DecoderConfig
    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    cpu0 = cpu_seconds()
    with open_decoder(str(clip), short_side=short_side, strategy=strategy,
                      threads=DecoderConfig().threads) as decoder:
        frames = list(decoder.frames(Sampling(every_seconds=SAMPLE_EVERY / FPS)))
    cpu = cpu_seconds() - cpu0
    return np.stack([f.image for f in frames]), [f.index for f in frames], cpu


@contextlib.contextmanager
def _env(name: str, value: str | None):
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _study_row(embedder, images: np.ndarray, reference) -> dict:
    run = measure_model(embedder.embed_images, images)
    cosine = None if reference is None else float(np.min(np.sum(run["vectors"] * reference, axis=1)))
    return {"img_s": round(run["fps"], 2), "min_cosine_vs_fp32": cosine, "vectors": run["vectors"]}


def gpu_large_batch(model_dir: Path, images: np.ndarray, device: str, batch: int = 1024) -> dict:
    from pipeline.embed import load_embedder

    embedder = load_embedder(str(model_dir), device=device, precision="fp16", batch_size=batch)
    big = np.concatenate([images] * max(1, -(-batch * 2 // len(images))))[: batch * 2]
    embedder.embed_images(big[:batch])  # a full batch first: cuBLAS picks kernels per shape
    run = measure_model(embedder.embed_images, big, repeats=3)
    return {"batch": batch, "precision": "fp16", "img_s": round(run["fps"], 1)}


def cpu_bound_fps(decode: dict, model: dict) -> float:
    """Frames per second the cores could give if decode and model only ever competed for CPU
    time: cores / (decode CPU + model CPU per frame)."""
    return cores() / (decode["cpu_s_per_frame"] + model["cpu_s_per_image"])


def measure_exported_e2e(clip: Path, model_dir: Path, decode: dict, export_cache: Path,
                         runtimes: tuple = ("openvino", "onnxruntime")) -> dict:
    """End to end with each of ``runtimes`` (torch, or an installed exported one) at
    ``precision: auto`` (no store: the rows compare the model's share), with its
    model CPU and CPU-time bound."""
    import importlib.util

    from pipeline.embed import load_embedder

    rows = {}
    for runtime in runtimes:
        if runtime != "torch" and importlib.util.find_spec(runtime) is None:
            continue
        with _env("XDG_CACHE_HOME", str(export_cache)):
            embedder = load_embedder(str(model_dir), device="cpu", runtime=runtime)
        images = sample_frames(clip, embedder.input_size, max(embedder.batch_size * 2, 16))
        model = measure_model(embedder.embed_images, images)
        run = measure_e2e(clip, embedder, model_dir, use_store=False)
        bound = cpu_bound_fps(decode, model)
        rows[f"{runtime}-auto"] = {"precision": embedder.precision, "fps": round(run["fps"], 2),
                                   "model_fps": round(model["fps"], 2), "cpu_bound_fps": round(bound, 2),
                                   "vs_cpu_bound": round(run["fps"] / bound, 3),
                                   "model_busy_s": round(run["model_busy_s"], 2),
                                   "wall_s": round(run["wall_s"], 2)}
        del embedder
        gc.collect()
    return rows


def runtime_ratios(study: dict) -> dict:
    """The issue's model-only ratios, from one run's rows: ``auto`` (OpenVINO's
    measured choice) over torch bf16, and without bf16 (OpenVINO fp32 or int8
    where int8 agrees on the photos) over torch fp32."""
    def img_s(name: str) -> float | None:
        row = study.get(name)
        return row.get("img_s") if isinstance(row, dict) else None

    out = {}
    bf16 = img_s("torch-bf16") or img_s("bf16")  # the isolated row where there is one
    fp32 = img_s("torch-fp32") or img_s("fp32")
    for runtime in ("openvino", "onnxruntime"):
        if img_s(f"{runtime}-auto") and bf16:
            out[f"{runtime}_auto_vs_torch_bf16"] = round(img_s(f"{runtime}-auto") / bf16, 2)
    int8 = study.get("openvino-int8", {})
    agrees = all(v >= 0.999 for k, v in int8.items() if k.startswith("min_cosine") and v is not None)
    no_bf16 = [img_s("openvino-fp32")] + ([img_s("openvino-int8")] if int8 and agrees else [])
    if all(no_bf16) and fp32:
        out["openvino_without_bf16_vs_torch_fp32"] = round(max(no_bf16) / fp32, 2)
    return out


def run_runtime_bench(args: argparse.Namespace) -> dict:
    """``--runtimes-only``: the CPU runtime x precision rows, agreement on the sample
    photos and demo frames (bench and demo models), and with ``--decode-study`` the
    loop-filter rows; a short re-run of just these on an idle machine."""
    cache = Path(args.cache)
    args.load_at_start = os.getloadavg()[0]
    clip_s = args.clip_seconds or (20 if args.quick else 60)
    clip = make_clip(cache / f"clip_{args.width}x{args.height}_{clip_s}s.mp4", clip_s, args.width,
                     args.height)
    model_dir = build_model(cache / ("tiny-clip" if args.tiny_model else "clip-vit-b32-random"),
                            tiny=args.tiny_model)
    size = 32 if args.tiny_model else 224
    images = sample_frames(clip, size, 64 if not args.tiny_model else 16)
    study = precision_study(model_dir, images, "cpu", args.study_batch or 32, False,
                            export_cache=cache / "xdg", runtimes=args.runtime_rows, rounds=args.rounds)
    study["demo_agreement"] = demo_agreement(cache / "xdg", args.runtime_rows)
    if args.decode_study:
        camera = make_clip(cache / f"camera_{args.width}x{args.height}_{clip_s}s_gop{FPS}.mp4", clip_s,
                           args.width, args.height, gop=FPS, fixed_gop=True)
        study["decode_loop_filter"] = decode_study(clip, camera)
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "machine": {**machine(), "load_avg_1min_at_start": args.load_at_start},
               "model": model_dir.name, "weights": WEIGHTS, "images": len(images), "precision_study": study,
               **model_fps_keys(study), **runtime_ratios(study)}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not args.silent:
        print_runtime_table(results)
        print(f"wrote {args.out}")
    return results


def print_runtime_table(r: dict) -> None:
    """The runtime x precision table: img/s, its ratio to torch fp32, and agreement."""
    study = r["precision_study"]
    base = (study.get("fp32") or {}).get("img_s")
    print(f"\n  model only, {r['model']} (random weights), batch 32, CPU:")
    print(f"  {'row':<20} {'ran at':<7} {'img/s':>8} {'x fp32':>7} {'cos frames':>11} {'cos photos':>11} "
          f"{'cos demo fr':>11}")
    for name, row in study.items():
        if not isinstance(row, dict) or "img_s" not in row:
            if isinstance(row, dict) and "error" in row:
                print(f"  {name:<20} {row['error']}")
            continue
        ratio = f"{row['img_s'] / base:.2f}" if base else ""
        cells = [row.get(k) for k in ("min_cosine_vs_fp32", "min_cosine_photos", "min_cosine_demo_frames")]
        text = " ".join(f"{c:>11.6f}" if isinstance(c, float) else f"{'-':>11}" for c in cells)
        ran_at = row.get("precision", name.split("-")[-1])
        print(f"  {name:<20} {ran_at:<7} {row['img_s']:>8.1f} {ratio:>7} {text}")
    demo = study.get("demo_agreement") or {}
    if demo:
        print(f"\n  agreement with torch fp32 on the trained demo model ({demo['model']}), min cosine "
              "(real CLIP weights have activation outliers neither model has):")
        for name, row in demo.items():
            if isinstance(row, dict) and "precision" in row:
                cells = " ".join(f"{k.removeprefix('min_cosine_')} {v:.6f}" for k, v in row.items()
                                 if k.startswith("min_cosine"))
                print(f"    {name:<20} ({row['precision']}) {cells}")
    for name, row in (study.get("decode_loop_filter") or {}).items():
        if isinstance(row, dict):
            print(f"  loop filter {name:<16} {json.dumps(row)}")
    for key in ("openvino_auto_vs_torch_bf16", "onnxruntime_auto_vs_torch_bf16",
                "openvino_without_bf16_vs_torch_fp32"):
        if key in r:
            print(f"  {key} {r[key]:.2f}x")
    print()


# --------------------------------------------------------------------------- driver


ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8",
             "asimd", "sve")


def machine() -> dict:
    """What a result was measured on: CPU model, the instruction-set flags that
    decide runtime and precision speed (machines of one kind differ), cores."""
    import torch

    cpu, flags = platform.processor(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == platform.processor():
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and not flags:
                flags = set(line.split(":", 1)[1].split())
    info = {"cpu": cpu, "isa": [f for f in ISA_FLAGS if f in flags], "cores": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_avg_1min_at_end": os.getloadavg()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_bench(args: argparse.Namespace) -> dict:
    """Build inputs, measure every row, print the table and write the JSON."""
    from pipeline.embed import load_embedder

    args.load_at_start = os.getloadavg()[0]  # other jobs on the box skew every row
    cache = Path(args.cache)
    quick = args.quick
    width, height = (args.width, args.height)
    clip_s = args.clip_seconds or (20 if quick else 60)
    clip = make_clip(cache / f"clip_{width}x{height}_{clip_s}s.mp4", clip_s, width, height)
    model_dir = build_model(cache / ("tiny-clip" if args.tiny_model else "clip-vit-b32-random"),
                            tiny=args.tiny_model)
    say = print if not args.silent else (lambda *a, **k: None)
    say(f"clip {clip.name}, model {model_dir.name}")

    naive = measure_naive(clip, model_dir, min(args.naive_seconds, clip_s))
    say(f"naive   {naive['fps']:.2f} frames/s")
    embedder = load_embedder(str(model_dir), device=args.device, precision=args.precision,
                             batch_size=args.batch_size, runtime=args.runtime)
    decode = measure_decode(clip, embedder.input_size)
    say(f"decode  {decode['fps']:.2f} frames/s ({decode['strategy']})")
    images = sample_frames(clip, embedder.input_size, max(embedder.batch_size * 2, 16))
    model = measure_model(embedder.embed_images, images)
    say(f"model   {model['fps']:.2f} img/s ({embedder.precision}, batch {embedder.batch_size})")
    e2e = measure_e2e(clip, embedder, model_dir, use_store=not args.no_store)
    e2e["runtime"], e2e["precision"] = embedder.runtime.name, embedder.precision
    e2e["cpu_bound_fps"] = cpu_bound_fps(decode, model)
    say(f"e2e     {e2e['fps']:.2f} frames/s ({e2e['runtime']} {e2e['precision']}; "
        f"CPU-time bound {e2e['cpu_bound_fps']:.2f})")
    # The same content as a camera writes it: a keyframe every second, which
    # sampling at 1 fps can decode alone (strategy auto -> keyframes).
    camera_clip = make_clip(cache / f"camera_{width}x{height}_{clip_s}s_gop{FPS}.mp4", clip_s, width,
                            height, gop=FPS, fixed_gop=True)
    camera = {"decode": measure_decode(camera_clip, embedder.input_size),
              "e2e": measure_e2e(camera_clip, embedder, model_dir, use_store=False),
              "e2e_fast": measure_e2e(camera_clip, embedder, model_dir, use_store=False, strategy="fast")}
    say(f"camera  decode {camera['decode']['fps']:.2f}, e2e {camera['e2e']['fps']:.2f} frames/s")
    del embedder
    gc.collect()
    exported_e2e = {}
    if _device_of(args.device) == "cpu" and not args.skip_study:
        # the other runtimes of the study's rows, torch among them when auto ran an export
        runtimes = tuple(dict.fromkeys(r for r, _ in args.runtime_rows if r != e2e["runtime"]))
        exported_e2e = measure_exported_e2e(clip, model_dir, decode, cache / "xdg", runtimes)
        for name, row in exported_e2e.items():
            say(f"e2e {name}  {row['fps']:.2f} frames/s (CPU-time bound {row['cpu_bound_fps']:.2f})")

    lowres = {}
    rss_model = model_dir if args.rss_model == "bench" else build_model(cache / "tiny-clip", tiny=True)
    if not args.skip_rss:
        for key, minutes in (("1min", args.rss_minutes[0]), ("40min", args.rss_minutes[1])):
            low = make_clip(cache / f"low_160x90_{minutes:g}min.mp4", minutes * 60, 160, 90,
                            preset="ultrafast")
            lowres[key] = measure_rss(low, rss_model, args.device, args.precision,
                                       not args.no_store)
            lowres[key]["minutes"] = minutes
            say(f"rss {key} ({minutes:g} min) {lowres[key]['peak_mb']:.0f} MB")

    study = {}
    if not args.skip_study:
        study = precision_study(model_dir, images, _device_of(args.device), args.study_batch or 32,
                                args.compile, export_cache=cache / "xdg", runtimes=args.runtime_rows,
                                rounds=args.rounds)
        if _device_of(args.device).startswith("cuda"):
            study["large_batch"] = gpu_large_batch(model_dir, images, _device_of(args.device))
    if study and _device_of(args.device) == "cpu":
        study["demo_agreement"] = demo_agreement(cache / "xdg", args.runtime_rows)
    if args.decode_study:
        study["decode_loop_filter"] = decode_study(clip, camera_clip)
    results = assemble(args, naive, decode, model, e2e, lowres, study, clip, model_dir, camera)
    results["e2e_exported"] = exported_e2e
    results["weights"] = WEIGHTS
    results["cpu_bound_fps"] = round(e2e["cpu_bound_fps"], 2)
    results["e2e_vs_cpu_bound"] = round(e2e["fps"] / e2e["cpu_bound_fps"], 3)
    results["runtime"] = e2e["runtime"]
    results.update(runtime_ratios(study))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not args.silent:
        print_table(results)
        print(f"wrote {args.out}")
    return results


def _device_of(device: str) -> str:
    from pipeline.embed import resolve_device

    return resolve_device(device)


def assemble(args, naive, decode, model, e2e, lowres, study, clip, model_dir, camera) -> dict:
    device = _device_of(args.device)
    slower = min(decode["fps"], model["fps"])
    rss1 = lowres.get("1min", {}).get("peak_mb")
    rss40 = lowres.get("40min", {}).get("peak_mb")
    model.pop("vectors", None)
    rescore = e2e.get("rescore_s") or {}
    ratio = {k: e2e["wall_s"] / v for k, v in rescore.items()}
    rescore_x = ratio.get("new_prompts")
    return {
        "rescore_s": round(rescore["new_prompts"], 4) if rescore else None,
        "rescore_speedup_vs_rerun": None if rescore_x is None else round(rescore_x, 1),
        "rescore_cached_prompts_s": round(rescore["cached_prompts"], 4) if rescore else None,
        "rescore_cached_speedup_vs_rerun": round(ratio["cached_prompts"], 1) if rescore else None,
        "naive_fps": round(naive["fps"], 2),
        "decode_fps": round(decode["fps"], 2),
        "model_fps": round(model["fps"], 2),
        "e2e_fps": round(e2e["fps"], 2),
        "speedup_vs_naive": round(e2e["fps"] / naive["fps"], 2),
        "efficiency": round(e2e["fps"] / slower, 3),
        "rss_1min_mb": None if rss1 is None else round(rss1, 1),
        "rss_40min_mb": None if rss40 is None else round(rss40, 1),
        "device": device,
        "precision": e2e["precision"],
        "runtime": e2e["runtime"],
        "batch_size": args.batch_size,
        "machine": {**machine(), "load_avg_1min_at_start": getattr(args, "load_at_start", None)},
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "sampling": f"every {SAMPLE_EVERY}th frame (every {SAMPLE_EVERY / FPS:g} s at {FPS} fps)",
        "clip": {"file": clip.name, "seconds": args.clip_seconds or (20 if args.quick else 60),
                 "size": f"{args.width}x{args.height}", "fps": FPS, "gop": 250},
        "naive_seconds_of_video": naive["seconds_of_video"],
        "model": model_dir.name,
        "rss_model": args.rss_model,
        "store": not args.no_store,
        "quick": bool(args.quick),
        "camera_decode_fps": round(camera["decode"]["fps"], 2),
        "camera_e2e_fps": round(camera["e2e"]["fps"], 2),
        "details": {"naive": naive, "decode": decode, "model": model, "e2e": e2e, "rss": lowres,
                    "camera": camera},
        "precision_study": study,
        **model_fps_keys(study),
        "targets": targets(e2e["fps"] / naive["fps"], e2e["fps"] / slower, rss1, rss40, rescore_x),
    }


def model_fps_keys(study: dict) -> dict:
    """``model_fps_<runtime>_<precision>`` for the study's plain rows (torch rows are
    named by precision alone; variants such as ``bf16-autocast`` are left out)."""
    keys = {}
    for name, row in study.items():
        runtime, _, precision = name.rpartition("-") if "-" in name else ("torch", "", name)
        if runtime in ("torch", "openvino", "onnxruntime") and isinstance(row, dict) and "img_s" in row \
                and precision in ("fp32", "fp16", "bf16", "int8", "auto"):
            keys[f"model_fps_{runtime}_{precision}"] = row["img_s"]
    return keys


def targets(speedup: float, efficiency: float, rss1, rss40, rescore_x=None) -> dict:
    out = {"speedup_vs_naive>=5": "PASS" if speedup >= TARGETS["speedup_vs_naive"] else "MISS",
           "efficiency>=0.8": "PASS" if efficiency >= TARGETS["efficiency"] else "MISS"}
    if rss1 is not None and rss40 is not None:
        out["rss_40min<=rss_1min+50MB"] = "PASS" if rss40 <= rss1 + TARGETS["rss_growth_mb"] else "MISS"
    if rescore_x is not None:
        out["rescore>=100x_rerun"] = "PASS" if rescore_x >= 100 else "MISS"
    return out


def print_table(r: dict) -> None:
    d = r["details"]
    rows = [
        ("naive loop (PIL+processor, fp32, batch 1)", f"{r['naive_fps']:.2f} frames/s",
         f"first {r['naive_seconds_of_video']:g} s of the clip"),
        ("decode only (ours)", f"{r['decode_fps']:.2f} frames/s",
         f"strategy {d['decode']['strategy']}, {d['decode']['threads']} threads"),
        ("model only (ours)", f"{r['model_fps']:.2f} img/s",
         f"{r['runtime']} {r['precision']}, {r['device']}"),
        ("end to end (run_job)", f"{r['e2e_fps']:.2f} frames/s",
         f"model busy {d['e2e']['model_busy_s']:.1f} of {d['e2e']['wall_s']:.1f} s"),
        ("speedup vs naive", f"{r['speedup_vs_naive']:.2f}x", ""),
        ("efficiency e2e/min(decode, model)", f"{r['efficiency']:.3f}", ""),
        ("decode only, camera-style clip (1 s GOP)", f"{r['camera_decode_fps']:.2f} frames/s",
         f"strategy {d['camera']['decode']['strategy']}"),
        ("end to end, camera-style clip", f"{r['camera_e2e_fps']:.2f} frames/s",
         f"{r['camera_e2e_fps'] / r['naive_fps']:.2f}x naive, "
         f"{r['camera_e2e_fps'] / min(r['camera_decode_fps'], r['model_fps']):.2f} efficiency"),
        ("  same, strategy forced to fast", f"{d['camera']['e2e_fast']['fps']:.2f} frames/s",
         "(what auto picked before the fixed-GOP rule)"),
    ]
    if r.get("rescore_s") is not None:
        rows.append(("rescore from the store (new labels)", f"{r['rescore_s']:.3f} s",
                     f"{r['rescore_speedup_vs_rerun']:.0f}x faster than the full run"))
        rows.append(("rescore again (labels cached)", f"{r['rescore_cached_prompts_s']:.3f} s",
                     f"{r['rescore_cached_speedup_vs_rerun']:.0f}x faster than the full run"))
    if r["rss_1min_mb"] is not None:
        rows += [("peak RSS, 1 min 160x90", f"{r['rss_1min_mb']:.0f} MB", ""),
                 ("peak RSS, 40 min 160x90", f"{r['rss_40min_mb']:.0f} MB",
                  f"({d['rss']['40min']['minutes']:g} min clip)")]
    width = max(len(a) for a, _, _ in rows)
    print()
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")
    print()
    for name, verdict in r["targets"].items():
        print(f"  {verdict}  {name}")
    if r["precision_study"]:
        print("\n  precision study (model only):")
        for name, row in r["precision_study"].items():
            print(f"    {name:<16} {json.dumps(row)}")
        print_runtime_table(r)
    for name, row in (r.get("e2e_exported") or {}).items():
        print(f"  end to end {name}: {json.dumps(row)}")
    if "cpu_bound_fps" in r:
        print(f"  CPU-time bound ({cores()} cores / (decode + model CPU per frame)) {r['cpu_bound_fps']:.2f} "
              f"frames/s; end to end {r['e2e_vs_cpu_bound']:.2f} of it")
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short clips, for a smoke run")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--batch-size", default="auto")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--naive-seconds", type=float, default=None,
                   help="seconds of the clip the naive loop runs over (default 20, quick 5)")
    p.add_argument("--clip-seconds", type=int, default=None)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--rss-minutes", type=float, nargs=2, default=None, metavar=("SHORT", "LONG"))
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--no-store", action="store_true",
                   help="run the pipeline without the embedding store (default: with it, as the CLI)")
    p.add_argument("--rss-model", choices=("bench", "tiny"), default="bench",
                   help="model for the memory rows: the ViT-B/32 (default) or the tiny CLIP "
                        "(when a 40 min run through ViT-B/32 would take too long)")
    p.add_argument("--skip-study", action="store_true")
    p.add_argument("--runtime", default="auto", help="runtime of the main rows (model.runtime)")
    p.add_argument("--runtimes-only", action="store_true",
                   help="only the CPU runtime x precision rows and their agreement (written to "
                        "benchmarks/runtime_results.json unless --out)")
    p.add_argument("--runtime-rows", default="all", metavar="ROWS",
                   help="runtime:precision rows of the study, comma-separated (default all: "
                        + ", ".join(f"{r}:{p}" for r, p in RUNTIME_ROWS) + "; none: no runtime rows)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the runtime rows N times, interleaved, keeping each row's best pass")
    p.add_argument("--decode-study", action="store_true",
                   help="also measure skip_loop_filter on the fast and keyframes strategies")
    p.add_argument("--study-batch", type=int, default=None)
    p.add_argument("--tiny-model", action="store_true", help="tiny random CLIP (smoke tests)")
    p.add_argument("--cache", default=str(CACHE))
    p.add_argument("--out", default=None, help="default benchmarks/results.json "
                                               "(--runtimes-only: benchmarks/runtime_results.json)")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--row-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--row-inputs", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.naive_seconds is None:
        args.naive_seconds = 5.0 if args.quick else 20.0
    if args.rss_minutes is None:
        args.rss_minutes = [1.0, 4.0] if args.quick else [1.0, 40.0]
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)
    args.runtime_rows = RUNTIME_ROWS if args.runtime_rows == "all" else () if args.runtime_rows == "none" \
        else tuple(tuple(row.split(":", 1)) for row in args.runtime_rows.split(","))
    if args.out is None:
        args.out = str(HERE / ("runtime_results.json" if args.runtimes_only else "results.json"))
    return args


def main(argv: list[str] | None = None) -> int:
    from pipeline.embed.cpu_share import sleeping_openmp

    sleeping_openmp()  # as the CLI runs (before torch loads libgomp); children inherit it
    args = parse_args(argv)
    if not (args.row_child or args.rss_child):
        # every row, its subprocesses too, exports into (and reuses) the bench's own cache
        os.environ["XDG_CACHE_HOME"] = str(Path(args.cache) / "xdg")
    if args.row_child:
        row_child(args.row_child, args.model, args.row_inputs, int(args.batch_size))
        return 0
    if args.rss_child:
        rss_child(args.rss_child, args.model, args.device, args.precision, not args.no_store)
        return 0
    if args.runtimes_only:
        run_runtime_bench(args)
        return 0
    run_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
