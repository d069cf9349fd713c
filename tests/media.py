"""Tiny test media, written with PyAV into a directory the caller owns.

Every generated video frame carries its own index, drawn as ``INDEX_BITS``
black/white vertical bands over the top three quarters of the picture
(most significant bit on the left), above a solid red strip. The bands are
wide blocks, so they survive H.264 compression and any resize, and
:func:`read_index` recovers the index from a decoded RGB frame. The red strip
at the bottom, together with the band order, tells an upright frame from a
rotated or mirrored one (:func:`is_upright`).

All functions return the path they wrote, as ``str``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

INDEX_BITS = 10  # up to 1024 distinct frames
_TOP = 0.75  # fraction of the height holding the index bands


def index_image(index: int, size: tuple[int, int] = (64, 48), pattern: str = "bits") -> np.ndarray:
    """The upright H x W x 3 uint8 picture for frame ``index``.

    Args:
        index: frame index to encode (``0 <= index < 2**INDEX_BITS``).
        size: ``(width, height)`` in pixels.
        pattern: ``"bits"`` (index bands + red strip) or ``"solid"`` (one
            flat grey level ``index % 256``, for when content must not matter).
    """
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    if pattern == "solid":
        img[:] = index % 256
        return img
    top = int(h * _TOP)
    for b in range(INDEX_BITS):
        if index >> (INDEX_BITS - 1 - b) & 1:
            img[:top, b * w // INDEX_BITS : (b + 1) * w // INDEX_BITS] = 255
    img[top:, :, 0] = 255
    return img


def read_index(image: np.ndarray) -> int:
    """Recover the index drawn by :func:`index_image` (``"bits"``) from RGB."""
    h, w = image.shape[:2]
    top = int(h * _TOP)
    grey = image[:top].mean(axis=(0, 2))
    bits = 0
    for b in range(INDEX_BITS):
        lo, hi = b * w // INDEX_BITS, (b + 1) * w // INDEX_BITS
        # Sample the middle of each band; edges blur under compression/resize.
        mid = grey[lo + (hi - lo) // 4 : hi - (hi - lo) // 4]
        bits = bits << 1 | int(mid.mean() > 127)
    return bits


def is_upright(image: np.ndarray) -> bool:
    """True when the red strip is at the bottom of ``image`` (not rotated)."""
    h = image.shape[0]
    bottom = image[int(h * 0.9) :].reshape(-1, 3).mean(axis=0)
    top = image[: int(h * 0.1)].reshape(-1, 3).mean(axis=0)
    return bottom[0] > 150 and bottom[1] < 100 and not (top[0] > 150 and top[1] < 100)


def _open_video_out(
    path: str | Path, codec: str, rate, size, pix_fmt: str, gop: int | None, bframes: int = 2
):
    container = av.open(str(path), mode="w")
    options = {}
    if codec == "libx264":
        # Deterministic (one thread, no scene-cut keyframes) and with B-frames,
        # so decode reordering and frame skipping are really exercised.
        options = {
            "preset": "veryfast",
            "crf": "18",
            "x264-params": f"bframes={bframes}:b-adapt=0:scenecut=0:threads=1",
        }
    stream = container.add_stream(codec, rate=rate, options=options)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    if gop is not None:
        stream.codec_context.gop_size = gop
    return container, stream


def _encode_all(container, stream, frames) -> None:
    for vf in frames:
        for packet in stream.encode(vf):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def make_clip(
    path: str | Path,
    *,
    seconds: float,
    fps: int = 25,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pattern: str = "bits",
    gop: int | None = None,
) -> str:
    """Write a constant-frame-rate clip of ``round(seconds * fps)`` frames.

    Frame ``i`` has PTS ``i / fps`` and shows :func:`index_image` ``(i)``.

    Args:
        path: output file; the extension picks the container.
        seconds: clip length.
        fps: integer frame rate.
        size: ``(width, height)``; keep both even for yuv420p.
        codec: encoder name, e.g. ``"libx264"``, ``"mpeg4"``, ``"mjpeg"``.
        pix_fmt: encoder pixel format.
        pattern: see :func:`index_image`.
        gop: keyframe interval in frames (encoder default when None).
    """
    container, stream = _open_video_out(path, codec, fps, size, pix_fmt, gop)
    n = round(seconds * fps)
    frames = (av.VideoFrame.from_ndarray(index_image(i, size, pattern), format="rgb24") for i in range(n))
    _encode_all(container, stream, frames)
    return str(path)


def make_vfr_clip(path: str | Path, pts_list_s: list[float], *, size: tuple[int, int] = (64, 48),
                  gop: int | None = None) -> str:
    """Write a variable-frame-rate MP4 whose frame ``i`` has PTS ``pts_list_s[i]``.

    Timestamps are stored in a 1/1000 s time base, so give them in whole
    milliseconds and strictly increasing. Frame ``i`` shows ``index_image(i)``.
    ``gop``: a keyframe every that many frames (None leaves x264's default
    of 250, so a short VFR clip has a single keyframe).
    """
    # No B-frames: with reordering, the MP4 muxer derives a wrong duration
    # from the irregular DTS.
    container, stream = _open_video_out(path, "libx264", 1000, size, "yuv420p", gop, 0)
    stream.time_base = Fraction(1, 1000)
    stream.codec_context.time_base = Fraction(1, 1000)

    def frames():
        for i, t in enumerate(pts_list_s):
            vf = av.VideoFrame.from_ndarray(index_image(i, size), format="rgb24")
            vf.pts = round(t * 1000)
            vf.time_base = Fraction(1, 1000)
            yield vf

    _encode_all(container, stream, frames())
    return str(path)


def make_rotated_clip(
    path: str | Path,
    *,
    rotation: int = 90,
    seconds: float = 1.0,
    fps: int = 25,
    size: tuple[int, int] = (64, 48),
) -> str:
    """Write a clip stored sideways with a display-matrix rotation.

    The *displayed* (upright) picture is ``index_image(i, size)``; the coded
    picture is that rotated by ``-rotation``, and the container's display
    matrix says to rotate it by ``rotation`` degrees counter-clockwise
    (``VideoFrame.rotation`` convention) to show it.
    """
    k = (rotation // 90) % 4
    coded_size = size if k % 2 == 0 else (size[1], size[0])
    container, stream = _open_video_out(path, "libx264", fps, coded_size, "yuv420p", None)
    stream.set_display_rotation(rotation)
    frames = (
        av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(index_image(i, size), -k)), format="rgb24")
        for i in range(round(seconds * fps))
    )
    _encode_all(container, stream, frames)
    return str(path)


def make_audio_only(path: str | Path, seconds: float = 1.0) -> str:
    """Write an audio-only file (AAC in MP4 for ``.mp4``/``.m4a``) of a sine tone."""
    rate = 16000
    container = av.open(str(path), mode="w")
    stream = container.add_stream("aac", rate=rate)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return str(path)


def make_zero_byte(path: str | Path) -> str:
    """Create an empty file."""
    Path(path).write_bytes(b"")
    return str(path)


def make_text_as_mp4(path: str | Path) -> str:
    """Write plain text under a video-looking name."""
    Path(path).write_text("this is not a video, just some text\n" * 20)
    return str(path)


def make_truncated(src: str | Path, dst: str | Path, fraction: float) -> str:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``.

    Use an MKV or MPEG-TS source for a file whose first part still decodes:
    an MP4 keeps its index (moov) at the end, so a cut MP4 will not open.
    """
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return str(dst)


