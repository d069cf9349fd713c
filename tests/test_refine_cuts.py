"""Cut evidence in edge refinement (pipeline/analysis/cuts.py, pipeline/analysis/edges.py):
synthetic gaps with known pictures and known score functions, then gap
scans of real clips on both decoders."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis import cuts
from pipeline.analysis import edges as refine
from pipeline.decode.prints import THUMB_H, THUMB_W, JumpKeeper, thumbnail, top_jumps
from pipeline.types import GapEvidence, GapScan

ENTER, EXIT = 0.5, 0.4
SHAPE = (THUMB_H, THUMB_W, 3)


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(30, 225, SHAPE).astype(np.float64)


def noisy(base: np.ndarray, k: int, amount: float = 1.0) -> np.ndarray:
    """``base`` with a frame's worth of compression-like noise."""
    noise = np.random.default_rng(1000 + k).normal(0.0, amount, SHAPE)
    return np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)


def scan_of(pictures: list[np.ndarray], lo: int = 0) -> GapScan:
    return GapScan(lo, lo + len(pictures) - 1, np.arange(lo, lo + len(pictures)), np.stack(pictures))


def search_gap(pictures: list[np.ndarray], scores: np.ndarray, side: str, *, use_pixels: bool = True):
    """Refine one edge of one label between frame 0 and the gap's last frame
    (both samples) with the per-frame ``scores``; returns the search and the
    frames scored (embedded) on the way."""
    hi = len(pictures) - 1
    threshold = ENTER if side == refine.START else EXIT
    search = refine.EdgeSearch(0, side, 0, threshold, lo=0, hi=hi, budget=refine.max_probes(hi - 1))
    known = {0: (0.0, np.array([scores[0]])), hi: (float(hi), np.array([scores[hi]]))}
    refinement = refine.Refinement([search], known)
    if use_pixels:
        refinement.evidence[(0, hi)] = cuts.evidence(scan_of(pictures))
    embedded: list[int] = []

    def score_frames(wanted):
        embedded.extend(wanted)
        return {i: (float(i), np.array([scores[i]])) for i in wanted}

    refinement.run(score_frames)
    return search, embedded


def step_scores(n: int, at: int, side: str) -> np.ndarray:
    """Absent before frame ``at`` and present from it (a start edge), or the
    other way round (an end edge)."""
    present = np.arange(n) >= at
    if side == refine.END:
        present = ~present
    return np.where(present, 0.9, 0.05)


def crossing(scores: np.ndarray, side: str) -> int:
    """The edge frame a search must find: the first present frame of a start,
    the last present frame of an end (one crossing only)."""
    present = scores >= (ENTER if side == refine.START else EXIT)
    if side == refine.START:
        return int(np.argmax(present))
    return int(len(present) - 1 - np.argmax(present[::-1]))


sides = st.sampled_from([refine.START, refine.END])


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 90), st.data(), sides)
def test_a_hard_cut_anywhere_is_the_edge_for_one_embedded_frame(n, data, side):
    cut = data.draw(st.integers(1, n))  # the first frame of the new picture (n: at the sample)
    a, b = picture(1), picture(2)
    pictures = [noisy(a if k < cut else b, k) for k in range(n + 1)]
    scores = step_scores(n + 1, cut, side)
    ev = cuts.evidence(scan_of(pictures))
    assert ev.clear and ev.cuts == (cut,)
    assert ev.still == (True, True)
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and search.hi == cut and search.lo == cut - 1
    # the cut frame confirms; where a sample is one of the cut's two frames, nothing more is scored
    assert embedded == ([] if cut in (1, n) else [cut])
    assert search.by_cut  # the other frame at the cut was taken from its still side's sample


def drifting(base: np.ndarray, k: int) -> np.ndarray:
    """``base`` with a bright square drifting right one column a frame (an
    object moving inside the picture: same colours, other pixels), resting
    at the right edge from frame 20 on."""
    img = base.copy()
    img[6:16, 2 + min(k, 20):12 + min(k, 20)] = 250
    return img


