"""The live tracker settles exactly the segments smooth.py finds in the
whole stream, and says so in the right order (pipeline.live.tracker)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipeline.analysis import smooth
from pipeline.config import LabelRules
from pipeline.live.tracker import LabelTracker


def _file_segments(rules: LabelRules, times: np.ndarray, raw: np.ndarray):
    smoothed = smooth.smooth(raw, times, rules.method, rules.window_s)
    return smooth.detect_segments(rules.label, rules.kind, times, smoothed, enter=rules.enter,
                                  exit=rules.exit, min_duration_s=rules.min_duration_s,
                                  merge_gap_s=rules.merge_gap_s, duration_s=None)


def _same_segments(live, file):
    """Equal spans; scores equal up to float rounding (a moving average's
    cumulative sums differ in the last bit when taken over part of a stream)."""
    assert [(s.label, s.kind, s.start_s, s.end_s) for s in live] == \
        [(s.label, s.kind, s.start_s, s.end_s) for s in file]
    for a, b in zip(live, file):
        assert abs(a.peak - b.peak) < 1e-9 and abs(a.mean - b.mean) < 1e-9


def _live(rules: LabelRules, times, raw):
    tracker = LabelTracker(rules)
    events = [e for t, x in zip(times, raw) for e in tracker.add(t, x)]
    return events + tracker.finish(), tracker


def _rules(kind="tag", method="median", window_s=2.0, min_duration_s=1.0, merge_gap_s=1.0):
    return LabelRules("cat", kind, 0.5, 0.45, method, window_s, min_duration_s, merge_gap_s)


scores = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=120)


@given(raw=scores, method=st.sampled_from(["none", "median", "moving_average", "ema"]),
       window=st.sampled_from([0.0, 1.0, 2.5, 4.0]), min_d=st.sampled_from([0.0, 0.5, 2.0]),
       gap=st.sampled_from([0.0, 1.0, 3.0]), step=st.sampled_from([0.5, 1.0]),
       kind=st.sampled_from(["tag", "nsfw"]))
def test_closed_segments_are_the_file_runs(raw, method, window, min_d, gap, step, kind):
    rules = _rules(kind, method, window, min_d, gap)
    times = np.arange(len(raw)) * step
    raw = np.asarray(raw)
    events, tracker = _live(rules, times, raw)
    closed = [e.segment for e in events if e.event == "close"]
    _same_segments(closed, _file_segments(rules, times, raw))
    assert tracker.final_count == len(raw)
    expected = smooth.smooth(raw, times, method, window)
    np.testing.assert_allclose([tracker.value(i) for i in range(len(raw))], expected, atol=1e-12)


@given(raw=scores, kind=st.sampled_from(["tag", "nsfw"]))
def test_every_close_was_opened_and_every_alarm_resolved(raw, kind):
    rules = _rules(kind, min_duration_s=2.0)
    events, _ = _live(rules, np.arange(len(raw)) * 0.5, np.asarray(raw))
    opened: dict[float, str] = {}
    for e in events:
        if e.event in ("open", "nsfw"):
            assert e.start_s not in opened
            opened[e.start_s] = e.event
        elif e.event == "confirm":
            assert opened.get(e.start_s) == "nsfw"
            opened[e.start_s] = "confirm"
        else:
            assert e.event in ("close", "retract") and e.start_s in opened
            assert e.event == "retract" or opened[e.start_s] in ("open", "confirm")
            del opened[e.start_s]
    assert not opened
    assert all(e.event not in ("nsfw", "confirm", "retract") for e in events) or kind == "nsfw"


def test_nsfw_fires_on_crossing_before_the_minimum_duration():
    rules = _rules("nsfw", method="none", window_s=0.0, min_duration_s=2.0, merge_gap_s=0.0)
    tracker = LabelTracker(rules)
    quiet = [tracker.add(t, 0.1) for t in (0.0, 0.5, 1.0)]
    first = tracker.add(1.5, 0.9)
    assert quiet == [[], [], []] and [e.event for e in first] == ["nsfw"]
    later = [e.event for t in (2.0, 2.5, 3.0) for e in tracker.add(t, 0.9)]
    assert later == ["confirm"]
    short = LabelTracker(rules)
    for t, x in [(0.0, 0.1), (0.5, 0.9), (1.0, 0.1), (1.5, 0.1)]:
        short.add(t, x)
    assert [e.event for e in short.finish()] == []  # the retract came as soon as it settled


def test_a_short_alarm_is_retracted_once_it_settles():
    rules = _rules("nsfw", method="none", window_s=0.0, min_duration_s=2.0, merge_gap_s=0.0)
    tracker = LabelTracker(rules)
    events = [e.event for t, x in [(0.0, 0.1), (0.5, 0.9), (1.0, 0.1), (1.5, 0.1)]
              for e in tracker.add(t, x)]
    assert events == ["nsfw", "retract"]


def test_memory_is_trimmed_on_a_long_stream():
    tracker = LabelTracker(_rules())
    for i in range(5000):
        tracker.add(i * 0.5, 0.9 if (i // 40) % 2 else 0.1)
    assert len(tracker.times) < 2200 and tracker.final_count > 4990


@given(raw=scores, spacings=st.lists(st.sampled_from([0.4, 0.5, 0.533, 0.6, 1.0]), min_size=1, max_size=119),
       kind=st.sampled_from(["tag", "nsfw"]), min_d=st.sampled_from([0.0, 0.5, 2.0]))
def test_each_segment_is_announced_once_however_the_step_estimate_moves(raw, spacings, kind, min_d):
    """A segment was keyed by its start time, which moves with the sampling
    step's estimate (the median spacing so far): a VFR stream announced every
    tag twice (open at 1.733 s, again at 1.75 s) and alerted ``--events-url`` twice."""
    n = min(len(raw), len(spacings) + 1)
    times = np.concatenate([[0.0], np.cumsum(spacings[:n - 1])])
    events, _ = _live(_rules(kind, "median", 1.0, min_d, 1.0), times, np.asarray(raw[:n]))
    first = "nsfw" if kind == "nsfw" else "open"
    starts = [e for e in events if e.event == first]
    ends = [e for e in events if e.event in ("close", "retract")]
    assert len(starts) == len(ends), [(e.event, e.start_s) for e in events]
    assert len([e for e in events if e.event == "confirm"]) <= len(starts)
    # strictly alternating: nothing is announced again while it is open
    opened = 0
    for e in events:
        opened += e.event == first
        opened -= e.event in ("close", "retract")
        assert opened in (0, 1), [(e.event, e.start_s) for e in events]


def test_a_vfr_stream_opens_its_segment_once():
    """The issue's case: a tag present from ~1.7 s on a stream whose spacing
    changes from 0.5 s to 0.533 s as it plays."""
    times = np.concatenate([np.arange(0, 3.0, 0.5), 3.0 + np.cumsum(np.full(20, 0.533))])
    raw = np.where(times >= 1.7, 0.9, 0.1)
    events, _ = _live(_rules("tag", "none", 0.0, 1.0, 1.0), times, raw)
    assert [e.event for e in events] == ["open", "close"], [(e.event, e.start_s) for e in events]
