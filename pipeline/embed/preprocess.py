"""Image preprocessing from the model's own processor constants (so
transforms never drift from the weights): in torch, on the inference device,
for frames; with Pillow, as the processor itself resizes, for still pictures.

Two shapes exist: a fixed-size input (CLIP: resize the short side and centre
crop; SigLIP: resize straight to H x W) and SigLIP 2's NaFlex, which keeps
the aspect ratio, resizes to at most ``max_num_patches`` patches and feeds the
model a padded sequence of flattened patches with a mask.

Video frames take a fast path: the decoder shrinks them to the model's short
side (``Preprocess.input_size``) and torch finishes the resize. A still
picture is resized once, from its full size, by :func:`resize_still` (what
transformers' Pillow image processors do), so the torch steps that follow
find it at its target size and only crop and normalise it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Preprocess:
    """The model's image preprocessing, read from its processor config."""

    resize_short: int | None  # CLIP: resize shortest edge, then centre crop
    resize_hw: tuple[int, int] | None  # SigLIP-style: resize straight to H x W
    crop_hw: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float
    interpolation: str = "bicubic"  # torch's mode nearest the processor's filter
    resample: int = 3  # the processor's own Pillow filter (PIL.Image.Resampling code): 3 is bicubic
    patch_size: int | None = None  # NaFlex (SigLIP 2): patch side in pixels
    max_num_patches: int | None = None  # NaFlex: patches per image, padded to this

    @property
    def naflex(self) -> bool:
        """True for SigLIP 2's native-aspect, variable-resolution input."""
        return self.max_num_patches is not None

    @property
    def input_size(self) -> int:
        """The short side the decoder should resize frames to."""
        if self.naflex:
            # No NaFlex target's short side exceeds the side of a square of
            # max_num_patches patches: the decoder never upsamples.
            assert self.patch_size is not None and self.max_num_patches is not None
            return self.patch_size * math.ceil(math.sqrt(self.max_num_patches))
        if self.resize_short is not None:
            return self.resize_short
        assert self.resize_hw is not None
        return min(self.resize_hw)


def resize_target(hw: Any, spec: Preprocess) -> tuple[int, int]:
    """The (height, width) the processor resizes a frame of size ``hw`` to."""
    height, width = int(hw[0]), int(hw[1])
    if spec.naflex:
        assert spec.patch_size is not None and spec.max_num_patches is not None
        return naflex_size(height, width, spec.patch_size, spec.max_num_patches)
    if spec.resize_hw is not None:
        return tuple(spec.resize_hw)  # type: ignore[return-value]
    short = spec.resize_short or min(height, width)
    # transformers' get_resize_output_image_size: the long side truncated, not rounded.
    long = int(short * max(height, width) / min(height, width))
    return (long, short) if width <= height else (short, long)


def resize_still(picture: Any, spec: Preprocess) -> Any:
    """A still picture (upright RGB ``PIL.Image``, full size) resized exactly as
    the model's image processor resizes it: Pillow, the processor's filter,
    its target size. The embedder then only crops and normalises it."""
    height, width = resize_target((picture.height, picture.width), spec)
    if (picture.height, picture.width) == (height, width):
        return picture
    return picture.resize((width, height), resample=spec.resample)


def resize(torch: Any, x: Any, spec: Preprocess) -> Any:
    """NCHW pixels (uint8 or float, 0-255) → the processor's target size, antialiased.

    The processors resize uint8 images with Pillow (or torchvision) and get
    uint8 back. On the CPU torch resizes uint8 with Pillow's own algorithm:
    within one step of the processor's pixels. Elsewhere (CUDA has no uint8
    antialiased resize) a float resize, rounded to whole steps as they are.
    """
    height, width = x.shape[-2:]
    target = resize_target((height, width), spec)
    if (height, width) == target:
        return x
    def interpolate(pixels: Any) -> Any:
        return torch.nn.functional.interpolate(pixels, size=target, mode=spec.interpolation, antialias=True,
                                               align_corners=False)

    if x.dtype == torch.uint8 and x.device.type == "cpu":
        return interpolate(x)
    return interpolate(x.float()).round_().clamp_(0, 255)


def center_crop(x: Any, crop_hw: tuple[int, int]) -> Any:
    """Centre-crop NCHW to ``crop_hw``, zero-padding a frame smaller than it."""
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


# --------------------------------------------------------------------------- NaFlex


def naflex_size(height: int, width: int, patch: int, max_patches: int, eps: float = 1e-5) -> tuple[int, int]:
    """The largest size of the same aspect whose patch grid fits ``max_patches``.

    The same binary search over a scale as transformers'
    ``get_image_size_for_max_num_patches`` (and big_vision's NaFlex), so the
    grid, and with it the position embeddings, agree to the patch.
    """
    def side(scale: float, size: int) -> int:
        return max(patch, math.ceil(size * scale / patch) * patch)

    lo, hi = eps / 10, 100.0
    while hi - lo >= eps:
        mid = (lo + hi) / 2
        if (side(mid, height) / patch) * (side(mid, width) / patch) <= max_patches:
            lo = mid
        else:
            hi = mid
    return side(lo, height), side(lo, width)


def naflex_inputs(torch: Any, x: Any, spec: Preprocess, scale: Any, shift: Any) -> dict[str, Any]:
    """uint8 NCHW frames of one size → SigLIP 2's patch sequence, mask and grid.

    Returns:
        ``pixel_values`` (N x max_num_patches x patch²·3, float32),
        ``pixel_attention_mask`` (N x max_num_patches, 1 for real patches)
        and ``spatial_shapes`` (N x 2: patch rows, columns).
    """
    assert spec.patch_size is not None and spec.max_num_patches is not None
    n, _, height, width = x.shape
    th, tw = naflex_size(int(height), int(width), spec.patch_size, spec.max_num_patches)
    x = resize(torch, x, replace(spec, max_num_patches=None, resize_hw=(th, tw))).float()
    x = x.mul_(scale).sub_(shift)
    p, rows, cols = spec.patch_size, th // spec.patch_size, tw // spec.patch_size
    # (N, C, rows, p, cols, p) → (N, rows·cols, p·p·C): row-major patches, channels last.
    patches = x.reshape(n, 3, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1).reshape(n, rows * cols, -1)
    pad = spec.max_num_patches - rows * cols
    mask = torch.ones((n, spec.max_num_patches), dtype=torch.int32, device=x.device)
    if pad > 0:
        patches = torch.nn.functional.pad(patches, (0, 0, 0, pad))
        mask[:, rows * cols:] = 0
    shapes = torch.tensor([[rows, cols]] * n, dtype=torch.long, device=x.device)
    return {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": shapes}
