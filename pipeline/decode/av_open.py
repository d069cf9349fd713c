"""Opening a file with PyAV and reading what it holds: the container (with
library errors as :class:`VideoOpenError`), its :class:`VideoInfo`, and the
converter from decoded frames to upright RGB arrays. Every PyAV reader
(the streaming decoder, random access, live streams, decord's probe) opens
and converts through here, so they agree on sizes, rotation and timing.

PyAV trap: touching a stream object after its container is closed segfaults
the interpreter; read every stream attribute inside the ``with``.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from pipeline.decode.base import check_readable, one_line, scaled_size, upright
from pipeline.types import VideoInfo, VideoOpenError


def open_container(path: str):
    """``av.open`` with library errors turned into :class:`VideoOpenError`.

    The returned container is guaranteed to hold a video stream.
    """
    check_readable(path)
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as ex:
        raise VideoOpenError(f"cannot open {path}: {one_line(ex)}") from ex
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoOpenError(f"no video stream in {path} (has: {', '.join(kinds)})")
    return container


def first_frame_rotation(container, stream) -> int:
    """Display rotation (CCW degrees, 0/90/180/270) read from the first frame.

    PyAV exposes the display matrix on frames, not streams, so decode one.
    """
    try:
        for vf in container.decode(stream):
            return int(vf.rotation) % 360
    except av.FFmpegError:
        pass
    return 0


def probe_open(container, path: str, rotation: int | None = None) -> VideoInfo:
    """:class:`VideoInfo` from an open container. Decodes at most one frame (none
    when ``rotation`` is given)."""
    stream = container.streams.video[0]
    cc = stream.codec_context
    tb = stream.time_base or Fraction(1, 1)
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    if stream.duration is not None:
        duration = float(stream.duration * tb)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    frame_count = stream.frames or (round(duration * fps) if duration and fps else None)
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    width, height = cc.width, cc.height
    bit_rate = cc.bit_rate or container.bit_rate or None
    info = dict(
        path=path,
        container=container.format.name,
        codec=cc.name,
        duration_s=duration,
        avg_fps=fps,
        nominal_fps=float(stream.base_rate) if stream.base_rate else None,
        frame_count=frame_count,
        start_time_s=start,
        pix_fmt=cc.pix_fmt or "",
        bit_rate=bit_rate,
    )
    if rotation is None:
        rotation = first_frame_rotation(container, stream)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(width=width, height=height, rotation=rotation, **info)


def open_info(container, name: str, rotation: int) -> VideoInfo:
    """:class:`VideoInfo` of a container that is already open, decoding
    nothing (a live stream cannot be read twice: ``rotation`` comes from
    the caller's first frame)."""
    return probe_open(container, name, rotation)


def probe(path: str) -> VideoInfo:
    """Probe ``path`` with PyAV (see :class:`VideoInfo`)."""
    with open_container(path) as container:
        return probe_open(container, path)


def frame_converter(info: VideoInfo, short_side: int | None):
    """A function VideoFrame -> upright RGB uint8 array of the requested size,
    as :class:`~pipeline.decode.pyav.PyAVDecoder` converts."""
    width, height = scaled_size(info.width, info.height, short_side)
    if info.rotation in (90, 270):
        width, height = height, width  # reformat works on the coded picture
    shrink = short_side is not None and short_side < min(info.width, info.height)
    # AREA averages when shrinking (less aliasing than plain bilinear).
    interp = "AREA" if shrink else "BILINEAR"
    # One scaler for the whole pass: VideoFrame.reformat builds a fresh one per
    # frame, ≈18x the cost of the conversion itself at 320x240 (same pixels).
    scaler = VideoReformatter()

    def to_rgb(vf) -> np.ndarray:
        rgb = scaler.reformat(vf, width=width, height=height, format="rgb24", interpolation=interp)
        return upright(rgb.to_ndarray(), info.rotation)

    return to_rgb
