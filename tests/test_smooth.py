"""pipeline.analysis.smooth: filters, hysteresis, gap merging, segments, totals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis import smooth
from pipeline.types import Interval, LabelTotals, LabelTrack, Segment


def pulses(times: np.ndarray, spans: list[tuple[float, float]], level: float = 0.9,
           noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Square pulses at ``level`` over ``spans`` (seconds) on a 0.1 floor, plus noise."""
    rng = np.random.default_rng(seed)
    scores = np.full(len(times), 0.1)
    for a, b in spans:
        scores[(times >= a) & (times < b)] = level
    return np.clip(scores + rng.normal(0.0, noise, len(times)), 0.0, 1.0)


def detect(times, scores, *, enter=0.5, exit=0.4, min_duration_s=0.0, merge_gap_s=0.0,
           duration_s=None) -> list[Segment]:
    return smooth.detect_segments("cat", "tag", times, scores, enter=enter, exit=exit,
                                  min_duration_s=min_duration_s, merge_gap_s=merge_gap_s,
                                  duration_s=duration_s)


# --------------------------------------------------------------------------- segments on known truth


@pytest.mark.parametrize("method", ["none", "median", "moving_average"])
@pytest.mark.parametrize("fps", [2.0, 5.0, 12.5])
def test_noisy_pulses_come_back_as_segments(method, fps):
    duration = 60.0
    times = np.arange(0.0, duration, 1.0 / fps) + 0.5 / fps
    truth = [(5.0, 15.0), (30.0, 34.0), (45.0, 55.0)]
    raw = pulses(times, truth, noise=0.05, seed=int(fps * 10))
    smoothed = smooth.smooth(raw, times, method, 1.0)
    # exit == enter at the pulses' midpoint: hysteresis lag on a smoothed ramp would
    # otherwise shift ends by (enter - exit) / slope, which is not what this test is about
    segs = detect(times, smoothed, enter=0.5, exit=0.5, min_duration_s=1.0, merge_gap_s=1.0,
                  duration_s=duration)
    step = 1.0 / fps
    assert len(segs) == len(truth)
    for seg, (a, b) in zip(segs, truth, strict=True):
        assert abs(seg.start_s - a) <= step + 1e-9
        assert abs(seg.end_s - b) <= step + 1e-9
        assert seg.peak >= seg.mean >= 0.5


def test_all_below_gives_no_segments():
    times = np.arange(0.0, 10.0, 0.5)
    assert detect(times, np.full(len(times), 0.3), duration_s=10.0) == []


def test_all_above_gives_whole_video():
    times = np.arange(0.0, 10.0, 0.5)  # last sample 9.5; the video runs to 10.0
    segs = detect(times, np.full(len(times), 0.8), min_duration_s=2.0, duration_s=10.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 10.0)]
    assert segs[0].peak == pytest.approx(0.8) and segs[0].mean == pytest.approx(0.8)


def test_all_above_without_duration_ends_half_a_step_after_last_sample():
    times = np.arange(0.0, 10.0, 0.5)
    segs = detect(times, np.full(len(times), 0.8))
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 9.75)]


def test_segment_touching_the_end_ends_at_duration():
    times = np.arange(0.25, 20.0, 0.5)
    segs = detect(times, pulses(times, [(12.0, 99.0)]), duration_s=20.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(12.0, 20.0)]


def test_cut_off_run_is_not_stretched_to_the_duration():
    times = np.arange(0.0, 10.0, 1.0)  # e.g. max_frames stopped sampling at 9 s of a 100 s video
    segs = detect(times, np.full(len(times), 0.9), duration_s=100.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 9.5)]


def test_one_sample_spike_is_removed_by_min_duration():
    times = np.arange(0.0, 20.0, 0.5)
    raw = pulses(times, [(5.0, 5.5), (10.0, 14.0)])
    segs = detect(times, raw, min_duration_s=1.0, duration_s=20.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(9.75, 13.75)]


