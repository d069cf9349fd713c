"""The default backend: PyAV (FFmpeg bindings).

PyAV trap: touching a stream object after its container is closed segfaults
the interpreter, so every stream attribute is read inside the ``with`` that
owns the container, and no stream object outlives it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
from collections.abc import Iterator

import av
import av.logging
import numpy as np

from pipeline.decode.av_open import frame_converter, open_container, probe
from pipeline.decode.base import (
    Decoder,
    PtsSampler,
    interval_in_frames,
    one_line,
)
from pipeline.decode.damage import LISTENER, DamageWatch, Span, count_concealed, first_words, is_damage
from pipeline.decode.packets import PacketIndex
from pipeline.decode.prints import JumpKeeper, thumbnail
from pipeline.types import (
    DecodeError,
    DecodeStats,
    Frame,
    GapScan,
    Sampling,
    VideoInfo,
    VideoOpenError,
)

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
# A forced ``keyframes`` strategy is refused (``fast`` instead) when keyframes
# are more than this many sampling steps apart: most samples would be lost.
KEYFRAME_MAX_STEPS = 4.0
_EPS = 1e-6
# FFmpeg's skip_loop_filter (deblocking skipped on: "noref" non-reference frames,
# "all" every frame) per strategy; what is not named keeps the filter. Measured
# by benchmarks/bench.py --decode-study (docs/PERFORMANCE.md) on 720p H.264:
# keyframes + "all": 3.5% less decode CPU, demo-model embeddings at cosine 0.99987
# to the filtered decode (each keyframe is decoded alone, so nothing drifts);
# fast + "all": 12% less but cosine 0.977 (unfiltered references drift over the
# GOP), so fast keeps the filter; "noref" changes nothing here (fast skips those
# frames already; keyframes have none).
LOOP_FILTER_SKIP: dict[str, str] = {"keyframes": "all"}
FRAME_RULE_NOTE = ("every_n_frames under strategy {strategy} keeps the first decoded frame at or "
                   "after each N-th frame's time, not exactly frames 0, N, 2N...; exact or auto keeps those")
_WARNED: set[str] = set()  # warnings already given in this process


def _warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` comes up (a batch gets one, not one per input)."""
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s", message)


class _Clock:
    """Turns decoded frames into (index, pts_s): true PTS relative to the start.

    With a :class:`PacketIndex` (strategies that skip frames) the index is the
    frame's place among all packets in presentation order; without one
    (``exact``) decoded frames are counted.
    """

    def __init__(self, stream, fps: float | None, table: PacketIndex | None = None):
        self.tb = float(stream.time_base)
        self.start = stream.start_time or 0
        self.fps = fps or 25.0
        self.table = table
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
        if self.table is not None and vf.pts is not None:
            index = self.table.index_of(vf.pts)
        else:
            index = self.count
        if resync:  # the demuxer drops damaged packets silently, so the table misses them too
            index = max(index, round(pts_s * self.fps))
        self.count = index + 1
        return index, pts_s

    def stream_end_s(self) -> float:
        """Where the stream ends: its last packet's PTS when known, else the last frame's."""
        last = self.table.last_pts() if self.table is not None else None
        return (last - self.start) * self.tb if last is not None else self.last_s


def _decoded_frames(container, stream, stats: DecodeStats, keyframes_only: bool = False,
                    watch: DamageWatch | None = None) -> Iterator:
    """Every decodable frame in presentation order; damage is counted, not raised.

    FFmpeg's lines on this thread are caught call by call, so none reaches
    the sink of :mod:`pipeline.decode.damage`; ``watch`` hears them (the
    demuxer's count as corrupt packets) and marks what to decode again.
    """
    packets = _keyframe_packets(container.demux(stream)) if keyframes_only else container.demux(stream)
    while True:
        packet = _next_packet(packets, stats, watch)
        if packet is _END:
            return
        yield from _decode(stream, packet, stats, watch)
        if packet is None:
            return


_END = object()  # the demuxer's end


def _next_packet(packets: Iterator, stats: DecodeStats, watch: DamageWatch | None):
    """The next packet; None when the demuxer gave up (flush the decoder), ``_END`` at the end."""
    with av.logging.Capture() as lines:
        try:
            packet = next(packets)
        except StopIteration:
            packet = _END
        except av.FFmpegError as ex:
            # The demuxer gave up (truncated/garbled file): keep what we have.
            stats.corrupt_packets += 1
            stats.notes.append(f"stopped reading early: {one_line(ex)}")
            packet = None
    if watch is not None:
        stats.corrupt_packets += watch.demuxed(lines)  # it skipped damaged data and read on
        if packet is not None and packet is not _END:
            watch.feeding(packet)
    return packet


