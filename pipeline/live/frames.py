"""A reader thread per live stream: open, decode, sample by PTS, reconnect.

Times are the stream's PTS relative to its first frame. After a reconnect
the stream's clock may have restarted, so the new connection's frames are
placed by the wall clock (never before the last frame seen) and the time
in between is a :class:`Gap`: recorded, never tagged.

Frames go to a :class:`LatestQueue`. When it is full and the stream is not
ahead of real time (a camera, a live URL), the oldest frame is dropped, so
the model always works on the newest ones and memory stays bounded; a
source that is ahead of real time (a file piped in, a burst on connect) is
made to wait instead, as a file would be.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from pipeline.decode.av_open import frame_converter, open_info
from pipeline.decode.base import PtsSampler, one_line
from pipeline.live.sources import LiveSource, open_args
from pipeline.types import Sampling, VideoInfo, VideoOpenError

log = logging.getLogger(__name__)

# A stream this far ahead of the wall clock is not live (yet): wait, don't drop.
AHEAD_SLACK_S = 1.0


@dataclass(frozen=True)
class LiveFrame:
    """One sampled frame: ``index`` counts frames seen, ``time_s`` is
    stream time, ``wall_s`` the wall clock (Unix seconds) when it was
    received (decoded here), ``seen_at`` the same clock, for latencies."""

    index: int
    time_s: float
    wall_s: float
    image: np.ndarray
    seen_at: float


@dataclass(frozen=True)
class Gap:
    """Stream time with no frames: a dropped connection or a stall."""

    start_s: float
    end_s: float
    reason: str


@dataclass(frozen=True)
class Opened:
    """A connection opened (``attempt`` 0: the first one)."""

    info: VideoInfo
    attempt: int


@dataclass(frozen=True)
class StreamEnd:
    """The reader stopped: ``reason`` is eof, duration, max_frames, stopped or error."""

    reason: str
    error: str | None = None


@dataclass(frozen=True)
class Backoff:
    """How reconnects are paced: ``initial_s`` doubling up to ``max_s``;
    ``attempts`` failed tries in a row end the stream (None: never)."""

    initial_s: float = 0.5
    max_s: float = 30.0
    attempts: int | None = 10

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, attempt - 1))


class LatestQueue:
    """A bounded queue of a stream's items that drops its oldest frame when
    full and the stream is live (markers are never dropped).

    Args:
        maxsize: the most frames held.
        wake: set whenever an item arrives (one event serves every stream).
        clock: seconds, for telling live from ahead of real time.
        drops: False for a source that has no real time (a file forced
            live): it always waits.
    """

    def __init__(self, maxsize: int, wake: threading.Event, clock: Callable[[], float] = time.monotonic,
                 *, drops: bool = True):
        self.maxsize = max(1, maxsize)
        self.drops = drops
        self.wake = wake
        self.clock = clock
        self.dropped = 0
        self.high_water = 0
        self._items: collections.deque = collections.deque()
        self._frames = 0
        self._cond = threading.Condition()
        self._origin: float | None = None  # the clock when stream time 0 was read

    def put_frame(self, frame: LiveFrame, stop: threading.Event) -> None:
        """Add a frame; drop the oldest when full and live, else wait for room."""
        with self._cond:
            if self._origin is None:
                self._origin = self.clock() - frame.time_s
            while self._frames >= self.maxsize and not stop.is_set():
                ahead = frame.time_s - (self.clock() - self._origin)
                if self.drops and ahead <= AHEAD_SLACK_S:
                    self._drop_oldest()
                    break
                self._cond.wait(0.05)
            self._append(frame)
            self._frames += 1
            self.high_water = max(self.high_water, self._frames)

    def put_marker(self, item: object) -> None:
        with self._cond:
            self._append(item)

    def rebase(self, time_s: float) -> None:
        """A reconnect: real time restarts at stream time ``time_s``."""
        with self._cond:
            self._origin = self.clock() - time_s

    def take(self, limit: int) -> list:
        """Up to ``limit`` frames from the front, stopping after a marker
        (a marker is returned alone when it comes first)."""
        out: list = []
        with self._cond:
            while self._items and len(out) < limit:
                if not isinstance(self._items[0], LiveFrame):
                    if not out:
                        out.append(self._items.popleft())
                    break
                out.append(self._items.popleft())
                self._frames -= 1
            self._cond.notify_all()
        return out

    def _append(self, item: object) -> None:
        self._items.append(item)
        self.wake.set()

    def _drop_oldest(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, LiveFrame):
                del self._items[i]
                self._frames -= 1
                self.dropped += 1
                return


class StreamReader:
    """Reads one live source into a :class:`LatestQueue` in a daemon thread.

    Args:
        source: the input.
        sampling: which frames to keep, by PTS (``every_n_frames`` counts
            frames seen).
        queue: where frames and markers go.
        stop: set to end the stream (a signal, the run ending); :meth:`halt`
            ends this stream alone.
        short_side: frames are resized so their shorter side is this.
        read_timeout_s: no data for this long is a drop (``--timeout``).
        duration_s: stop after this much stream time (``--duration``).
        reconnect: reopen a dropped source (URLs and cameras) with ``backoff``.
    """

    def __init__(self, source: LiveSource, sampling: Sampling, queue: LatestQueue,
                 stop: threading.Event, *, short_side: int | None, read_timeout_s: float,
                 duration_s: float | None = None, reconnect: bool = False,
                 backoff: Backoff = Backoff()) -> None:
        self.source, self.queue = source, queue
        self._halted = threading.Event()
        self.stop = _EitherEvent(stop, self._halted)
        self.sampler = PtsSampler(sampling)
        self.short_side, self.read_timeout_s = short_side, read_timeout_s
        self.duration_s, self.reconnect, self.backoff = duration_s, reconnect, backoff
        self.frames_seen = 0
        self.corrupt = 0
        self.reconnects = 0
        self.first_wall_s: float | None = None  # wall clock of the first frame
        self._last_s: float | None = None  # stream time of the last frame seen
        self._step_s = 0.04  # frame spacing, for a rebased clock
        self._lost: str | None = None  # why the previous connection ended
        self._thread = threading.Thread(target=self._run, name=f"live-{source.kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def halt(self) -> None:
        """Stop reading this stream (its model side ended it: a full disk),
        as ``stop`` would, while the run's other streams go on."""
        self._halted.set()

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        try:
            end = self._connections()
        except Exception as ex:  # a library bug ends this stream only
            log.debug("live reader of %s failed: %s", self.source.shown,
                      self.source.scrub(traceback.format_exc()))  # no credentials, even in --debug
            end = StreamEnd("error", f"{type(ex).__name__}: {self.source.scrub(one_line(ex))}")
        self.queue.put_marker(end)

    def _connections(self) -> StreamEnd:
        failures = 0
        while True:
            before = self.frames_seen
            try:
                finished = self._read_connection(failures)
                if finished is not None:
                    return finished
                why = "connection closed"
            except _Unopenable as ex:  # retrying cannot help
                return StreamEnd("error", str(ex))
            except (av.FFmpegError, OSError, VideoOpenError) as ex:
                why = self._why(ex)
            if self.stop.is_set():
                return StreamEnd("stopped")
            failures = 0 if self.frames_seen > before else failures + 1
            if not (self.reconnect and self.source.can_reconnect):
                return StreamEnd("eof" if why == "connection closed" else "error", None
                                 if why == "connection closed" else why)
            if self.backoff.attempts is not None and failures > self.backoff.attempts:
                return StreamEnd("error", f"gave up after {failures - 1} reconnects: {why}")
            if self._lost is None and self._last_s is not None:
                self._lost = why
            delay = self.backoff.delay(max(failures, 1))
            log.warning("%s: %s; reconnecting in %.1f s", self.source.shown, why, delay)
            if self.stop.wait(delay):
                return StreamEnd("stopped")
            self.reconnects += 1

    def _why(self, ex: BaseException) -> str:
        text = self.source.scrub(one_line(ex))
        if isinstance(ex, TimeoutError) or "exit requested" in text.lower():
            return f"no data for {self.read_timeout_s:g} s (timeout)"
        return text

    def _read_connection(self, attempt: int) -> StreamEnd | None:
        """One connection; a StreamEnd when the stream is over, None when it
        was lost (EOF of a live source). Raises on a failed open or read."""
        file, kwargs = open_args(self.source, self.read_timeout_s)
        try:
            container = av.open(file, **kwargs)
        except av.error.ProtocolNotFoundError as ex:  # PyAV's wheels build FFmpeg without libsrt
            scheme = self.source.shown.split("://", 1)[0]
            raise _Unopenable(f"cannot open {self.source.shown}: the FFmpeg inside PyAV has no "
                                 f"{scheme} protocol (install PyAV built on an FFmpeg with it)") from ex
        except av.FFmpegError as ex:
            raise VideoOpenError(f"cannot open {self.source.shown}: {self._why(ex)}") from ex
        with container:
            if not container.streams.video:
                raise VideoOpenError(f"no video stream in {self.source.shown}")
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"  # frame threads hold back a frame per thread: latency, live
            finished = self._decode(container, stream, attempt)
        if finished is None and not self.source.can_reconnect:
            return StreamEnd("eof")
        return finished

    def _decode(self, container, stream, attempt: int) -> StreamEnd | None:
        to_rgb = clock = None
        for packet in container.demux(stream):
            if self.stop.is_set():
                return StreamEnd("stopped")
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self.corrupt += 1
                continue
            for vf in decoded:
                if clock is None:  # the first frame says how it is rotated
                    info = open_info(container, self.source.shown, int(vf.rotation) % 360)
                    self.queue.put_marker(Opened(info, attempt))
                    to_rgb = frame_converter(info, self.short_side)
                    clock = _PieceClock(float(stream.time_base or 1), info.avg_fps)
                end = self._frame(vf, clock, to_rgb)
                if end is not None:
                    return end
        return None

    def _frame(self, vf, clock: _PieceClock, to_rgb) -> StreamEnd | None:
        if vf.is_corrupt:
            self.corrupt += 1
            return None
        now = time.time()
        time_s = clock.time_of(vf.pts, self._resume_at(now))
        if self.first_wall_s is None:
            self.first_wall_s = now
        if self.duration_s is not None and time_s >= self.duration_s:
            return StreamEnd("duration")
        if self._last_s is not None and time_s > self._last_s:
            self._step_s = min(time_s - self._last_s, 1.0) if clock.count > 1 else self._step_s
        self._last_s = time_s
        index = self.frames_seen
        self.frames_seen += 1
        if self.sampler.keep(index, time_s):
            frame = LiveFrame(index, time_s, now, to_rgb(vf), now)
            self.queue.put_frame(frame, self.stop)
        return StreamEnd("max_frames") if self.sampler.done else None

    def _resume_at(self, now: float) -> float | None:
        """Where a new connection's first frame goes on the stream clock:
        the wall time since the first frame, never before the last frame
        (+ one frame); None on the first connection. Records the gap."""
        if self._lost is None or self._last_s is None or self.first_wall_s is None:
            return None
        at = max(self._last_s + self._step_s, now - self.first_wall_s)
        self.queue.put_marker(Gap(self._last_s, at, self._lost))
        self.queue.rebase(at)
        self._lost = None
        return at