@settings(max_examples=60, deadline=None)
@given(st.integers(6, 20), st.data(), sides)
def test_a_moving_side_of_a_cut_is_scored_never_assumed(n, data, side):
    cut = data.draw(st.integers(2, n - 1))
    a, b = picture(1), picture(2)
    # the side where the label is present moves: before the cut for an end, after it for a start
    moving_first = side == refine.END
    pictures = [noisy(drifting(a, k) if moving_first else a, k) if k < cut else
                noisy(b if moving_first else drifting(b, k - cut), k) for k in range(n + 1)]
    scores = step_scores(n + 1, cut, side)
    ev = cuts.evidence(scan_of(pictures))
    assert ev.clear and ev.still == ((False, True) if moving_first else (True, False))
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and search.hi == cut and search.by_cut
    assert embedded == [cut - 1 if moving_first else cut]  # the moving side's frame at the cut


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 20), st.data(), sides)
def test_a_score_drifting_across_before_a_cut_is_found_where_it_crosses(n, data, side):
    # a slow zoom into a photo, then a cut: the colours hold, the score does not
    cut = data.draw(st.integers(4, n))
    edge = data.draw(st.integers(2, cut - 1))  # the score crosses before the cut
    a, b = picture(1), picture(2)
    pictures = [noisy(drifting(a, k) if k < cut else b, k) for k in range(n + 1)]
    scores = step_scores(n + 1, edge, side)
    if side == refine.END:  # present (before the cut) up to edge - 1... and after the cut, absent
        scores = np.where(np.arange(n + 1) < edge, 0.9, 0.05)
    assert cuts.evidence(scan_of(pictures)).clear
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and not search.by_cut and search.hi == edge
    assert len(embedded) <= refine.max_probes(n - 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 90), st.data(), sides)
def test_two_cuts_fall_back_and_find_the_crossing_one(n, data, side):
    c1 = data.draw(st.integers(1, n - 1))
    c2 = data.draw(st.integers(c1 + 1, n))
    edge = data.draw(st.sampled_from([c1, c2]))
    a, b, c = picture(1), picture(2), picture(3)
    pictures = [noisy(a if k < c1 else b if k < c2 else c, k) for k in range(n + 1)]
    scores = step_scores(n + 1, edge, side)
    ev = cuts.evidence(scan_of(pictures))
    assert not ev.clear and set(ev.cuts) == {c1, c2}
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and not search.by_cut and search.hi == edge and search.lo == edge - 1
    assert len(embedded) <= refine.max_probes(n - 1)
    assert embedded[0] in (c1, c2) or embedded[0] in (c1 - 1, c2 - 1)  # looked at a cut first


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 90), st.data(), sides)
def test_a_fade_falls_back_to_bisection_and_finds_the_threshold_crossing(n, data, side):
    a, b = picture(1), picture(2)
    weights = np.linspace(0.0, 1.0, n + 1)
    pictures = [noisy((1 - w) * a + w * b, k) for k, w in enumerate(weights)]
    shift = data.draw(st.floats(-0.3, 0.3))  # where the model's score crosses its threshold
    present = np.clip(weights + shift, 0.0, 1.0)
    scores = present if side == refine.START else 1.0 - present
    if not (scores[0] < ENTER <= scores[-1] if side == refine.START else scores[0] >= EXIT > scores[-1]):
        return  # the samples do not bracket a crossing
    ev = cuts.evidence(scan_of(pictures))
    assert not ev.clear
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and not search.by_cut
    assert search.edge_frame == crossing(scores, side)
    assert len(embedded) <= refine.max_probes(n - 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(6, 20), st.data(), sides, st.booleans())
def test_a_cut_the_score_does_not_cross_at_is_not_taken_for_the_edge(n, data, side, still):
    # the score crosses after the cut, where the new picture changes on (something
    # drifting into place); or, on a still picture, where nothing changes at all
    cut = data.draw(st.integers(1 if not still else 2, n - 2))
    edge = data.draw(st.integers(cut + 1, n))
    a, b = picture(1), picture(2)
    pictures = [noisy(a if k < cut else b if still else drifting(b, k - cut), k) for k in range(n + 1)]
    scores = step_scores(n + 1, edge, side)
    assert cuts.evidence(scan_of(pictures)).clear
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and not search.by_cut and search.hi == edge
    assert embedded[0] == cut  # looked there first: its own score said no
    assert len(embedded) <= refine.max_probes(n - 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 90), st.data(), sides, st.floats(0.0, 0.09))
