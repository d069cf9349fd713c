"""Frame fingerprints for edge refinement's gap scans: tiny thumbnails, and
which frames of a gap sit at its largest picture changes.

Decoding a frame is far cheaper than embedding it, so refinement decodes
every frame of a gap between two samples once, keeps a 32x24 thumbnail of
each (2 KB) and the full picture only of the frames around the gap's
largest jumps (:class:`JumpKeeper`): those are the frames it may score.
What the thumbnails say is read in :mod:`pipeline.analysis.cuts`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.types import FrameBatch, GapScan

THUMB_H, THUMB_W = 24, 32  # a fingerprint, not a picture: every frame gets this grid, any aspect
KEEP_JUMPS = 3  # jumps per gap whose two frames are kept in full


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) averaged down to ``THUMB_H x THUMB_W x 3`` uint8
    (area averaging: every source pixel counts once)."""
    img = np.asarray(rgb)
    h, w = img.shape[:2]
    ys = np.linspace(0, h, min(THUMB_H, h) + 1).astype(np.int64)
    xs = np.linspace(0, w, min(THUMB_W, w) + 1).astype(np.int64)
    sums = np.add.reduceat(np.add.reduceat(img[..., :3].astype(np.float32), ys[:-1], 0), xs[:-1], 1)
    means = sums / np.outer(np.diff(ys), np.diff(xs))[..., None]
    if means.shape[:2] != (THUMB_H, THUMB_W):  # a source smaller than the grid: repeat its pixels
        rows = np.arange(THUMB_H) * means.shape[0] // THUMB_H
        cols = np.arange(THUMB_W) * means.shape[1] // THUMB_W
        means = means[rows][:, cols]
    return np.clip(np.rint(means), 0, 255).astype(np.uint8)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in grey levels (0-255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def colours(thumb: np.ndarray) -> np.ndarray:
    """A thumbnail's colour histogram: 4 levels per channel, 64 bins, summing to 1.
    Blind to where things are, so an object moving inside the picture barely
    changes it, while one appearing, leaving or fading does."""
    q = np.asarray(thumb, np.uint8) >> 6
    codes = (q[..., 0].astype(np.int64) << 4) | (q[..., 1].astype(np.int64) << 2) | q[..., 2]
    return np.bincount(codes.ravel(), minlength=64) / codes.size


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the picture whose colour changed between two histograms (0-1)."""
    return float(0.5 * np.abs(a - b).sum())


@dataclass
class JumpKeeper:
    """Watches one gap's frames go by in order and keeps, in full, the two
    frames of each of its ``keep`` largest jumps (thumbnail difference to the
    previous frame; ties go to the earlier jump, as :func:`top_jumps` ranks).

    ``convert`` turns what a backend holds into the full RGB array, called
    only for frames still kept at the end.
    """

    convert: Callable[[object], np.ndarray]
    keep: int = KEEP_JUMPS
    indices: list[int] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)
    _top: list[tuple[float, int]] = field(default_factory=list)  # min-heap of (jump, -index)
    _held: dict[int, object] = field(default_factory=dict)
    _prev: tuple[int, object] | None = None

    def add(self, index: int, thumb: np.ndarray, frame: object) -> None:
        """The next frame of the gap (ascending ``index``)."""
        if self._prev is not None and self._prev[0] == index - 1:
            jump = difference(self.thumbs[-1], thumb)
            entry = (jump, -index)
            if len(self._top) < self.keep:
                heapq.heappush(self._top, entry)
            elif entry > self._top[0]:
                heapq.heapreplace(self._top, entry)
            self._held[index - 1], self._held[index] = self._prev[1], frame
            wanted = {i for _, neg in self._top for i in (-neg - 1, -neg)}
            self._held = {i: f for i, f in self._held.items() if i in wanted}
        self.indices.append(index)
        self.thumbs.append(thumb)
        self._prev = (index, frame)

    def kept(self) -> dict[int, np.ndarray]:
        """Full RGB of the frames around the top jumps, by index."""
        return {i: self.convert(f) for i, f in sorted(self._held.items())}

    def scan(self, lo: int, hi: int, times_s: Callable[[int], float], decoded: int) -> GapScan:
        """What was seen of gap ``lo..hi``; ``times_s``: a frame's PTS by index."""
        kept = self.kept()
        frames = FrameBatch(indices=np.array(list(kept), np.int64),
                            times_s=np.array([times_s(i) for i in kept], np.float64),
                            images=np.stack(list(kept.values()))) if kept else None
        thumbs = np.stack(self.thumbs) if self.thumbs else np.zeros((0, THUMB_H, THUMB_W, 3), np.uint8)
        return GapScan(lo, hi, np.array(self.indices, np.int64), thumbs, frames, decoded)


def top_jumps(indices: np.ndarray, thumbs: np.ndarray, keep: int = KEEP_JUMPS) -> list[tuple[int, float]]:
    """The ``keep`` largest jumps between neighbouring frames, largest first:
    ``(first frame after the jump, difference)``; ties: the earlier first."""
    jumps = [(difference(thumbs[k - 1], thumbs[k]), int(indices[k])) for k in range(1, len(indices))
             if indices[k] == indices[k - 1] + 1]
    jumps.sort(key=lambda j: (-j[0], j[1]))
    return [(i, d) for d, i in jumps[:keep]]