def test_one_sample_spike_is_removed_by_median():
    times = np.arange(0.0, 20.0, 0.5)
    raw = pulses(times, [(5.0, 5.5)])
    assert smooth.smooth(raw, times, "median", 1.5).max() == pytest.approx(0.1)
    assert detect(times, smooth.smooth(raw, times, "median", 1.5), duration_s=20.0) == []


def test_gap_merge_joins_two_pulses_across_a_short_dip():
    times = np.arange(0.0, 20.0, 0.5)
    raw = pulses(times, [(2.0, 6.0), (7.0, 12.0)])  # dip of 2 samples = 1 s
    assert len(detect(times, raw, merge_gap_s=0.5, duration_s=20.0)) == 2
    merged = detect(times, raw, merge_gap_s=1.0, duration_s=20.0)
    assert [(s.start_s, s.end_s) for s in merged] == [(1.75, 11.75)]
    assert merged[0].mean < 0.9  # the dip counts in the mean


def test_hysteresis_keeps_a_run_through_a_wobble():
    scores = np.array([0.1, 0.6, 0.45, 0.55, 0.42, 0.3, 0.6, 0.1])
    assert smooth.hysteresis(scores, 0.5, 0.4) == [Interval(1, 5), Interval(6, 7)]
    assert smooth.hysteresis(scores, 0.5, 0.5) == [Interval(1, 2), Interval(3, 4), Interval(6, 7)]


def test_hysteresis_rejects_exit_above_enter():
    with pytest.raises(ValueError, match="exit"):
        smooth.hysteresis(np.zeros(3), 0.4, 0.5)


def test_segments_without_samples():
    assert detect(np.zeros(0), np.zeros(0), duration_s=5.0) == []


def test_single_sample_above():
    segs = detect(np.array([0.0]), np.array([0.9]), duration_s=0.5)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 0.5)]


# --------------------------------------------------------------------------- filters


def test_sample_step():
    assert smooth.sample_step(np.array([0.0, 0.5, 1.0, 3.0])) == 0.5
    assert smooth.sample_step(np.array([2.0])) == 1.0
    assert smooth.sample_step(np.zeros(0)) == 1.0


def test_window_in_seconds_is_the_same_at_different_rates():
    """A 2 s moving average turns a 1 s pulse into the same curve in time at 4 and 20 fps."""
    curves = []
    for fps in (4, 20):
        times = np.arange(0.0, 10.0, 1.0 / fps)
        curves.append((times, smooth.smooth(pulses(times, [(4.0, 5.0)], level=1.0),
                                            times, "moving_average", 2.0)))
    (t_lo, lo), (t_hi, hi) = curves
    assert np.interp(4.5, t_lo, lo) == pytest.approx(np.interp(4.5, t_hi, hi), abs=0.07)
    assert lo.max() == pytest.approx(hi.max(), abs=0.07)
    assert 0.5 <= hi.max() <= 0.6  # ~1 s of signal over a ~2 s window


def test_window_samples_is_odd():
    times = np.arange(0.0, 10.0, 0.25)
    assert smooth.window_samples(times, 1.0) == 5
    assert smooth.window_samples(times, 0.5) == 3
    assert smooth.window_samples(times, 0.0) == 1


def test_edges_are_not_dragged_to_zero():
    times = np.arange(0.0, 5.0, 0.5)
    ones = np.ones(len(times))
    for method in ("moving_average", "median", "ema"):
        assert np.allclose(smooth.smooth(ones, times, method, 3.0), 1.0), method
    dip = np.full(len(times), 0.8)
    dip[5] = 0.0
    averaged = smooth.smooth(dip, times, "moving_average", 1.5)
    assert averaged[0] == pytest.approx(0.8) and averaged[-1] == pytest.approx(0.8)


@pytest.mark.parametrize("method", ["moving_average", "median"])
def test_centred_filters_match_a_truncated_rolling_window(method):
    """Reference: pandas' centred rolling window with partial windows at the ends."""
    import pandas as pd

    rng = np.random.default_rng(7)
    times = np.arange(0.0, 12.0, 0.25)
    x = rng.uniform(0.0, 1.0, len(times))
    rolling = pd.Series(x).rolling(7, center=True, min_periods=1)
    expected = rolling.mean() if method == "moving_average" else rolling.median()
    assert np.allclose(smooth.smooth(x, times, method, 1.75), expected.to_numpy(), atol=1e-12)


