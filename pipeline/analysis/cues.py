"""Technical cues: black frames, frozen frames, and fades from and to black,
read from every frame's thumbnail (:mod:`pipeline.decode.every_frame`).

The black-frame rule is AWS Rekognition's segment detection rule
(``BlackFrame``): a pixel is black when its BT.709 luminance is at most
``max_pixel_threshold`` of the full range (0.2: 51 of 255), and a frame is
black when at least ``min_coverage`` of its pixels are (0.99). The RGB here
is full range (FFmpeg expands studio-range video on conversion), so the
range is 0-255. Rekognition counts pixels of the full picture; a thumbnail
cell is the average of a block of them (40x30 pixels at 720p), so a cell
holding a few bright pixels among black ones still counts as black: the
coverage is that of the picture blurred to 32x24, and a bright speck under
1/768 of the picture (a small logo corner) does not stop a frame being black.

* **black**: a run of black frames of at least ``min_black_s``.
* **frozen**: a run of frames that all show the run's first picture to within
  compression noise, lasting at least ``min_frozen_s`` (FFmpeg's
  ``freezedetect`` default, 2 s). Black runs are not also frozen ones.
  Thumbnails average small motion away: a still shot with a blinking eye
  reads as frozen.
* **fade_out** / **fade_in**: the frames whose mean luminance falls steadily
  into a black run (or rises steadily out of one), lasting at least
  ``min_fade_s``. A cut straight to black is no fade.

Every cue is half-open in frames, as segments are: ``[start_frame,
end_frame)``, ``start_s`` the time of its first frame and ``end_s`` the time
of the frame after its last (the end of the video for the last frame).

Pure: numpy only. The runs, frame ends and fade walks here are shared with
:mod:`pipeline.analysis.shots`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.analysis.cuts import STILL

# BT.709 luma weights, as Rekognition computes luminance
BT709 = np.array([0.2126, 0.7152, 0.0722], np.float32)
MAX_PIXEL_THRESHOLD = 0.2  # Rekognition's default: a pixel at or under 51 of 255 is black
MIN_COVERAGE = 0.99  # Rekognition's MinCoveragePercentage 99
MIN_BLACK_S = 0.0  # Rekognition reports any black run; a single black frame between shots is a cue
# Grey levels of mean thumbnail difference from the held picture: compression noise,
# as edge refinement's still sides (a still H.264 take: 0.3 at 720p, 0.7 at 320x240, 1.2 at 160x120)
FROZEN_NOISE = STILL
FROZEN_CELL = 12.0  # grey levels: one cell moving more is motion, however still the rest (noise: 3-9)
MIN_FROZEN_S = 2.0  # FFmpeg freezedetect's default duration
FADE_STEP = 0.5  # grey levels of mean luminance a frame (12.5/s at 25 fps): slower is exposure drift
MIN_FADE_DEPTH = 12.0  # grey levels a fade must cross above the black level
MIN_FADE_S = 0.2  # shorter is a cut to black, not a fade
CUE_KINDS = ("black", "frozen", "fade_in", "fade_out")


@dataclass(frozen=True)
class Cue:
    """A technical cue: frames ``[start_frame, end_frame)`` of one ``kind``."""

    kind: str
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


# --------------------------------------------------------------------------- shared helpers


def luminance(prints: np.ndarray) -> np.ndarray:
    """BT.709 luminance (0-255, float32) of each pixel of N x H x W x 3 RGB."""
    return np.asarray(prints, np.uint8)[..., :3].astype(np.float32) @ BT709


def mean_luminance(prints: np.ndarray) -> np.ndarray:
    """Each frame's mean BT.709 luminance (N,)."""
    return luminance(prints).reshape(len(prints), -1).mean(axis=1) if len(prints) else np.zeros(0)


def black_mask(prints: np.ndarray, *, max_pixel_threshold: float = MAX_PIXEL_THRESHOLD,
               min_coverage: float = MIN_COVERAGE) -> np.ndarray:
    """Which frames are black by Rekognition's rule (see the module)."""
    if not len(prints):
        return np.zeros(0, bool)
    luma = luminance(prints).reshape(len(prints), -1)
    return (luma <= max_pixel_threshold * 255.0 + 1e-6).mean(axis=1) >= min_coverage


