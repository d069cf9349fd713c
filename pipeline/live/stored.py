"""A live stream as the store keeps it: one input of all its frames, in PTS
order, with its gaps noted in its decode stats (:mod:`pipeline.decode.gaps`);
and its analysis, piece by piece between the gaps, as the live run's
trackers made it (``rescore``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.decode.gaps import gaps_of
from pipeline.types import Segment

_EPS = 1e-3  # gap bounds are noted to the millisecond


def analyse_stream(embedded, classifier, config) -> dict:
    """:func:`pipeline.analysis.analyse.analyse` of a stored live stream: each piece
    between two gaps is scored, smoothed and segmented on its own (a
    filter never reaches across a gap), its segments kept out of the gaps,
    as :class:`pipeline.live.stream.LiveStream` did while it played. No
    edge refinement: the stream cannot be read again.

    Returns:
        keyword arguments for :class:`pipeline.types.VideoResult`, as ``analyse``.
    """
    from pipeline.analysis.analyse import Coarse, coarse_analysis, finish, video_duration

    times = np.asarray(embedded.times_s, np.float64)
    pieces, segments = [], []
    for lo, hi, after, before in _pieces(times, gaps_of(embedded.stats)):
        coarse = coarse_analysis(times[lo:hi], embedded.embeddings[lo:hi], classifier, config, None)
        pieces.append(coarse)
        segments += [_within(c.segment, after, before) for c in coarse.segments]
    tracks = [dataclasses.replace(
        first, raw=np.concatenate([p.tracks[i].raw for p in pieces]),
        smoothed=np.concatenate([p.tracks[i].smoothed for p in pieces]))
        for i, first in enumerate(pieces[0].tracks)] if pieces else []
    scores = np.concatenate([p.scores for p in pieces]) if pieces else np.zeros((0, len(tracks)))
    segments.sort(key=lambda s: (s.start_s, s.label))
    whole = Coarse(times, scores, tracks, [], video_duration(embedded.info, times))
    return finish(whole, segments, config)


def _pieces(times: np.ndarray, gaps: list[tuple[float, float]]):
    """``(lo, hi, after_s, before_s)`` per unbroken piece: its samples
    ``times[lo:hi]`` lie after the gap ending at ``after_s`` and before the
    one starting at ``before_s`` (None: no gap that side)."""
    lo, after = 0, None
    for start, end in gaps:
        hi = int(np.searchsorted(times, start + _EPS, side="right"))
        if hi > lo:
            yield lo, hi, after, start
        lo, after = max(lo, hi), end
    if len(times) > lo:
        yield lo, len(times), after, None


def _within(seg: Segment, after_s: float | None, before_s: float | None) -> Segment:
    """``seg`` kept out of the gaps either side: a gap is never tagged."""
    start, end = seg.start_s, seg.end_s
    if after_s is not None and start < after_s:
        start = after_s
    if before_s is not None and end > before_s:
        end = max(before_s, start)
    if (start, end) == (seg.start_s, seg.end_s):
        return seg
    return dataclasses.replace(seg, start_s=start, end_s=end)
