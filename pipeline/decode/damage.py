"""Damage FFmpeg reports, told alike on every decode.

FFmpeg marks a frame it had to conceal with a corrupt flag, but under frame
threads it sets the flag racily: a B-frame holding 300 garbled bytes was
flagged in 28-49 of 60 decodes (slice threads neither flag nor conceal).
What FFmpeg does every time is say so in its log: the demuxer on the thread
reading packets ("0x00 at pos 2785 (0xae1) invalid as first byte of an EBML
number"), the decoder on the thread decoding the frame ("concealing 5 DC,
5 AC, 5 MV errors in B frame"): under frame threads, one of FFmpeg's own.

PyAV (``av.logging``) hands those lines to Python only while a log
level is set (``set_level`` is process-wide; by default every line is
dropped), and collects them with ``Capture``: a local one hears only the
thread it was made on, the global one every other thread, without telling
whose decoder spoke; identical consecutive lines are dropped unless
``skip_repeated`` is off. So:

* while any pass decodes, :class:`_Listener` sets the level, turns the repeat
  filter off and holds one global ``Capture`` (the sink). No FFmpeg line
  reaches Python's logging but at debug level, so none reaches the user's
  stderr; after the last pass the process is back to PyAV's silence.
* Lines logged on the decoding thread (the demuxer's always) are caught per
  call with a local ``Capture`` and are that pass's own.
* A damage line in the sink, or a flagged frame, makes the packets in flight
  suspect (:class:`DamageWatch`); after the pass their GOPs are decoded
  again on one thread, where the flag is reliable, and its flagged frames
  are the count. Another decode's damage in the same process costs a
  needless re-check, never a false report.

Both halves were measured alone (60 decodes each, docs/PERFORMANCE.md): the
lines told every frame-threaded decode, but a clean clip decoded beside a
damaged one was reported damaged 54 times in 60; a re-check triggered by the
flag alone inherits its race.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from dataclasses import dataclass

import av
import av.logging

# FFmpeg logs "concealing N DC, N AC, N MV errors" at INFO; errors at ERROR.
SINK_LEVEL = av.logging.INFO
DAMAGE_WORDS = ("concealing", "error while decoding")
# A worker logs a packet's damage before the packet this many later is fed
# (at most 16 frame threads, and up to 16 more while H.264 reorders): the
# packets in flight when a line is heard. Measured lag here: 0-2 of 3 threads.
SUSPECT_PACKETS = 48
# A worker that logs waits for the GIL, so listening is safe only where PyAV
# releases it wherever FFmpeg may wait for a worker (send, receive, flush, and,
# from 18.1.1 on, freeing a frame-threaded decoder: 18.1.0 holds it there, so
# closing a pass mid-GOP could hang). Older PyAV gets the racy flag alone.
CAN_LISTEN = tuple(int(n) for n in re.findall(r"\d+", av.__version__)[:3]) >= (18, 1, 1)


def is_damage(line: tuple[int, str, str]) -> bool:
    """Whether an FFmpeg log line ``(level, name, text)`` reports damage."""
    level, _, text = line
    return level <= av.logging.ERROR or any(word in text for word in DAMAGE_WORDS)


def first_words(line: tuple[int, str, str]) -> str:
    """A log line's text on one short line."""
    return " ".join(line[2].split())[:160]