def white_mask(prints: np.ndarray, *, max_pixel_threshold: float = MAX_PIXEL_THRESHOLD,
               min_coverage: float = MIN_COVERAGE) -> np.ndarray:
    """Which frames are white: the black rule mirrored (luminance at least
    ``1 - max_pixel_threshold`` of the range on ``min_coverage`` of the picture)."""
    if not len(prints):
        return np.zeros(0, bool)
    luma = luminance(prints).reshape(len(prints), -1)
    return (luma >= (1.0 - max_pixel_threshold) * 255.0 - 1e-6).mean(axis=1) >= min_coverage


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The ``[start, end)`` runs of True in a boolean array, in order."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def frame_ends(times_s: np.ndarray, end_s: float | None = None) -> np.ndarray:
    """Where each frame ends: the next frame's time; the last one's at
    ``end_s`` (the video's end) or one median frame step after it."""
    t = np.asarray(times_s, np.float64)
    if not len(t):
        return t.copy()
    if end_s is None or end_s <= t[-1]:
        end_s = float(t[-1] + (np.median(np.diff(t)) if len(t) > 1 else 0.04))
    return np.append(t[1:], end_s)


def fade_reach(luma: np.ndarray, start: int, end: int, level: float, *, step: float = FADE_STEP,
               barrier: np.ndarray | None = None) -> tuple[int, int]:
    """How far a fade into run ``[start, end)`` (frames at ``level``) reaches:
    ``(first, last)`` with ``[first, start)`` the frames whose distance from
    ``level`` shrinks by at least ``step`` a frame towards the run, and
    ``[end, last)`` those whose distance grows that fast away from it.

    ``barrier[k]``: frames ``k-1`` and ``k`` belong to different shots (a cut),
    so no fade spans them, except the step into or out of the run itself (a
    cut to black is how some fades are made)."""
    dist = np.abs(np.asarray(luma, np.float64) - level)
    wall = np.zeros(len(dist) + 1, bool) if barrier is None else np.append(np.asarray(barrier, bool), False)
    first = start
    while first > 0 and dist[first - 1] >= dist[first] + step and (first == start or not wall[first]):
        first -= 1
    last = end
    while last < len(dist) and dist[last] >= dist[last - 1] + step and (last == end or not wall[last]):
        last += 1
    return first, last


def _lasts(a: int, b: int, times: np.ndarray, ends: np.ndarray, seconds: float) -> bool:
    """Frames ``[a, b)`` last at least ``seconds`` (with float slack)."""
    return bool(ends[b - 1] - times[a] >= seconds - 1e-9)


def _cue(kind: str, a: int, b: int, times: np.ndarray, ends: np.ndarray) -> Cue:
    return Cue(kind, float(times[a]), float(ends[b - 1]), a, b)


# --------------------------------------------------------------------------- cues


def black_frames(prints: np.ndarray, times_s: np.ndarray, *, end_s: float | None = None,
                 max_pixel_threshold: float = MAX_PIXEL_THRESHOLD, min_coverage: float = MIN_COVERAGE,
                 min_duration_s: float = MIN_BLACK_S) -> list[Cue]:
    """Runs of black frames lasting at least ``min_duration_s``."""
    times, ends = np.asarray(times_s, np.float64), frame_ends(times_s, end_s)
    mask = black_mask(prints, max_pixel_threshold=max_pixel_threshold, min_coverage=min_coverage)
    cues = [_cue("black", a, b, times, ends) for a, b in runs(mask)]
    return [c for c in cues if c.duration_s >= min_duration_s - 1e-9]


def frozen_frames(prints: np.ndarray, times_s: np.ndarray, *, end_s: float | None = None,
                  noise: float = FROZEN_NOISE, cell: float = FROZEN_CELL,
                  min_duration_s: float = MIN_FROZEN_S, black: np.ndarray | None = None) -> list[Cue]:
    """Runs of frames showing the run's first picture (mean difference at most
    ``noise``, no cell off by more than ``cell`` grey levels), lasting at least
    ``min_duration_s``; black frames (``black``, default :func:`black_mask`)
    start no frozen run. Compared with the run's first frame, not the previous
    one, so a slow drift ends the run instead of creeping through it."""
    p = np.asarray(prints, np.uint8)
    times, ends = np.asarray(times_s, np.float64), frame_ends(times_s, end_s)
    black = black_mask(p) if black is None else np.asarray(black, bool)
    cues, a = [], 0
    while a < len(p):
        if black[a]:
            a += 1
            continue
        ref = p[a].astype(np.int16)
        b = a + 1
        while b < len(p) and not black[b]:
            d = np.abs(p[b].astype(np.int16) - ref)
            if d.mean() > noise or d.max() > cell:
                break
            b += 1
        if b - a > 1 and ends[b - 1] - times[a] >= min_duration_s - 1e-9:
            cues.append(_cue("frozen", a, b, times, ends))
        a = b
    return cues