def _decode(stream, packet, stats: DecodeStats, watch: DamageWatch | None) -> list:
    """The frames one packet (None: the flush) lets out of the decoder."""
    failed = False
    with av.logging.Capture() as lines:
        try:
            frames = stream.codec_context.decode(packet)
        except av.FFmpegError:
            stats.corrupt_packets += 1
            frames, failed = [], True
    if watch is not None:
        watch.decoded(lines, frames, failed)
    return frames


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
      Refused, with a warning and a note, for ``fast`` when keyframes are too
      sparse for the sampling (:func:`keyframes_refusal`).
    * ``"auto"``: ``exact`` for ``every_n_frames`` (only exact decoding knows
      which frame is the N-th) and when samples are less than 4 frames apart
      (or the step is unknown); ``keyframes`` when they are at least 2 keyframe
      spacings apart, or a whole multiple of a fixed keyframe spacing (see
      :func:`keyframes_suffice`; spacings come from the first 300 packets'
      keyframe flags, without decoding); ``fast`` otherwise.

    Under a forced ``fast``/``keyframes``, ``every_n_frames`` becomes a time
    step of ``n / avg_fps`` seconds (a warning, once, and a note say so).
    Skipped frames cannot be counted, so one demux pass (no decoding,
    :mod:`pipeline.decode.packets`) first lists every packet's PTS:
    ``Frame.index`` is then the frame's presentation-order index under
    every strategy, on VFR video too. ``Frame.pts_s`` is always
    the frame's true PTS minus the stream start time.

    Damage goes to :attr:`stats` (``corrupt_packets``, notes) alike on every
    decode: FFmpeg's own lines say where it is, and a GOP they name is
    decoded again on one thread to count its concealed frames
    (:mod:`pipeline.decode.damage`). Concealed frames are kept.
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
        return self._choose(sampling)[0]

    def _choose(self, sampling: Sampling) -> tuple[str, str | None]:
        """The strategy for ``sampling``, and why it differs from the one asked for."""
        fps = self.info.avg_fps
        step = interval_in_frames(sampling, fps)
        if self.strategy != "auto":
            # every_n_frames needs a frame rate to become a time step when skipping.
            if self.strategy != "exact" and step is None:
                return "exact", f"strategy {self.strategy} needs a frame rate; decoded exactly"
            if self.strategy == "keyframes":
                reason = keyframes_refusal(step, keyframe_spacings(self.path), fps)
                if reason:
                    return "fast", f"strategy keyframes refused: {reason}; decoded with fast instead"
            return self.strategy, None
        # A frame rule names frames, and only exact decoding can tell which one is the N-th.
        if step is None or step < FAST_MIN_STEP or sampling.every_n_frames is not None:
            return "exact", None
        return ("keyframes" if keyframes_suffice(step, keyframe_spacings(self.path)) else "fast"), None

    def frames_at(self, indices: list[int]) -> list[Frame]:
        """The frames at ``indices`` (see :func:`read_frames_by_index`)."""
        if self._closed:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        frames, decoded = _read_by_index(self.path, indices, self.short_side)
        self._stats = DecodeStats(frames_decoded=decoded, frames_sampled=len(frames), strategy="exact")
        return frames

    def scan_gaps(self, gaps: list[tuple[int, int]]) -> list[GapScan]:
        """Every frame of each gap (see :func:`scan_gaps`)."""
        if self._closed:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        scans = scan_gaps(self.path, gaps, self.short_side)
        self._stats = DecodeStats(frames_decoded=sum(s.decoded for s in scans),
                                  frames_sampled=sum(len(s.indices) for s in scans), strategy="exact")
        return scans

    def frames(self, sampling: Sampling) -> Iterator[Frame]:
        if self._closed:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        strategy, why = self._choose(sampling)
        self._stats = stats = DecodeStats(strategy=strategy)
        if why:
            log.warning("%s: %s", self.path, why)
            stats.notes.append(why)
        if sampling.every_n_frames is not None and strategy != "exact":
            note = FRAME_RULE_NOTE.format(strategy=strategy)
            stats.notes.append(note)
            _warn_once(note, note)
        LISTENER.start()  # FFmpeg's lines, for damage its corrupt flag may miss
        try:
            yield from self._pass(sampling, strategy, stats)
        finally:
            LISTENER.stop()

    def _pass(self, sampling: Sampling, strategy: str, stats: DecodeStats) -> Iterator[Frame]:
        """One decode of the stream; then the suspect GOPs again, on one thread."""
        sampler = PtsSampler(_time_based(sampling, self.info.avg_fps, strategy))
        to_rgb = frame_converter(self.info, self.short_side)
        watch, last_pts = DamageWatch(), None
        with contextlib.ExitStack() as stack:
            container = stack.enter_context(open_container(self.path))
            # Skipped frames cannot be counted: their places come from the packets.
            packets = None if strategy == "exact" else packet_index(stack, self.path)
            stream = container.streams.video[0]
            _configure(stream, strategy, _THREAD_TYPES[self.threads])
            clock = _Clock(stream, self.info.avg_fps, packets)
            for vf in _decoded_frames(container, stream, stats, strategy == "keyframes", watch):
                # Only what this thread saw resyncs (demuxer, failed packets): the flag is racy.
                # For the same reason a frame FFmpeg concealed is kept, not dropped (runs would
                # differ in their frames); the re-check below counts it.
                index, pts_s = clock(vf, resync=stats.corrupt_packets > 0)
                stats.frames_decoded += 1
                if sampler.keep(index, pts_s):
                    stats.frames_sampled += 1
                    last_pts = vf.pts
                    yield Frame(index=index, pts_s=pts_s, image=to_rgb(vf))
                    if self._closed:  # decoder closed while we were suspended
                        return
                if sampler.done:
                    _decode(stream, None, stats, watch)  # let every packet fed say what it saw
                    break
            end_s = None if sampler.done else clock.stream_end_s()
            if end_s is not None:  # the stream's length in frames, for edge refinement
                stats.frames_total = clock.count if packets is None else packets.frame_count()
        _recheck_damage(self.path, watch, strategy, stats, last_pts if sampler.done else None)
        _finish(stats, self.path, packets)
        if end_s is not None:
            _note_duration(stats, self.info, end_s)


