"""Moments: the whole stretch of an input where a search query shows, around
each hit ("the cup is on screen from 00:02 to 00:06"), the unit people look
for, rather than the few frames the top K happened to return.

Pure functions over one input's similarity curve (the query against every
frame the store holds for it, sampled and edge-refinement frames in time
order, read by :func:`pipeline.explore.search.find_moments`); numpy only. A moment's
edges therefore do not depend on how many hits were asked for:

* the rule (:func:`level`, :func:`find_spans`): from a hit, the moment
  extends over neighbouring frames while their similarity stays at or above
  halfway between the object's level and the input's median similarity, less
  ``NOISE_MARGIN`` times the curve's frame-to-frame noise; a single frame
  below, between two above, does not end it. The object's level is the
  median of the stretch first grown from the hit's own score (the hit is the
  stretch's luckiest frame). Halfway ("half height") is scale-free: the demo
  model's cup frames score 0.65 against a background near 0, real CLIP's
  0.30 against 0.22, and both cut where the object leaves. The noise margin
  and the one-frame bridge keep a moment whole when frames wobble by about
  as much as the object stands out (an object filling most of the input,
  whose level the median then is, or an input the query barely tells apart).
* hits are taken best first: a hit inside a moment joins it; a hit whose
  stretch reaches an existing moment is that moment's fringe and makes none
  of its own (so an edge frame never splits a moment off); any other hit
  starts a moment. A hit's moment therefore depends only on the hits
  stronger than it, which every larger K returns too.
* a moment runs from its first frame's time to the end of its last frame
  (:func:`frame_ends`): a sampled frame lasts until the next stored frame, a
  refinement frame (decoded beside an edge) one frame, the input's last
  frame until the input's end (:func:`input_end`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

NOISE_MARGIN = 2.0  # robust standard deviations of one frame's similarity
_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, for normal noise


@dataclass(frozen=True)
class Span:
    """Positions ``first..last`` (inclusive) of a similarity curve, grown from
    ``seed``; every frame in it is at or above ``floor`` but lone dips."""

    first: int
    last: int
    seed: int
    floor: float


def noise(scores: np.ndarray) -> float:
    """The curve's frame-to-frame noise: a robust standard deviation of one
    frame's similarity, from the median change between neighbours (edges,
    where the content changes, are few and do not move the median)."""
    if len(scores) < 2:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(np.diff(scores))) / math.sqrt(2))


def level(top: float, median: float, noise_sd: float) -> float:
    """The lowest similarity a moment whose frames reach ``top`` extends down
    to (see the module notes); never above ``top``. Non-decreasing in ``top``."""
    return min(top, (top + median) / 2 - NOISE_MARGIN * noise_sd)


def lone_dips(below: np.ndarray) -> np.ndarray:
    """Frames of ``below`` whose neighbours on both sides are not below."""
    below = np.asarray(below, bool)
    lone = np.zeros(len(below), bool)
    lone[1:-1] = below[1:-1] & ~below[:-2] & ~below[2:]
    return lone


def stretch(scores: np.ndarray, seed: int, floor: float, taken: np.ndarray) -> tuple[int, int]:
    """The positions ``(first, last)`` around ``seed`` that are at or above
    ``floor`` (lone dips bridged) and not ``taken``."""
    below = scores < floor
    stop = (below & ~lone_dips(below)) | taken
    before = np.flatnonzero(stop[:seed])
    after = np.flatnonzero(stop[seed + 1:])
    return (int(before[-1]) + 1 if len(before) else 0,
            seed + int(after[0]) if len(after) else len(scores) - 1)


def find_spans(scores: Sequence[float] | np.ndarray, seeds: Sequence[int]) -> list[Span]:
    """The moments a curve's hits make, as spans of positions, strongest seed first.

    Args:
        scores: the query's similarity at each stored frame of one input, in time order.
        seeds: positions of the hits (any order; repeats ignored).

    Returns:
        spans that never overlap nor touch, each containing its seed. A seed
        inside an earlier span, or whose stretch reaches one, makes no span.
    """
    scores = np.asarray(scores, np.float64)
    if not len(scores):
        return []
    median, noise_sd = float(np.median(scores)), noise(scores)
    taken = np.zeros(len(scores), bool)
    spans: list[Span] = []
    for seed in sorted({int(s) for s in seeds}, key=lambda i: (-scores[i], i)):
        if taken[seed]:
            continue
        first, last = stretch(scores, seed, level(scores[seed], median, noise_sd), taken)
        typical = min(scores[seed], float(np.median(scores[first:last + 1])))
        floor = level(typical, median, noise_sd)
        first, last = stretch(scores, seed, floor, taken)
        # earlier spans hold the stronger frames: a stretch that meets one is its fringe
        if (first > 0 and taken[first - 1]) or (last + 1 < len(scores) and taken[last + 1]):
            continue
        taken[first:last + 1] = True
        spans.append(Span(first, last, seed, floor))
    return spans


def frame_ends(times_s: np.ndarray, refine: np.ndarray, *, end_s: float,
               fps: float | None) -> np.ndarray:
    """When each stored frame stops standing for the input: the next stored
    frame's time; a refinement frame's own duration (``1/fps``) at most; the
    last frame's ``end_s``."""
    times_s = np.asarray(times_s, np.float64)
    ends = np.append(times_s[1:], max(end_s, times_s[-1])) if len(times_s) else times_s
    if fps:
        ends = np.where(np.asarray(refine, bool), np.minimum(ends, times_s + 1.0 / fps), ends)
    return ends


