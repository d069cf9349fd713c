"""Where every frame sits in presentation order, from demuxing alone.

A strategy that skips frames cannot count them, and ``round(pts * avg_fps)``
is wrong on variable frame rate video. But every frame is one packet, and
packets carry the frame's PTS: the presentation-order index of the frame
with PTS ``p`` is the number of packets whose PTS is below ``p``. Reading
packets decodes nothing.

:class:`PacketIndex` reads a second demuxer of the same file only as far as
the frames asked about: packets come in decode order, and a packet with a
PTS below ``p`` can follow one at or after ``p`` only within the codec's
reordering window (B-frames; at most 16 frames in H.264/HEVC), so reading
``LOOKAHEAD`` packets past the first one at or after ``p`` settles ``p``'s
index. A run that stops early (``max_frames``) reads no further than it
decoded, and the second reader stays in the page cache just behind the
first.

Packets flagged discard (before an MP4 edit list's start) and empty ones
never become frames and are not counted; a packet without PTS is placed by
its DTS; one with neither cannot be placed and is counted in
:attr:`PacketIndex.unplaced`. Packets the demuxer drops on damage are not
seen at all (the caller resynchronises from the PTS).
"""

from __future__ import annotations

import bisect
import heapq
import logging
from array import array
from collections.abc import Iterator

import av
import av.logging

log = logging.getLogger(__name__)

LOOKAHEAD = 32  # packets read past the first one at or after a queried PTS


class PacketIndex:
    """Presentation-order frame indices of one video stream, read lazily.

    Args:
        container: an open input container, used for nothing else (it is
            demuxed to its end on demand).
        stream: its video stream.

    Queries are cheapest in increasing PTS order (frames in presentation
    order); an earlier PTS is answered too, from everything read so far.
    """

    def __init__(self, container, stream):
        self._packets: Iterator | None = container.demux(stream)
        self._pending: list[int] = []  # PTS read, not yet below the last query
        self._below = 0  # packets with PTS below the last query
        self._query: int | None = None
        self._all = array("q")  # every PTS read, in read order
        self._max = array("q")  # running maximum of _all: where a PTS was first passed
        self.keyframes: list[int] = []  # keyframe PTS in read order
        self.unplaced = 0
        self.complete = True  # False when demuxing stopped on an error

    def index_of(self, pts: int) -> int:
        """Presentation-order index of the frame whose PTS is ``pts``."""
        self._read_past(pts)
        if self._query is not None and pts < self._query:
            return sum(1 for t in self._all if t < pts)
        self._query = pts
        while self._pending and self._pending[0] < pts:
            heapq.heappop(self._pending)
            self._below += 1
        return self._below

    def keyframe_at_or_before(self, pts: int) -> int | None:
        """PTS of the last keyframe at or before ``pts`` (None if none is known)."""
        self._read_past(pts)
        keys = sorted(self.keyframes)
        i = bisect.bisect_right(keys, pts) - 1
        return keys[i] if i >= 0 else None

    def pts_at(self, index: int) -> int | None:
        """PTS of the frame at presentation-order ``index`` (None past the end).

        The ``index``-th smallest PTS is settled once ``LOOKAHEAD`` more
        packets have been read (the reordering window), so this reads
        ``index + LOOKAHEAD`` packets at most."""
        while self._packets is not None and len(self._all) <= index + LOOKAHEAD:
            self._read_one()
        if len(self._all) != getattr(self, "_sorted_n", -1):
            self._sorted, self._sorted_n = sorted(self._all), len(self._all)
        return self._sorted[index] if 0 <= index < len(self._sorted) else None

    def _read_one(self) -> None:
        t = self._next()
        if t is None:
            return
        if self._query is not None and t < self._query:
            self._below += 1
        else:
            heapq.heappush(self._pending, t)

    def frame_count(self) -> int | None:
        """Frames in the stream (packets with a timestamp); reads to the end.
        None when demuxing stopped early on damage."""
        self._read_past(None)
        return len(self._all) if self.complete else None

    def last_pts(self) -> int | None:
        """PTS of the stream's last frame in presentation order; reads to the end."""
        self._read_past(None)
        return self._max[-1] if self._max else None

    def _read_past(self, pts: int | None) -> None:
        """Read until ``LOOKAHEAD`` packets follow one at or after ``pts`` (None: to the end)."""
        while self._packets is not None and not self._settled(pts):
            t = self._next()
            if t is None:
                continue
            if self._query is not None and t < self._query:
                self._below += 1  # late, but already below the last query
            else:
                heapq.heappush(self._pending, t)

    def _settled(self, pts: int | None) -> bool:
        if pts is None or not self._max:
            return False
        first = bisect.bisect_left(self._max, pts)  # first packet read at or after pts
        return len(self._max) - first > LOOKAHEAD

    def _next(self) -> int | None:
        """The next packet's timestamp; None for one not counted (or at the end)."""
        try:
            with av.logging.Capture() as lines:  # the main demuxer reports the same damage
                packet = next(self._packets)
            for line in lines:
                log.debug("packet scan: %s", " ".join(line[2].split()))
        except StopIteration:
            self._packets = None
            return None
        except av.FFmpegError as ex:  # truncated or garbled: what was read still counts
            log.debug("packet scan stopped early: %s", ex)
            self._packets, self.complete = None, False
            return None
        if packet.size == 0 or packet.is_discard:
            return None
        t = packet.pts if packet.pts is not None else packet.dts
        if t is None:
            self.unplaced += 1
            return None
        self._all.append(t)
        self._max.append(max(t, self._max[-1]) if self._max else t)
        if packet.is_keyframe:
            self.keyframes.append(t)
        return t