def _configure(stream, strategy: str, thread_type: str) -> None:
    """Threading, frame skipping and loop filter for ``strategy``, before the first packet."""
    stream.thread_type = thread_type
    if strategy != "exact":
        stream.codec_context.skip_frame = "NONREF" if strategy == "fast" else "NONKEY"
    if strategy in LOOP_FILTER_SKIP:  # an open option: set before the first packet opens the codec
        stream.codec_context.options = {"skip_loop_filter": LOOP_FILTER_SKIP[strategy]}


def _recheck_damage(path: str, watch: DamageWatch, strategy: str, stats: DecodeStats,
                    upto: int | None) -> None:
    """Count the frames the pass's suspect GOPs hold damaged, decoded again
    on one thread (see :mod:`pipeline.decode.damage`), and note the damage."""
    if watch.demux_lines:
        times = f" ({len(watch.demux_lines)} times)" if len(watch.demux_lines) > 1 else ""
        stats.notes.append(f"the demuxer skipped damaged data{times}: {first_words(watch.demux_lines[0])}")
    flagged, lines = 0, []
    for span in watch.spans():
        count, said = _recheck(path, span, strategy, upto)
        flagged, lines = flagged + count, lines + said
    if flagged:
        stats.corrupt_packets += flagged
        said = f": {first_words(lines[0])}" if lines else ""
        stats.notes.append(f"FFmpeg found damage in {flagged} frame{'s' * (flagged > 1)}{said}")


def _recheck(path: str, span: Span, strategy: str, upto: int | None) -> tuple[int, list]:
    """Corrupt frames in ``span`` (see :func:`count_concealed`) and the
    decoder's damage lines, decoded on this thread alone: from the span's
    lead keyframe, or from the start when a seek overshot it."""
    for lead in dict.fromkeys((span.lead, None)):
        with open_container(path) as container, av.logging.Capture() as lines:
            stream = container.streams.video[0]
            codec = stream.codec_context.name  # read inside the `with`
            _configure(stream, strategy, "NONE")  # one thread: the flag is reliable
            try:
                if lead is not None:
                    container.seek(lead, stream=stream, backward=True)
                packets = container.demux(stream)
                found, flagged = count_concealed(
                    stream, _keyframe_packets(packets) if strategy == "keyframes" else packets, span, upto)
            except av.FFmpegError:
                found = False
        if found:
            return flagged, [line for line in lines if line[1] == codec and is_damage(line)]
    return 0, []


