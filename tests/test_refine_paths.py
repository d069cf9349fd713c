"""Every way edge refinement can pin an edge yields a time for both edges
(pipeline/analysis/edges.py, pipeline/analysis/cuts.py): synthetic videos of shots (still
or moving pictures, hard cuts, undecodable frames, constant or varying
frame rates) with per-label score curves, refined exactly as
:mod:`pipeline.run.refine` does it (gap scans, cut evidence, bisection), on
random sampling steps and label sets."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from demo_assets import CONFIG, MODEL, ROOT, needs_demo
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.analysis import cuts, smooth
from pipeline.analysis import edges as refine
from pipeline.cli import app
from pipeline.decode.prints import THUMB_H, THUMB_W, JumpKeeper
from pipeline.types import Segment

ENTER, EXIT = 0.5, 0.4
SHAPE = (THUMB_H, THUMB_W, 3)
LEVELS = (0.05, 0.45, 0.52, 0.9)  # absent, between exit and enter, just present, present


def picture(seed: int, k: int, moving: bool) -> np.ndarray:
    """Shot ``seed``'s frame ``k`` (a moving shot drifts a bright bar)."""
    base = np.random.default_rng(seed).integers(30, 225, SHAPE).astype(np.float64)
    if moving:
        base[4:10, (k % THUMB_W):(k % THUMB_W) + 4] = 250
    noise = np.random.default_rng(10_000 + 97 * seed + k).normal(0.0, 0.6, SHAPE)
    return np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)


@st.composite
def videos(draw):
    n = draw(st.integers(2, 160))
    labels = draw(st.integers(1, 3))
    bounds = [0, *sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=6)))), n]
    bounds = sorted(set(b for b in bounds if 0 <= b <= n))
    scores = np.zeros((n, labels))
    thumbs = np.zeros((n, *SHAPE), np.uint8)
    for shot, (a, b) in enumerate(zip(bounds, bounds[1:])):
        moving = draw(st.booleans())
        for k in range(a, b):
            thumbs[k] = picture(shot + 1, k - a, moving)
        scores[a:b] = [draw(st.sampled_from(LEVELS)) for _ in range(labels)]
    for _ in range(draw(st.integers(0, 3))):  # a label present (or absent) for one frame only
        scores[draw(st.integers(0, n - 1)), draw(st.integers(0, labels - 1))] = draw(st.sampled_from(LEVELS))
    fps = draw(st.sampled_from([10.0, 15.0, 25.0, 30000 / 1001]))
    if draw(st.booleans()):  # a varying frame rate: each frame lasts half to one and a half frames
        lengths = [draw(st.floats(0.5, 1.5)) / fps for _ in range(n)]
        pts = np.concatenate([[0.0], np.cumsum(lengths)])
    else:
        pts = np.arange(n + 1) / fps
    broken = set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=2))) if n > 2 else set()
    return dict(scores=scores, thumbs=thumbs, pts=pts, fps=fps, broken=broken,
                step=draw(st.integers(1, 45)), counted=draw(st.booleans()))


def coarse_of(scores: np.ndarray, idx: np.ndarray, times: np.ndarray, duration: float):
    coarse = []
    for col in range(scores.shape[1]):
        pairs = smooth.segments_and_intervals(f"label{col}", "tag", times, scores[idx, col], enter=ENTER,
                                              exit=EXIT, min_duration_s=0.0, merge_gap_s=0.0,
                                              duration_s=duration)
        coarse += [refine.CoarseSegment(seg, col, iv, ENTER, EXIT) for seg, iv in pairs]
    coarse.sort(key=lambda c: (c.segment.start_s, c.segment.label))
    return coarse


def refine_video(video: dict, keep_times: bool = True):
    """Refine ``video`` as :func:`pipeline.run.refine.fetch` does: decode each
    gap whole for cut evidence, then bisect, probing the decoder."""
    scores, thumbs, pts, broken = video["scores"], video["thumbs"], video["pts"], video["broken"]
    n = len(scores)
    idx = np.array([i for i in range(0, n, video["step"]) if i not in broken] or [0])
    times, duration = pts[idx], float(pts[n])
    coarse = coarse_of(scores, idx, times, duration)
    searches = refine.plan(coarse, idx, scores[idx], step_frames=video["step"],
                           frames_total=n if video["counted"] else None)
    refinement = refine.Refinement(searches, refine.seed(idx, times, scores[idx]))
    for lo, hi in refinement.gaps():
        keeper = JumpKeeper(convert=lambda image: image)
        for i in range(max(lo, 0), min(hi, n - 1) + 1):
            if i not in broken:
                keeper.add(i, thumbs[i], thumbs[i])
        ev = cuts.evidence(keeper.scan(lo, hi, lambda i: float(pts[i]), hi - lo + 1))
        refinement.evidence[(lo, hi)] = ev if keep_times else replace(ev, times=())
    refinement.run(lambda wanted: {i: (float(pts[i]), scores[i]) for i in wanted
                                   if i < n and i not in broken})
    segments = refine.refined_segments(coarse, refinement, frame_s=1.0 / video["fps"], duration_s=duration)
    return idx, coarse, refinement, segments


