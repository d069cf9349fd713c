"""Still images as one-frame videos, so the rest of the pipeline needs no special case.

Every picture is opened by :func:`open_picture`, the one place that decides
how large a picture may be decoded: its size is read from the header
(Pillow's ``Image.open`` decodes nothing), and a picture over
:data:`MAX_PICTURE_PIXELS` is decoded at 1/2, 1/4 or 1/8 scale when it is a
JPEG (``draft``) and refused in one line (:class:`PictureTooLarge`)
otherwise, so a small file cannot make a huge picture in memory. A path is
opened without blocking and read only when it is a regular file.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.decode.base import Decoder, one_line, scaled_size
from pipeline.types import DecodeStats, Frame, Sampling, VideoInfo, VideoOpenError

# upright RGB PIL.Image at full size -> the picture the model's processor would make of it
StillResize = Callable[[Any], Any]

# Pixels a picture may have when decoded: 40 MP is ~160 MB in Pillow (RGB
# takes 4 bytes a pixel), 8K frame grabs and most camera photos included.
# A 13300² PNG (177 MP, a 516 KB file) took a server from 0.83 to 2.9 GB.
MAX_PICTURE_PIXELS = 40_000_000
_JPEG_SCALES = (2, 4, 8)  # the reduced scales a JPEG decodes at directly
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class PictureTooLarge(VideoOpenError):
    """A picture with more pixels than :data:`MAX_PICTURE_PIXELS` that is not a JPEG."""


@dataclass
class Picture:
    """An open picture: ``image`` is lazy (decoded on ``load()``, at a reduced
    scale when ``scale`` > 1); ``width`` x ``height`` is its size in the file."""

    image: Any  # PIL.Image.Image
    width: int
    height: int
    scale: int = 1


@contextlib.contextmanager
def open_picture(source: str | os.PathLike | bytes, *, name: str | None = None,
                 max_pixels: int | None = None) -> Iterator[Picture]:
    """Open a picture (a path or its bytes) with its decoded size capped.

    Args:
        name: how messages call it (default: the path, or "the picture").
        max_pixels: the cap (default :data:`MAX_PICTURE_PIXELS`, read when called).

    Raises:
        PictureTooLarge: over the cap and not a JPEG (or over it even at 1/8).
        VideoOpenError: not a regular file, not a picture Pillow reads.
    """
    from PIL import Image, UnidentifiedImageError

    cap = MAX_PICTURE_PIXELS if max_pixels is None else max_pixels
    shown = name or (os.fspath(source) if not isinstance(source, bytes) else "the picture")
    fh = io.BytesIO(source) if isinstance(source, bytes) else _open_regular(source, shown)
    try:
        try:
            img = Image.open(fh)
        except Image.DecompressionBombError as ex:
            raise PictureTooLarge(f"{shown}: {_bomb_size(ex)}, more pixels than the {cap / 1e6:.0f} MP "
                                  "a picture may have; shrink it first") from None
        except (UnidentifiedImageError, OSError, ValueError) as ex:
            raise VideoOpenError(f"cannot read image {shown}: {one_line(ex)}") from ex
        with img:
            yield Picture(img, *img.size, scale=_cap(img, cap, shown))
    finally:
        fh.close()


def _cap(img, cap: int, shown: str) -> int:
    """Draft a JPEG over ``cap`` to the largest scale under it; the scale taken."""
    w, h = img.size
    if w * h <= cap:
        return 1
    if img.format == "JPEG":
        for k in _JPEG_SCALES:
            if -(-w // k) * -(-h // k) <= cap:
                img.draft(img.mode, (max(1, w // k), max(1, h // k)))
                dw, dh = img.size
                if dw * dh <= cap:
                    return max(1, round(w / dw))
                break
    raise PictureTooLarge(f"{shown}: {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the {cap / 1e6:.0f} MP "
                          f"a {img.format or 'picture'} may have; shrink it first")


def _bomb_size(ex: Exception) -> str:
    words = str(ex).split()
    count = next((w.strip("(") for w in words if w.strip("(").isdigit()), None)
    return f"{int(count) / 1e6:.0f} MP" if count else "too many pixels"


def _open_regular(path: str | os.PathLike, shown: str):
    """``path`` open for reading (no blocking on a named pipe), when it is a regular file."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as ex:
        raise VideoOpenError(f"cannot read image {shown}: {ex.strerror or ex}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a folder, socket or device"
            raise VideoOpenError(f"{shown}: {kind}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
        try:
            with open_picture(self.path) as picture:  # capped: see open_picture
                img = picture.image
                fmt = (img.format or "image").lower()
                mode = img.mode
                img.load()  # decode now so a broken file fails on open, not later
                w, h, self._rgb = self._upright_rgb(img, (picture.width, picture.height))
        except (OSError, ValueError) as ex:
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

    def _upright_rgb(self, img, native: tuple[int, int]) -> tuple[int, int, np.ndarray]:
        """(native upright width, height, resized RGB array)."""
        from PIL import Image, ImageOps

        stored = img.size  # a drafted JPEG's reduced size
        # The order transformers' load_image takes: EXIF orientation, then RGB.
        img = ImageOps.exif_transpose(img).convert("RGB")
        turned = img.size != stored
        w, h = (native[1], native[0]) if turned else native
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