class _EitherEvent:
    """Set while either of two events is (the run's stop, a stream's own
    halt): what a reader waits on, with an :class:`threading.Event`'s
    ``is_set`` and ``wait``."""

    POLL_S = 0.05

    def __init__(self, first: threading.Event, second: threading.Event):
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.first.wait(min(left, self.POLL_S))
        return True


class _Unopenable(VideoOpenError):
    """An input no retry can open (a protocol this FFmpeg lacks)."""


class _PieceClock:
    """Stream time of one connection's frames: PTS relative to the first
    frame, plus where the connection starts on the stream clock."""

    def __init__(self, time_base: float, fps: float | None):
        self.tb, self.frame_s = time_base, 1.0 / (fps or 25.0)
        self.first_pts: int | None = None
        self.offset = 0.0
        self.last = -1.0
        self.count = 0

    def time_of(self, pts: int | None, resume_at: float | None) -> float:
        if self.count == 0:
            self.offset = resume_at or 0.0
            self.first_pts = pts
        self.count += 1
        if pts is None or self.first_pts is None:  # rare; extrapolate from the previous frame
            t = self.last + self.frame_s if self.count > 1 else self.offset
        else:
            t = self.offset + (pts - self.first_pts) * self.tb
        if t < self.last:  # the PTS jumped back (a looped or spliced stream): continue from here
            self.offset += self.last + self.frame_s - t
            t = self.last + self.frame_s
        self.last = t
        return t
