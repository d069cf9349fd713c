"""The exported runtimes of one loaded torch fp32 model, by runtime and
precision: what a load and ``auto``'s measurements build, each entry made once
(:mod:`pipeline.embed.export`) and its int8 calibration set made once
(:func:`pipeline.embed.choose.calibration`). Apart from export.py so that
the export cache never imports the precision choice that imports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.embed.export import Calibration, damage, entry_key, exported_runtime
from pipeline.embed.runtime import EXPORTED, ExportedRuntime, cache_root


class ExportBuilder:
    """The exported runtimes of one loaded torch fp32 embedder, by runtime and precision.

    The int8 calibration set is made once per builder, and only for the runtime that
    reads its pixels (ONNX Runtime's dynamic quantisation needs only the set's name).
    """

    def __init__(self, embedder: Any) -> None:
        import torch

        spec = embedder.preprocess_spec
        self.embedder = embedder
        self.size = spec.crop_hw or spec.resize_hw
        self.pixels = torch.randn(2, 3, *self.size, generator=torch.Generator().manual_seed(0))
        self.texts = dict(embedder.text_inputs(["a photo of a dog.", "a cat"]))
        self._calibrations: dict[bool, Calibration] = {}

    def calibration(self, runtime: str, *, pixels: bool = True) -> Calibration:
        """The int8 calibration ``runtime`` is quantised with; its pixels (3.5 s for a
        ViT-B/32 under load) only where asked and where that runtime reads them."""
        from pipeline.embed import choose

        pixels = pixels and EXPORTED[runtime].calibrated
        if pixels not in self._calibrations:
            self._calibrations[pixels] = choose.calibration(self.embedder, pixels=pixels)
        return self._calibrations[pixels]

    def folder(self, runtime: str, precision: str) -> Path:
        """The cache entry ``build(runtime, precision)`` reads or writes."""
        e = self.embedder
        calibration = self.calibration(runtime, pixels=False) if precision == "int8" else None
        return cache_root() / "exports" / entry_key(runtime, model_id=e.model_id, revision=e.revision,
                                                    precision=precision, input_size=tuple(self.size),
                                                    calibration=calibration)

    def cached(self, runtime: str, precision: str) -> bool:
        """Whether that entry is on disk and sound (loading it exports nothing)."""
        folder = self.folder(runtime, precision)
        e = self.embedder
        return (folder / "meta.json").exists() and damage(
            folder, {"model": e.model_id, "revision": e.revision, "key": folder.name}) is None

    def build(self, runtime: str, precision: str, *, announce: bool = True) -> ExportedRuntime:
        """``runtime`` at ``precision`` over the embedder's model, from the cache or exported now."""
        e = self.embedder
        int8 = precision == "int8"
        return exported_runtime(runtime, e.model, model_id=e.model_id, revision=e.revision,
                                precision=precision,
                                image_example=self.pixels, text_example=self.texts,
                                calibration=self.calibration(runtime, pixels=False) if int8 else None,
                                full_calibration=(lambda: self.calibration(runtime)) if int8 else None,
                                announce=announce)
