"""From per-frame scores to timestamped segments: filters, hysteresis, gap
merging, minimum duration, per-label totals and the NSFW verdict.

Pure numpy over score arrays: no I/O, no logging.

Time convention used throughout: samples are at times ``times_s`` (seconds,
ascending) with a nominal spacing ``step`` (the median spacing, see
:func:`sample_step`). A sample at time ``t`` stands for ``[t - step/2,
t + step/2]``. The first sample also stands for the time before it and the
last one for the time after it, when that edge lies within one step of the
video's start or end (a cut-off run, e.g. ``max_frames``, is not stretched).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.types import Interval, LabelTotals, LabelTrack, Segment

METHODS = ("none", "moving_average", "median", "ema")
_EPS = 1e-6  # seconds: float slack when comparing durations


# --------------------------------------------------------------------------- filters


def sample_step(times_s: np.ndarray) -> float:
    """The nominal time between samples: the median positive spacing.

    Returns 1.0 when there are fewer than two samples (or no positive spacing).
    """
    diffs = np.diff(np.asarray(times_s, dtype=np.float64))
    diffs = diffs[diffs > 0]
    return float(np.median(diffs)) if len(diffs) else 1.0


def window_samples(times_s: np.ndarray, window_s: float) -> int:
    """A window in seconds as an odd sample count (at least 1)."""
    n = max(1, int(round(window_s / sample_step(times_s))))
    return n if n % 2 else n + 1


def smooth(scores: np.ndarray, times_s: np.ndarray, method: str, window_s: float) -> np.ndarray:
    """Smooth one score track over time.

    Args:
        scores: per-sample scores, shape (N,).
        times_s: sample times in seconds, ascending, shape (N,).
        method: ``"none"``, ``"moving_average"``, ``"median"`` or ``"ema"``.
        window_s: window length in seconds (centred for moving average and
            median, converted to an odd sample count from the median spacing;
            near the ends the window is truncated, so edges are not pulled
            toward zero). For ``"ema"`` it is the time constant, applied to
            the actual time deltas, so irregular sampling is handled.

    Returns:
        float64 array of shape (N,).

    Raises:
        ValueError: on an unknown method, a negative window or mismatched lengths.
    """
    x = np.asarray(scores, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown smoothing method {method!r}; expected one of {METHODS}")
    if window_s < 0:
        raise ValueError(f"window_s must be >= 0, got {window_s}")
    if x.shape != t.shape or x.ndim != 1:
        raise ValueError(f"scores {x.shape} and times_s {t.shape} must be 1-D of equal length")
    if len(x) < 2 or method == "none" or window_s == 0:
        return x.copy()
    if method == "ema":
        return _ema(x, t, window_s)
    n = min(window_samples(t, window_s), 2 * len(x) - 1)  # wider would change nothing
    if n == 1:
        return x.copy()
    return _moving_average(x, n) if method == "moving_average" else _median(x, n)


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    half = n // 2
    idx = np.arange(len(x))
    lo = np.clip(idx - half, 0, len(x))
    hi = np.clip(idx + half + 1, 0, len(x))
    csum = np.concatenate([[0.0], np.cumsum(x)])
    out = (csum[hi] - csum[lo]) / (hi - lo)
    # cumsum differences can overshoot by an ulp; keep within the input's range
    return np.clip(out, x.min(), x.max())


def _median(x: np.ndarray, n: int) -> np.ndarray:
    half = n // 2
    padded = np.pad(x, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)
    return np.nanmedian(windows, axis=1)


def _ema(x: np.ndarray, t: np.ndarray, tau: float) -> np.ndarray:
    # weight of each new sample grows with the real time since the previous one
    with np.errstate(over="ignore", divide="ignore"):  # tiny tau: alpha -> 1, no smoothing
        alpha = 1.0 - np.exp(-np.maximum(np.diff(t), 0.0) / tau)
    out = np.empty_like(x)
    out[0] = x[0]
    for i in range(1, len(x)):
        out[i] = out[i - 1] + alpha[i - 1] * (x[i] - out[i - 1])
    return out


# --------------------------------------------------------------------------- intervals


def hysteresis(scores: np.ndarray, enter: float, exit: float) -> list[Interval]:
    """Runs of samples judged present, with hysteresis.

    A run starts at a sample whose score is ``>= enter`` and lasts while the
    score stays ``>= exit``; it ends at the first sample below ``exit``.

    Args:
        scores: per-sample scores, shape (N,).
        enter: threshold to start a run.
        exit: threshold below which a run ends; must not exceed ``enter``.

    Returns:
        half-open sample ranges ``[start, stop)``, sorted, non-overlapping.

    Raises:
        ValueError: if ``exit > enter``.
    """
    if exit > enter:
        raise ValueError(f"exit threshold {exit} must not exceed enter threshold {enter}")
    out: list[Interval] = []
    start = None
    for i, s in enumerate(np.asarray(scores, dtype=np.float64)):
        if start is None and s >= enter:
            start = i
        elif start is not None and not s >= exit:  # NaN also ends a run
            out.append(Interval(start, i))
            start = None
    if start is not None:
        out.append(Interval(start, len(scores)))
    return out


def interval_span(interval: Interval, times_s: np.ndarray, step_s: float,
                  duration_s: float | None = None) -> tuple[float, float]:
    """The time span ``(start_s, end_s)`` covered by an interval of samples.

    Samples ``i..j`` span ``[t_i - step/2, t_j + step/2]``, clipped to
    ``[0, duration_s]``. An interval holding the first (last) sample starts at
    0 (ends at ``duration_s``) when that edge is within one step. With
    ``duration_s`` None the video is taken to end at ``t_last + step/2``.
    """
    t = np.asarray(times_s, dtype=np.float64)
    end_of_video = float(t[-1]) + step_s / 2 if duration_s is None else float(duration_s)
    start = float(t[interval.start]) - step_s / 2
    end = float(t[interval.stop - 1]) + step_s / 2
    if interval.start == 0 and t[0] <= step_s:
        start = 0.0
    if interval.stop == len(t) and end_of_video - t[-1] <= step_s:
        end = end_of_video
    return max(start, 0.0), min(end, end_of_video)


def merge_gaps(intervals: Sequence[Interval], times_s: np.ndarray, max_gap_s: float) -> list[Interval]:
    """Join consecutive intervals separated by at most ``max_gap_s`` seconds.

    The gap is measured between the intervals' time spans (see
    :func:`interval_span`), so one missing sample is a gap of one step.
    """
    step = sample_step(times_s)
    t = np.asarray(times_s, dtype=np.float64)
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda iv: iv.start):
        if out:
            prev = out[-1]
            gap = (t[iv.start] - step / 2) - (t[prev.stop - 1] + step / 2)
            if gap <= max_gap_s + _EPS:
                out[-1] = Interval(prev.start, max(prev.stop, iv.stop))
                continue
        out.append(iv)
    return out


def drop_short(intervals: Sequence[Interval], times_s: np.ndarray, min_duration_s: float,
               step_s: float, *, duration_s: float | None = None) -> list[Interval]:
    """Keep intervals whose time span lasts at least ``min_duration_s``.

    Args:
        intervals: sample ranges.
        times_s: sample times.
        min_duration_s: shortest span kept, in seconds.
        step_s: nominal sample spacing (see :func:`sample_step`).
        duration_s: video length; spans are measured as :func:`interval_span`
            measures them (clipped/extended at the ends).
    """
    keep = []
    for iv in intervals:
        start, end = interval_span(iv, times_s, step_s, duration_s)
        if end - start >= min_duration_s - _EPS and end > start:
            keep.append(iv)
    return keep


# --------------------------------------------------------------------------- segments


def detect_segments(label: str, kind: str, times_s: np.ndarray, smoothed: np.ndarray, *,
                    enter: float, exit: float, min_duration_s: float, merge_gap_s: float,
                    duration_s: float | None) -> list[Segment]:
    """Segments where one label is present: hysteresis → gap merge → minimum
    duration → :class:`~pipeline.types.Segment`.

    Time convention: a sample at time ``t`` stands for ``[t - step/2,
    t + step/2]`` with ``step`` the median spacing. A segment covering
    samples ``i..j`` spans ``[t_i - step/2, t_j + step/2]`` clipped to
    ``[0, duration_s]``; a segment holding the first (last) sample starts at
    0 (ends at ``duration_s``) when that edge is within one step. With
    ``duration_s`` None the video ends at ``t_last + step/2``.

    ``peak`` and ``mean`` are the max and mean smoothed score over the
    segment's samples (including merged-over dips).

    Returns:
        segments sorted by start, non-overlapping, each at least
        ``min_duration_s`` long (up to 1 µs of float slack).
    """
    pairs = segments_and_intervals(label, kind, times_s, smoothed, enter=enter, exit=exit,
                                   min_duration_s=min_duration_s, merge_gap_s=merge_gap_s,
                                   duration_s=duration_s)
    return [seg for seg, _ in pairs]


def segments_and_intervals(label: str, kind: str, times_s: np.ndarray, smoothed: np.ndarray, *,
                           enter: float, exit: float, min_duration_s: float, merge_gap_s: float,
                           duration_s: float | None) -> list[tuple[Segment, Interval]]:
    """:func:`detect_segments`, each segment with the samples ``[start,
    stop)`` it covers (what edge refinement bisects between)."""
    t = np.asarray(times_s, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    if len(t) == 0:
        return []
    step = sample_step(t)
    intervals = merge_gaps(hysteresis(s, enter, exit), t, merge_gap_s)
    intervals = drop_short(intervals, t, min_duration_s, step, duration_s=duration_s)
    pairs = []
    for iv in intervals:
        start, end = interval_span(iv, t, step, duration_s)
        inside = s[iv.start:iv.stop]
        pairs.append((Segment(label=label, kind=kind, start_s=start, end_s=end,
                              peak=float(inside.max()),
                              # numpy's pairwise sum can put the mean of equal values an ulp above them
                              mean=float(min(inside.mean(), inside.max()))), iv))
    return pairs


def label_totals(track: LabelTrack, segments_of_label: Sequence[Segment],
                 duration_s: float | None) -> LabelTotals:
    """Per-label summary of one video.

    Args:
        track: the label's scores.
        segments_of_label: that label's segments.
        duration_s: video length; ``fraction`` is NaN when it is unknown or 0.

    Returns:
        seconds present (sum of segment durations), fraction of the video,
        frames whose *smoothed* score is ``>= track.threshold``, and the max
        *smoothed* score (NaN with no frames) — smoothed, like the segments.
    """
    seconds = float(sum(seg.duration_s for seg in segments_of_label))
    fraction = seconds / duration_s if duration_s else float("nan")
    smoothed = np.asarray(track.smoothed, dtype=np.float64)
    return LabelTotals(label=track.name, kind=track.kind, seconds_present=seconds,
                       fraction=fraction,
                       frames_over_threshold=int(np.count_nonzero(smoothed >= track.threshold)),
                       max_score=float(smoothed.max()) if len(smoothed) else float("nan"))


def nsfw_verdict(segments: Sequence[Segment], nsfw_enabled: bool, min_total_s: float) -> str:
    """The video's NSFW verdict.

    Returns:
        ``"n/a"`` when no NSFW labels are configured; ``"unsafe"`` when NSFW
        segments exist and total at least ``min_total_s`` seconds; otherwise
        ``"safe"``. Segments of other kinds are ignored.
    """
    if not nsfw_enabled:
        return "n/a"
    nsfw = [seg for seg in segments if seg.kind == "nsfw"]
    total = sum(seg.duration_s for seg in nsfw)
    return "unsafe" if nsfw and total >= min_total_s - _EPS else "safe"


def video_tags(totals: Sequence[LabelTotals], min_fraction: float = 0.0) -> list[str]:
    """Tag labels present in the video, most present first.

    A label qualifies when its kind is ``"tag"``, it has at least one segment
    (``seconds_present > 0``) and its fraction is at least ``min_fraction``
    (an unknown fraction passes only when ``min_fraction`` is 0). Ties keep
    the input order.
    """
    def ok(tot: LabelTotals) -> bool:
        enough = tot.fraction >= min_fraction if np.isfinite(tot.fraction) else min_fraction <= 0
        return tot.kind == "tag" and tot.seconds_present > 0 and enough

    return [tot.label for tot in sorted(filter(ok, totals), key=lambda tot: -tot.seconds_present)]
