"""The loaded model behind one interface: images and texts → L2-normalised vectors.

The :class:`Embedder` owns the runtime (device, precision, batching); what
differs per model family (preprocessing, text cleaning and padding, model
inputs, scoring rule) is delegated to its :class:`~pipeline.embed.family.Family`.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import numpy as np

from pipeline.embed.clip import ClipFamily
from pipeline.embed.family import Family
from pipeline.embed.preprocess import Preprocess, center_crop, resize, resize_still, resize_target
from pipeline.embed.runtime import TorchRuntime
from pipeline.types import ModelLoadError

AUTO_BATCH = {"cpu": 32, "cuda": 256, "mps": 64}
TEXT_BATCH = 256  # texts per text-tower call


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"--device {device} was asked for but no CUDA GPU is visible")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → fp16 on CUDA; bf16 on CPUs with native bf16 (several times
    fp32 on AVX512-BF16/AMX parts, at cosine ≥ 0.9999); fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    if device == "cpu" and cpu_has_bf16():
        return "bf16"
    return "fp32"


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 natively (AVX-512 bf16 or AMX): elsewhere
    torch emulates it, 7x slower than fp32 on an AVX2 Zen 3."""
    from pipeline.embed import cpu

    return cpu.has_native_bf16()


class Embedder:
    """A loaded model that maps images and texts to L2-normalised vectors.

    Attributes:
        family: ``"clip"``, ``"siglip"`` or ``"siglip2"``.
        scoring_rule: how the model's makers score it: ``"softmax"`` or ``"sigmoid"``.
        logit_scale: the temperature, already exponentiated (CLIP: 100).
        logit_bias: added to scaled cosines before a sigmoid (0.0 for CLIP).
        runtime: what runs the towers' forward pass (:mod:`pipeline.embed.runtime`);
            the loaded torch model by default.
        auto_choice: where ``auto`` chose the runtime or precision by measurement,
            why: the chosen row, each candidate's img/s and agreement, what was
            skipped or deferred and why, the CPU signature, the decision's cache
            file (:func:`pipeline.embed.auto.summary`); None where nothing was measured.
            Plain JSON data, for ``summary.json``'s ``model.auto``.
    """

    def __init__(self, model: Any, tokenizer: Any, preprocess: Preprocess, *,
                 model_id: str, revision: str | None, device: str, precision: str,
                 batch_size: int, family: Family | None = None, runtime: Any = None) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.preprocess_spec = preprocess
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self._family = family or ClipFamily()
        self.runtime = runtime or TorchRuntime(model)
        self.auto_choice: dict | None = None
        self._torch = torch
        mean = torch.tensor(preprocess.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(preprocess.std, device=device).view(1, 3, 1, 1)
        self.pixel_scale = preprocess.rescale / std
        self.pixel_shift = mean / std
        self.logit_scale = float(_logit_scale(model))
        self.logit_bias = self._family.logit_bias(model)
        self.text_max_length = _text_max_length(model, tokenizer)
        self.dim = int(self.embed_texts(["a photo."]).shape[1])

    @property
    def family(self) -> str:
        return self._family.name

    @property
    def scoring_rule(self) -> str:
        return self._family.scoring_rule

    @property
    def input_size(self) -> int:
        """The short side decoders shrink video frames to (the fast path)."""
        return self.preprocess_spec.input_size

    @property
    def still_resize(self) -> Any:
        """Upright RGB ``PIL.Image`` at full size → the picture this model's
        image processor resizes it to (Pillow, its filter and target size), for
        the still-image decoder; :meth:`embed_images` then only crops and
        normalises it. Plain data and a module function: it pickles (Ray)."""
        return partial(resize_still, spec=self.preprocess_spec)

    @property
    def precision_label(self) -> str:
        """The precision as stored with embeddings: ``bf16`` on torch, ``openvino-int8``
        on an exported runtime (a store's precision column predates runtimes)."""
        name = getattr(self.runtime, "name", "torch")
        return self.precision if name == "torch" else f"{name}-{self.precision}"

    # ------------------------------------------------------------------ images

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """Embed N x H x W x 3 uint8 RGB frames (any size) in batches.

        Returns:
            float32 array N x D, each row L2-normalised.
        """
        out = [self._embed_image_batch(images[i:i + self.batch_size])
               for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _embed_image_batch(self, images: np.ndarray) -> np.ndarray:
        torch = self._torch
        pinned = self.device.startswith("cuda")
        images = np.ascontiguousarray(images)
        if not images.flags.writeable:  # torch.from_numpy warns on read-only memory
            images = images.copy()
        tensor = torch.from_numpy(images)
        if pinned:
            tensor = tensor.pin_memory()
        tensor = tensor.to(self.device, non_blocking=pinned)
        inputs = self._family.image_inputs(self, tensor)
        with torch.inference_mode(), self._autocast():
            feats = self.runtime.image_features(inputs)
        return _normalise(feats)

    def preprocess(self, uint8_nhwc: Any) -> Any:
        """uint8 NHWC tensor on the device → normalised float NCHW pixels
        (fixed-size inputs: CLIP, SigLIP; NaFlex goes through its family)."""
        torch = self._torch
        spec = self.preprocess_spec
        x = uint8_nhwc.permute(0, 3, 1, 2)
        if spec.crop_hw is not None and resize_target(x.shape[-2:], spec) == tuple(x.shape[-2:]):
            # The decoder already resized: crop the uint8 frames before any
            # float work (a 16:9 frame has 1.8x the pixels of its crop).
            x = center_crop(x, spec.crop_hw)
        x = resize(torch, x, spec).float()
        if spec.crop_hw is not None:
            x = center_crop(x, spec.crop_hw)  # a no-op when cropped above
        # (x * rescale - mean) / std as one multiply-add, in place on our own copy.
        x = x.mul_(self.pixel_scale).sub_(self.pixel_shift)
        return x.to(self.model_dtype())

    # ------------------------------------------------------------------- texts

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts in batches of at most ``TEXT_BATCH``.

        Bounded batches keep memory flat whatever the config's size: the
        token and activation tensors of one call grow with its text count.

        Returns:
            float32 array N x D, each row L2-normalised.
        """
        texts = list(texts)
        out = [self._embed_text_batch(texts[i:i + TEXT_BATCH]) for i in range(0, len(texts), TEXT_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def text_inputs(self, texts: list[str]) -> dict[str, Any]:
        """The text tower's inputs for ``texts``, cleaned and padded as the family was trained."""
        tokens = self._family.text_inputs(self.tokenizer, texts, self.text_max_length)
        return {k: v.to(self.device) for k, v in tokens.items()}

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        tokens = self.text_inputs(texts)
        with torch.inference_mode(), self._autocast():
            feats = self.runtime.text_features(tokens)
        return _normalise(feats)

    # ------------------------------------------------------------------ helpers

    def _autocast(self) -> Any:
        # Only for an fp32 model asked to run in bf16 (the loader converts
        # bf16 models outright; autocast is the slower way, see PERFORMANCE.md).
        torch = self._torch
        if self.precision == "bf16" and self.device == "cpu" and self.model_dtype() == torch.float32:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def model_dtype(self) -> Any:
        """The dtype of the model's weights (pixels are cast to it)."""
        return next(self.model.parameters()).dtype


def _text_max_length(model: Any, tokenizer: Any) -> int:
    """The trained text length: the position table's size, or the tokenizer's
    ``model_max_length`` when it sets a shorter one (SigLIP: 64)."""
    positions = int(getattr(model.config.text_config, "max_position_embeddings", 77))
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < positions:
        return declared
    return positions


def _logit_scale(model: Any) -> float:
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        return 100.0
    return float(scale.detach().float().reshape(-1)[0].exp().item())


def _normalise(feats: Any) -> np.ndarray:
    feats = feats.float()
    feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return feats.cpu().numpy().astype(np.float32, copy=False)