def packet_index(stack: contextlib.ExitStack, path: str) -> PacketIndex:
    """A :class:`PacketIndex` over a second container of ``path``, closed with ``stack``."""
    container = stack.enter_context(open_container(path))
    return PacketIndex(container, container.streams.video[0])


def _time_based(sampling: Sampling, fps: float | None, strategy: str) -> Sampling:
    """Sampling to apply when frames may be skipped: every_n_frames -> seconds."""
    if strategy == "exact" or sampling.every_n_frames is None:
        return sampling
    return Sampling(every_seconds=sampling.every_n_frames / fps, max_frames=sampling.max_frames)


def _finish(stats: DecodeStats, path: str, table: PacketIndex | None = None) -> None:
    if stats.frames_decoded == 0:
        raise DecodeError(f"no frame could be decoded from {path}")
    if stats.corrupt_packets:
        stats.notes.append(f"{stats.corrupt_packets} corrupt packets/frames")
        log.warning("%s: %d corrupt packets/frames", path, stats.corrupt_packets)
    if table is not None and table.unplaced:
        stats.notes.append(f"{table.unplaced} packets carry no timestamp: frame indices may be "
                           f"up to {table.unplaced} low")


# A claimed duration this many times the decoded one (and an hour longer) is
# not truncation but a wrong header: a 28 KB MKV claiming 1e14 ms.
CLAIMED_DURATION_FACTOR = 10.0
CLAIMED_DURATION_SLACK_S = 3600.0


def _note_duration(stats: DecodeStats, info: VideoInfo, end_s: float) -> None:
    """Note when the stream ends well before the container said it would:
    truncation, or a header that lies (reports then size from the frames)."""
    claimed = info.duration_s
    if not claimed or end_s >= 0.9 * claimed - 0.5:
        return
    if claimed > CLAIMED_DURATION_FACTOR * max(end_s, 1.0) + CLAIMED_DURATION_SLACK_S:
        stats.notes.append(f"warning: the container claims a duration of {claimed:.6g} s but its video "
                           f"ends at {end_s:.2f} s; the claimed duration is ignored")
    else:
        stats.notes.append(f"stream ended at {end_s:.2f} s of {claimed:.2f} s (truncated?)")


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


def keyframes_refusal(step: float | None, spacings: list[int], fps: float | None) -> str | None:
    """Why keyframes alone cannot serve samples ``step`` frames apart, or None.

    Keyframe-only decoding yields at most one sample per keyframe: fewer than
    two keyframes in the probed packets (a VFR phone clip: one keyframe in
    10 s gave a single sample), or keyframes more than
    ``KEYFRAME_MAX_STEPS`` sampling steps apart, lose most samples.
    """
    if not spacings:
        return f"fewer than two keyframes in the first {GOP_PROBE_PACKETS} packets"
    gop = float(statistics.median(spacings))
    if step is not None and gop > KEYFRAME_MAX_STEPS * step:
        unit = f" ({gop / fps:.2f} s)" if fps else ""
        sample = f" ({step / fps:.2f} s)" if fps else ""
        return (f"keyframes every {gop:g} frames{unit} are more than {KEYFRAME_MAX_STEPS:g} sampling "
                f"steps of {step:g} frames{sample} apart")
    return None


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
    """For each requested time, the first frame at or after it.

    A time past the end gives the last frame. Frames are upright RGB uint8;
    ``Frame.index`` is the presentation-order index (from the packets).

    Times are served in sorted order by one forward walk that seeks only when
    a keyframe lies between where decoding stands and the next time, so the
    work is at most one decode of the file plus one keyframe interval per
    time; before, every time decoded from its keyframe, which on a video with
    a single keyframe meant from the start, once per thumbnail.
    """
    info = probe(path)
    to_rgb = frame_converter(info, short_side)
    picked: dict[float, Frame] = {}
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(open_container(path))
        packets = packet_index(stack, path)
        walker = _Walker(container, container.streams.video[0], packets)
        for t in sorted(set(times_s)):
            vf = walker.first_at_or_after(t)
            if vf is None:
                raise DecodeError(f"no frame could be decoded near {t:.3f} s in {path}")
            pts_s = (vf.pts - walker.start) * walker.tb
            picked[t] = Frame(index=packets.index_of(vf.pts), pts_s=pts_s, image=to_rgb(vf))
    return [picked[t] for t in times_s]


