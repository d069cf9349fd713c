"""Moments: search hits of one input close in time, grouped into ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.search import Hit
from pipeline.serve.moments import GAP_STEPS, group_moments


def hits_of(rows: list[tuple[str, float, float]]) -> list[Hit]:
    return [Hit(i + 1, path, t, round(t * 10), score) for i, (path, t, score) in enumerate(rows)]


def test_hits_a_few_steps_apart_are_one_moment():
    hits = hits_of([("a.mp4", 2.0, 0.9), ("a.mp4", 2.5, 0.8), ("a.mp4", 3.5, 0.7),
                    ("a.mp4", 5.5, 0.6), ("b.mp4", 2.5, 0.95), ("a.mp4", 30.0, 0.5)])
    moments = group_moments(hits, lambda _: 0.5, duration_s=lambda p: 30.2 if p == "a.mp4" else None)
    got = [(m.input_path, m.start_s, m.end_s, m.hits, m.best_score) for m in moments]
    # 3.5 -> 5.5 is 4 steps: a new moment; a frame stands for the step after it (end = last + step),
    # but never past the input's end
    assert got == [("b.mp4", 2.5, 3.0, 1, 0.95), ("a.mp4", 2.0, 4.0, 3, 0.9),
                   ("a.mp4", 5.5, 6.0, 1, 0.6), ("a.mp4", 30.0, 30.2, 1, 0.5)]


def test_the_step_is_per_input():
    hits = hits_of([("slow.mp4", 0.0, 0.5), ("slow.mp4", 5.0, 0.5), ("fast.mp4", 0.0, 0.4),
                    ("fast.mp4", 5.0, 0.4)])
    steps = {"slow.mp4": 2.0, "fast.mp4": 0.5}
    moments = group_moments(hits, steps.__getitem__)
    assert sorted((m.input_path, m.hits) for m in moments) == [("fast.mp4", 1), ("fast.mp4", 1),
                                                                ("slow.mp4", 2)]


rows = st.lists(st.tuples(st.sampled_from(["a.mp4", "b.mp4", "c.mp4"]),
                          st.floats(0, 600, allow_nan=False), st.floats(-1, 1, allow_nan=False)),
                max_size=60)


@given(rows, st.sampled_from([0.1, 0.5, 1.0, 2.0]))
def test_every_hit_is_in_exactly_one_moment(rows, step):
    hits = hits_of(rows)
    moments = group_moments(hits, lambda _: step)
    assert sum(m.hits for m in moments) == len(hits)
    for hit in hits:
        owners = [m for m in moments if m.input_path == hit.input_path
                  and m.start_s <= hit.time_s < m.end_s + 1e-9]
        assert len(owners) >= 1
    by_input: dict[str, list] = {}
    for m in moments:
        assert m.end_s > m.start_s and m.start_s <= m.best_time_s <= m.end_s
        by_input.setdefault(m.input_path, []).append(m)
    for mine in by_input.values():  # one input's moments are apart by more than the gap
        mine.sort(key=lambda m: m.start_s)
        for a, b in zip(mine, mine[1:]):
            assert b.start_s - (a.end_s - step) > GAP_STEPS * step - 1e-6
    scores = [m.best_score for m in moments]
    assert scores == sorted(scores, reverse=True)
    for path, mine in by_input.items():
        assert max(m.best_score for m in mine) == pytest.approx(
            max(h.score for h in hits if h.input_path == path))
