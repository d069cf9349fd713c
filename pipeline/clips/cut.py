"""Cutting clips out of a video with PyAV: one segment (:func:`cut_clip`) or
many parts in one file (:func:`supercut`).

Two modes:

* ``exact``: the clip holds exactly the frames ``[start_frame, end_frame)``
  of the source (given as frames, or as the PTS of those two frames in
  seconds, as ``segments.csv`` has them), each at its own presentation time
  relative to the first, so variable frame rate stays as it was. Every frame
  of the clip is re-encoded (libx264, ``crf``): H.264 cannot start at a
  frame that is not a keyframe, and splicing re-encoded head frames onto
  copied packets needs the encoder to match the source's parameter sets,
  which is not something PyAV exposes. Audio, when the source has it, is
  decoded, cut to the samples of the same time span and re-encoded (AAC).
  The source's rotation is applied to the pixels (a re-encoded stream loses
  the display matrix), so the clip plays upright everywhere.
* ``copy``: packets are copied as they are, from the keyframe at or before
  the start (:attr:`ClipResult.early_s` says how early that is) through the
  frames decoded before the end (a frame or two past it when the stream has
  B-frames: :attr:`ClipResult.late_s`). Fast and lossless, not exact.

A supercut joins parts in time order (per source, in the order sources are
first given); overlapping or touching parts of one source are one part, so
no frame is repeated. Parts of sources of other sizes are scaled to the
first part's; a source without audio is silence in a supercut with sound.

The output is written to a temporary name in its own folder and renamed over
the target at the end (:func:`~pipeline.atomic.atomic_path`): nothing is
half-written on error, and the error is one line (:class:`ClipError`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from pipeline.atomic import atomic_path
from pipeline.decode.av_open import open_container, probe
from pipeline.decode.base import one_line, upright
from pipeline.decode.packets import PacketIndex
from pipeline.types import PipelineError, describe_error

MODES = ("exact", "copy")
# The container of each extension (the temporary file has none for FFmpeg to guess from).
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Pixel formats libx264 encodes as they are; anything else becomes yuv420p.
X264_PIX_FMTS = frozenset({"yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                           "nv12", "gray"})
TOLERANCE_S = 1e-3  # times written to the millisecond still select their own frame
AUDIO_CODEC = "aac"
AUDIO_FORMAT = "fltp"  # what FFmpeg's AAC encoder takes


class ClipError(PipelineError):
    """A clip could not be cut (one line: which file, and why)."""


@dataclass(frozen=True)
class Part:
    """Frames of ``source`` from ``start_s`` (the PTS of the first frame, in
    seconds from the stream's start) to ``end_s`` (that of the frame after
    the last); ``start_frame``/``end_frame``, when given, decide instead."""

    source: str
    start_s: float
    end_s: float
    start_frame: int | None = None
    end_frame: int | None = None


@dataclass(frozen=True)
class ClipResult:
    """What was written: ``frames`` video frames lasting ``duration_s``;
    ``early_s``/``late_s``: how far before the asked start and past the asked
    end the clip reaches (``copy``; 0 for ``exact``); ``seconds``: wall time."""

    path: Path
    mode: str
    frames: int
    duration_s: float
    audio: bool
    parts: int
    early_s: float = 0.0
    late_s: float = 0.0
    seconds: float = 0.0


def cut_clip(source: str, start_s: float, end_s: float, out_path: str | Path, *, mode: str = "exact",
             start_frame: int | None = None, end_frame: int | None = None, crf: int = 18,
             preset: str = "veryfast") -> ClipResult:
    """Cut frames ``[start, end)`` of ``source`` to ``out_path`` (``.mp4``,
    ``.mov``, ``.mkv``); see the module for the modes.

    Raises:
        ClipError: nothing to cut, an unknown mode or extension, the source
            unreadable or gone, the output not writable (a full disk).
    """
    return supercut([Part(str(source), float(start_s), float(end_s), start_frame, end_frame)], out_path,
                    mode=mode, crf=crf, preset=preset)


def supercut(parts: Iterable[Part | tuple], out_path: str | Path, *, mode: str = "exact", crf: int = 18,
             preset: str = "veryfast") -> ClipResult:
    """Every part in one file, in time order (see the module). ``copy`` takes
    parts of one source only (its packets cannot be mixed with another's).

    Raises:
        ClipError: as :func:`cut_clip`.
    """
    if mode not in MODES:
        raise ClipError(f"unknown clip mode {mode!r}; choose from {', '.join(MODES)}")
    out = Path(out_path)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ClipError(f"cannot write a clip as {out.name}: use {', '.join(sorted(FORMATS))}")
    chosen = _in_order([p if isinstance(p, Part) else Part(*p) for p in parts])
    if not chosen:
        raise ClipError(f"nothing to cut into {out}: no part lasts any time")
    if mode == "copy" and len({p.source for p in chosen}) > 1:
        raise ClipError("copy mode joins parts of one source only; use exact mode for several sources")
    began = time.perf_counter()
    try:
        with atomic_path(out) as tmp, av.open(str(tmp), "w", format=fmt) as container:
            writer = _Copier(container) if mode == "copy" else _Encoder(container, chosen, crf, preset)
            for part in chosen:
                writer.add(part)
            writer.finish()
    except PipelineError:
        raise
    except (av.FFmpegError, OSError) as ex:
        raise ClipError(f"cannot write clip {out}: {_reason(ex)}") from ex
    if writer.frames == 0:  # pragma: no cover - _in_order and the windows rule this out
        raise ClipError(f"no frame of {chosen[0].source} lies in the parts asked for")
    return ClipResult(out, mode, writer.frames, writer.duration_s, writer.has_audio, len(chosen),
                      writer.early_s, writer.late_s, time.perf_counter() - began)


def _reason(ex: BaseException) -> str:
    if isinstance(ex, av.FFmpegError):
        return one_line(ex)
    return describe_error(ex)


def _in_order(parts: list[Part]) -> list[Part]:
    """Parts in time order per source (sources in the order first given),
    those of one source that overlap or touch joined, empty ones dropped."""
    sources = list(dict.fromkeys(p.source for p in parts))
    out: list[Part] = []
    for source in sources:
        mine = sorted((p for p in parts if p.source == source and _lasts(p)),
                      key=lambda p: (_key(p.start_frame, p.start_s), _key(p.end_frame, p.end_s)))
        for p in mine:
            last = out[-1] if out and out[-1].source == source else None
            if last is not None and _touches(last, p):
                out[-1] = _join(last, p)
            else:
                out.append(p)
    return out


def _key(frame: int | None, t: float) -> float:
    return t if frame is None else float(frame) * 1e-9 + t  # frames decide where given


def _lasts(p: Part) -> bool:
    if p.start_frame is not None and p.end_frame is not None:
        return p.end_frame > p.start_frame
    return math.isfinite(p.start_s) and math.isfinite(p.end_s) and p.end_s > p.start_s


def _touches(a: Part, b: Part) -> bool:
    if a.end_frame is not None and b.start_frame is not None:
        return b.start_frame <= a.end_frame
    return b.start_s <= a.end_s + TOLERANCE_S


def _join(a: Part, b: Part) -> Part:
    later = b if (b.end_frame, b.end_s) > (a.end_frame or -1, a.end_s) and b.end_s >= a.end_s else a
    return replace(a, end_s=max(a.end_s, b.end_s), end_frame=later.end_frame)


# --------------------------------------------------------------------------- which packets and frames


def _window(source: str, part: Part, stream) -> tuple[int, int | None]:
    """``[start_pts, end_pts)`` of the part in ``stream``'s time base, the PTS
    of real frames (end None: to the end), read from the packets: a time
    selects the first frame at or after it (less ``TOLERANCE_S``)."""
    tb = stream.time_base
    origin = stream.start_time or 0
    with open_container(source) as container:
        index = PacketIndex(container, container.streams.video[0])
        first = part.start_frame if part.start_frame is not None else \
            index.index_of(origin + math.ceil((part.start_s - TOLERANCE_S) / tb))
        after = part.end_frame if part.end_frame is not None else \
            index.index_of(origin + math.ceil((part.end_s - TOLERANCE_S) / tb))
        start = index.pts_at(first)
        end = index.pts_at(after) if after > first else start
    if start is None or end == start:
        raise ClipError(f"no frame of {source} lies between {part.start_s:.3f} s and {part.end_s:.3f} s")
    return int(start), None if end is None else int(end)


# --------------------------------------------------------------------------- exact: re-encode


class _Encoder:
    """Decodes each part's frames and samples and encodes them into one output."""

    def __init__(self, container, parts: list[Part], crf: int, preset: str):
        self.out = container
        first = probe(parts[0].source)  # upright size, rate
        self.width, self.height = first.width - first.width % 2, first.height - first.height % 2
        with open_container(parts[0].source) as src:
            v = src.streams.video[0]
            self.tb = v.time_base
            rate = v.average_rate or v.guessed_rate or Fraction(25)
            pix = v.codec_context.pix_fmt or "yuv420p"
        # the first source with sound sets the clip's rate and layout; the others are resampled to it
        audio = next(filter(None, map(_audio_params, dict.fromkeys(p.source for p in parts))), None)
        self.pix_fmt = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}.get(pix, pix)
        if self.pix_fmt not in X264_PIX_FMTS:
            self.pix_fmt = "yuv420p"
        self.video = container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height, self.video.pix_fmt = self.width, self.height, self.pix_fmt
        self.video.time_base = self.tb
        self.video.codec_context.time_base = self.tb
        self.video.options = {"crf": str(crf), "preset": preset}
        self.audio = None
        if audio is not None:
            self.rate, self.layout = audio
            self.audio = container.add_stream(AUDIO_CODEC, rate=self.rate)
            self.audio.layout = self.layout
            self.audio.time_base = Fraction(1, self.rate)
        self.scaler = VideoReformatter()
        self.base_s = 0.0  # where the next part starts in the clip
        self.samples = 0  # audio samples written
        self.frames = 0
        self.duration_s = 0.0
        self.early_s = self.late_s = 0.0

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def add(self, part: Part) -> None:
        with open_container(part.source) as src:
            v = src.streams.video[0]
            a = src.streams.audio[0] if self.audio is not None and src.streams.audio else None
            v.thread_type = "AUTO"
            start, end = _window(part.source, part, v)
            vtb = v.time_base
            rotation = probe(part.source).rotation
            src.seek(start, stream=v, backward=True)  # the keyframe at or before the first frame
            t0 = float(start * vtb)
            t1 = float(end * vtb) if end is not None else math.inf
            resampler = av.AudioResampler(format=AUDIO_FORMAT, layout=self.layout, rate=self.rate) \
                if a is not None else None
            audio_cursor: float | None = None  # source time of the next resampled sample
            last: tuple[int, int] | None = None  # (pts, duration) of the last frame kept
            after: int | None = None  # pts of the first frame after the part
            video_done = False
            streams = [v] + ([a] if a is not None else [])
            for packet in src.demux(*streams):
                if packet.stream.type == "video":
                    for vf in _decode(packet):
                        if vf.pts is None or vf.pts < start:
                            continue
                        if end is not None and vf.pts >= end:
                            after = vf.pts if after is None else min(after, vf.pts)
                            video_done = True
                            continue
                        if last is not None and vf.pts <= last[0]:
                            continue  # a repeated timestamp (damage): one frame a PTS
                        self._video(vf, vtb, start, rotation)
                        last = (vf.pts, vf.duration or 0)
                elif resampler is not None:
                    for af in _decode(packet):
                        if af.pts is None:
                            continue
                        begin = float(af.pts * af.time_base)
                        if audio_cursor is None or abs(begin - audio_cursor) > 0.5:
                            audio_cursor = begin  # the first frame, or a jump in the stream
                        for rf in resampler.resample(af):
                            audio_cursor = self._samples(rf, audio_cursor, t0, t1)
                if video_done and (resampler is None or (audio_cursor is not None and audio_cursor >= t1)):
                    break
            if last is None:
                raise ClipError(f"no frame of {part.source} lies between {part.start_s:.3f} s and "
                                f"{part.end_s:.3f} s")
            step = (after - last[0]) if after is not None else (last[1] or _step(v, vtb))
            length = float((last[0] + step - start) * vtb)
        self.duration_s += length
        self.base_s += length
        if self.audio is not None:  # pad (or never pass) the part's own length, so parts stay in sync
            want = round(self.base_s * self.rate)
            if self.samples < want:
                self._silence(want - self.samples)

    def _video(self, vf, vtb, start: int, rotation: int) -> None:
        if rotation:
            rgb = upright(vf.to_ndarray(format="rgb24"), rotation)
            src = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        else:
            src = vf
        if (src.width, src.height, src.format.name) != (self.width, self.height, self.pix_fmt):
            frame = self.scaler.reformat(src, width=self.width, height=self.height, format=self.pix_fmt)
        else:
            frame = src
        frame.pts = round((self.base_s + float((vf.pts - start) * vtb)) / self.tb)
        frame.time_base = self.tb
        frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose each frame's type
        self.out.mux(self.video.encode(frame))
        self.frames += 1

    def _samples(self, rf, cursor: float, t0: float, t1: float) -> float:
        """Write the samples of resampled frame ``rf`` (starting at source time
        ``cursor``) that fall in ``[t0, t1)``; returns the time after them."""
        n = rf.samples
        lo = max(0, math.ceil((t0 - cursor) * self.rate - 1e-6))
        hi = min(n, math.ceil((t1 - cursor) * self.rate - 1e-6)) if math.isfinite(t1) else n
        if hi > lo:
            data = rf.to_ndarray()[:, lo:hi]
            self._write_audio(np.ascontiguousarray(data))
        return cursor + n / self.rate

    def _silence(self, count: int) -> None:
        channels = len(self.audio.layout.channels)
        for a in range(0, count, 4096):
            self._write_audio(np.zeros((channels, min(4096, count - a)), np.float32))

    def _write_audio(self, data: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(data, format=AUDIO_FORMAT, layout=self.layout)
        frame.sample_rate = self.rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self.rate)
        self.out.mux(self.audio.encode(frame))
        self.samples += data.shape[1]

    def finish(self) -> None:
        self.out.mux(self.video.encode(None))
        if self.audio is not None:
            self.out.mux(self.audio.encode(None))


