"""A live stream keeps the picture at each segment's peak (its thumbnail),
and only the pictures that may still become one (pipeline.live.peaks),
driven as pipeline.live.stream drives it."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import LabelRules
from pipeline.live.peaks import MAX_STRETCHES, PeakPictures
from pipeline.live.tracker import LabelTracker


def _picture(n: int) -> np.ndarray:
    return np.full((8, 8, 3), 2 * n, np.uint8)  # flat: JPEG keeps its level


def _number(picture: np.ndarray) -> int:
    return round(float(picture.mean()) / 2)


def _play(rules: LabelRules, times, raw):
    """(closed segments, the sample number each one's kept picture shows, the pictures' keeper)."""
    tracker, peaks = LabelTracker(rules), PeakPictures([rules])
    closed = []

    def final_values():
        for position in range(peaks.done[0], tracker.final_count):
            peaks.final(0, position, tracker.value(position))

    def handle(events):
        for event in events:
            if event.segment is not None:
                closed.append(event.segment)
                peaks.closed(0, event.segment)
        peaks.settled_before(0, tracker.unsettled_from)

    for n, (t, x) in enumerate(zip(times, raw)):
        peaks.sample(n, t, _picture(n))
        events = tracker.add(t, x)
        final_values()
        handle(events)
    events = tracker.finish()
    final_values()
    handle(events)
    smoothed = np.array([tracker.value(i) for i in range(len(raw))])
    return closed, smoothed, peaks


def _peak_sample(times, smoothed, segment) -> int:
    """What pipeline.report.stills.peak_time picks: the first best smoothed sample inside."""
    inside = np.flatnonzero((times >= segment.start_s - 1e-6) & (times <= segment.end_s + 1e-6))
    return int(inside[np.argmax(smoothed[inside])])


scores = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=120)


@given(raw=scores, method=st.sampled_from(["none", "median", "ema"]), window=st.sampled_from([0.0, 1.0, 2.5]),
       min_d=st.sampled_from([0.0, 1.0]), gap=st.sampled_from([0.0, 1.0, 3.0]))
def test_each_closed_segment_keeps_the_picture_of_its_peak(raw, method, window, min_d, gap):
    rules = LabelRules("cat", "tag", 0.5, 0.45, method, window, min_d, gap)
    times = np.arange(len(raw)) * 0.5
    closed, smoothed, peaks = _play(rules, times, raw)
    for segment in closed:
        peak = _peak_sample(times, smoothed, segment)
        (picture,) = peaks.pictures_at([float(times[peak])])
        assert picture is not None and _number(picture) == peak
    assert len(peaks._pending) <= 8  # only pictures whose smoothed values are not final yet


def test_memory_stays_bounded_on_a_long_flickering_stream():
    # every flicker merges: one open segment
    rules = LabelRules("cat", "tag", 0.5, 0.45, "none", 0.0, 0.0, 10.0)
    tracker, peaks = LabelTracker(rules), PeakPictures([rules])
    for n in range(3000):
        peaks.sample(n, n * 0.5, _picture(n % 100))
        tracker.add(n * 0.5, 0.9 if n % 4 == 0 else 0.1)
        for position in range(peaks.done[0], tracker.final_count):
            peaks.final(0, position, tracker.value(position))
        peaks.settled_before(0, tracker.unsettled_from)
    assert len(peaks._closed[0]) <= MAX_STRETCHES and len(peaks._pending) <= 1