class _Listener:
    """The process-wide sink for FFmpeg lines from threads nobody captures."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._sink: av.logging.Capture | None = None
        self._saved: tuple[int | None, bool] = (None, True)
        self._heard = 0  # damage lines the sink ever held

    def start(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1 or not CAN_LISTEN:
                return
            level = av.logging.get_level()
            self._saved = (level, av.logging.get_skip_repeated())
            av.logging.set_skip_repeated(False)
            self._sink = av.logging.Capture(local=False)
            self._sink.__enter__()
            av.logging.set_level(SINK_LEVEL if level is None else max(level, SINK_LEVEL))

    def stop(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._sink is None:
                return
            level, repeated = self._saved
            av.logging.set_level(level)
            self._drain()
            self._sink.__exit__(None, None, None)
            self._sink = None
            av.logging.set_skip_repeated(repeated)

    def heard(self) -> int:
        """Damage lines heard so far, by any thread of the process."""
        sink = self._sink
        if sink is not None and sink.logs:  # peeked unlocked (called per packet): a line
            with self._lock:  # appended meanwhile is read on the next call
                self._drain()
        return self._heard

    def _drain(self) -> None:
        if self._sink is None:
            return
        lines = self._sink.logs
        batch = lines[:len(lines)]
        del lines[:len(batch)]  # the callback appends at the end meanwhile
        for line in batch:
            self._heard += is_damage(line)
            logging.getLogger(f"libav.{line[1] or 'generic'}").debug("%s", first_words(line))


LISTENER = _Listener()


@dataclass(frozen=True)
class Span:
    """Packets to decode again: from the keyframe with PTS ``lead`` (None:
    the stream's start), counting frames from keyframe ``first`` (None: from
    the start) up to keyframe ``end`` (None: the end)."""

    lead: int | None
    first: int | None
    end: int | None


class DamageWatch:
    """One pass's damage: what it can pin itself (the demuxer's lines), and
    which GOPs (runs of packets from one keyframe to the next, in decode
    order) to decode again because something there looked damaged."""

    def __init__(self):
        self.fed = 0  # packets handed to the decoder
        self._keys: list[int] = []  # their positions of the keyframes among them
        self._key_pts: list[int | None] = []
        self._suspect: set[int] = set()  # GOP numbers; -1: before the first keyframe
        self._heard = LISTENER.heard()
        self.demux_lines: list[tuple[int, str, str]] = []

    def demuxed(self, lines: list) -> int:
        """Keep the demuxer's damage lines (this thread's); how many there were."""
        damage = [line for line in lines if is_damage(line)]
        self.demux_lines += damage
        if damage:
            self._mark_in_flight()
        return len(damage)

    def feeding(self, packet) -> None:
        """Note a packet about to be decoded."""
        if packet.is_keyframe:
            self._keys.append(self.fed)
            self._key_pts.append(packet.pts if packet.pts is not None else packet.dts)
        self.fed += 1

    def decoded(self, lines: list, frames: list, failed: bool) -> None:
        """After a decode call: suspect the packets in flight if this thread's
        lines, the sink, a flag or a failure says something was damaged."""
        heard = LISTENER.heard()
        if heard > self._heard or failed or any(map(is_damage, lines)) or any(f.is_corrupt for f in frames):
            self._heard = heard
            self._mark_in_flight()

    def _mark_in_flight(self) -> None:
        lo = self._gop_of(max(self.fed - SUSPECT_PACKETS, 0))
        self._suspect.update(range(lo, self._gop_of(max(self.fed - 1, 0)) + 1))

    def _gop_of(self, position: int) -> int:
        return bisect.bisect_right(self._keys, position) - 1

    def spans(self) -> list[Span]:
        """Runs of suspect GOPs, each with one GOP before it to decode from
        (an open GOP's first frames refer to the GOP before)."""
        out, gops = [], sorted(self._suspect)
        for i, gop in enumerate(gops):
            if i and gop == gops[i - 1] + 1:
                continue  # inside a run
            last = gop
            while last + 1 in self._suspect:
                last += 1
            lead = self._key_pts[gop - 1] if gop >= 1 else None
            first = self._key_pts[gop] if gop >= 0 else None
            end = self._key_pts[last + 1] if last + 1 < len(self._keys) else None
            out.append(Span(lead, first, end))
        return out


def count_concealed(stream, packets, span: Span, upto: int | None = None) -> tuple[bool, int]:
    """Decode ``packets`` (demuxed from at or before ``span.lead``) on the
    stream's decoder, which the caller made single-threaded, and count the
    frames FFmpeg flags corrupt among the span's packets, with PTS at most
    ``upto`` when given. Also whether the span's first keyframe was met (a
    seek that overshot it finds nothing)."""
    counting, counted, flagged = span.first is None, set(), 0

    def flags(packet) -> int:
        try:
            frames = stream.codec_context.decode(packet)
        except av.FFmpegError:
            return 0  # a packet that fails outright was counted by the pass
        return sum(f.is_corrupt and (f.pts in counted if f.pts is not None else counting)
                   and (upto is None or f.pts is None or f.pts <= upto) for f in frames)

    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.FFmpegError):
            break
        key = packet.pts if packet.pts is not None else packet.dts
        if packet.is_keyframe and counting and span.end is not None and key == span.end:
            break
        counting = counting or (packet.is_keyframe and key == span.first)
        if counting and packet.size:
            counted.add(key)
        flagged += flags(packet)
    return counting, flagged + flags(None)
