"""The bench's inputs and its plain measurements, shared by ``bench.py`` and ``bench_runtimes.py``.

Inputs (built once into ``benchmarks/.cache/``): the H.264 clips and the
ViT-B/32-shaped random-weight CLIP with its word-level tokenizer. Measurements:
the naive loop, the decoder alone, the model alone, a whole ``run_job`` (and
rescore from its store), a run with and without ``--shots``, peak RSS in a
fresh process, and the CPU-time bound; and :func:`write_results`, which
writes a bench's JSON and prints its table.
"""

from __future__ import annotations

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

BENCH = HERE / "bench.py"  # its --rss-child / --row-child run the subprocess rows
CACHE = HERE / ".cache"
FPS = 30
SAMPLE_EVERY = 30  # frames; at 30 fps this is one frame per second
LABELS = ["a city street", "a forest", "a beach", "an office", "a kitchen"]


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
                 strategy: str = "auto", shots: bool = False):
    from pipeline.config import load_config

    overrides = {"model.id": str(model_dir),
                 "labels": [{"name": n} for n in LABELS],
                 "sampling.every_seconds": SAMPLE_EVERY / FPS,
                 "sampling.max_frames": max_frames,
                 "decoder.strategy": strategy,
                 # the naive loop and earlier rows place edges at samples;
                 # refinement's cost has its own bench (refine_bench.py)
                 "segments.refine": False,
                 "output.formats": list(formats)}
    if shots:  # `run --shots`: set only when asked (a checkout before shots has no such key)
        overrides["shots.enabled"] = True
    return load_config(None, overrides)


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


SHOTS_TARGET = 1.5  # issue 30: a --shots run takes at most 1.5x the same run's wall time without
SHOTS_KEY = "shots_run<=1.5x_plain"


def measure_shots(clip: Path, embedder, model_dir: Path, *, rounds: int = 2, use_store: bool = True) -> dict:
    """What ``--shots`` costs: ``run_job`` on ``clip`` without and with
    ``shots.enabled``, in this process with the model preloaded, each run in
    a fresh output folder (and store), in ``rounds`` interleaved pairs (the
    order swapped each round); the ratio of the best walls. A 2-frame run
    first, untimed, pays the one-off imports. The row records the machine
    (CPU flags included) and date: it may be measured alone (``--shots-only``)."""
    from pipeline.run.job import run_job

    load_at_start = os.getloadavg()[0]

    def once(shots: bool, max_frames: int | None = None):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            report = run_job([str(clip)], bench_config(model_dir, max_frames=max_frames, shots=shots),
                             Path(out), run_options(use_store), embedder=embedder)
            wall = time.perf_counter() - start
        result = report.results[0]
        if result.status != "ok" or (shots and result.shots is None):
            raise RuntimeError(f"shots row: the run failed: {result.error or 'no shots'}")
        return wall, result

    once(False, max_frames=2)
    walls: dict[str, list[float]] = {"plain": [], "shots": []}
    found = None
    for r in range(rounds):
        for shots in ((False, True) if r % 2 == 0 else (True, False)):
            wall, result = once(shots)
            walls["shots" if shots else "plain"].append(round(wall, 3))
            found = result if shots else found
    plain, with_shots = min(walls["plain"]), min(walls["shots"])
    ratio = with_shots / plain
    return {"plain_s": plain, "shots_s": with_shots, "ratio": round(ratio, 3), "target": SHOTS_TARGET,
            "grade": "PASS" if ratio <= SHOTS_TARGET else "MISS", "walls_s": walls, "rounds": rounds,
            "shots": len(found.shots), "cues": len(found.cues or []),
            "frames_scored": len(found.frame_indices), "store": use_store, "clip": clip.name,
            "model": model_dir.name, "runtime": embedder.runtime.name, "precision": embedder.precision,
            "machine": {**machine(), "load_avg_1min_at_start": load_at_start},
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def write_results(results: dict, out: str | Path, *, table=None, silent: bool = False) -> Path:
    """Write ``results`` to ``out`` as indented JSON; unless ``silent``, print
    them with ``table`` (a function of the results) and say where they went."""
    out = Path(out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if not silent:
        if table is not None:
            table(results)
        print(f"wrote {out}")
    return out


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
    cmd = [sys.executable, str(BENCH), "--rss-child", str(clip),
           "--model", str(model_dir), "--device", device, "--precision", precision]
    cmd += [] if use_store else ["--no-store"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_bound_fps(decode: dict, model: dict) -> float:
    """Frames per second the cores could give if decode and model only ever competed for CPU
    time: cores / (decode CPU + model CPU per frame)."""
    return cores() / (decode["cpu_s_per_frame"] + model["cpu_s_per_image"])


def machine() -> dict:
    """What a result was measured on: CPU model, the instruction-set flags that
    decide runtime and precision speed (machines of one kind differ), cores, and
    the runtimes' versions: the signature ``runtime: auto`` caches its decision under
    (pipeline.embed.cpu)."""
    import torch

    from pipeline.embed import cpu

    info = {**cpu.signature(), "cores_online": os.cpu_count(), "versions": cpu.versions(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_avg_1min_at_end": os.getloadavg()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