def test_ema_uses_real_time_deltas_on_irregular_sampling():
    times = np.array([0.0, 0.1, 0.2, 5.0, 5.1])
    scores = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    out = smooth.smooth(scores, times, "ema", 1.0)
    assert out[:3].tolist() == [0.0, 0.0, 0.0]
    assert out[3] == pytest.approx(1.0 - np.exp(-4.8))  # a long pause: nearly all new value
    assert out[4] == pytest.approx(out[3] + (1 - out[3]) * (1 - np.exp(-0.1)))
    # the same step at regular 0.1 s spacing responds far less in one sample
    regular = smooth.smooth(scores, np.arange(5) * 0.1, "ema", 1.0)
    assert regular[3] == pytest.approx(1 - np.exp(-0.1))


@pytest.mark.parametrize("method", smooth.METHODS)
def test_smooth_tiny_inputs(method):
    assert smooth.smooth(np.zeros(0), np.zeros(0), method, 1.0).shape == (0,)
    assert smooth.smooth(np.array([0.7]), np.array([3.0]), method, 1.0).tolist() == [0.7]


def test_smooth_rejects_bad_arguments():
    t = np.arange(3.0)
    with pytest.raises(ValueError, match="method"):
        smooth.smooth(np.zeros(3), t, "gaussian", 1.0)
    with pytest.raises(ValueError, match="window"):
        smooth.smooth(np.zeros(3), t, "median", -1.0)
    with pytest.raises(ValueError, match="length"):
        smooth.smooth(np.zeros(4), t, "median", 1.0)


# --------------------------------------------------------------------------- totals, verdict, tags


def test_label_totals():
    smoothed = np.array([0.1, 0.6, 0.7, 0.2])
    track = LabelTrack("cat", "tag", raw=np.array([0.1, 0.9, 0.5, 0.2]), smoothed=smoothed,
                       threshold=0.5, exit_threshold=0.4)
    segs = [Segment("cat", "tag", 1.0, 3.0, 0.7, 0.65), Segment("cat", "tag", 5.0, 6.0, 0.6, 0.6)]
    tot = smooth.label_totals(track, segs, 10.0)
    assert tot == LabelTotals("cat", "tag", seconds_present=3.0, fraction=0.3,
                              frames_over_threshold=2, max_score=0.7)
    assert np.isnan(smooth.label_totals(track, segs, None).fraction)


def test_nsfw_verdict():
    short = Segment("gore", "nsfw", 1.0, 1.2, 0.9, 0.9)
    longer = Segment("gore", "nsfw", 4.0, 5.0, 0.9, 0.9)
    tag = Segment("cat", "tag", 0.0, 9.0, 0.9, 0.9)
    assert smooth.nsfw_verdict([tag], False, 0.5) == "n/a"
    assert smooth.nsfw_verdict([tag], True, 0.5) == "safe"
    assert smooth.nsfw_verdict([short, tag], True, 0.5) == "safe"
    assert smooth.nsfw_verdict([short, longer], True, 0.5) == "unsafe"
    assert smooth.nsfw_verdict([], True, 0.0) == "safe"


def test_video_tags_order_and_filter():
    def tot(label, secs, kind="tag"):
        return LabelTotals(label, kind, secs, secs / 100.0, 0, 0.0)

    totals = [tot("beach", 5.0), tot("cat", 0.0), tot("city", 40.0), tot("gore", 50.0, "nsfw"),
              tot("dog", 5.0)]
    assert smooth.video_tags(totals) == ["city", "beach", "dog"]
    assert smooth.video_tags(totals, min_fraction=0.1) == ["city"]


# --------------------------------------------------------------------------- properties

# Scores and thresholds on a 1/64 grid keep "+ constant" and "* power of two" exact in floats,
# so the invariance properties test the algorithm, not rounding.
GRID = st.integers(0, 64).map(lambda k: k / 64)


