"""``scenetag eval``: a hand-computed case, properties of the matching, and the
files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.measure.evaluate import compare, iou, match

# ----------------------------------------------------------------------------- a run written by hand


def write_input(run: Path, name: str, input_path: str, segments: list[tuple], scores: dict[str, list]):
    folder = run / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(
        {"input": input_path, "status": "ok", "video": {"avg_fps": 10.0, "duration_s": 13.0}}))
    pd.DataFrame([{"label": lab, "kind": "tag", "start_s": a, "end_s": b, "duration_s": b - a,
                   "peak": 0.9, "mean": 0.8} for lab, a, b in segments],
                 columns=["label", "kind", "start_s", "end_s", "duration_s", "peak", "mean"]
                 ).to_csv(folder / "segments.csv", index=False)
    frames = {"frame_index": [10 * t for t in range(13)], "time_s": [float(t) for t in range(13)]}
    for label, values in scores.items():
        frames[f"score:{label}"] = values
        frames[f"smoothed:{label}"] = values
    pd.DataFrame(frames).to_csv(folder / "frames.csv", index=False)
    (folder / "segments.json").write_text(json.dumps({"labels": [
        {"name": lab, "kind": "tag", "threshold": 0.75, "exit_threshold": 0.6} for lab in scores]}))


@pytest.fixture
def hand_run(tmp_path):
    run = tmp_path / "run"
    # cup: 0.9 on t = 2..5 (positives), 0.8 on t = 0 (a negative), 0.7 on t = 10, 11 (positives)
    cup = [0.8, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.7, 0.7, 0.1]
    write_input(run, "clip", "media/clip.mp4",
                [("cup", 2.5, 6.0), ("cup", 10.5, 11.0), ("cup", 20.0, 21.0)],
                {"cup": cup, "ball": [0.5] * 13})
    write_input(run, "other", "media/other.mp4", [("cup", 1.0, 2.0)], {"cup": [0.1] * 13, "ball": [0.1] * 13})
    truth = tmp_path / "truth.csv"
    truth.write_text("input,label,start_s,end_s\nclip,cup,2,6\nclip.mp4,cup,10,12\nmedia/clip.mp4,ball,0,4\n")
    return run, truth


def test_eval_matches_the_hand_computed_numbers(hand_run):
    """cup: truth [2,6] [10,12]; predicted [2.5,6] [10.5,11] [20,21].
      [2.5,6] vs [2,6]: IoU 3.5/4 = 0.875, matched; [10.5,11] vs [10,12]: IoU 0.5/2 = 0.25 < 0.5, not.
      matched 1 of 3 predicted, 2 true: precision 1/3, recall 1/2, F1 2*1/(3+2) = 0.4.
      edges of the pair: |2.5-2| = 0.5, |6-6| = 0 -> median 0.25 s, max 0.5 s; at 10 fps 2.5 and 5 frames.
      false tag seconds: [2.5,6] and [10.5,11] lie inside truth; [20,21] is 1 s outside -> 1.0.
      frame AP over t = 0..12 (positives t in [2,6) or [10,12): 2,3,4,5,10,11):
        at 0.9: 4 TP 0 FP (P 1, R 4/6); at 0.8: +1 FP (R unchanged); at 0.7: 6 TP 1 FP (P 6/7, R 1)
        AP = 4/6 * 1 + 2/6 * 6/7 = 2/3 + 2/7 = 20/21.
    ball: truth [0,4], nothing predicted: precision 0, recall 0, F1 0, nothing false.
      frame AP: every score ties at 0.5, positives t = 0..3 of 13 -> 4/13.
    overall: 3 true, 3 predicted, 1 matched: precision 1/3, recall 1/3, F1 1/3; frame AP the mean
      of 20/21 and 4/13.
    other.mp4 has no truth rows: skipped, said once."""
    run, truth = hand_run
    result = CliRunner().invoke(app, ["eval", str(run), "--truth", str(truth)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(run / "eval.csv", dtype={"label": str}).fillna({"label": ""}).set_index("label")
    cup, ball, total = rows.loc["cup"], rows.loc["ball"], rows.loc[""]
    assert (cup.truth_segments, cup.predicted_segments, cup.matched) == (2, 3, 1)
    assert cup.precision == pytest.approx(1 / 3, abs=1e-6) and cup.recall == 0.5 and cup.f1 == 0.4
    assert cup.mean_iou == 0.875 and (cup.edge_median_s, cup.edge_max_s) == (0.25, 0.5)
    assert (cup.edge_median_frames, cup.edge_max_frames) == (2.5, 5.0)
    assert cup.false_tag_s == 1.0 and cup.frame_ap == pytest.approx(20 / 21, abs=1e-6)
    assert (ball.precision, ball.recall, ball.f1, ball.false_tag_s) == (0.0, 0.0, 0.0, 0.0)
    assert ball.frame_ap == pytest.approx(4 / 13, abs=1e-6)
    assert total.level == "overall" and total.f1 == pytest.approx(1 / 3, abs=1e-6)
    assert total.precision == pytest.approx(1 / 3, abs=1e-6) and total.false_tag_s == 1.0
    assert total.frame_ap == pytest.approx((20 / 21 + 4 / 13) / 2, abs=1e-6)
    doc = json.loads((run / "eval.json").read_text())
    assert doc["inputs"] == ["media/clip.mp4"] and doc["skipped"] == ["media/other.mp4"]
    assert doc["labels"]["cup"]["f1"] == 0.4 and doc["iou_threshold"] == 0.5
    assert (run / "eval.png").read_bytes()[:4] == b"\x89PNG"
    said = [line for line in result.output.splitlines() if "truth rows" in line]
    assert said == ["scenetag: warning: 1 input without truth rows skipped: media/other.mp4"]


def test_a_lower_iou_threshold_matches_the_short_segment(hand_run):
    run, truth = hand_run
    out = run.parent / "at25"
    result = CliRunner().invoke(app, ["eval", str(run), "--truth", str(truth), "--iou", "0.25",
                                      "-o", str(out), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cup = pd.read_csv(out / "eval.csv").set_index("label").loc["cup"]
    assert cup.matched == 2 and cup.f1 == 0.8  # 2*2/(3+2)


def test_eval_refuses_truth_for_an_input_the_run_lacks(hand_run):
    run, truth = hand_run
    truth.write_text("input,label,start_s,end_s\nclip,cup,2,6\nmissing.mp4,cup,1,2\n")
    result = CliRunner().invoke(app, ["eval", str(run), "--truth", str(truth)])
    assert result.exit_code == 2
    assert f"{truth}:3: unknown input 'missing.mp4'" in result.output
    assert not (run / "eval.csv").exists()


# ----------------------------------------------------------------------------- properties of the matching


@st.composite
def spans(draw, max_size=6):
    """Sorted, non-overlapping intervals, as truths and segments are."""
    cuts = sorted(draw(st.lists(st.floats(0, 100, allow_nan=False), min_size=0, max_size=2 * max_size,
                                unique=True)))
    pairs = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    return [(a, b) for a, b in pairs if b - a > 1e-3]


span = st.tuples(st.floats(0, 100), st.floats(0.01, 50)).map(lambda p: (p[0], p[0] + p[1]))


@settings(max_examples=200, deadline=None)
@given(a=span, b=span)
def test_iou_is_symmetric_and_bounded(a, b):
    assert iou(a, b) == iou(b, a)
    assert 0.0 <= iou(a, b) <= 1.0
    assert iou(a, a) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(truth=spans(), threshold=st.floats(0.05, 1.0))
def test_truth_against_itself_is_perfect(truth, threshold):
    counts = compare(truth, truth, threshold, fps=25.0)
    assert counts.matched == len(truth) and counts.f1 == 1.0
    assert counts.false_s == pytest.approx(0.0, abs=1e-9)
    assert all(e == pytest.approx(0.0) for e in counts.edges_s)


@settings(max_examples=300, deadline=None)
@given(pred=spans(), truth=spans(), threshold=st.floats(0.05, 1.0))
def test_matching_is_one_to_one_and_scores_are_bounded(pred, truth, threshold):
    pairs = match(pred, truth, threshold)
    assert len({i for i, _, _ in pairs}) == len(pairs) == len({j for _, j, _ in pairs})
    assert all(v >= threshold - 1e-9 and v == pytest.approx(iou(pred[i], truth[j])) for i, j, v in pairs)
    c = compare(pred, truth, threshold)
    assert 0.0 <= c.precision <= 1.0 and 0.0 <= c.recall <= 1.0
    assert c.matched <= min(len(pred), len(truth))
    if pred or truth:
        assert min(c.precision, c.recall) - 1e-9 <= c.f1 <= max(c.precision, c.recall) + 1e-9
    assert c.false_s <= sum(b - a for a, b in pred) + 1e-9
    assert len(pairs) >= _greedy_count(pred, truth, threshold)  # never fewer pairs than greedy


def _greedy_count(pred, truth, threshold) -> int:
    cands = sorted(((iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)), reverse=True)
    used_p, used_t = set(), set()
    for v, i, j in cands:
        if v >= threshold and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def test_max_cardinality_beats_greedy_below_half():
    """At IoU >= 0.2 greedy takes the best pair (p1-t0, IoU 4/8) and then has
    nothing left (p0-t0 and p1-t1 share a used segment); the assignment pairs
    p0-t0 (2/8) and p1-t1 (1.5/7)."""
    pred = [(0.0, 4.0), (4.0, 10.0)]
    truth = [(2.0, 8.0), (8.5, 11.0)]
    assert np.isclose(iou(pred[1], truth[0]), 4 / 8) and iou(pred[0], truth[0]) == 2 / 8
    assert iou(pred[1], truth[1]) == pytest.approx(1.5 / 7)
    assert _greedy_count(pred, truth, 0.2) == 1
    assert len(match(pred, truth, 0.2)) == 2
