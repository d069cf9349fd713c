"""The decoder interface every backend implements, and the pure helpers they share.

A decoder is a context manager::

    with open_decoder("clip.mp4", short_side=224) as dec:
        print(dec.info)
        for frame in dec.frames(Sampling(every_seconds=1.0)):
            ...
        print(dec.stats)

Frames stream out one at a time as upright RGB uint8 arrays; nothing holds
the whole video in memory.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from pipeline.types import DecodeStats, Frame, GapScan, Sampling, VideoInfo, VideoOpenError

STRATEGIES = ("auto", "exact", "fast", "keyframes")

# Float slack when comparing a PTS with a sampling target: PTS converted from
# integer time bases (e.g. 512/12800) are not exact multiples in binary.
_EPS = 1e-6


class PtsSampler:
    """Decides, frame by frame, which frames a :class:`Sampling` keeps.

    Feed it successive ``(index, pts_s)`` pairs in presentation order.

    * ``every_n_frames``: keep when ``index % n == 0``.
    * ``every_seconds`` / ``target_fps``: keep the first frame whose PTS is
      at or after the next target time, then move the target to the next
      multiple of the interval strictly after that frame's PTS. Variable
      frame rate video therefore gets true times and never a duplicate.
    * ``max_frames``: once that many are kept, :attr:`done` turns True.
    * No rule set: keep every frame.
    """

    def __init__(self, sampling: Sampling):
        rules = [sampling.every_n_frames, sampling.every_seconds, sampling.target_fps]
        if sum(r is not None for r in rules) > 1:
            raise ValueError(f"Sampling sets more than one rule: {sampling}")
        if any(r is not None and r <= 0 for r in rules):
            raise ValueError(f"Sampling values must be positive: {sampling}")
        self.every_n = sampling.every_n_frames
        self.interval_s = sampling.interval_s
        self.max_frames = sampling.max_frames
        self.kept = 0
        self._next_target = 0.0

    @property
    def done(self) -> bool:
        """True once ``max_frames`` frames have been kept."""
        return self.max_frames is not None and self.kept >= self.max_frames

    def keep(self, index: int, pts_s: float) -> bool:
        """Whether to keep this frame; counts it as kept when True."""
        if self.done:
            return False
        if self.interval_s is not None:
            if pts_s < self._next_target - _EPS:
                return False
            step = math.floor(pts_s / self.interval_s + _EPS) + 1
            self._next_target = step * self.interval_s
        elif self.every_n is not None and index % self.every_n:
            return False
        self.kept += 1
        return True


def select_indices(sampling: Sampling, pts_s: list[float] | np.ndarray) -> list[int]:
    """Indices a :class:`PtsSampler` keeps from a full list of frame times."""
    sampler = PtsSampler(sampling)
    out = []
    for i, t in enumerate(pts_s):
        if sampler.done:
            break
        if sampler.keep(i, float(t)):
            out.append(i)
    return out


def interval_in_frames(sampling: Sampling, fps: float | None) -> float | None:
    """The sampling step measured in frames, or None if it cannot be known."""
    if sampling.every_n_frames is not None:
        return float(sampling.every_n_frames)
    if sampling.interval_s is not None and fps:
        return sampling.interval_s * fps
    return None


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` resized so the shorter side is ``short_side``.

    Aspect ratio is kept (the long side is rounded); no cropping.
    """
    if short_side is None:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate ``image`` counter-clockwise by ``rotation`` degrees (multiple of 90)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def check_readable(path: str) -> None:
    """Raise :class:`VideoOpenError` for inputs no library should be handed.

    Libraries report these cases with confusing messages (or crash), so
    catch them up front.
    """
    if "\0" in str(path):  # os.stat raises ValueError, libraries worse
        raise VideoOpenError(f"not a usable path (it holds a NUL byte): {str(path)!r}")
    try:
        mode = os.stat(path).st_mode
    except OSError as ex:  # say which: a loop or a dangling link is not a missing file
        reason = ("symbolic link loop" if ex.errno == errno.ELOOP else
                  "broken symbolic link (its target is missing)" if os.path.islink(path)
                  else "file not found")
        raise VideoOpenError(f"{reason}: {path}") from None
    if stat.S_ISDIR(mode):
        raise VideoOpenError(f"is a directory, not a media file: {path}")
    if not stat.S_ISREG(mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket or device"
        raise VideoOpenError(f"is {kind}, not a media file: {path}")
    if not os.access(path, os.R_OK):
        raise VideoOpenError(f"permission denied: {path}")
    if os.path.getsize(path) == 0:
        raise VideoOpenError(f"empty (zero-byte) file: {path}")


def one_line(ex: BaseException) -> str:
    """An exception's message squeezed onto one line.

    FFmpeg errors carry an errno and the path in ``str()``; their
    ``strerror`` alone is the readable part.
    """
    text = getattr(ex, "strerror", None) or str(ex)
    text = " ".join(str(text).split()) or type(ex).__name__
    return text[:300]


class Decoder(ABC):
    """A video (or image) source that streams sampled frames.

    Args:
        path: the input file.
        short_side: resize frames in the decoder so the shorter side has this
            many pixels, keeping the aspect ratio; None keeps the native size.
        strategy: ``"auto"``, ``"exact"``, ``"fast"`` or ``"keyframes"``;
            how much decoding may be skipped (see the backend). Backends that
            cannot skip decode exactly and say so in :attr:`stats`.

    Use as a context manager; :attr:`info` is available inside the ``with``.

    Raises:
        VideoOpenError: on entering, if the input cannot be opened or holds no
            video stream.
    """

    def __init__(self, path: str, *, short_side: int | None = None, strategy: str = "auto"):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown decode strategy {strategy!r}; choose from {STRATEGIES}")
        if short_side is not None and short_side <= 0:
            raise ValueError(f"short_side must be positive, got {short_side}")
        self.path = str(path)
        self.short_side = short_side
        self.strategy = strategy
        self._info: VideoInfo | None = None
        self._stats = DecodeStats()

    def __enter__(self) -> Decoder:
        check_readable(self.path)
        self._open()
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    @property
    def info(self) -> VideoInfo:
        """Metadata probed on open."""
        if self._info is None:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        return self._info

    @property
    def stats(self) -> DecodeStats:
        """Counters for the most recent :meth:`frames` pass."""
        return self._stats

    @abstractmethod
    def frames(self, sampling: Sampling) -> Iterator[Frame]:
        """Stream the sampled frames, upright RGB uint8, in presentation order.

        Raises:
            DecodeError: if the input opened but no frame could be decoded.
        """

    def frames_at(self, indices: list[int]) -> list[Frame]:
        """The frames at the given presentation-order indices (as
        :attr:`Frame.index` counts them in :meth:`frames`), ascending; an
        index past the end, or not decodable, is left out. For edge
        refinement: backends decode only what these frames need."""
        raise NotImplementedError(f"{type(self).__name__} cannot read frames by index")

    def scan_gaps(self, gaps: list[tuple[int, int]]) -> list[GapScan]:
        """Every frame ``lo..hi`` of each gap, decoded once: a fingerprint of
        each and the full frames refinement may score (:class:`GapScan`),
        in ascending order of gaps. For edge refinement's cut evidence."""
        raise NotImplementedError(f"{type(self).__name__} cannot scan frames")

    @abstractmethod
    def _open(self) -> None:
        """Open the input and set ``self._info``; raise VideoOpenError on failure."""

    @abstractmethod
    def _close(self) -> None:
        """Release every library object; safe to call twice."""
