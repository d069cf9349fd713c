"""Where every frame sits in presentation order, from demuxing alone.

A strategy that skips frames cannot count them, and ``round(pts * avg_fps)``
is wrong on variable frame rate video. But every frame is one packet, and
packets carry the frame's PTS: the presentation-order index of the frame
with PTS ``p`` is the number of packets whose PTS is below ``p``. Reading
packets costs no decoding (see docs in :func:`scan_packets` for the cost).

Packets flagged discard (before an MP4 edit list's start) and empty ones
never become frames and are not counted; a packet without PTS is placed by
its DTS; one with neither cannot be placed and is counted in
:attr:`PacketTable.unplaced`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import av
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PacketTable:
    """The video stream's frame times, in stream time-base units, sorted.

    Attributes:
        pts: PTS of every frame-carrying packet (presentation order).
        keyframes: PTS of the keyframe packets.
        unplaced: packets that had no timestamp at all.
        complete: False when demuxing stopped early on an error.
    """

    pts: np.ndarray
    keyframes: np.ndarray
    unplaced: int = 0
    complete: bool = True

    def index_of(self, pts: int) -> int:
        """Presentation-order index of the frame whose PTS is ``pts``."""
        return int(np.searchsorted(self.pts, pts, side="left"))

    def keyframe_at_or_before(self, pts: int) -> int | None:
        """PTS of the last keyframe at or before ``pts`` (None if there is none)."""
        i = int(np.searchsorted(self.keyframes, pts, side="right")) - 1
        return int(self.keyframes[i]) if i >= 0 else None

    @property
    def last_pts(self) -> int | None:
        """PTS of the last frame in presentation order (None when empty)."""
        return int(self.pts[-1]) if len(self.pts) else None


def scan_packets(container, stream) -> PacketTable:
    """Demux ``stream`` of an open ``container`` from where it stands to the end.

    Only the video stream's packets are handed over; none is decoded. On a
    720p30 H.264 clip this reads ~40x faster than decoding every frame (see
    the README's decode section for measured numbers).
    """
    pts, keys, unplaced, complete = [], [], 0, True
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            if t is None:
                unplaced += 1
                continue
            pts.append(t)
            if packet.is_keyframe:
                keys.append(t)
    except av.FFmpegError as ex:  # truncated or garbled: what was read still counts
        log.debug("packet scan stopped early: %s", ex)
        complete = False
    return PacketTable(pts=np.sort(np.asarray(pts, np.int64)), keyframes=np.sort(np.asarray(keys, np.int64)),
                       unplaced=unplaced, complete=complete)
