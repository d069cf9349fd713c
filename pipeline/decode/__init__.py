"""Decode: turn an input file into a stream of sampled, upright RGB frames.

Backends live in their own modules and are imported only when asked for, so
importing this package costs nothing.

* :func:`open_decoder` - a :class:`~pipeline.decode.base.Decoder` for a path.
* :func:`probe` - metadata only.
* :func:`read_frames_at` - a few frames at given times (thumbnails).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pipeline.decode.base import Decoder, PtsSampler, select_indices
from pipeline.types import Frame, VideoInfo

__all__ = [
    "BACKENDS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Decoder",
    "PtsSampler",
    "is_image",
    "open_decoder",
    "probe",
    "read_frames_at",
    "select_indices",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".gif", ".3gp"}
)
BACKENDS = ("pyav", "decord")


def is_image(path: str) -> bool:
    """True when ``path``'s extension names a still-image format."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def _decoder_class(backend: str) -> type[Decoder]:
    if backend == "pyav":
        from pipeline.decode.pyav import PyAVDecoder

        return PyAVDecoder
    if backend == "decord":
        from pipeline.decode.decord_backend import DecordDecoder

        return DecordDecoder
    raise ValueError(f"unknown decode backend {backend!r}; choose from {BACKENDS}")


def open_decoder(
    path: str, backend: str = "pyav", short_side: int | None = None, strategy: str = "auto",
    threads: str = "frame", still_resize: Callable | None = None,
) -> Decoder:
    """A decoder for ``path``; use it as a context manager.

    Args:
        path: a video or still image. Images always use the image decoder.
        backend: ``"pyav"`` (default) or ``"decord"``.
        short_side: resize so the shorter side has this many pixels; None keeps
            the native size.
        strategy: ``"auto"``, ``"exact"``, ``"fast"`` or ``"keyframes"``
            (see :class:`~pipeline.decode.pyav.PyAVDecoder`).
        threads: PyAV's codec threading, ``"frame"`` (frame + slice) or
            ``"slice"`` (see ``DecoderConfig.threads`` in :mod:`pipeline.config`).
        still_resize: for a still image, the model's own resize of the whole
            picture in place of ``short_side`` (``Embedder.still_resize``);
            videos ignore it.

    Returns:
        An unopened decoder; entering it opens the file and may raise
        :class:`~pipeline.types.VideoOpenError`.
    """
    if is_image(path):
        from pipeline.decode.images import ImageDecoder

        return ImageDecoder(path, short_side=short_side, strategy=strategy, still_resize=still_resize)
    if backend == "pyav":
        return _decoder_class(backend)(path, short_side=short_side, strategy=strategy, threads=threads)
    return _decoder_class(backend)(path, short_side=short_side, strategy=strategy)


def probe(path: str, backend: str = "pyav") -> VideoInfo:
    """Metadata of ``path`` without decoding the stream.

    Raises:
        VideoOpenError: the file cannot be opened or holds no video.
    """
    with open_decoder(path, backend=backend) as decoder:
        return decoder.info


def read_frames_at(path: str, times_s: list[float], short_side: int | None = None) -> list[Frame]:
    """The first frame at or after each of ``times_s`` (seconds from the start).

    Used for thumbnails; PyAV serves the times in sorted order in one forward
    walk, seeking only past a keyframe, so the work is at most about one decode
    of the file. ``Frame.index`` is the presentation-order index. For an image,
    returns the image for every requested time.
    """
    if is_image(path):
        from pipeline.types import Sampling

        with open_decoder(path, short_side=short_side) as decoder:
            frame = next(decoder.frames(Sampling()))
        return [frame for _ in times_s]
    from pipeline.decode.pyav import read_frames_at as _read

    return _read(str(path), list(times_s), short_side)