def input_end(times_s: np.ndarray, refine: np.ndarray, duration_s: float, fps: float | None) -> float:
    """Where an input's last stored frame stops: the input's end, but at most
    one sampling step after that frame (container durations can lie); past
    the claimed end, one frame."""
    times_s, refine = np.asarray(times_s, np.float64), np.asarray(refine, bool)
    sampled = times_s[~refine]
    frame = 1.0 / fps if fps else None
    step = float(np.median(np.diff(sampled))) if len(sampled) > 1 else (frame or 0.0)
    last = float(times_s[-1])
    if duration_s > last:
        return min(duration_s, last + step)
    return last + (frame if frame is not None else step)


# --------------------------------------------------------------------------- one input's moments


@dataclass(frozen=True)
class Timeline:
    """Every stored frame of one input, once each, in time order."""

    input_path: str
    frame_index: np.ndarray
    times_s: np.ndarray
    ends_s: np.ndarray  # when each frame stops standing for the input (:func:`frame_ends`)
    vectors: np.ndarray


class HitLike(Protocol):
    """What a moment needs of a search hit (:class:`pipeline.explore.search.Hit`)."""

    input_path: str
    time_s: float
    frame_index: int
    score: float


@dataclass(frozen=True)
class Moment:
    """One stretch of an input where the query shows."""

    input_path: str
    start_s: float
    end_s: float
    best_score: float
    best_time_s: float
    hits: int  # top-K hits inside it
    best_frame_index: int = -1  # the best hit's stored frame (its thumbnail)


def moments_of(line: Timeline, scores: np.ndarray, hits: Sequence[HitLike]) -> list[Moment]:
    """One input's moments: the spans its ``hits`` make on its curve ``scores``
    (the query's similarity at each of ``line``'s frames)."""
    position = {int(i): p for p, i in enumerate(line.frame_index)}
    placed = [(position[h.frame_index], h) for h in hits if h.frame_index in position]
    out = []
    for span in find_spans(scores, [p for p, _ in placed]):
        inside = [h for p, h in placed if span.first <= p <= span.last]
        best = max(inside, key=lambda h: (h.score, -h.time_s))
        out.append(Moment(input_path=line.input_path, start_s=float(line.times_s[span.first]),
                          end_s=float(line.ends_s[span.last]), best_score=best.score,
                          best_time_s=best.time_s, hits=len(inside), best_frame_index=best.frame_index))
    return out


def ranked(moments: Sequence[Moment]) -> list[Moment]:
    """Best score first (then input and start, so ties come out the same way every time)."""
    return sorted(moments, key=lambda m: (-m.best_score, m.input_path, m.start_s))
