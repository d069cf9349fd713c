"""Exporting the loaded model's towers for a CPU runtime, cached on disk.

An entry is a folder ``exports/<key>/`` holding ``image.*``, ``text.*`` and
``meta.json`` (what was exported: model id, revision, the key it was written
under, each file's size and SHA-256). It is written whole through
:func:`~pipeline.atomic.atomic_dir`, so a reader in another process sees a
complete entry or none. Every load checks the entry against ``meta.json`` and
``meta.json`` against what is asked for: an entry whose files no longer match,
whose ``meta.json`` is not what this code writes, that another model's entry
was copied or linked over (its model, revision or key differ), or that its
runtime cannot load, is exported again with a warning.

An int8 entry starts from the runtime's fp32 entry when that one is cached
(its text tower copied, its image graph quantised): the export is the same
graph, and a ViT-B/32 saves the 7-16 s of a second trace.
:class:`~pipeline.embed.builder.ExportBuilder` makes the entries of one
loaded model by runtime and precision.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.atomic import atomic_dir
from pipeline.embed.runtime import EXPORT_VERSION, EXPORTED, ExportedRuntime, cache_root, features

log = logging.getLogger(__name__)


def exported_runtime(name: str, model: Any, *, model_id: str, revision: str | None, precision: str,
                     image_example: Any, text_example: dict[str, Any],
                     calibration: Calibration | None = None, announce: bool = True,
                     full_calibration: Callable[[], Calibration] | None = None) -> ExportedRuntime:
    """The runtime ``name`` over ``model``'s towers, exported once and cached.

    Args:
        image_example: a pixel tensor N x 3 x H x W of the size the model is fed.
        text_example: the text tower's keyword arguments for a few texts.
        calibration: for int8, the pixel tensors the quantiser calibrates on and
            the name of that set (part of the cache key).
        announce: warn before a first export (``auto`` says what it prepares itself).
        full_calibration: where ``calibration`` holds names only (enough for the key),
            what makes its pixels, called only when the entry must be exported.
    """
    cls = EXPORTED[name]
    cls.require(precision)
    if precision == "int8" and calibration is None:
        raise ValueError("an int8 export needs calibration pixels")
    size = tuple(image_example.shape[-2:])
    key = entry_key(name, model_id=model_id, revision=revision, precision=precision, input_size=size,
                    calibration=calibration)
    folder = cache_root() / "exports" / key
    expect = {"model": model_id, "revision": revision, "key": key}
    if folder.is_symlink() or (folder / "meta.json").exists():
        problem = damage(folder, expect)
        if problem is None:
            try:
                return cls(folder, precision)
            except Exception as ex:  # the runtime's own load error: OpenVINO and ORT raise their own types
                first = str(ex).splitlines()[0] if str(ex) else type(ex).__name__
                problem = f"{name} cannot load it ({first})"
        log.warning("exported model cache entry %s is damaged (%s): exporting it again", folder, problem)
        if folder.is_symlink():  # never written through: the entry it points at is another one's
            folder.unlink()
    source = None
    if precision == "int8":  # the fp32 entry's graph, when cached and sound, spares a second trace
        fp32_key = entry_key(name, model_id=model_id, revision=revision, precision="fp32", input_size=size)
        fp32 = cache_root() / "exports" / fp32_key
        if (fp32 / "meta.json").exists() and damage(fp32, {**expect, "key": fp32_key}) is None:
            source = fp32
    if precision == "int8" and full_calibration is not None:
        calibration = full_calibration()
    export(cls, model, folder, image_example, text_example, model_id=model_id, revision=revision, key=key,
           calibration=calibration if precision == "int8" else None, announce=announce, source=source)
    return cls(folder, precision)


class Calibration(NamedTuple):
    """Pixel tensors (each 1 x 3 x H x W) an int8 quantiser calibrates on, and their set's name;
    for a runtime whose quantiser is accuracy-controlled (OpenVINO), the pixels it
    validates on, the min cosine it must keep there (``target``) and what ``control``
    names (method, target, validation set: part of the cache key)."""

    name: str
    pixels: list[Any]
    validation: tuple[Any, ...] = ()
    target: float | None = None
    control: str | None = None

    def key(self, accuracy_controlled: bool) -> str:
        """What names the int8 graph in the cache key: the set, and the control where it is used."""
        return f"{self.name}|{self.control}" if accuracy_controlled and self.control else self.name


def entry_key(name: str, *, model_id: str, revision: str | None, precision: str, input_size: tuple[int, ...],
              calibration: Calibration | None = None) -> str:
    """The cache folder name of ``name``'s entry at ``precision``: fp32 and bf16 share
    one fp32 graph (OpenVINO's bf16 is a compile-time hint); int8 has its own, named by
    its calibration and its quantisation format (:meth:`ExportedRuntime.int8_format`)."""
    cls = EXPORTED[name]
    if precision != "int8":
        return export_key(name, model_id=model_id, revision=revision, precision="fp32", input_size=input_size)
    if calibration is None:
        raise ValueError("an int8 entry is named by its calibration")
    return export_key(name, model_id=model_id, revision=revision, precision="int8", input_size=input_size,
                      calibration=calibration.key(cls.accuracy_controlled), int8_format=cls.int8_format())


def export_key(name: str, *, model_id: str, revision: str | None, precision: str,
               input_size: tuple[int, ...], calibration: str | None = None, int8_format: str = "") -> str:
    """The cache folder name: a readable runtime prefix and a hash of everything the graph depends on."""
    parts = {"model": model_id, "revision": revision, "runtime": name, "precision": precision,
             "input_size": list(input_size), "export_version": EXPORT_VERSION}
    if calibration is not None:
        parts["calibration"] = calibration
    if int8_format:
        parts["int8_format"] = int8_format
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"{name}-{digest}"


def export(cls: type[ExportedRuntime], model: Any, folder: Path, image_example: Any,
           text_example: dict[str, Any], *, model_id: str, revision: str | None = None,
           key: str | None = None,
           calibration: Calibration | None = None, announce: bool = True, source: Path | None = None) -> None:
    """Export both towers of ``model`` into cache entry ``folder`` (atomically);
    with ``calibration``, the image tower is then quantised to int8, from the fp32
    entry ``source`` where given (its files are copied, not traced again)."""
    import torch

    started = time.perf_counter()
    if announce:
        # Said before, not only after: a ViT-B/32's int8 export takes minutes on two cores.
        slow = (" (accuracy-controlled quantisation: minutes for a ViT-B/32)"
                if cls.accuracy_controlled else "")
        log.warning("first use of %s on %s%s: exporting it once%s, cached in %s (--runtime torch skips this)",
                    model_id, cls.name, "" if calibration is None else " int8", slow if calibration else "",
                    folder.parent)
    text_names = list(text_example)
    if text_names not in (["input_ids"], ["input_ids", "attention_mask"]):
        raise ValueError(f"unexpected text inputs {text_names}")  # the text wrapper takes these two only
    image_tower, text_tower = _tower_classes()
    with atomic_dir(folder) as tmp, torch.no_grad(), warnings.catch_warnings():
        if source is not None:
            for path in source.iterdir():
                if path.is_file() and path.name != "meta.json":
                    shutil.copyfile(path, tmp / path.name)
        else:
            # Tracing warns of every Python-side shape check it freezes; the
            # parity tests prove the graph right at every batch size and text length.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # the exporters' own deprecations, not the user's
            cls.export_tower(image_tower(model).eval(), (image_example,), ["pixel_values"], (0,),
                             tmp / f"image{cls.suffix}")
            cls.export_tower(text_tower(model).eval(), tuple(text_example[n] for n in text_names),
                             text_names, (0, 1), tmp / f"text{cls.suffix}")
        int8 = None if calibration is None else _quantize_image_tower(cls, tmp, calibration)
        meta = {"model": model_id, "revision": revision, "key": key or folder.name, "runtime": cls.name,
                "export_version": EXPORT_VERSION, "precision": "fp32" if calibration is None else "int8",
                "calibration": None if calibration is None else calibration.key(cls.accuracy_controlled),
                "int8_format": None if calibration is None else cls.int8_format(),
                "int8": int8, "from": None if source is None else source.name,
                "inputs": {"image": ["pixel_values"], "text": text_names},
                "files": {p.name: _fingerprint(p) for p in sorted(tmp.iterdir()) if p.is_file()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    log.info("exported %s for %s%s in %.1f s (cached in %s)", model_id, cls.name, _int8_note(int8),
             time.perf_counter() - started, folder)


def entry_bytes(folder: Path) -> int:
    """What an entry holds on disk, in bytes (0 when absent)."""
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except OSError:
        return 0


def _int8_note(int8: dict | None) -> str:
    if int8 is None:
        return ""
    if "float_ops" not in int8:
        return " (image tower int8)"
    kept = f", {len(int8['float_ops'])} of {int8['int8_ops'] + len(int8['float_ops'])} MatMuls kept float"
    reached = int8.get("validation_min_cosine")
    reached = "" if reached is None else f", validation min cosine {reached}"
    return f" (image tower int8{kept}{reached})"


def _quantize_image_tower(cls: type[ExportedRuntime], folder: Path, calibration: Calibration) -> dict:
    """Replace ``folder``'s fp32 image graph by its int8 version; what the quantiser did."""
    # Written beside the fp32 files, which are then removed and the int8 ones take their
    # names: an ONNX graph names its external-data file, an OpenVINO .xml its .bin by stem.
    samples = [[p.detach().cpu().numpy()] for p in calibration.pixels]
    controlled = cls.accuracy_controlled and calibration.target is not None and bool(calibration.validation)
    checks = [[p.detach().cpu().numpy()] for p in calibration.validation] if controlled else None
    report = cls.quantize_tower(folder / f"image{cls.suffix}", folder / f"int8{cls.suffix}", samples,
                                validation=checks, target=calibration.target if controlled else None)
    for path in list(folder.glob("image*")):  # image.onnx(.data), image.xml + image.bin
        path.unlink()
    for path in list(folder.glob("int8*")):
        path.rename(folder / path.name.replace("int8", "image", 1))
    return report


def damage(folder: Path, expect: dict[str, Any] | None = None) -> str | None:
    """Why a cache entry cannot be trusted, or None when its ``meta.json`` has the shape
    this code writes, names what ``expect`` asks for (model, revision, key: an entry
    copied or linked from another model's folder names that model) and every file
    matches its record."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as ex:
        return f"unreadable meta.json: {ex}"
    files = meta.get("files") if isinstance(meta, dict) else None
    inputs = meta.get("inputs") if isinstance(meta, dict) else None
    records = list(files.values()) if isinstance(files, dict) else []
    shaped = bool(records) and all(isinstance(w, dict) and isinstance(w.get("size"), int)
                                   and isinstance(w.get("sha256"), str) for w in records) \
        and isinstance(inputs, dict) and all(isinstance(inputs.get(t), list) for t in ("image", "text"))
    if not shaped:
        return "meta.json is not an export record"
    for field, want in (expect or {}).items():
        if meta.get(field) != want:
            return f"it was written for {field} {meta.get(field)!r}, not {want!r}"
    for name, want in files.items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["size"] or _fingerprint(path)["sha256"] != want["sha256"]:
            return f"{name} does not match its recorded size and checksum"
    return None


def _fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


@functools.cache
def _tower_classes() -> tuple[type, type]:
    """The two wrapper modules, defined on first use (importing this module imports no torch)."""
    import torch

    class ImageTower(torch.nn.Module):
        """pixel_values → projected image features (the tensor, not transformers' output object)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return features(self.model.get_image_features(pixel_values=pixel_values))

    class TextTower(torch.nn.Module):
        """input_ids (and attention_mask when the family feeds one) → projected text features."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            kwargs = {"input_ids": input_ids}
            if attention_mask is not None:
                kwargs["attention_mask"] = attention_mask
            return features(self.model.get_text_features(**kwargs))

    return ImageTower, TextTower