def _audio_params(source: str) -> tuple[int, str] | None:
    """(sample rate, layout name) of a source's first audio stream, if any."""
    with open_container(source) as src:
        if not src.streams.audio:
            return None
        cc = src.streams.audio[0].codec_context
        return int(cc.sample_rate or 48000), cc.layout.name if cc.layout else "stereo"


def _decode(packet) -> list:
    try:
        return packet.decode()
    except av.FFmpegError:
        return []  # a damaged packet: its frame is missing from the clip, as from any decode


def _step(stream, tb) -> int:
    rate = stream.average_rate or stream.guessed_rate or 25
    return max(1, round(1 / (float(rate) * float(tb))))


# --------------------------------------------------------------------------- copy: packets as they are


class _Copier:
    """Copies each part's packets, from the keyframe at or before its start."""

    def __init__(self, container):
        self.out = container
        self.video = self.audio = None
        self.base_s = 0.0
        self.frames = 0
        self.duration_s = 0.0
        self.early_s = self.late_s = 0.0
        self.has_audio = False

    def add(self, part: Part) -> None:
        with open_container(part.source) as src:
            v = src.streams.video[0]
            a = src.streams.audio[0] if src.streams.audio else None
            if self.video is None:
                self.video = self.out.add_stream_from_template(v)
                self.audio = self.out.add_stream_from_template(a) if a is not None else None
                self.has_audio = self.audio is not None
            start, end = _window(part.source, part, v)
            vtb = v.time_base
            src.seek(start, stream=v, backward=True)
            key: int | None = None  # PTS of the keyframe the part starts at
            top = None  # latest (pts + duration) copied
            first = after = None  # PTS of the part's first frame, and of the first frame after it
            audio_done = self.audio is None
            for packet in _packets(src, v, a if self.audio is not None else None):
                if packet.stream.type == "video":
                    if key is None:
                        if not packet.is_keyframe or packet.pts is None:
                            continue
                        key = packet.pts
                    if packet.pts >= start and (end is None or packet.pts < end):
                        first = packet.pts if first is None else min(first, packet.pts)
                    if end is not None and packet.pts >= end:
                        after = packet.pts if after is None else min(after, packet.pts)
                    # Every frame before the end decodes before it (a frame's DTS is at most
                    # its PTS, its references' DTS lower still): stop at the first DTS past it.
                    if end is not None and (packet.dts if packet.dts is not None else packet.pts) >= end:
                        if audio_done:
                            break
                        continue
                    shift = round(self.base_s / vtb) - key
                    stamp = packet.pts + (packet.duration or _step(v, vtb))
                    top = stamp if top is None else max(top, stamp)
                    self._mux(packet, self.video, shift)
                    self.frames += 1
                elif key is not None:
                    t = float(packet.pts * packet.time_base)
                    if t < float(key * vtb) - 1e-6:
                        continue
                    if end is not None and t >= float(end * vtb):
                        audio_done = True
                        continue
                    self._mux(packet, self.audio, round((self.base_s - float(key * vtb)) / packet.time_base))
            if key is None or top is None:
                raise ClipError(f"no frame of {part.source} lies between {part.start_s:.3f} s and "
                                f"{part.end_s:.3f} s")
            length = float((top - key) * vtb)
            self.early_s = max(self.early_s, float(((first if first is not None else start) - key) * vtb))
            if after is not None:
                self.late_s = max(self.late_s, float((top - after) * vtb))
        self.duration_s += length
        self.base_s += length

    def _mux(self, packet, stream, shift: int) -> None:
        if packet.pts is not None:
            packet.pts += shift
        if packet.dts is not None:
            packet.dts += shift
        packet.stream = stream
        self.out.mux(packet)

    def finish(self) -> None:
        pass


def _packets(src, video, audio) -> Iterator:
    """Packets of the video (and audio) stream with a timestamp, in file order."""
    streams = [video] + ([audio] if audio is not None else [])
    for packet in src.demux(*streams):
        if packet.size and packet.pts is not None:
            yield packet
