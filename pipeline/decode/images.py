"""Still images as one-frame videos, so the rest of the pipeline needs no special case."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pipeline.decode.base import Decoder, one_line, scaled_size
from pipeline.types import DecodeStats, Frame, Sampling, VideoInfo, VideoOpenError

# upright RGB PIL.Image at full size -> the picture the model's processor would make of it
StillResize = Callable[[Any], Any]


class ImageDecoder(Decoder):
    """Read a still image (JPEG, PNG, WebP, BMP, ... via Pillow).

    The image is one frame with index 0 and PTS 0.0, whatever the sampling.
    EXIF orientation is applied, so ``info.rotation`` is 0 and the frame is
    upright. ``strategy`` is accepted and ignored.

    Args:
        still_resize: the model's own resize of a whole picture (the embedder's
            ``still_resize``), applied to the full-size upright picture in
            place of the ``short_side`` resize, so a scored still reaches the
            model as its image processor would hand it over. None: resize to
            ``short_side`` (thumbnails, or no model in view).
    """

    def __init__(self, path: str, *, short_side: int | None = None, strategy: str = "auto",
                 still_resize: StillResize | None = None):
        super().__init__(path, short_side=short_side, strategy=strategy)
        self.still_resize = still_resize

    def _open(self) -> None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.path) as img:
                fmt = (img.format or "image").lower()
                mode = img.mode
                img.load()  # decode now so a broken file fails on open, not later
                w, h, self._rgb = self._upright_rgb(img)
        except (UnidentifiedImageError, OSError, ValueError) as ex:
            raise VideoOpenError(f"cannot read image {self.path}: {one_line(ex)}") from ex
        self._info = VideoInfo(
            path=self.path,
            container=fmt,
            codec=fmt,
            width=w,
            height=h,
            duration_s=0.0,
            avg_fps=None,
            frame_count=1,
            pix_fmt=mode.lower(),
            is_image=True,
        )

    def _upright_rgb(self, img) -> tuple[int, int, np.ndarray]:
        """(native upright width, height, resized RGB array)."""
        from PIL import Image, ImageOps

        # The order transformers' load_image takes: EXIF orientation, then RGB.
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        if self.still_resize is not None:
            img = self.still_resize(img)
        elif self.short_side is not None:
            size = scaled_size(img.width, img.height, self.short_side)
            # Pillow's BILINEAR widens its kernel when shrinking: area-like.
            img = img.resize(size, Image.Resampling.BILINEAR)
        return w, h, np.asarray(img, dtype=np.uint8)

    def _close(self) -> None:
        self._rgb = None

    def frames(self, sampling: Sampling) -> Iterator[Frame]:
        if getattr(self, "_rgb", None) is None:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        self._stats = DecodeStats(strategy="image")
        if sampling.max_frames == 0:
            return
        self._stats.frames_decoded = self._stats.frames_sampled = 1
        yield Frame(index=0, pts_s=0.0, image=self._rgb)