def check(video: dict, idx: np.ndarray, coarse, segments: list[Segment], *, exact_times: bool) -> None:
    pts, n = video["pts"], len(video["scores"])
    assert len(segments) == len(coarse)  # refinement never adds or drops a segment
    for seg, item in zip(segments, coarse):
        assert math.isfinite(seg.start_s) and math.isfinite(seg.end_s) and seg.start_s < seg.end_s
        iv = item.interval
        if seg.start_frame is None:
            assert seg.start_s == item.segment.start_s
        else:  # within the coarse bracket: after the sample before, at or before the first sample
            assert (idx[iv.start - 1] if iv.start else -1) < seg.start_frame <= idx[iv.start]
            if exact_times:
                assert seg.start_s == pts[seg.start_frame]  # the frame's own PTS, scored or not
        if seg.end_frame is None:
            assert seg.end_s == item.segment.end_s
        else:
            assert idx[iv.stop - 1] <= seg.end_frame < (idx[iv.stop] if iv.stop < len(idx) else n)
            assert pts[seg.end_frame] < seg.end_s
            if exact_times and seg.end_frame + 1 < n:
                assert seg.end_s == pts[seg.end_frame + 1]
        pinned = (seg.start_frame is not None, seg.end_frame is not None)
        assert seg.refined == {(True, True): "both", (True, False): "start", (False, True): "end",
                               (False, False): "none"}[pinned]
    for label in {s.label for s in segments}:  # one label's segments never overlap
        mine = sorted((s for s in segments if s.label == label), key=lambda s: s.start_s)
        assert all(a.end_s <= b.start_s for a, b in zip(mine, mine[1:]))


@settings(max_examples=300, deadline=None)
@given(videos())
def test_every_refined_segment_has_both_edges_in_its_bracket(video):
    idx, coarse, refinement, segments = refine_video(video)
    check(video, idx, coarse, segments, exact_times=not video["broken"])


@settings(max_examples=150, deadline=None)
@given(videos())
def test_evidence_stored_without_frame_times_still_gives_every_edge_a_time(video):
    """A store from before format 5 kept no cut-frame times: an edge pinned
    with its cut frame unscored estimates it from the scored neighbour."""
    idx, coarse, refinement, segments = refine_video(video, keep_times=False)
    check(video, idx, coarse, segments, exact_times=False)


def still_cut_video(n: int = 31, cut: int = 12, fps: float = 15.0) -> dict:
    """One label absent on a moving picture, present from a hard cut on a
    still one: the frame before the cut is scored, the cut frame is not
    (its still side's sample stands for it)."""
    thumbs = np.stack([picture(1, k, True) if k < cut else picture(2, k, False) for k in range(n)])
    scores = np.where(np.arange(n) < cut, 0.05, 0.9).reshape(-1, 1)
    pts = np.arange(n + 1) / fps
    return dict(scores=scores, thumbs=thumbs, pts=pts, fps=fps, broken=set(), step=n - 1, counted=True)


def test_a_start_pinned_at_a_cut_whose_first_frame_was_never_scored_gets_its_pts():
    """The defect behind ``KeyError: 75`` on demo_street.mp4: the start edge
    was pinned at the cut with the cut frame inferred, and its time was
    looked up among the scored frames only."""
    video = still_cut_video()
    idx, coarse, refinement, segments = refine_video(video)
    [search] = [s for s in refinement.searches if s.side == refine.START]
    assert search.by_cut and 12 not in refinement.known  # the case: the cut frame was not scored
    [seg] = segments
    assert (seg.start_frame, seg.start_s) == (12, 12 / 15.0)


# --------------------------------------------------------------------------- defence in depth

FAILURES = {  # where refinement can break: (object, attribute)
    "plan": ("pipeline.analysis.edges", "plan"),
    "search": ("pipeline.analysis.edges.Refinement", "wanted"),
    "results": ("pipeline.analysis.edges", "refined_segments"),
    "engine": ("pipeline.engine.local.LocalEngine", "probe"),
}


@needs_demo
@pytest.mark.parametrize("where", list(FAILURES))
def test_a_refinement_that_fails_keeps_the_coarse_edges_with_one_warning(tmp_path, monkeypatch, where):
    """Refinement improves edges; it is never a reason for "cannot score"."""
    def broken(*args, **kwargs):
        raise RuntimeError("refinement broke here")

    owner, name = FAILURES[where]
    monkeypatch.setattr(f"{owner}.{name}", broken)
    clip = str(ROOT / "sample_videos" / "demo_kitchen.mp4")
    args = ["run", clip, "-c", str(CONFIG), "--model", str(MODEL), "--every-seconds", "2",
            "-o", str(tmp_path), "--no-store", "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)["inputs"]
    assert item["status"] == "ok" and item["segments"]
    segments = pd.read_csv(tmp_path / "demo_kitchen" / "segments.csv")
    assert set(segments["refined"]) == {"none"}
    warnings = [line for line in result.stderr.splitlines() if "refinement broke here" in line]
    assert len(warnings) == 1 and "demo_kitchen.mp4" in warnings[0], result.stderr