def test_a_score_near_its_threshold_at_a_cut_is_confirmed_frame_by_frame(n, data, side, over):
    cut = data.draw(st.integers(2, n))
    a, b = picture(1), picture(2)
    pictures = [noisy(a if k < cut else b, k) for k in range(n + 1)]
    threshold = ENTER if side == refine.START else EXIT
    near = threshold + over if side == refine.START else threshold - over - 1e-6  # after, but barely
    scores = np.where(np.arange(n + 1) >= cut, near, 0.05 if side == refine.START else 0.9)
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and not search.by_cut and search.hi == cut
    assert cut - 1 in embedded  # the frame before the cut scored, not assumed
    assert len(embedded) <= refine.max_probes(n - 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 90), st.data(), sides)
def test_noise_only_gaps_hold_no_cut_and_are_bisected(n, data, side):
    # compression noise in any gap; heavy noise (fast motion) where the gap
    # is long enough to measure it
    amount = data.draw(st.floats(0.2, 1.0) if n < 8 else st.floats(0.2, 4.0))
    edge = data.draw(st.integers(1, n))
    a = picture(1)
    pictures = [noisy(a, k, amount) for k in range(n + 1)]
    scores = step_scores(n + 1, edge, side)
    ev = cuts.evidence(scan_of(pictures))
    assert ev.cuts == () and not ev.clear
    search, embedded = search_gap(pictures, scores, side)
    assert search.pinned and not search.by_cut and search.hi == edge
    assert len(embedded) <= refine.max_probes(n - 1)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 80), st.data(), sides)
def test_when_scores_follow_the_pictures_every_edge_is_a_true_crossing(n, data, side):
    """Any run of pictures (still ones, drifting ones, several cuts) whose
    model score is a function of the picture shown: whatever the pixels
    say, the edge found is a real crossing, within the probe bound."""
    bounds = sorted(set(data.draw(st.lists(st.integers(1, n), max_size=4))))
    starts = [0, *bounds]
    scenes = [picture(10 + k) for k in range(len(starts))]
    moving = [data.draw(st.booleans()) for _ in starts]
    present = [data.draw(st.booleans()) for _ in starts]
    scene_of = np.searchsorted(bounds, np.arange(n + 1), side="right")
    pictures = [noisy(drifting(scenes[s], k - starts[s]) if moving[s] else scenes[s], k)
                for k, s in enumerate(scene_of)]
    inside = np.array([present[s] for s in scene_of])
    if inside[0] != (side == refine.END) or inside[-1] != (side == refine.START):
        return  # the two samples do not bracket a start (or an end) of the label
    search, embedded = search_gap(pictures, np.where(inside, 0.9, 0.05), side)
    assert search.pinned and len(embedded) <= refine.max_probes(n - 1)
    before, after = (search.lo, search.hi)
    assert inside[after] == (side == refine.START) and inside[before] == (side == refine.END)


def test_an_object_sliding_in_is_not_a_clear_cut():
    a = picture(1)
    pictures = []
    for k in range(31):  # a bright square slides in from the left edge, 1 column a frame
        img = a.copy()
        img[8:16, :k] = 250
        pictures.append(noisy(img, k))
    assert not cuts.evidence(scan_of(pictures)).clear


def test_a_gap_with_an_undecodable_frame_is_never_clear():
    a, b = picture(1), picture(2)
    pictures = [noisy(a if k < 12 else b, k) for k in range(31)]
    scan = scan_of(pictures)
    holed = GapScan(0, 30, np.delete(scan.indices, 5), np.delete(scan.thumbs, 5, axis=0))
    ev = cuts.evidence(holed)
    assert ev.cuts == (12,) and not ev.clear


def test_two_labels_at_one_cut_share_its_frame():
    a, b = picture(1), picture(2)
    pictures = [noisy(a if k < 17 else b, k) for k in range(31)]
    ends = np.where(np.arange(31) < 17, 0.9, 0.05)  # label 0 leaves at the cut...
    starts = 1.0 - ends  # ...as label 1 arrives
    searches = [refine.EdgeSearch(0, refine.END, 0, EXIT, lo=0, hi=30, budget=refine.max_probes(29)),
                refine.EdgeSearch(1, refine.START, 1, ENTER, lo=0, hi=30, budget=refine.max_probes(29))]
    both = np.stack([ends, starts], axis=1)
    refinement = refine.Refinement(searches, {0: (0.0, both[0]), 30: (30.0, both[30])})
    refinement.evidence[(0, 30)] = cuts.evidence(scan_of(pictures))
    asked: list[list[int]] = []
    refinement.run(lambda wanted: asked.append(wanted) or {i: (float(i), both[i]) for i in wanted})
    assert asked == [[17]]
    assert [(s.lo, s.hi, s.by_cut) for s in searches] == [(16, 17, True), (16, 17, True)]