def fades(prints: np.ndarray, times_s: np.ndarray, *, end_s: float | None = None,
          max_pixel_threshold: float = MAX_PIXEL_THRESHOLD, min_coverage: float = MIN_COVERAGE,
          step: float = FADE_STEP, min_depth: float = MIN_FADE_DEPTH,
          min_duration_s: float = MIN_FADE_S) -> list[Cue]:
    """Fades to black (``fade_out``: the frames before a black run darker than
    the picture before them, whose mean luminance falls at least ``step`` a
    frame into it) and from black (``fade_in``: rising out of it up to the
    picture), lasting at least ``min_duration_s`` and starting (ending)
    ``min_depth`` grey levels or more above the black run's luminance."""
    times, ends = np.asarray(times_s, np.float64), frame_ends(times_s, end_s)
    luma = mean_luminance(prints)
    cues = []
    for a, b in runs(black_mask(prints, max_pixel_threshold=max_pixel_threshold,
                                min_coverage=min_coverage)):
        level = float(luma[a:b].min())
        first, last = fade_reach(luma, a, b, level, step=step)
        # The reach starts at the last frame before the picture darkens and ends
        # at the first after it stops brightening: those are the picture, not the fade
        # (so a cut straight to black has no fade frames at all).
        out_from, in_to = first + 1, last - 1
        if out_from < a and luma[first] - level >= min_depth and _lasts(out_from, a, times, ends,
                                                                        min_duration_s):
            cues.append(_cue("fade_out", out_from, a, times, ends))
        if in_to > b and luma[last - 1] - level >= min_depth and _lasts(b, in_to, times, ends,
                                                                         min_duration_s):
            cues.append(_cue("fade_in", b, in_to, times, ends))
    return cues


def detect_cues(prints: np.ndarray, times_s: np.ndarray, *, end_s: float | None = None,
                max_pixel_threshold: float = MAX_PIXEL_THRESHOLD, min_coverage: float = MIN_COVERAGE,
                min_black_s: float = MIN_BLACK_S, frozen_noise: float = FROZEN_NOISE,
                frozen_cell: float = FROZEN_CELL, min_frozen_s: float = MIN_FROZEN_S,
                fade_step: float = FADE_STEP, min_fade_depth: float = MIN_FADE_DEPTH,
                min_fade_s: float = MIN_FADE_S) -> list[Cue]:
    """Every cue (black, frozen, fade_in, fade_out), by start then kind.

    Args:
        prints: N x H x W x 3 uint8 thumbnails, one per frame in order.
        times_s: their presentation times.
        end_s: where the last frame ends (default: one frame step after it).
    """
    if len(prints) != len(times_s):
        raise ValueError(f"{len(prints)} prints but {len(times_s)} times")
    black = black_mask(prints, max_pixel_threshold=max_pixel_threshold, min_coverage=min_coverage)
    ends = frame_ends(times_s, end_s)
    times = np.asarray(times_s, np.float64)
    cues = [c for c in (_cue("black", a, b, times, ends) for a, b in runs(black))
            if c.duration_s >= min_black_s - 1e-9]
    cues += frozen_frames(prints, times, end_s=end_s, noise=frozen_noise, cell=frozen_cell,
                          min_duration_s=min_frozen_s, black=black)
    cues += fades(prints, times, end_s=end_s, max_pixel_threshold=max_pixel_threshold,
                  min_coverage=min_coverage, step=fade_step, min_depth=min_fade_depth,
                  min_duration_s=min_fade_s)
    return sorted(cues, key=lambda c: (c.start_frame, CUE_KINDS.index(c.kind), c.end_frame))
