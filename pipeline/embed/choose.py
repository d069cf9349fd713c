"""``precision: auto`` on an exported runtime: chosen by measurement, once per model.

At the first load of a (model, runtime), each precision the runtime offers on
this CPU is exported (or read from the cache), timed on the sample photos and
compared with the loaded model's own torch fp32 embeddings; the fastest whose
image and text embeddings all agree at cosine >= :data:`AGREEMENT` wins. The
decision and its measurements are cached as JSON beside the exports
(``exports/decisions/``), so later loads read it and export nothing.

The photos are the ones scikit-image and matplotlib ship (coffee, chelsea,
astronaut, rocket, grace_hopper; matplotlib's alone when scikit-image is not
installed) with their mirrors, a few seeded flat synthetic scenes
(:func:`flat_scenes`) and a few seeded drawn ones (:mod:`pipeline.embed.scenes`:
cartoon-like frames, where int8 loses agreement that photos do not show). int8
is calibrated on crops of the photos and on other flat and drawn scenes, not on
a run's own frames: an export is cached per model and reused for every input,
and re-quantising per input would cost a ViT-B/32 about 10 s per run. On
OpenVINO, NNCF's accuracy control then keeps in float the ops that cost the
most agreement until the min cosine to fp32 on other crops, flat and drawn
scenes (:func:`validation_images`) reaches :data:`INT8_TARGET`. Agreement is
checked on the whole photos, which the quantiser saw only in parts, and on
flat and drawn scenes of a seed it never saw.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.embed import runtime as runtime_mod
from pipeline.embed.export import Calibration, export_key
from pipeline.embed.runtime import EXPORTED_PRECISIONS, decision_path, importable
from pipeline.embed.scenes import drawn_scenes

log = logging.getLogger(__name__)

AGREEMENT = 0.999  # min cosine to torch fp32, images and texts
PROMPTS = ["a photo of a cat.", "a cup of coffee", "an astronaut in a white suit",
           "a rocket on the launch pad", "a portrait of a woman in uniform", "a city street at night",
           "a beach", "text on a screen"]
_SKIMAGE = ("coffee", "chelsea", "astronaut", "rocket")
FLAT_SCENES = 6  # synthetic frames among the checked images, see flat_scenes
DRAWN_SCENES = 6  # drawn frames among them (pipeline.embed.scenes)
# Seeds of the drawn scenes: the check's, the accuracy control's, the calibration's (disjoint).
DRAWN_SEEDS = {"check": 101, "validation": 102, "calibration": 103}
DECISION_VERSION = 7  # 3: int8 calibrates on a wider set; 4: OpenVINO int8 is accuracy-controlled;
# 5: timed after a warm-up of the timed shape; 6: drawn scenes in the check, validation and calibration;
# 7: keyed by the CPU's signature and the runtimes' versions (a cache shared by two machines)
TIMED_PASSES = 3
# The min cosine to fp32 OpenVINO int8 must keep on its validation images
# (validation_images) before ops stay int8: above AGREEMENT, since auto then
# judges it on frames it never saw (the check images).
INT8_TARGET = 0.9995


def sample_photos() -> dict[str, np.ndarray]:
    """The sample photos as RGB uint8 arrays, by name."""
    import matplotlib.cbook
    from PIL import Image

    photos: dict[str, np.ndarray] = {}
    try:
        from skimage import data
    except ImportError:
        data = None
    for name in _SKIMAGE if data is not None else ():
        photos[name] = np.asarray(getattr(data, name)())[..., :3]
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
        photos["grace_hopper"] = np.asarray(img.convert("RGB"))
    return photos


def square(image: np.ndarray, size: int, box: tuple[float, float, float] = (0.5, 0.5, 1.0)) -> np.ndarray:
    """A square crop of ``image`` (centre x, centre y as fractions, side as a fraction
    of the short side) resized to ``size`` x ``size``."""
    from PIL import Image

    h, w = image.shape[:2]
    side = max(1, int(min(h, w) * box[2]))
    x0 = int(np.clip(box[0] * w - side / 2, 0, w - side))
    y0 = int(np.clip(box[1] * h - side / 2, 0, h - side))
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side]))
    return np.asarray(crop.resize((size, size), Image.BICUBIC))


def check_images(photos: dict[str, np.ndarray], size: int, synthetic: int = 0, drawn: int = 0) -> np.ndarray:
    """Each whole photo (centre square) and its mirror, then ``synthetic`` flat scenes
    (:func:`flat_scenes`) and ``drawn`` drawn ones (:func:`~pipeline.embed.scenes.drawn_scenes`,
    the check's seed): N x size x size x 3 uint8."""
    squares = [square(p, size) for p in photos.values()]
    return np.stack(squares + [s[:, ::-1] for s in squares] + flat_scenes(size, synthetic)
                    + drawn_scenes(size, drawn, seed=DRAWN_SEEDS["check"]))


def flat_scenes(size: int, count: int, *, seed: int = 1, boxes: int = 1, noise: int = 6) -> list[np.ndarray]:
    """Seeded frames unlike photographs: a flat background, 1 to ``boxes`` flat boxes,
    faint noise (as screen captures, cartoons and the demo clips are). Statically
    quantised activations calibrated on photos alone fell to cosine 0.97 on the demo
    clips' frames while the photos stayed at 0.999, so ``auto`` checks frames like
    these too (seed 1), and int8 calibrates on others like them (another seed)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        frame = np.empty((size, size, 3), np.int16)
        frame[:] = rng.integers(0, 256, 3)
        for _ in range(1 if boxes == 1 else int(rng.integers(1, boxes + 1))):
            x0, y0 = rng.integers(0, size // 2, 2)
            smallest = size // 4 if boxes == 1 else size // 8
            side = int(rng.integers(smallest, size // 2))
            frame[y0:y0 + side, x0:x0 + side] = rng.integers(0, 256, 3)
        frame += rng.integers(-noise, noise + 1, frame.shape, dtype=np.int16)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def calibration(embedder: Any, photos: dict[str, np.ndarray] | None = None,
                per_photo: int = 4, wide_per_photo: int = 8, flat: int = 24, drawn: int = 24,
                target: float | None = None, pixels: bool = True) -> Calibration:
    """int8 calibration pixels, preprocessed as the model is fed: ``per_photo``
    seeded crops of each photo, ``wide_per_photo`` mirrored crops of any size,
    ``flat`` flat scenes of another seed than the agreement check's and ``drawn``
    drawn scenes (their calibration seed); and the
    accuracy control's validation pixels (:func:`validation_images`) and its
    ``target`` (default :data:`INT8_TARGET`). ``pixels=False``: the names alone,
    for a quantiser that reads none (ONNX Runtime's dynamic one) and for cache keys.

    Photo crops alone leave activation ranges too narrow for frames unlike
    photos: on the random ViT-B/32, OpenVINO int8 calibrated on 20 crops agreed
    with fp32 at 0.989 on the bench clip's frames and 0.992 on the demo frames;
    with this set at 0.9993 and 0.9997 (docs/PERFORMANCE.md)."""
    photos = sample_photos() if photos is None else photos
    rng = np.random.default_rng(0)
    size = embedder.input_size
    crops = [square(p, size, (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.9)))
             for p in photos.values() for _ in range(per_photo)]
    crops += [square(p, size, (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.2, 1.0)))[:, ::-1]
              for p in photos.values() for _ in range(wide_per_photo)]
    crops += flat_scenes(size, flat, seed=12345, boxes=3, noise=8)
    crops += drawn_scenes(size, drawn, seed=DRAWN_SEEDS["calibration"])
    checks, checks_name = validation_images(photos, size)
    target = INT8_TARGET if target is None else target
    name = (f"sample-photos:{','.join(photos)}:{per_photo}-crops:{wide_per_photo}-wide:{flat}-flat:seed0:"
            f"{drawn}-drawn:seed{DRAWN_SEEDS['calibration']}")
    if not pixels:
        return Calibration(name, [], target=target, control=_control(target, checks_name))
    return Calibration(name, _pixels(embedder, crops), validation=tuple(_pixels(embedder, checks)),
                       target=target, control=_control(target, checks_name))


def _control(target: float, checks_name: str) -> str:
    """The accuracy control's name in the cache key: method, target, its options, validation set."""
    smooth = "on" if runtime_mod.SMOOTH_QUANT else "off"
    return (f"nncf-accuracy-control:min-cosine>={target}:ranking-{runtime_mod.RANKING_ITEMS}:"
            f"smoothquant-{smooth}:{checks_name}")


def validation_images(photos: dict[str, np.ndarray], size: int, per_photo: int = 2,
                      flat: int = 12, busy: int = 6, drawn: int = 12) -> tuple[list[np.ndarray], str]:
    """What int8's accuracy control validates on, and that set's name: ``per_photo``
    crops of each photo (another seed than calibration's), ``flat`` flat scenes
    drawn as the check's are but of seed 2, ``busy`` with more boxes (seed 3) and
    ``drawn`` drawn scenes (their validation seed).
    Never the check images themselves: ``auto`` judges on frames the quantiser
    neither calibrated nor validated on."""
    rng = np.random.default_rng(7)
    images = [square(p, size, (rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.3, 1.0)))
              for p in photos.values() for _ in range(per_photo)]
    images += flat_scenes(size, flat, seed=2) + flat_scenes(size, busy, seed=3, boxes=3, noise=8)
    images += drawn_scenes(size, drawn, seed=DRAWN_SEEDS["validation"])
    name = (f"validation:{','.join(photos)}:{per_photo}-crops:seed7:{flat}-flat:seed2:{busy}-busy:seed3:"
            f"{drawn}-drawn:seed{DRAWN_SEEDS['validation']}")
    return images, name


def _pixels(embedder: Any, images: list[np.ndarray]) -> list[Any]:
    import torch

    with torch.inference_mode():
        return [embedder.preprocess(torch.from_numpy(np.array(c[None]))) for c in images]  # a writable copy


def candidates(runtime: str) -> list[str]:
    """The precisions ``runtime`` can run here (bf16 needs the CPU's bf16; int8 on
    OpenVINO needs NNCF)."""
    from pipeline.embed.embedder import cpu_has_bf16

    out = list(EXPORTED_PRECISIONS[runtime])
    if "bf16" in out and not cpu_has_bf16():
        out.remove("bf16")  # OpenVINO would run a bf16 hint at fp32: a duplicate of fp32
    if runtime == "openvino" and not importable("nncf"):
        out.remove("int8")
    return out



def choose_precision(embedder: Any, runtime: str, build: Callable[[str], Any]) -> tuple[Any, str, dict]:
    """The runtime for ``precision: auto``: ``build(precision)`` gives the exported
    runtime at a precision; ``embedder`` still runs the torch fp32 model.

    Returns:
        (the chosen runtime, its precision, the decision record).
    """
    path = _decision_path(embedder, runtime)
    decision = _read_decision(path, runtime)
    if decision is not None:
        return build(decision["precision"]), decision["precision"], decision
    decision = measure(embedder, runtime, build)
    atomic_write_text(path, json.dumps(decision, indent=1))
    rows = ", ".join(f"{p} {m['img_s']:.1f} img/s cos {m['min_cosine']:.5f}"
                     for p, m in decision["measured"].items())
    log.info("precision auto for %s on %s: %s (%s; cached in %s)", embedder.model_id, runtime,
             decision["precision"], rows, path)
    return build(decision["precision"]), decision["precision"], decision


def measure(embedder: Any, runtime: str, build: Callable[[str], Any]) -> dict:
    """Speed and agreement with torch fp32 of every candidate precision; the fastest agreeing wins."""
    photos = sample_photos()
    images = check_images(photos, embedder.input_size, synthetic=FLAT_SCENES, drawn=DRAWN_SCENES)
    reference = embedder.embed_images(images), embedder.embed_texts(PROMPTS)
    torch_runtime = embedder.runtime
    measured: dict[str, dict] = {}
    try:
        for precision in candidates(runtime):
            embedder.runtime = build(precision)
            measured[precision] = agreement(embedder, images, reference)
    finally:
        embedder.runtime = torch_runtime
    agreeing = [p for p, m in measured.items() if m["min_cosine"] >= AGREEMENT] or ["fp32"]
    chosen = max(agreeing, key=lambda p: measured[p]["img_s"])
    return {"version": DECISION_VERSION, "model": embedder.model_id, "revision": embedder.revision,
            "runtime": runtime, "precision": chosen, "agreement": AGREEMENT, "photos": list(photos),
            "flat_scenes": FLAT_SCENES, "drawn_scenes": DRAWN_SCENES, "images": len(images),
            "measured": measured,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def agreement(embedder: Any, images: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> dict:
    """img/s (best of :data:`TIMED_PASSES` after a warm-up pass of the same shape) and
    min cosines to ``reference``.

    The warm-up is the timed batch itself (OpenVINO compiles kernels for each new input
    shape on its first run), and three passes, not two: in one bench run two passes after
    a 2-image warm-up timed OpenVINO int8 at 36 img/s where it runs 55-68 on these 16
    images, and ``auto`` picked bf16 at 39."""
    embedder.embed_images(images)
    best = float("inf")
    for _ in range(TIMED_PASSES):
        start = time.perf_counter()
        vectors = embedder.embed_images(images)
        best = min(best, time.perf_counter() - start)
    image_cos = float(np.min(np.sum(vectors * reference[0], axis=1)))
    text_cos = float(np.min(np.sum(embedder.embed_texts(PROMPTS) * reference[1], axis=1)))
    return {"img_s": round(len(images) / best, 2), "min_cosine_images": round(image_cos, 7),
            "min_cosine_texts": round(text_cos, 7), "min_cosine": round(min(image_cos, text_cos), 7)}


def _decision_path(embedder: Any, runtime: str) -> Path:
    from pipeline.embed import cpu

    # A home folder shared by an AVX2 and an AVX-512 machine must not share their decisions.
    machine = json.dumps({"cpu": cpu.signature(), "versions": cpu.versions()}, sort_keys=True)
    key = export_key(runtime, model_id=embedder.model_id, revision=embedder.revision, precision="auto",
                     input_size=(embedder.input_size,), calibration=f"decision-v{DECISION_VERSION}|{machine}")
    return decision_path(key)


def _read_decision(path: Path, runtime: str) -> dict | None:
    """The cached decision, or None (absent; damaged or stale ones are logged and made again)."""
    if not path.exists():
        return None
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
        if decision["version"] != DECISION_VERSION or decision["precision"] not in candidates(runtime):
            raise ValueError(f"precision {decision['precision']!r} is not offered here")
        return decision
    except (OSError, ValueError, KeyError, TypeError) as ex:
        log.warning("cached precision decision %s is unusable (%s): measuring again", path, ex)
        return None


def summary(decision: dict) -> dict:
    """What ``Embedder.auto_choice`` carries of a per-runtime ``precision: auto`` decision,
    in the shape of :func:`pipeline.embed.auto.summary`."""
    from pipeline.embed import cpu

    runtime, chosen = decision["runtime"], decision["precision"]
    rows = {f"{runtime}-{p}": {"status": "measured", "img_s": m["img_s"], "min_cosine": m["min_cosine"],
                               "agrees": m["min_cosine"] >= decision["agreement"]}
            for p, m in decision["measured"].items()}
    row = decision["measured"][chosen]
    return {"chosen": f"{runtime}-{chosen}", "decided": "precision auto on " + runtime,
            "reason": f"the fastest {runtime} precision agreeing with torch fp32 "
                      f"(>= {decision['agreement']}): "
                      f"{chosen} {row['img_s']:g} img/s, min cosine {row['min_cosine']:.5f}",
            "complete": True, "candidates": rows, "cpu": cpu.signature(), "decision": None,
            "measured_at": decision.get("date")}
