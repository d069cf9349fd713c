"""The default backend: PyAV (FFmpeg bindings).

PyAV trap: touching a stream object after its container is closed segfaults
the interpreter, so every stream attribute is read inside the ``with`` that
owns the container, and no stream object outlives it.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from pipeline.decode.base import (
    Decoder,
    PtsSampler,
    check_readable,
    interval_in_frames,
    one_line,
    scaled_size,
    upright,
)
from pipeline.types import DecodeError, DecodeStats, Frame, Sampling, VideoInfo, VideoOpenError

log = logging.getLogger(__name__)
_THREAD_TYPES = {"frame": "AUTO", "slice": "SLICE"}  # AUTO: FFmpeg picks frame, then slice

# Skipping non-reference frames only pays off when most frames are dropped
# anyway; below this many frames per sample, decode everything.
FAST_MIN_STEP = 4.0
# Keyframe-only decoding may return a frame up to one GOP after its target;
# only accept that when samples are at least this many GOPs apart...
KEYFRAME_MIN_GOPS = 2.0
# ...or when keyframes come at a fixed spacing (camera and phone footage: one
# a second) that the step is a whole multiple of, give or take this fraction:
# then keyframes fall on the sampling grid itself.
KEYFRAME_GRID_TOLERANCE = 0.03
GOP_PROBE_PACKETS = 300
_EPS = 1e-6


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


def _first_frame_rotation(container, stream) -> int:
    """Display rotation (CCW degrees, 0/90/180/270) read from the first frame.

    PyAV exposes the display matrix on frames, not streams, so decode one.
    """
    try:
        for vf in container.decode(stream):
            return int(vf.rotation) % 360
    except av.FFmpegError:
        pass
    return 0


def _probe_open(container, path: str) -> VideoInfo:
    """VideoInfo from an open container. Decodes at most one frame."""
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
        frame_count=frame_count,
        start_time_s=start,
        pix_fmt=cc.pix_fmt or "",
        bit_rate=bit_rate,
    )
    rotation = _first_frame_rotation(container, stream)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(width=width, height=height, rotation=rotation, **info)


def probe(path: str) -> VideoInfo:
    """Probe ``path`` with PyAV (see :class:`VideoInfo`)."""
    with open_container(path) as container:
        return _probe_open(container, path)


def _converter(info: VideoInfo, short_side: int | None):
    """A function VideoFrame -> upright RGB uint8 array of the requested size."""
    width, height = scaled_size(info.width, info.height, short_side)
    if info.rotation in (90, 270):
        width, height = height, width  # reformat works on the coded picture
    shrink = short_side is not None and short_side < min(info.width, info.height)
    # AREA averages when shrinking (less aliasing than plain bilinear).
    interp = "AREA" if shrink else "BILINEAR"

    def to_rgb(vf) -> np.ndarray:
        rgb = vf.reformat(width=width, height=height, format="rgb24", interpolation=interp)
        return upright(rgb.to_ndarray(), info.rotation)

    return to_rgb


class _Clock:
    """Turns decoded frames into (index, pts_s): true PTS relative to the start."""

    def __init__(self, stream, fps: float | None, exact_index: bool):
        self.tb = float(stream.time_base)
        self.start = stream.start_time or 0
        self.fps = fps or 25.0
        self.exact_index = exact_index
        self.count = 0
        self.last_s = -1.0 / self.fps

    def __call__(self, vf, resync: bool = False) -> tuple[int, float]:
        """Index and time of the next frame.

        ``resync`` once damage was seen: frames lost to corruption were never
        counted, so let the PTS move the count forward past them.
        """
        if vf.pts is None:  # rare; extrapolate from the previous frame
            pts_s = self.last_s + 1.0 / self.fps
        else:
            pts_s = (vf.pts - self.start) * self.tb
        self.last_s = pts_s
        if resync:
            self.count = max(self.count, round(pts_s * self.fps))
        index = self.count if self.exact_index else round(pts_s * self.fps)
        self.count += 1
        return index, pts_s


def _decoded_frames(container, stream, stats: DecodeStats, keyframes_only: bool = False) -> Iterator:
    """Every decodable frame in presentation order; damage is counted, not raised."""
    packets = _keyframe_packets(container.demux(stream)) if keyframes_only else container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as ex:
            # The demuxer gave up (truncated/garbled file): keep what we have.
            stats.corrupt_packets += 1
            stats.notes.append(f"stopped reading early: {one_line(ex)}")
            packet = None  # flush the decoder below
        try:
            decoded = stream.codec_context.decode(packet)
        except av.FFmpegError:
            stats.corrupt_packets += 1
            decoded = []
        yield from decoded
        if packet is None:
            return


def _keyframe_packets(packets: Iterator) -> Iterator:
    """Keyframe packets only, and the final flush packet.

    ``skip_frame="NONKEY"`` alone still hands every packet to the decoder,
    which then cannot run frame threads in parallel: feeding keyframes only
    halved the wall time of keyframe decoding on 2 cores, at the same CPU time
    (docs/PERFORMANCE.md). A container that flags no keyframe in its first
    ``GOP_PROBE_PACKETS`` packets gets everything through, and the decoder's
    own skip does the filtering.
    """
    flagged = False
    for i, packet in enumerate(packets):
        flagged = flagged or packet.is_keyframe
        if packet.is_keyframe or packet.size == 0 or (not flagged and i >= GOP_PROBE_PACKETS):
            yield packet


class PyAVDecoder(Decoder):
    """Decode with PyAV; the default backend.

    Strategies (``strategy=``):

    * ``"exact"``: decode every frame, convert only the kept ones.
      ``Frame.index`` is the exact presentation-order frame count.
    * ``"fast"``: the codec skips non-reference frames
      (``skip_frame="NONREF"``); kept frames are chosen by time among the
      decoded ones and carry their true PTS.
    * ``"keyframes"``: only keyframe packets reach the decoder (with
      ``skip_frame="NONKEY"`` behind them), see :func:`_keyframe_packets`.
    * ``"auto"``: ``exact`` when samples are less than 4 frames apart (or the
      step is unknown); ``keyframes`` when they are at least 2 keyframe
      spacings apart, or a whole multiple of a fixed keyframe spacing (see
      :func:`keyframes_suffice`; spacings come from the first 300 packets'
      keyframe flags, without decoding); ``fast`` otherwise.

    Under ``fast``/``keyframes``, ``every_n_frames`` becomes a time step of
    ``n / avg_fps`` seconds, and ``Frame.index`` is ``round(pts_s * avg_fps)``
    because skipped frames cannot be counted. ``Frame.pts_s`` is always the
    frame's true PTS minus the stream start time.
    """

    def __init__(self, path: str, *, short_side: int | None = None, strategy: str = "auto",
                 threads: str = "frame"):
        super().__init__(path, short_side=short_side, strategy=strategy)
        if threads not in _THREAD_TYPES:
            raise ValueError(f"unknown decoder threading {threads!r}; choose from {tuple(_THREAD_TYPES)}")
        self.threads = threads
        self._closed = True

    def _open(self) -> None:
        self._info = probe(self.path)
        self._closed = False

    def _close(self) -> None:
        # Containers live only inside frames(); this stops any suspended pass.
        self._closed = True

    def choose_strategy(self, sampling: Sampling) -> str:
        """The strategy :meth:`frames` will use for ``sampling``."""
        fps = self.info.avg_fps
        step = interval_in_frames(sampling, fps)
        if self.strategy != "auto":
            # every_n_frames needs a frame rate to become a time step when skipping.
            return "exact" if self.strategy != "exact" and step is None else self.strategy
        if step is None or step < FAST_MIN_STEP:
            return "exact"
        return "keyframes" if keyframes_suffice(step, keyframe_spacings(self.path)) else "fast"

    def frames(self, sampling: Sampling) -> Iterator[Frame]:
        if self._closed:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        strategy = self.choose_strategy(sampling)
        self._stats = stats = DecodeStats(strategy=strategy)
        if strategy != self.strategy and self.strategy != "auto":
            stats.notes.append(f"strategy {self.strategy} needs a frame rate; decoded exactly")
        sampler = PtsSampler(_time_based(sampling, self.info.avg_fps, strategy))
        to_rgb = _converter(self.info, self.short_side)
        with open_container(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = _THREAD_TYPES[self.threads]
            if strategy != "exact":
                stream.codec_context.skip_frame = "NONREF" if strategy == "fast" else "NONKEY"
            clock = _Clock(stream, self.info.avg_fps, exact_index=strategy == "exact")
            for vf in _decoded_frames(container, stream, stats, keyframes_only=strategy == "keyframes"):
                index, pts_s = clock(vf, resync=stats.corrupt_packets > 0)
                if vf.is_corrupt:
                    stats.corrupt_packets += 1
                    continue
                stats.frames_decoded += 1
                if sampler.keep(index, pts_s):
                    stats.frames_sampled += 1
                    yield Frame(index=index, pts_s=pts_s, image=to_rgb(vf))
                    if self._closed:  # decoder closed while we were suspended
                        return
                if sampler.done:
                    break
        _finish(stats, self.path)
        if not sampler.done:
            _note_short_stream(stats, self.info, clock.last_s)


def _time_based(sampling: Sampling, fps: float | None, strategy: str) -> Sampling:
    """Sampling to apply when frames may be skipped: every_n_frames -> seconds."""
    if strategy == "exact" or sampling.every_n_frames is None:
        return sampling
    return Sampling(every_seconds=sampling.every_n_frames / fps, max_frames=sampling.max_frames)


def _finish(stats: DecodeStats, path: str) -> None:
    if stats.frames_decoded == 0:
        raise DecodeError(f"no frame could be decoded from {path}")
    if stats.corrupt_packets:
        stats.notes.append(f"skipped {stats.corrupt_packets} corrupt packets/frames")
        log.warning("%s: skipped %d corrupt packets/frames", path, stats.corrupt_packets)


def _note_short_stream(stats: DecodeStats, info: VideoInfo, last_s: float) -> None:
    """Note when the stream ends well before the container said it would (truncation)."""
    if info.duration_s and last_s < 0.9 * info.duration_s - 0.5:
        stats.notes.append(f"stream ended at {last_s:.2f} s of {info.duration_s:.2f} s (truncated?)")


def keyframes_suffice(step: float, spacings: list[int]) -> bool:
    """Whether keyframes alone can serve samples ``step`` frames apart.

    Yes when the step spans ``KEYFRAME_MIN_GOPS`` keyframe spacings (median),
    or when keyframes come at a fixed spacing (three or more spacings seen,
    all within one frame of each other) and the step is a whole multiple of
    it within ``KEYFRAME_GRID_TOLERANCE``: a phone's keyframe a second,
    sampled every second.
    """
    gop = float(statistics.median(spacings)) if spacings else 0.0
    if gop <= 0:  # none seen, or keyframes sharing a timestamp
        return False
    if step >= KEYFRAME_MIN_GOPS * gop:
        return True
    regular = len(spacings) >= 3 and max(spacings) - min(spacings) <= 1
    multiple = round(step / gop)
    on_grid = abs(step - multiple * gop) <= KEYFRAME_GRID_TOLERANCE * multiple * gop
    return regular and multiple >= 1 and on_grid


def keyframe_spacings(path: str, max_packets: int = GOP_PROBE_PACKETS) -> list[int]:
    """Distances in frames between successive keyframes among the first
    ``max_packets`` packets, from demuxing only (empty when fewer than two).

    Measured in presentation time (PTS x frame rate) where the packets carry
    it: in decode order an open-GOP stream's keyframes look irregular
    (x265's every-10-frames GOP read as 8, 10, 11 packets). Packet counts
    otherwise.
    """
    positions, times = [], []
    fps = 0.0
    try:
        with open_container(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)  # read inside the `with`
            tb = float(stream.time_base or 0)
            for i, packet in enumerate(container.demux(stream)):
                if i >= max_packets or packet.size == 0:
                    break
                if packet.is_keyframe:
                    positions.append(i)
                    times.append(None if packet.pts is None else packet.pts * tb)
    except (av.FFmpegError, VideoOpenError):
        pass
    if fps > 0 and tb > 0 and times and None not in times:
        return [int(round(d * fps)) for d in np.diff(sorted(times))]
    return [int(d) for d in np.diff(positions)]


def read_frames_at(path: str, times_s: list[float], short_side: int | None = None) -> list[Frame]:
    """For each requested time, the first frame at or after it (seeking with PyAV).

    A time past the end gives the last frame. Frames are upright RGB uint8;
    ``Frame.index`` is ``round(pts_s * avg_fps)``.
    """
    info = probe(path)
    to_rgb = _converter(info, short_side)
    out = []
    with open_container(path) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        start = stream.start_time or 0
        fps = info.avg_fps or 25.0
        for t in times_s:
            container.seek(start + max(0, int(t / tb)), stream=stream, backward=True)
            picked = None
            for vf in _decoded_frames(container, stream, DecodeStats()):
                if vf.pts is None:
                    continue
                picked = vf
                if (vf.pts - start) * tb >= t - _EPS:
                    break
            if picked is None:
                raise DecodeError(f"no frame could be decoded near {t:.3f} s in {path}")
            pts_s = (picked.pts - start) * tb
            out.append(Frame(index=round(pts_s * fps), pts_s=pts_s, image=to_rgb(picked)))
    return out