def read_frames_by_index(path: str, indices: list[int], short_side: int | None = None) -> list[Frame]:
    """The frames at the given presentation-order indices, for edge refinement.

    Indices are served in ascending order by one forward walk (see
    :class:`_Walker`): a seek only when the next frame's keyframe lies past
    where decoding stands, so nearby frames (several edges in one GOP) share
    one seek, and only the frames asked for are converted to RGB. An index
    past the end of the stream, or whose frame cannot be decoded, is left
    out of the result.
    """
    return _read_by_index(path, indices, short_side)[0]


def _read_by_index(path: str, indices: list[int], short_side: int | None) -> tuple[list[Frame], int]:
    """:func:`read_frames_by_index`, and how many frames it decoded."""
    info = probe(path)
    to_rgb = frame_converter(info, short_side)
    out: list[Frame] = []
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(open_container(path))
        packets = packet_index(stack, path)
        stream = container.streams.video[0]
        walker = _Walker(container, stream, packets)
        for index in sorted(set(indices)):
            pts = packets.pts_at(index)
            if pts is None:
                break  # past the end: so is every later index
            vf = walker.first_at_or_after((pts - walker.start) * walker.tb)
            if vf is not None and vf.pts == pts and not vf.is_corrupt:
                out.append(Frame(index=index, pts_s=(pts - walker.start) * walker.tb, image=to_rgb(vf)))
    return out, walker.decoded


def scan_gaps(path: str, gaps: list[tuple[int, int]], short_side: int | None) -> list[GapScan]:
    """Frames ``lo..hi`` of each gap, decoded once: a thumbnail of every one,
    the full frame (at ``short_side``) only of those around each gap's
    largest jumps (:class:`~pipeline.decode.prints.JumpKeeper`).

    One forward walk serves every gap, ascending (a seek only when the next
    gap's keyframe lies past where decoding stands). Thumbnails are taken
    from the frame at the model's size, as the decord backend does, so both
    backends read the same evidence.
    """
    info = probe(path)
    to_rgb = frame_converter(info, short_side)
    out: list[GapScan] = []
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(open_container(path))
        packets = packet_index(stack, path)
        walker = _Walker(container, container.streams.video[0], packets)
        for lo, hi in sorted(set(gaps)):
            before = walker.decoded
            keeper = JumpKeeper(convert=lambda image: image)
            times: dict[int, float] = {}
            for index in range(max(lo, 0), hi + 1):
                pts = packets.pts_at(index)
                if pts is None:
                    break  # past the end
                vf = walker.first_at_or_after((pts - walker.start) * walker.tb)
                if vf is None or vf.pts != pts or vf.is_corrupt:
                    continue
                image = to_rgb(vf)  # what the model would see: both backends print the same pixels
                keeper.add(index, thumbnail(image), image)
                times[index] = (pts - walker.start) * walker.tb
            out.append(keeper.scan(lo, hi, times.__getitem__, walker.decoded - before))
    return out


class _Walker:
    """Decodes forward through a stream, seeking only when that saves work."""

    def __init__(self, container, stream, table: PacketIndex):
        self.container, self.stream, self.table = container, stream, table
        self.tb = float(stream.time_base)
        self.start = stream.start_time or 0
        self.frames: Iterator | None = None  # the decode in progress
        self.last = None  # the last frame it gave
        self.decoded = 0  # frames decoded so far, converted or not

    def first_at_or_after(self, t: float):
        """The first frame with PTS at or after ``t`` s (the last one past the end)."""
        target = self.start + math.ceil(t / self.tb - _EPS)
        if self.last is not None and self.last.pts >= target:
            return self.last  # a nearby earlier time already stopped here
        self._seek_if_ahead(target)
        picked = self.last
        for vf in self.frames:
            self.decoded += 1
            if vf.pts is None:
                continue
            picked = self.last = vf
            if vf.pts >= target:
                break
        return picked

    def _seek_if_ahead(self, target: int) -> None:
        """Seek when the keyframe before ``target`` is past the current frame
        (or the table knows no keyframes and nothing is decoded yet)."""
        key = self.table.keyframe_at_or_before(target)
        here = self.last.pts if self.last is not None else None
        if self.frames is not None and (key is None or (here is not None and key <= here)):
            return  # walking on decodes less than going back to that keyframe
        seek_to = key if key is not None else target
        self.container.seek(max(seek_to, self.start), stream=self.stream, backward=True)
        self.frames, self.last = _decoded_frames(self.container, self.stream, DecodeStats()), None
