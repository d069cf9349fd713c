"""The image/text embedding model: loading, device, precision, preprocessing.

Any Hugging Face model with ``get_image_features`` / ``get_text_features``
works (CLIP; SigLIP-style processors that resize to a fixed square too).
Weights load only from safetensors or through torch's weights-only loader,
never with ``trust_remote_code``.

Preprocessing runs in torch on the inference device: the decoder already
resized frames so their short side equals ``Embedder.input_size``; here we
centre-crop, rescale and normalise with the model's own processor constants,
so transforms never drift from the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import is_local_model
from pipeline.types import ModelLoadError

log = logging.getLogger(__name__)

AUTO_BATCH = {"cpu": 32, "cuda": 256, "mps": 64}
TEXT_BATCH = 256  # texts per text-tower call


@dataclass(frozen=True)
class Preprocess:
    """The model's image preprocessing, read from its processor config."""

    resize_short: int | None  # CLIP: resize shortest edge, then centre crop
    resize_hw: tuple[int, int] | None  # SigLIP-style: resize straight to H x W
    crop_hw: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float

    @property
    def input_size(self) -> int:
        """The short side the decoder should resize frames to."""
        if self.resize_short is not None:
            return self.resize_short
        assert self.resize_hw is not None
        return min(self.resize_hw)


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
    if device == "cpu" and _cpu_has_bf16():
        return "bf16"
    return "fp32"


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Embedder:
    """A loaded model that maps images and texts to L2-normalised vectors."""

    def __init__(self, model: Any, tokenizer: Any, preprocess: Preprocess, *,
                 model_id: str, revision: str | None, device: str, precision: str,
                 batch_size: int) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.preprocess_spec = preprocess
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self._torch = torch
        mean = torch.tensor(preprocess.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(preprocess.std, device=device).view(1, 3, 1, 1)
        self._scale = preprocess.rescale / std
        self._shift = mean / std
        self.logit_scale = float(_logit_scale(model))
        self.dim = int(self.embed_texts(["a photo."]).shape[1])

    @property
    def input_size(self) -> int:
        return self.preprocess_spec.input_size

    @property
    def logit_bias(self) -> float:
        """The model's logit bias (SigLIP learns one; 0.0 for models without)."""
        bias = getattr(self.model, "logit_bias", None)
        return 0.0 if bias is None else float(bias.detach().float().item())

    @property
    def scoring_rule(self) -> str:
        """How the model was trained to score: ``"sigmoid"`` (SigLIP, SigLIP 2:
        one independent probability per label) or ``"softmax"`` (CLIP)."""
        return "sigmoid" if self.model.config.model_type in ("siglip", "siglip2") else "softmax"

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
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        if pinned:
            tensor = tensor.pin_memory()
        tensor = tensor.to(self.device, non_blocking=pinned)
        pixels = self.preprocess(tensor)
        with torch.inference_mode(), self._autocast():
            feats = _features(self.model.get_image_features(pixel_values=pixels))
        return _normalise(feats)

    def preprocess(self, uint8_nhwc: Any) -> Any:
        """uint8 NHWC tensor on the device → normalised float NCHW pixels."""
        torch = self._torch
        spec = self.preprocess_spec
        x = uint8_nhwc.permute(0, 3, 1, 2)
        if spec.crop_hw is not None and _resize_target(x.shape[-2:], spec) == tuple(x.shape[-2:]):
            # The decoder already resized: crop the uint8 frames before any
            # float work (a 16:9 frame has 1.8x the pixels of its crop).
            x = _center_crop(x, spec.crop_hw)
        x = _resize(torch, x.float(), spec)
        if spec.crop_hw is not None:
            x = _center_crop(x, spec.crop_hw)  # a no-op when cropped above
        # (x * rescale - mean) / std as one multiply-add, in place on our own copy.
        x = x.mul_(self._scale).sub_(self._shift)
        return x.to(self._model_dtype())

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

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        max_len = getattr(self.model.config.text_config, "max_position_embeddings", 77)
        padding = "max_length" if "siglip" in self.model.config.model_type else True
        tokens = self.tokenizer(texts, padding=padding, truncation=True,
                                max_length=max_len, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()
                  if k in ("input_ids", "attention_mask")}
        with torch.inference_mode(), self._autocast():
            feats = _features(self.model.get_text_features(**tokens))
        return _normalise(feats)

    # ------------------------------------------------------------------ helpers

    def _autocast(self) -> Any:
        # Only for an fp32 model asked to run in bf16 (the loader converts
        # bf16 models outright; autocast is the slower way, see PERFORMANCE.md).
        torch = self._torch
        if self.precision == "bf16" and self.device == "cpu" and self._model_dtype() == torch.float32:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _model_dtype(self) -> Any:
        return next(self.model.parameters()).dtype


# --------------------------------------------------------------------------- loading


def load_embedder(model_id: str, *, revision: str | None = None, device: str = "auto",
                  precision: str = "auto", batch_size: int | str = "auto",
                  compile_model: bool = False) -> Embedder:
    """Load a model from a local folder or a Hugging Face Hub id.

    Honours the HF cache and ``HF_HUB_OFFLINE``. Failure is a
    :class:`ModelLoadError` whose message says what to do.
    """
    import torch

    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    model, tokenizer, image_processor = _load_parts(model_id, revision)
    model.eval()
    if precision in ("fp16", "bf16"):
        # bf16 on CPU too: whole-model bf16 ran 1.3-2.4x faster than fp32
        # weights under autocast (which re-casts every weight on every call),
        # at cosine >= 0.9999 to fp32 (docs/PERFORMANCE.md).
        model = model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    model = model.to(device)
    if compile_model:
        model = torch.compile(model)
    batch = AUTO_BATCH.get(device.split(":")[0], 32) if batch_size == "auto" else int(batch_size)
    log.info("loaded %s on %s (%s, batch %d)", model_id, device, precision, batch)
    return Embedder(model, tokenizer, _preprocess_from(image_processor),
                    model_id=model_id, revision=_revision_of(model, model_id, revision),
                    device=device, precision=precision, batch_size=batch)


def _load_parts(model_id: str, revision: str | None) -> tuple[Any, Any, Any]:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a loader prints no bars; the CLI owns the terminal

    local = Path(model_id).expanduser()
    if _looks_local(model_id):
        _check_model_folder(local)
    source = str(local) if local.is_dir() else model_id
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    try:
        model = AutoModel.from_pretrained(source, weights_only=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        image_processor = AutoImageProcessor.from_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError, pickle.UnpicklingError) as ex:
        raise ModelLoadError(_explain_load_failure(model_id, ex)) from ex
    except Exception as ex:
        if type(ex).__name__ != "SafetensorError":  # safetensors' Rust error, no import needed
            raise
        raise ModelLoadError(f"cannot load model {model_id!r}: its weights are damaged "
                             f"(truncated or corrupt safetensors file: {ex})") from ex
    if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
        raise ModelLoadError(f"{model_id} is not an image-text model "
                             "(it has no get_image_features/get_text_features)")
    return model, tokenizer, image_processor


def _looks_local(model_id: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else is meant as a folder.
    return is_local_model(model_id) or Path(model_id).expanduser().exists()


def _check_model_folder(folder: Path) -> None:
    """A local model must be a folder with a readable config.json; say which
    part is missing (never "download it": a folder is not on the Hub)."""
    where = folder.absolute()
    if not folder.exists():
        raise ModelLoadError(f"no model folder at {where}")
    if not folder.is_dir():
        raise ModelLoadError(f"model {where} is a file, not a model folder")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"model folder {where} has no config.json (not a Hugging Face model folder)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as ex:
        raise ModelLoadError(f"the model's config.json is invalid ({config.absolute()}: "
                             f"{getattr(ex, 'strerror', None) or ex})") from ex


def _explain_load_failure(model_id: str, ex: Exception) -> str:
    if isinstance(ex, pickle.UnpicklingError):  # torch's weights-only loader refused it
        return (f"cannot load model {model_id!r}: its pickled weights need code to load and "
                "were refused; use a model with safetensors weights")
    text = str(ex).splitlines()[0] if str(ex) else type(ex).__name__
    if _looks_local(model_id):
        return f"cannot load model folder {Path(model_id).expanduser().absolute()}: {text}"
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    hint = ("it is not in the local Hugging Face cache and the Hub cannot be reached"
            if offline or "connect" in text.lower() or "offline" in text.lower()
            or "cannot find" in text.lower() or "couldn't" in text.lower()
            else text)
    return (f"cannot load model {model_id!r}: {hint}. On a machine with internet run "
            f"`scenetag download-model {model_id}` (then copy ~/.cache/huggingface), "
            "or pass --model /path/to/a/local/model/folder")


def _preprocess_from(proc: Any) -> Preprocess:
    size = _as_dict(getattr(proc, "size", None))
    crop = _as_dict(getattr(proc, "crop_size", None)) if getattr(proc, "do_center_crop", False) else {}
    resize_short = size.get("shortest_edge")
    resize_hw = (size["height"], size["width"]) if "height" in size else None
    crop_hw = (crop["height"], crop["width"]) if "height" in crop else None
    return Preprocess(
        resize_short=int(resize_short) if resize_short else None,
        resize_hw=resize_hw,
        crop_hw=crop_hw,
        mean=tuple(float(m) for m in proc.image_mean),  # type: ignore[arg-type]
        std=tuple(float(s) for s in proc.image_std),  # type: ignore[arg-type]
        rescale=float(getattr(proc, "rescale_factor", 1 / 255)),
    )


def _as_dict(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return {k: v for k, v in vars(value).items() if v is not None} if hasattr(value, "__dict__") else {}


def _revision_of(model: Any, model_id: str, revision: str | None) -> str | None:
    """The Hub commit the weights came from, or a content hash for a local folder."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return str(commit)
    folder = Path(model_id)
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        return revision
    digest = hashlib.sha256()
    for path in weights:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


# --------------------------------------------------------------------------- tensor helpers


def _logit_scale(model: Any) -> float:
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        return 100.0
    return float(scale.detach().float().exp().item())


def _features(output: Any) -> Any:
    """transformers 5.x returns a model output; 4.x returned the tensor."""
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output


def _normalise(feats: Any) -> np.ndarray:
    feats = feats.float()
    feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return feats.cpu().numpy().astype(np.float32, copy=False)


def _resize_target(hw: Any, spec: Preprocess) -> tuple[int, int]:
    """The (height, width) the processor resizes a frame of size ``hw`` to."""
    height, width = int(hw[0]), int(hw[1])
    if spec.resize_hw is not None:
        return tuple(spec.resize_hw)  # type: ignore[return-value]
    short = spec.resize_short or min(height, width)
    scale = short / min(height, width)
    return max(short, round(height * scale)), max(short, round(width * scale))


def _resize(torch: Any, x: Any, spec: Preprocess) -> Any:
    height, width = x.shape[-2:]
    target = _resize_target((height, width), spec)
    if (height, width) == target:
        return x
    resized = torch.nn.functional.interpolate(x, size=target, mode="bicubic", antialias=True,
                                              align_corners=False)
    return resized.clamp(0, 255)


def _center_crop(x: Any, crop_hw: tuple[int, int]) -> Any:
    height, width = x.shape[-2:]
    ch, cw = crop_hw
    if height < ch or width < cw:
        import torch

        pad_h, pad_w = max(0, ch - height), max(0, cw - width)
        x = torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        height, width = x.shape[-2:]
    top = (height - ch) // 2
    left = (width - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def download(model_id: str, revision: str | None = None) -> str:
    """Fetch a model's config, tokenizer, processor and weights into the HF cache.

    Only safetensors weights are fetched when the repository has them; the
    TensorFlow/Flax/ONNX copies are never downloaded.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        files = HfApi().list_repo_files(model_id, revision=revision)
        weights = [f for f in files if f.endswith(".safetensors")] or \
            [f for f in files if f.endswith(".bin") and "pytorch_model" in f]
        patterns = ["*.json", "*.txt", "*.model"] + weights
        return snapshot_download(model_id, revision=revision, allow_patterns=patterns)
    except (OSError, HfHubHTTPError, ValueError) as ex:
        raise ModelLoadError(f"cannot download {model_id!r}: {str(ex).splitlines()[0]}") from ex
