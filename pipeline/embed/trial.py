"""Trying ``auto``'s candidates on this machine: prepare one, check its agreement, time it.

:class:`Trial` is the measuring half of :mod:`pipeline.embed.auto` (which decides
what to try, within what budget, and what wins): it holds the loaded torch fp32
embedder, the check images (:func:`pipeline.embed.choose.check_images`: the sample
photos, their mirrors, flat and drawn scenes) and their torch fp32 embeddings, and
switches the embedder between candidates. A candidate is a :class:`Ready`: the
torch model the embedder holds with it, what runs the towers, the precision.

Every candidate is run through the same :class:`~pipeline.embed.embedder.Embedder`
(preprocessing, batching, normalisation included), so an img/s here is what a
run's model stage gets.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from pipeline.embed import choose
from pipeline.embed.runtime import OpenVinoRuntime, TorchRuntime

# Calibration samples of the quick uncontrolled int8 probe: its speed, not its
# agreement, is what it measures, and NNCF's statistics pass grows with the samples.
PROBE_SAMPLES = 8


class Ready(NamedTuple):
    """A prepared candidate: the torch model the embedder holds with it (the fp32 one
    for exported runtimes: exports and preprocessing read it), its runtime, its precision."""

    model: Any
    runtime: Any
    precision: str


class Trial:
    """The candidates of one loaded torch fp32 embedder, tried on the check images.

    Args:
        embedder: loaded at fp32 on torch; left so after every call but :meth:`apply`.
        builder: its :class:`~pipeline.embed.builder.ExportBuilder`, or None where no
            export can serve (a variable patch count).
    """

    def __init__(self, embedder: Any, builder: Any = None) -> None:
        self.embedder = embedder
        self.builder = builder
        self.fp32 = Ready(embedder.model, embedder.runtime, embedder.precision)
        photos = choose.sample_photos()
        self.photos = list(photos)
        self.images = choose.check_images(photos, embedder.input_size, synthetic=choose.FLAT_SCENES,
                                          drawn=choose.DRAWN_SCENES)
        self.params_m = sum(p.numel() for p in embedder.model.parameters()) / 1e6
        self.reference_vectors: tuple[np.ndarray, np.ndarray] | None = None

    def reference(self) -> float:
        """Embed the check images and prompts with torch fp32 (what every candidate must
        agree with); the seconds the image pass took."""
        started = time.perf_counter()
        images = self.embedder.embed_images(self.images)
        seconds = time.perf_counter() - started
        self.reference_vectors = images, self.embedder.embed_texts(choose.PROMPTS)
        return seconds

    def cached(self, runtime: str, precision: str) -> bool:
        """Whether preparing ``runtime``/``precision`` needs no export (torch never does)."""
        return runtime == "torch" or (self.builder is not None and self.builder.cached(runtime, precision))

    def entry_bytes(self, runtime: str, precision: str) -> int:
        """What the export cache holds for ``runtime``/``precision``, in bytes."""
        from pipeline.embed.export import entry_bytes

        return entry_bytes(self.builder.folder(runtime, precision)) if runtime != "torch" else 0

    def prepare(self, runtime: str, precision: str) -> Ready:
        """The candidate, ready to run: torch bf16 is a bf16 copy of the model (the fp32
        one stays the reference), an exported runtime its cached or new export."""
        import torch

        if runtime == "torch":
            if precision == "fp32":
                return self.fp32
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            model = copy.deepcopy(self.fp32.model).to(dtype)
            return Ready(model, TorchRuntime(model), precision)
        return Ready(self.fp32.model, self.builder.build(runtime, precision, announce=False), precision)

    def check(self, ready: Ready) -> dict:
        """Min cosines of ``ready``'s image and text embeddings to torch fp32's. This is
        also the warm-up of the timed shape (OpenVINO compiles kernels per input shape)."""
        images, texts = self.reference_vectors
        with self._running(ready):
            got_images = self.embedder.embed_images(self.images)
            got_texts = self.embedder.embed_texts(choose.PROMPTS)
        image_cos = float(np.min(np.sum(got_images * images, axis=1)))
        text_cos = float(np.min(np.sum(got_texts * texts, axis=1)))
        return {"min_cosine_images": round(image_cos, 7), "min_cosine_texts": round(text_cos, 7),
                "min_cosine": round(min(image_cos, text_cos), 7)}

    def time_pass(self, ready: Ready) -> float:
        """Seconds of one pass of ``ready`` over the check images."""
        with self._running(ready):
            started = time.perf_counter()
            self.embedder.embed_images(self.images)
            return time.perf_counter() - started

    def probe_int8(self, fp32: Ready) -> Ready:
        """OpenVINO's image tower quantised quickly, without accuracy control, beside
        ``fp32``'s text tower: only to be timed (:meth:`OpenVinoRuntime.quick_int8`)."""
        folder = self.builder.folder("openvino", "fp32")
        samples = [[p.detach().cpu().numpy()] for p in self.builder.calibration("openvino").pixels]
        compiled = OpenVinoRuntime.quick_int8(folder / "image.xml", samples[:PROBE_SAMPLES])
        return Ready(fp32.model, _ImageProbe(compiled, fp32.runtime), "int8")

    def apply(self, ready: Ready) -> None:
        """Leave the embedder running ``ready``."""
        self.embedder.model, self.embedder.runtime, self.embedder.precision = ready

    @contextlib.contextmanager
    def _running(self, ready: Ready) -> Iterator[None]:
        self.apply(ready)
        try:
            yield
        finally:
            self.apply(self.fp32)


class _ImageProbe:
    """A quick int8 image graph with the fp32 text tower, to time the image side."""

    name = "openvino"

    def __init__(self, compiled: Any, text_runtime: Any) -> None:
        self.compiled = compiled
        self.text_runtime = text_runtime

    def image_features(self, inputs: dict[str, Any]) -> Any:
        import torch

        pixels = np.ascontiguousarray(inputs["pixel_values"].detach().cpu().numpy())
        return torch.from_numpy(np.array(self.compiled([pixels])[0], dtype=np.float32))

    def text_features(self, inputs: dict[str, Any]) -> Any:
        return self.text_runtime.text_features(inputs)