# --------------------------------------------------------------------------- fingerprints


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=2, max_size=40), st.integers(1, 4))
def test_the_keeper_holds_the_frames_of_the_top_jumps(levels, keep):
    thumbs = [np.full(SHAPE, v * 4, np.uint8) for v in levels]
    keeper = JumpKeeper(convert=lambda f: np.asarray(f), keep=keep)
    for k, t in enumerate(thumbs):
        keeper.add(k, t, t)
    top = top_jumps(np.arange(len(thumbs)), np.stack(thumbs), keep)
    wanted = sorted({i for c, _ in top for i in (c - 1, c)})
    assert sorted(keeper.kept()) == wanted


def test_thumbnail_averages_areas_and_takes_any_size():
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, 32:] = 200
    small = thumbnail(img)
    assert small.shape == SHAPE and small[:, :16].max() == 0 and small[:, 16:].min() == 200
    assert thumbnail(np.full((5, 7, 3), 9, np.uint8)).shape == SHAPE


def test_cut_evidence_survives_the_store_without_any_refinement_frame(tmp_path):
    """An edge pinned at a cut on a sample embeds nothing: the evidence alone
    must come back from the store, or rescoring would decode the gap again."""
    pytest.importorskip("lancedb")
    from pipeline.engine.base import EmbeddedInput, RefineFrames
    from pipeline.store.db import EmbeddingStore
    from pipeline.store.keys import sampling_key
    from pipeline.types import GapEvidence, Sampling, VideoInfo

    vectors = np.eye(3, 8, dtype=np.float32)
    gaps = (GapEvidence(0, 30, (30,), True, times=((29, 1.9333), (30, 2.0))),
            GapEvidence(60, 90, (71, 64), False, times=((63, 4.2), (64, 4.2667), (70, 4.6667), (71, 4.7333))),
            GapEvidence(90, 120))
    info = VideoInfo(path="a.mp4", container="mp4", codec="h264", width=8, height=8, duration_s=6.0,
                     avg_fps=15.0, frame_count=90)
    frames = RefineFrames(embeddings=np.zeros((0, 8), np.float32), gaps=gaps, scanned=3)
    embedded = EmbeddedInput(path=str(tmp_path / "a.mp4"), indices=np.array([0, 30, 60]),
                             times_s=np.array([0.0, 2.0, 4.0]), embeddings=vectors, info=info, refine=frames)
    sampling = Sampling(every_seconds=2.0)
    store = EmbeddingStore.open(tmp_path / "store", create=True)
    store.put(embedded, chash="h", sampling=sampling, sampling_desc=sampling_key(sampling), model_id="m",
              revision=None, precision="fp32")
    again = EmbeddingStore.open(tmp_path / "store")
    [video] = again.videos()
    back = again.embedded(video)
    assert back.refine is not None and len(back.refine) == 0 and back.refine.gaps == gaps


def test_cut_evidence_stored_before_frame_times_still_reads(tmp_path):
    """Format 4 kept evidence as ``[lo, hi, cuts, clear, still]``: such a
    store reads back without times (an edge then estimates an unscored
    frame's time), and its next write upgrades it to format 5."""
    lancedb = pytest.importorskip("lancedb")
    from pipeline.engine.base import EmbeddedInput, RefineFrames
    from pipeline.store.db import EmbeddingStore
    from pipeline.store.keys import sampling_key
    from pipeline.types import GapEvidence, Sampling

    def embedded(name: str) -> EmbeddedInput:
        frames = RefineFrames(embeddings=np.zeros((0, 8), np.float32),
                              gaps=(GapEvidence(0, 30, (30,), True, (False, True), ((29, 1.9), (30, 2.0))),))
        return EmbeddedInput(path=str(tmp_path / name), indices=np.array([0, 30]),
                             times_s=np.array([0.0, 2.0]),
                             embeddings=np.eye(2, 8, dtype=np.float32), refine=frames)

    sampling = Sampling(every_seconds=2.0)
    put = dict(sampling=sampling, sampling_desc=sampling_key(sampling), model_id="m", revision=None,
               precision="fp32")
    EmbeddingStore.open(tmp_path / "store", create=True).put(embedded("a.mp4"), chash="h", **put)
    db = lancedb.connect(str(tmp_path / "store"))
    db.open_table("videos").update(values={"refine_json": "[[0, 30, [30], true, [false, true]]]"})
    db.open_table("meta").update(values={"format_version": 4})
    old = EmbeddingStore.open(tmp_path / "store")
    [video] = old.videos()
    assert old.embedded(video).refine.gaps == (GapEvidence(0, 30, (30,), True, (False, True)),)
    EmbeddingStore.open(tmp_path / "store", create=True).put(embedded("b.mp4"), chash="h2", **put)
    assert EmbeddingStore.open(tmp_path / "store").meta["format_version"] == 5