def make_corrupted(
    src: str | Path, dst: str | Path, *, at: float = 0.33, nbytes: int = 3000, seed: int = 0
) -> str:
    """Copy ``src`` to ``dst`` with ``nbytes`` random bytes written at ``at`` of its length.

    Use an MKV source (an MP4's index is at the end and stays intact, but the
    damage lands inside the media data either way).
    """
    data = bytearray(Path(src).read_bytes())
    pos = int(len(data) * at)
    noise = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    data[pos : pos + nbytes] = noise[: len(data) - pos]
    Path(dst).write_bytes(bytes(data))
    return str(dst)


def make_image(
    path: str | Path, *, size: tuple[int, int] = (64, 48), exif_orientation: int | None = None
) -> str:
    """Write ``index_image(0)`` as a still image (format from the extension).

    With ``exif_orientation`` (JPEG only) the stored pixels are transformed so
    that applying the EXIF orientation shows the upright picture; 6 means
    "rotate 90 degrees clockwise to display".
    """
    from PIL import Image

    img = index_image(0, size)
    exif = None
    if exif_orientation == 6:
        img = np.rot90(img, 1)  # stored rotated CCW; viewer rotates CW
        exif = Image.Exif()
        exif[0x0112] = 6
    pil = Image.fromarray(np.ascontiguousarray(img))
    if exif is not None:
        pil.save(str(path), exif=exif, quality=95)
    else:
        pil.save(str(path))
    return str(path)


def make_lying_duration_mkv(path: str | Path, *, claimed_ms: float = 1e14, seconds: float = 2.0,
                            fps: int = 25) -> str:
    """A small MKV clip whose Segment Info Duration (EBML id ``0x4489``, an
    8-byte float in milliseconds) is overwritten with ``claimed_ms``: the
    container then claims that duration while holding ``seconds`` of video."""
    import struct

    make_clip(path, seconds=seconds, fps=fps)
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"\x44\x89\x88")
    if at < 0:
        raise ValueError(f"{path}: no 8-byte Duration element to patch")
    data[at + 3 : at + 11] = struct.pack(">d", claimed_ms)
    Path(path).write_bytes(bytes(data))
    return str(path)
