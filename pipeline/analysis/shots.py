"""Shots: where the picture changes from one take to the next, read from a
thumbnail of every frame (:mod:`pipeline.decode.every_frame`).

Two kinds of transition are found:

* **Cuts.** A *jump* is the mean absolute difference between neighbouring
  frames' 32x24 thumbnails (:func:`~pipeline.decode.prints.difference`, in
  grey levels). A jump into frame ``i`` is a cut when it is at least
  ``threshold`` and ``ratio`` times the *local noise*, the median jump of the
  ``window`` frames on either side: motion (a pan, a crowd) raises every jump
  around it, a cut only its own. Averaging to 32x24 already removes most of
  what motion changes, while a new shot changes nearly every cell. In heavy
  motion (a whip pan cut to a shaky shot) a cut may stand out less; it still
  counts when it is ``COLOUR_MOTION_RATIO`` times the noise and changes the
  colours (the 4x4x4 histogram of :func:`~pipeline.decode.prints.colours`) of
  ``COLOUR_CHANGE`` of the picture, ``COLOUR_RATIO`` times the colour change
  around it: moving the camera moves colours about, it does not replace them.
* **Fades through black or white.** A run of black frames (Rekognition's rule,
  :func:`~pipeline.analysis.cues.black_mask`) or white ones between two
  pictures is one transition however it was entered and left (a fade-out and
  a fade-in, or two cuts): the cut is put at its darkest (brightest) point,
  the middle of the frames within ``EXTREME_SPREAD`` grey levels of it. Any
  jump inside the fades either side of it is part of it, not a cut. Black
  (white) at the very start or end, with its fade or cut, belongs to the
  first (last) shot: no transition (:mod:`pipeline.analysis.cues` reports it).

A **flash** is not a cut: when the picture changes and, within
``flash_frames`` frames, comes back to what it was (the frames either side
differ by at most ``flash_match`` of its largest jump, and by less than
``threshold`` plus what the motion around moves the picture over those
frames), the jumps in and out are dropped. A photographer's flash, a white
frame, a glitched frame, a one-frame black blink all read this way.

Transitions closer than ``min_shot_frames`` are not both kept: fades first,
then cuts by size. The first and last shots may be shorter (a video does not
begin or end with a detected transition).

Frames are numbered from 0 in decode order, as PySceneDetect numbers them: a
shot's ``start_frame`` is its first frame; ``end_frame`` is exclusive (the
next shot's first frame), as in ``segments.csv``.

Not found: dissolves and wipes (gradual, no single jump; a fade that does
not reach black or white is one), and cuts between two pictures whose
thumbnails match (the same framing of one scene).

Pure: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.analysis.cues import (
    MAX_PIXEL_THRESHOLD,
    MIN_COVERAGE,
    black_mask,
    fade_reach,
    frame_ends,
    mean_luminance,
    runs,
    white_mask,
)
from pipeline.decode.prints import difference

THRESHOLD = 12.0  # grey levels of mean thumbnail difference: a new shot changes most cells by far more
RATIO = 3.0  # times the local noise: a cut stands out from the motion around it
COLOUR_CHANGE = 0.3  # ... or changes the colours of this share of the picture (motion: under 0.15),
COLOUR_RATIO = 4.0  # this many times the colour change around it,
COLOUR_MOTION_RATIO = 1.5  # while still this many times the local noise
COLOUR_FLOOR = 0.02  # a still picture's colour change is no scale to divide by
WINDOW = 8  # frames each side whose median jump is the local noise
NOISE_FLOOR = 1.0  # grey levels: a still picture's noise is no scale to divide by
FLASH_FRAMES = 3  # a change undone within this many frames is a flash
FLASH_MATCH = 0.5  # ... when the frames either side differ by at most this share of its jumps
MIN_SHOT_FRAMES = 15  # PySceneDetect's min_scene_len: half a second at 30 fps
EXTREME_SPREAD = 1.0  # grey levels: frames this close to a fade's darkest are equally dark
SHAPE_CHANGE = 0.3  # stds: a new picture moves its standardised cells by far more, a fade's barely
SHAPE_FLOOR = 4.0  # grey levels: a flatter frame's std is no scale (a black frame is all noise)
_CHUNK = 4096  # frames per vectorised difference, so no N-sized int16 copy is made


@dataclass(frozen=True)
class Shot:
    """Frames ``[start_frame, end_frame)``, from ``start_s`` (the first
    frame's time) to ``end_s`` (the next shot's first frame's time, or the
    video's end). ``shot`` counts from 1 in time order; ``transition`` says
    how it begins: ``start`` (the video's first frame), ``cut`` or ``fade``."""

    shot: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    transition: str = "cut"

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def jumps(prints: np.ndarray) -> np.ndarray:
    """``(N,)``: the jump into each frame from the one before (0 for frame 0),
    :func:`~pipeline.decode.prints.difference` of each neighbouring pair."""
    p = np.asarray(prints, np.uint8)
    out = np.zeros(len(p), np.float64)
    for a in range(1, len(p), _CHUNK):
        b = min(a + _CHUNK, len(p))
        d = np.abs(p[a:b].astype(np.int16) - p[a - 1:b - 1].astype(np.int16))
        out[a:b] = d.reshape(b - a, -1).mean(axis=1)
    return out


def _colour_jumps(p: np.ndarray) -> np.ndarray:
    """``(N,)``: the share of the picture whose colour changed into each frame,
    :func:`~pipeline.decode.prints.colour_distance` of neighbouring frames'
    :func:`~pipeline.decode.prints.colours` (4x4x4 histograms), vectorised."""
    out = np.zeros(len(p), np.float64)
    for a in range(1, len(p), _CHUNK):
        b = min(a + _CHUNK, len(p))
        q = p[a - 1:b] >> 6  # with the frame before the chunk
        n = b - a + 1
        codes = (q[..., 0].astype(np.int64) << 4) | (q[..., 1].astype(np.int64) << 2) | q[..., 2]
        codes = codes.reshape(n, -1) + 64 * np.arange(n)[:, None]
        hist = np.bincount(codes.ravel(), minlength=64 * n).reshape(n, 64) / codes.shape[1]
        out[a:b] = 0.5 * np.abs(hist[1:] - hist[:-1]).sum(axis=1)
    return out


def _standardised(x: np.ndarray) -> np.ndarray:
    """Thumbnails (..., H, W, 3) less their mean over their std (at least
    ``SHAPE_FLOOR``): what a fade to black or white (an affine change of every
    pixel) leaves as it was."""
    x = x.astype(np.float32)
    flat = x.reshape(*x.shape[:-3], -1)
    mean, std = flat.mean(axis=-1), np.maximum(flat.std(axis=-1), SHAPE_FLOOR)
    return (x - mean[..., None, None, None]) / std[..., None, None, None]


def _shape_jumps(p: np.ndarray) -> np.ndarray:
    """Jumps between standardised frames (mean absolute difference, in stds):
    blind to fades, not to new pictures."""
    out = np.zeros(len(p), np.float64)
    for a in range(1, len(p), _CHUNK):
        b = min(a + _CHUNK, len(p))
        x = _standardised(p[a - 1:b])
        out[a:b] = np.abs(x[1:] - x[:-1]).reshape(b - a, -1).mean(axis=1)
    return out


def _same_picture(a: np.ndarray, b: np.ndarray, motion: float) -> bool:
    """Two thumbnails show one picture: standardised (so a dimmed or brightened
    frame is compared by what it shows), they differ by less than
    ``SHAPE_CHANGE`` plus ``motion`` (what the picture moves in between)."""
    return float(np.abs(_standardised(a) - _standardised(b)).mean()) < SHAPE_CHANGE + motion


def local_noise(d: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """For each frame, the median jump of the ``window`` frames either side
    of it (its own jump left out; frame 0's jump is no jump, left out too)."""
    n = len(d)
    if n < 3:
        return np.zeros(n, np.float64)
    padded = np.full(n + 2 * window, np.nan)
    padded[window:window + n] = d
    padded[window] = np.nan  # frame 0 has no jump
    around = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1).copy()
    around[:, window] = np.nan  # a frame's own jump is what is measured against the rest
    out = np.nanmedian(around, axis=1)
    return np.nan_to_num(out, nan=0.0)


@dataclass(frozen=True)
class _Transition:
    frame: int  # the first frame of the shot it begins
    kind: str  # "cut" | "fade"
    strength: float  # which to keep of two too close: fades first, then larger jumps


def detect_shots(prints: np.ndarray, times_s: np.ndarray, *, end_s: float | None = None,
                 threshold: float = THRESHOLD, ratio: float = RATIO, window: int = WINDOW,
                 noise_floor: float = NOISE_FLOOR, flash_frames: int = FLASH_FRAMES,
                 flash_match: float = FLASH_MATCH, min_shot_frames: int = MIN_SHOT_FRAMES,
                 max_pixel_threshold: float = MAX_PIXEL_THRESHOLD,
                 min_coverage: float = MIN_COVERAGE) -> list[Shot]:
    """The shots of a video from a thumbnail of each of its frames (see the module).

    Args:
        prints: N x 24 x 32 x 3 uint8, frame ``i``'s thumbnail at row ``i``
            (every frame, in presentation order).
        times_s: the N frames' presentation times.
        end_s: where the last frame ends (default: one frame step after it).
        max_pixel_threshold, min_coverage: what a black (white) frame is
            (:func:`~pipeline.analysis.cues.black_mask`).

    Returns:
        Shots covering every frame, in order; none for no frames.
    """
    p = np.asarray(prints, np.uint8)
    times = np.asarray(times_s, np.float64)
    if len(p) != len(times):
        raise ValueError(f"{len(p)} prints but {len(times)} times")
    if not len(p):
        return []
    cuts = _transitions(p, threshold=threshold, ratio=ratio, window=window, noise_floor=noise_floor,
                        flash_frames=flash_frames, flash_match=flash_match,
                        max_pixel_threshold=max_pixel_threshold, min_coverage=min_coverage)
    kept: list[_Transition] = []
    for t in sorted(cuts, key=lambda t: (-t.strength, t.frame)):
        if all(abs(t.frame - k.frame) >= min_shot_frames for k in kept):
            kept.append(t)
    kept.sort(key=lambda t: t.frame)
    ends = frame_ends(times, end_s)
    starts = [_Transition(0, "start", 0.0), *kept]
    bounds = [t.frame for t in starts] + [len(p)]
    return [Shot(n + 1, float(times[a]), float(ends[b - 1]), a, b, t.kind)
            for n, (t, a, b) in enumerate(zip(starts, bounds[:-1], bounds[1:]))]


def shot_bounds(shots: list[Shot]) -> list[int]:
    """The frames where a new shot starts (every shot's first frame but the first)."""
    return [s.start_frame for s in shots[1:]]


def _transitions(p: np.ndarray, *, threshold: float, ratio: float, window: int, noise_floor: float,
                 flash_frames: int, flash_match: float, max_pixel_threshold: float,
                 min_coverage: float) -> list[_Transition]:
    """Every fade and cut before the minimum shot length is applied."""
    n = len(p)
    d = jumps(p)
    noise = np.maximum(local_noise(d, window), noise_floor)
    colour = _colour_jumps(p)
    colour_noise = np.maximum(local_noise(colour, window), COLOUR_FLOOR)
    # What stands out of the motion around it; or, in heavy motion (a whip pan
    # into a shaky shot), stands out less but changes the colours as motion does not.
    recoloured = (colour >= COLOUR_CHANGE) & (colour >= COLOUR_RATIO * colour_noise)
    jump = (d >= threshold) & ((d >= ratio * noise) | ((d >= COLOUR_MOTION_RATIO * noise) & recoloured))
    # A fade scales the picture: its steps are jumps, but not once each frame
    # is divided by its brightness. Only a change of picture stops a fade's reach.
    shape = _shape_jumps(p)
    barrier = jump & (shape >= SHAPE_CHANGE)
    snoise = local_noise(shape, window)
    absorbed = np.zeros(n, bool)  # jumps that belong to a fade or a flash
    found: list[_Transition] = []
    luma = mean_luminance(p)
    masks = (black_mask(p, max_pixel_threshold=max_pixel_threshold, min_coverage=min_coverage), np.min), \
            (white_mask(p, max_pixel_threshold=max_pixel_threshold, min_coverage=min_coverage), np.max)
    for mask, extreme in masks:
        for a, b in runs(mask):
            level = float(extreme(luma[a:b]))
            first, last = fade_reach(luma, a, b, level, barrier=barrier)
            absorbed[first:last + 1] = True  # every jump into, inside and out of it is the transition's
            inside = a > 0 and b < n
            if inside and b - a <= flash_frames and _same_picture(p[a - 1], p[b], (b - a + 1) * snoise[a]):
                continue  # a blink: the same picture either side
            if inside:  # else the video fades in from (out to) it: part of the first (last) shot
                found.append(_Transition(_darkest(luma, a, b, level), "fade", np.inf))
    candidates = [i for i in range(1, n) if jump[i] and not absorbed[i]]
    flashes: set[int] = set()
    for i in candidates:
        back = next((j for j in range(i + 1, min(i + flash_frames, n - 1) + 1)
                     if _comes_back(p, d, noise, i, j, threshold, flash_match)), None)
        if back is not None:
            flashes.update(range(i, back + 1))
    found += [_Transition(i, "cut", float(d[i])) for i in candidates if i not in flashes]
    return found


def _comes_back(p: np.ndarray, d: np.ndarray, noise: np.ndarray, i: int, j: int, threshold: float,
                flash_match: float) -> bool:
    """Frames ``i..j-1`` are a flash: frame ``j`` shows the picture of frame
    ``i-1`` again, closer to it than ``flash_match`` of the largest jump in
    between, and by no more than ``threshold`` plus what the motion around
    (the local noise per frame) moves over those frames."""
    back = difference(p[i - 1], p[j])
    return back <= flash_match * float(d[i:j + 1].max()) and back < threshold + (j - i + 1) * noise[i]


def _darkest(luma: np.ndarray, a: int, b: int, level: float) -> int:
    """The middle of the frames of run ``[a, b)`` within ``EXTREME_SPREAD`` of
    ``level`` around its first such frame (the fade's darkest or brightest point)."""
    near = np.abs(luma[a:b] - level) <= EXTREME_SPREAD
    first = int(np.argmax(near))
    last = first
    while last + 1 < b - a and near[last + 1]:
        last += 1
    return a + (first + last + 1) // 2


# --------------------------------------------------------------------------- labels per shot


@dataclass(frozen=True)
class ShotLabels:
    """What a shot's sampled frames say: ``means[k]`` is label ``k``'s mean
    score over its ``samples`` sampled frames (NaN when it has none), and
    ``labels`` the labels whose mean reaches their threshold, best first."""

    shot: int
    samples: int
    means: tuple[float, ...]
    labels: tuple[str, ...]


def sample_shots(shots: list[Shot], times_s: np.ndarray, *, tolerance_s: float = 1e-3) -> np.ndarray:
    """For each sample time, the number of the shot holding it (0: none, before
    the first or after the last). A sample at ``t`` is in the shot with
    ``start_s - tolerance_s <= t < end_s - tolerance_s``: times written to the
    millisecond (``frames.csv``) still land in the shot of their frame."""
    t = np.asarray(times_s, np.float64)
    if not shots:
        return np.zeros(len(t), np.int64)
    starts = np.array([s.start_s for s in shots]) - tolerance_s
    k = np.searchsorted(starts, t, side="right") - 1
    inside = (k >= 0) & (t < shots[-1].end_s - tolerance_s)
    return np.where(inside, k + 1, 0).astype(np.int64)


def shot_labels(shots: list[Shot], times_s: np.ndarray, scores: np.ndarray, labels: list[str],
                thresholds: np.ndarray | list[float], *, tolerance_s: float = 1e-3) -> list[ShotLabels]:
    """The labels each shot's sampled frames support: those whose mean score
    over the shot's samples is at least the label's threshold (its enter
    threshold). A mean, not a peak: one sampled frame over the threshold in a
    shot of ten says little about the shot.

    Args:
        shots: from :func:`detect_shots`.
        times_s: the N sample times.
        scores: N x L scores (raw or smoothed, as the caller's rules want).
        labels: the L label names.
        thresholds: L thresholds.

    Returns:
        One :class:`ShotLabels` per shot, in order. Shots no sample falls in
        have ``samples == 0``: score :func:`probe_frames` and call again with
        those samples added.
    """
    s = np.asarray(scores, np.float64).reshape(len(times_s), len(labels))
    th = np.asarray(thresholds, np.float64)
    if th.shape != (len(labels),):
        raise ValueError(f"{len(labels)} labels but {th.size} thresholds")
    owner = sample_shots(shots, times_s, tolerance_s=tolerance_s)
    out = []
    for shot in shots:
        mine = s[owner == shot.shot]
        if not len(mine):
            out.append(ShotLabels(shot.shot, 0, tuple([float("nan")] * len(labels)), ()))
            continue
        means = mine.mean(axis=0)
        order = np.argsort(-means, kind="stable")
        supported = tuple(labels[k] for k in order if means[k] >= th[k])
        out.append(ShotLabels(shot.shot, len(mine), tuple(float(m) for m in means), supported))
    return out


def middle_frame(shot: Shot) -> int:
    """The frame in the middle of a shot (the earlier of two middles)."""
    return shot.start_frame + (shot.frames - 1) // 2


def probe_frames(shots: list[Shot], times_s: np.ndarray, *, tolerance_s: float = 1e-3) -> list[int]:
    """The middle frame of each shot no sample falls in (short shots between
    samples), for the caller to decode and score."""
    held = set(sample_shots(shots, times_s, tolerance_s=tolerance_s).tolist())
    return [middle_frame(s) for s in shots if s.shot not in held]


# --------------------------------------------------------------------------- segment edges at cuts


def snap_edges(edges_s: np.ndarray | list[float], cut_times_s: np.ndarray | list[float], *, fps: float,
               tolerance_frames: float = 2) -> np.ndarray:
    """Segment edges within ``tolerance_frames`` frames of a cut moved onto it
    (the nearest cut; the earlier of two as near). A label's score changes
    at a shot change, but sampling, smoothing and bisection place its edge a
    frame or two off; the cut is where the picture changed."""
    edges = np.asarray(edges_s, np.float64)
    cuts = np.sort(np.asarray(cut_times_s, np.float64))
    if not len(cuts) or not len(edges):
        return edges.copy()
    reach = tolerance_frames / fps + 1e-9
    k = np.clip(np.searchsorted(cuts, edges), 1, len(cuts)) - 1  # the cut at or before each edge
    after = np.minimum(k + 1, len(cuts) - 1)
    nearest = np.where(np.abs(cuts[after] - edges) < np.abs(edges - cuts[k]), cuts[after], cuts[k])
    return np.where(np.abs(nearest - edges) <= reach, nearest, edges)


def snap_segments(segments: list[tuple[float, float]], cut_times_s: np.ndarray | list[float], *,
                  fps: float, tolerance_frames: float = 2) -> list[tuple[float, float]]:
    """:func:`snap_edges` on each ``(start_s, end_s)``; a segment whose two edges
    would land on one cut (a blip of a frame or two across it) keeps its own."""
    if not segments:
        return []
    flat = snap_edges([t for seg in segments for t in seg], cut_times_s, fps=fps,
                      tolerance_frames=tolerance_frames)
    out = []
    for (start, end), a, b in zip(segments, flat[0::2], flat[1::2]):
        out.append((float(a), float(b)) if b > a else (start, end))
    return out