@st.composite
def traces(draw, min_size=0, max_size=60):
    n = draw(st.integers(min_size, max_size))
    gaps = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 2.0)), min_size=n, max_size=n))
    times = np.cumsum(gaps) - gaps[0] if n else np.zeros(0)
    scores = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)), dtype=np.float64)
    return times, scores


@settings(max_examples=200, deadline=None)
@given(trace=traces(), enter=st.floats(0.05, 1.0), exit_frac=st.floats(0.0, 1.0),
       min_duration=st.floats(0.0, 3.0), merge_gap=st.floats(0.0, 3.0),
       tail=st.one_of(st.none(), st.floats(0.0, 5.0)),
       method=st.sampled_from(smooth.METHODS), window=st.floats(0.0, 4.0))
def test_segments_are_well_formed(trace, enter, exit_frac, min_duration, merge_gap, tail, method, window):
    times, scores = trace
    duration = None if tail is None or not len(times) else float(times[-1]) + tail
    smoothed = smooth.smooth(scores, times, method, window)
    segs = detect(times, smoothed, enter=enter, exit=enter * exit_frac,
                  min_duration_s=min_duration, merge_gap_s=merge_gap, duration_s=duration)
    if duration is not None:
        end = duration
    else:
        end = times[-1] + smooth.sample_step(times) / 2 if len(times) else 0.0
    for a, b in itertools.pairwise(segs):
        assert a.end_s <= b.start_s
    for seg in segs:
        assert 0.0 <= seg.start_s < seg.end_s <= end + 1e-9
        assert seg.duration_s >= min_duration - 1e-6
        assert seg.peak >= seg.mean
        assert seg.peak >= enter


@settings(max_examples=200, deadline=None)
@given(scores=st.lists(GRID, max_size=50), enter=GRID, exit_=GRID,
       shift=st.integers(-64, 64).map(lambda k: k / 64), scale=st.sampled_from([0.25, 0.5, 2.0, 8.0]))
def test_hysteresis_is_invariant_to_shift_and_scale(scores, enter, exit_, shift, scale):
    enter, exit_ = max(enter, exit_), min(enter, exit_)
    x = np.array(scores, dtype=np.float64)
    base = smooth.hysteresis(x, enter, exit_)
    assert smooth.hysteresis(x + shift, enter + shift, exit_ + shift) == base
    assert smooth.hysteresis(x * scale, enter * scale, exit_ * scale) == base
    for iv in base:  # and every run really is a run
        assert x[iv.start] >= enter and (x[iv.start:iv.stop] >= exit_).all()
        assert iv.stop == len(x) or x[iv.stop] < exit_


@settings(max_examples=150, deadline=None)
@given(trace=traces(min_size=1), value=st.floats(-5.0, 5.0), method=st.sampled_from(smooth.METHODS),
       window=st.floats(0.0, 10.0))
def test_smoothing_a_constant_gives_that_constant(trace, value, method, window):
    times, _ = trace
    out = smooth.smooth(np.full(len(times), value), times, method, window)
    assert np.allclose(out, value, rtol=0, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(trace=traces(min_size=1), method=st.sampled_from(["median", "moving_average", "ema"]),
       window=st.floats(0.0, 10.0))
def test_smoothing_stays_within_the_input_range(trace, method, window):
    times, scores = trace
    out = smooth.smooth(scores, times, method, window)
    assert out.shape == scores.shape
    assert scores.min() - 1e-12 <= out.min() and out.max() <= scores.max() + 1e-12


def test_segment_mean_never_exceeds_its_peak_on_a_flat_run():
    """numpy's mean of 11 copies of this value lands one ulp above it."""
    value = 0.4230769230769231
    times = np.arange(11, dtype=float)
    (seg,) = smooth.detect_segments("a", "tag", times, np.full(11, value), enter=0.1, exit=0.1,
                                    min_duration_s=0, merge_gap_s=0, duration_s=11.0)
    assert seg.peak == value and seg.mean <= seg.peak
