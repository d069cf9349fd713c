"""Every frame of a video, decoded once, as a 32x24 thumbnail and its time:
the input of shot detection and technical cues (:mod:`pipeline.analysis.shots`,
:mod:`pipeline.analysis.cues`).

Sampling decodes every frame anyway (frames between samples are references),
but converts only the kept ones. A shot detector has to *look at* every
frame, so what it costs beyond plain decoding is the conversion: a 1280x720
frame converted to RGB and then averaged down is most of that cost. Here
each frame is scaled by FFmpeg straight from its YUV planes to a small
working size (``WORK_SIZE``, 64x48) and then averaged to the thumbnail grid
with :func:`~pipeline.decode.prints.thumbnail`, so the cost per frame stays
near the decode itself. H.264, HEVC, VP9 and AV1 decoders always rebuild the
full picture. MJPEG's decoder can rebuild it at a reduced size (FFmpeg's
``lowres``), and is asked to: 2.2x the frames per CPU second on a 720p clip,
thumbnails within 0.4 grey levels. Inter-coded codecs with ``lowres``
(MPEG-2, MPEG-4 Part 2) are not: their motion compensation at reduced size
drifts, 15 grey levels by the end of a 50-frame MPEG-4 GOP, then snaps back
at the keyframe, a jump a shot detector would read as a cut.

A thumbnail is 2,304 bytes: an hour at 30 fps is 250 MB. :func:`iter_prints`
streams them for callers that keep less.

PyAV trap: a stream object touched after its container is closed segfaults;
everything is read inside the ``with``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from pipeline.decode.av_open import open_container, probe_open
from pipeline.decode.base import one_line, upright
from pipeline.decode.prints import THUMB_H, THUMB_W, thumbnail
from pipeline.types import DecodeError, VideoInfo

# Twice the thumbnail grid: FFmpeg's area scaler to this size, then an exact
# 2x2 average, gives the thumbnail of the full picture to within a grey
# level (the scaler alone, straight to 32x24, weighs edge pixels unevenly).
WORK_SIZE = (2 * THUMB_W, 2 * THUMB_H)
# Intra-only decoders with FFmpeg's ``lowres`` (each level halves both sides
# before reconstruction, so less is decoded at all); see the module for why
# the inter-coded ones are left out.
LOWRES_CODECS = frozenset({"mjpeg"})
MAX_LOWRES = 3


@dataclass
class FramePrints:
    """What :func:`every_frame_prints` saw.

    Attributes:
        prints: N x 24 x 32 x 3 uint8 thumbnails, frame ``i`` at row ``i``
            (presentation order; ``i`` is the frame's 0-based index).
        times_s: N presentation times, seconds from the stream's start.
        end_s: where the last frame ends (its time plus its duration).
        info: the container's metadata.
        lowres: the ``lowres`` level the decoder ran at (0: full size).
        corrupt_packets: packets the decoder refused (their frames are missing).
        notes: what went wrong short of failing (a truncated stream).
    """

    prints: np.ndarray
    times_s: np.ndarray
    end_s: float
    info: VideoInfo
    lowres: int = 0
    corrupt_packets: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames per second as decoded (frame count over the decoded span)."""
        n = len(self.times_s)
        span = self.end_s - (float(self.times_s[0]) if n else 0.0)
        return n / span if n and span > 0 else 0.0


def lowres_level(codec: str, width: int, height: int, work: tuple[int, int] = WORK_SIZE) -> int:
    """The largest ``lowres`` level (each halves the decoded size) that still
    leaves a picture at least ``work`` in both sides; 0 for codecs without it."""
    if codec not in LOWRES_CODECS:
        return 0
    level = 0
    while level < MAX_LOWRES and width >> (level + 1) >= work[0] and height >> (level + 1) >= work[1]:
        level += 1
    return level


def iter_prints(path: str, *, work_size: tuple[int, int] | None = WORK_SIZE,
                lowres: bool = True) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, pts_s, thumbnail)`` of every decodable frame, in presentation order.

    Args:
        path: the video.
        work_size: the ``(width, height)`` FFmpeg scales each frame to before it
            is averaged to the thumbnail; ``None`` converts the full frame to
            RGB first (the slow reference the fast path is measured against).
        lowres: let codecs that can reconstruct at reduced size do so.

    Raises:
        VideoOpenError: the input cannot be opened or holds no video.
    """
    yield from _Pass(path, work_size, lowres).frames()


class _Pass:
    """One decode of every frame, and what it learnt on the way (for
    :class:`FramePrints`)."""

    def __init__(self, path: str, work_size: tuple[int, int] | None, lowres: bool):
        self.path, self.work_size, self.use_lowres = path, work_size, lowres
        self.info: VideoInfo | None = None
        self.lowres = 0
        self.corrupt = 0
        self.notes: list[str] = []
        self.end_s: float | None = None  # the last frame's PTS + duration, when the container says
        self.step_s = 0.04

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        # Probing decodes a frame (the rotation is on frames), and a codec
        # context cannot take threads or lowres once open: probe on a
        # container of its own.
        with open_container(self.path) as container:
            self.info = probe_open(container, self.path)
        with open_container(self.path) as container:
            stream = container.streams.video[0]
            cc = stream.codec_context
            if self.use_lowres:
                self.lowres = lowres_level(cc.name, cc.width, cc.height, self.work_size or WORK_SIZE)
            if self.lowres:
                cc.options = {"lowres": str(self.lowres)}
            stream.thread_type = "AUTO"  # frame threads: every frame is decoded, nothing is skipped
            tb = float(stream.time_base or 1)
            start = stream.start_time or 0
            self.step_s = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            scaler = VideoReformatter()  # one scaler for the pass: a fresh one per frame costs ~18x
            index, last_s = 0, -self.step_s
            for vf in self._decoded(container, stream):
                pts_s = (vf.pts - start) * tb if vf.pts is not None else last_s + self.step_s
                self.end_s = pts_s + vf.duration * tb if vf.duration else None
                if self.work_size is None:
                    rgb = vf.to_ndarray(format="rgb24")
                else:
                    rgb = scaler.reformat(vf, width=self.work_size[0], height=self.work_size[1],
                                          format="rgb24", interpolation="AREA").to_ndarray()
                yield index, pts_s, thumbnail(upright(rgb, self.info.rotation))
                index, last_s = index + 1, pts_s

    def _decoded(self, container, stream) -> Iterator:
        """Decoded frames; a packet the decoder refuses is counted and skipped,
        a demuxer that gives up ends the pass with a note (what came before stays)."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as ex:
                self.notes.append(f"stopped reading early: {one_line(ex)}")
                packet = None  # flush what the decoder holds
            try:
                yield from stream.codec_context.decode(packet)
            except av.FFmpegError:
                self.corrupt += 1
            if packet is None:
                return


def every_frame_prints(path: str, *, work_size: tuple[int, int] | None = WORK_SIZE,
                       lowres: bool = True) -> FramePrints:
    """Every frame's thumbnail and presentation time (see :func:`iter_prints`).

    ``end_s`` is where the last frame ends: its PTS plus its duration when
    the container gives one, else plus the median spacing of the frames.

    Raises:
        VideoOpenError: the input cannot be opened or holds no video.
        DecodeError: it opened but no frame decoded.
    """
    scan = _Pass(path, work_size, lowres)
    times, thumbs = [], []
    for _, t, thumb in scan.frames():
        times.append(t)
        thumbs.append(thumb)
    if not thumbs:
        raise DecodeError(f"no frame could be decoded from {path}")
    times_s = np.asarray(times, np.float64)
    end_s = scan.end_s
    if end_s is None or not math.isfinite(end_s) or end_s <= times_s[-1]:
        step = float(np.median(np.diff(times_s))) if len(times_s) > 1 else scan.step_s
        end_s = float(times_s[-1] + step)
    return FramePrints(np.stack(thumbs), times_s, float(end_s), scan.info, scan.lowres,
                       scan.corrupt, scan.notes)