# --------------------------------------------------------------------------- gap scans of a real clip

from demo_assets import ROOT, needs_demo  # noqa: E402


@needs_demo
@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_gap_scans_see_every_frame_once_and_keep_the_cut_frames(backend):
    if backend == "decord":
        pytest.importorskip("decord")
    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    clip = str(ROOT / "sample_videos" / "demo_kitchen.mp4")  # 225 frames, one keyframe
    with open_decoder(clip, backend=backend, short_side=32, strategy="exact") as decoder:
        every = {f.index: f for f in decoder.frames(Sampling())}
        scans = decoder.scan_gaps([(120, 150), (30, 60), (180, 210), (210, 240)])
        decoded = decoder.stats.frames_decoded
    assert [(s.lo, s.hi) for s in scans] == [(30, 60), (120, 150), (180, 210), (210, 240)]
    assert list(scans[-1].indices) == list(range(210, 225))  # the last gap runs past the end
    for scan in scans[:3]:
        assert list(scan.indices) == list(range(scan.lo, scan.hi + 1))
        for i, thumb in zip(scan.indices, scan.thumbs):  # the model's pixels, printed
            np.testing.assert_array_equal(thumb, thumbnail(every[int(i)].image))
        for i, t, image in zip(scan.frames.indices, scan.frames.times_s, scan.frames.images):
            assert t == pytest.approx(every[int(i)].pts_s, abs=1e-6)
            np.testing.assert_array_equal(image, every[int(i)].image)
    # the ball pops in at 9 s (frame 135) and out at 13 s (frame 195): clear cuts, frames kept
    ev = {(s.lo, s.hi): cuts.evidence(s) for s in scans}
    assert ev[(120, 150)].clear and ev[(120, 150)].cuts == (135,)
    assert ev[(180, 210)].clear and ev[(180, 210)].cuts == (195,)
    assert {134, 135} <= set(scans[1].frames.indices) and {194, 195} <= set(scans[2].frames.indices)
    if backend == "pyav":  # one forward walk from the keyframe serves every gap
        assert decoded <= 225 + 16


@settings(max_examples=80, deadline=None)
@given(st.integers(8, 120), st.data(), sides)
def test_a_cut_that_is_not_clear_confirms_its_edge_in_two_probes_anywhere(n, data, side):
    """Both frames at a cut must be scored when it is not clear (a moving
    side changed colours): probed in the order that keeps the second within
    the bound, two probes pin the edge wherever the cut lies in the gap
    (probing the cut frame first, a cut late in a 60-frame gap took 6)."""
    cut = data.draw(st.integers(2, n - 1))
    scores = step_scores(n + 1, cut, side)
    search = refine.EdgeSearch(0, side, 0, ENTER if side == refine.START else EXIT, lo=0, hi=n,
                               budget=refine.max_probes(n - 1))
    refinement = refine.Refinement([search], {0: (0.0, scores[:1]), n: (float(n), scores[n:n + 1])})
    refinement.evidence[(0, n)] = GapEvidence(0, n, (cut,))
    embedded: list[int] = []
    refinement.run(lambda wanted: embedded.extend(wanted) or {i: (float(i), scores[i:i + 1]) for i in wanted})
    assert (search.lo, search.hi) == (cut - 1, cut)
    assert sorted(embedded) == [cut - 1, cut]
