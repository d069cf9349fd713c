"""Shot detection: the pure core on drawn thumbnails (property tests), the
every-frame decode, and the peer comparison with PySceneDetect's
``ContentDetector`` on generated clips and the sample videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shot_media import Fade, Flash, Take, make_shot_clip

from pipeline.analysis.cues import black_mask
from pipeline.analysis.shots import (
    MIN_SHOT_FRAMES,
    Shot,
    detect_shots,
    jumps,
    local_noise,
    middle_frame,
    probe_frames,
    sample_shots,
    shot_bounds,
    shot_labels,
    snap_edges,
    snap_segments,
)
from pipeline.decode.every_frame import every_frame_prints, lowres_level

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_videos"
H, W = 24, 32


# --------------------------------------------------------------------------- drawn thumbnails


def _scene(rng: np.random.Generator, frames: int, drift: float) -> list[np.ndarray]:
    """A random picture, each frame moved by noise and a slow drift: no cut inside.
    Kept out of the darkest and brightest levels, so no frame reads as black or white."""
    base = rng.integers(60, 200, (H, W, 3)).astype(np.float32)
    out = []
    for k in range(frames):
        jitter = rng.normal(0, 1.0, base.shape)
        out.append(np.clip(base + drift * k + jitter, 56, 204).astype(np.uint8))
    return out


@st.composite
def cut_clips(draw):
    """(prints, times, true cut frames): scenes of at least MIN_SHOT_FRAMES frames."""
    seed = draw(st.integers(0, 2**32 - 1))
    lengths = draw(st.lists(st.integers(MIN_SHOT_FRAMES, 40), min_size=1, max_size=6))
    drift = draw(st.floats(-0.3, 0.3))
    rng = np.random.default_rng(seed)
    frames, cuts = [], []
    for n in lengths:
        if frames:
            cuts.append(len(frames))
        frames += _scene(rng, n, drift)
    fps = draw(st.sampled_from([24.0, 25.0, 30000 / 1001, 50.0]))
    return np.stack(frames), np.arange(len(frames)) / fps, cuts


@given(cut_clips())
def test_every_hard_cut_is_found_exactly(clip):
    prints, times, cuts = clip
    shots = detect_shots(prints, times)
    assert shot_bounds(shots) == cuts
    assert all(s.transition == "cut" for s in shots[1:])


@given(cut_clips(), st.floats(0, 100))
def test_shots_tile_the_video(clip, offset):
    prints, times, _ = clip
    end = float(times[-1] + 0.04)
    shots = detect_shots(prints, times + offset, end_s=end + offset)
    assert shots[0].start_frame == 0 and shots[-1].end_frame == len(prints)
    assert [s.shot for s in shots] == list(range(1, len(shots) + 1))
    for a, b in zip(shots, shots[1:]):
        assert a.end_frame == b.start_frame and a.end_s == b.start_s
    for s in shots:
        assert s.start_s == times[s.start_frame] + offset
        assert s.frames >= 1 and s.duration_s > 0
    assert shots[-1].end_s == pytest.approx(end + offset)
    # moving the clock moves no cut
    assert shot_bounds(shots) == shot_bounds(detect_shots(prints, times))


@given(cut_clips(), st.integers(1, 3), st.data())
def test_a_flash_is_not_a_cut(clip, length, data):
    """A bright frame (or up to three) inside a shot whose neighbours match."""
    prints, times, cuts = clip
    starts = [0, *cuts, len(prints)]
    room = [(a + 4, b - 4 - length) for a, b in zip(starts, starts[1:]) if b - a - 8 - length > 0]
    if not room:
        return
    lo, hi = data.draw(st.sampled_from(room))
    at = data.draw(st.integers(lo, hi))
    level = data.draw(st.sampled_from([255, 230]))  # white, or bright but short of white
    flashed = prints.copy()
    flashed[at:at + length] = np.clip(prints[at:at + length].astype(np.int16) + level, 0, 255)
    assert shot_bounds(detect_shots(flashed, times)) == cuts


@given(st.integers(0, 2**32 - 1), st.integers(0, 12), st.integers(1, 10), st.integers(0, 12),
       st.sampled_from([0, 255]))
def test_a_fade_through_black_or_white_is_one_transition_at_its_darkest(seed, out, hold, into, colour):
    rng = np.random.default_rng(seed)
    a, b = _scene(rng, 30, 0.0), _scene(rng, 30, 0.0)
    for k in range(out):  # fade out over the last `out` frames of a
        alpha = 1 - (k + 1) / (out + 1)
        a[30 - out + k] = (a[30 - out + k] * alpha + colour * (1 - alpha)).astype(np.uint8)
    for k in range(into):
        alpha = (k + 1) / (into + 1)
        b[k] = (b[k] * alpha + colour * (1 - alpha)).astype(np.uint8)
    prints = np.stack(a + [np.full((H, W, 3), colour, np.uint8)] * hold + b)
    shots = detect_shots(prints, np.arange(len(prints)) / 25)
    assert len(shots) == 2
    assert shots[1].transition == "fade"
    assert shots[1].start_frame == 30 + hold // 2  # the middle of the held frames, the darkest


def test_black_at_the_start_and_end_belongs_to_the_first_and_last_shot():
    rng = np.random.default_rng(0)
    black = [np.zeros((H, W, 3), np.uint8)] * 10
    prints = np.stack(black + _scene(rng, 30, 0.0) + _scene(rng, 30, 0.0) + black)
    shots = detect_shots(prints, np.arange(len(prints)) / 25)
    assert shot_bounds(shots) == [40]


@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_a_blink_between_matching_pictures_is_not_a_cut(seed, length):
    rng = np.random.default_rng(seed)
    scene = _scene(rng, 40, 0.0)
    prints = np.stack(scene[:20] + [np.zeros((H, W, 3), np.uint8)] * length + scene[20:])
    assert len(detect_shots(prints, np.arange(len(prints)) / 25)) == 1


@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_fast_motion_is_not_a_cut(seed, speed):
    """A picture sliding ``speed`` cells a frame changes every frame a lot
    (a whip pan); the local noise rises with it, and no cut is found."""
    rng = np.random.default_rng(seed)
    width = W + 60 * speed
    coarse = rng.integers(60, 200, (H // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    wide = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:H, :width]  # blobs, not pixel noise
    frames = [wide[:, k * speed:k * speed + W].astype(np.uint8) for k in range(60)]
    assert len(detect_shots(np.stack(frames), np.arange(60) / 25)) == 1


@given(cut_clips(), st.integers(1, 40))
def test_cuts_closer_than_the_minimum_keep_the_larger(clip, min_frames):
    prints, times, _ = clip
    bounds = shot_bounds(detect_shots(prints, times, min_shot_frames=min_frames))
    assert all(b - a >= min_frames for a, b in zip(bounds, bounds[1:]))
    d = jumps(prints)
    every = shot_bounds(detect_shots(prints, times, min_shot_frames=1))
    for dropped in set(every) - set(bounds):  # a dropped cut lost to a kept one no smaller, near it
        near = [b for b in bounds if abs(b - dropped) < min_frames]
        assert near and max(d[b] for b in near) >= d[dropped]


def test_nothing_and_one_frame():
    assert detect_shots(np.zeros((0, H, W, 3), np.uint8), np.zeros(0)) == []
    assert detect_shots(np.zeros((1, H, W, 3), np.uint8), np.zeros(1), end_s=0.04) == [
        Shot(1, 0.0, 0.04, 0, 1, "start")]
    with pytest.raises(ValueError):
        detect_shots(np.zeros((2, H, W, 3), np.uint8), np.zeros(3))


@given(st.lists(st.floats(0, 100), min_size=1, max_size=60), st.integers(1, 10))
def test_local_noise_is_a_median_of_the_neighbours(values, window):
    d = np.array([0.0, *values])
    noise = local_noise(d, window)
    for i in range(1, len(d)):
        around = [d[j] for j in range(max(1, i - window), min(len(d), i + window + 1)) if j != i]
        assert noise[i] == pytest.approx(np.median(around) if around else 0.0)


# --------------------------------------------------------------------------- decoding every frame


def test_every_frame_prints_times_and_counts(tmp_path):
    truth = make_shot_clip(tmp_path / "c.mp4", [Take("coffee", 20, "pan"), Take("rocket", 17, "zoom")],
                           fps=25, size=(160, 120))
    fp = every_frame_prints(str(tmp_path / "c.mp4"))
    assert fp.prints.shape == (truth.frames, 24, 32, 3)
    assert np.allclose(fp.times_s, np.arange(truth.frames) / 25)
    assert fp.end_s == pytest.approx(truth.frames / 25)
    assert fp.fps == pytest.approx(25)


def test_the_reduced_conversion_gives_the_full_size_thumbnails(tmp_path):
    make_shot_clip(tmp_path / "c.mp4", [Take("astronaut", 12, "pan"), Take("chelsea", 12, "shake")],
                   size=(640, 480))
    fast = every_frame_prints(str(tmp_path / "c.mp4"))
    full = every_frame_prints(str(tmp_path / "c.mp4"), work_size=None)
    diff = np.abs(fast.prints.astype(int) - full.prints.astype(int))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 6


def _write(path: Path, codec: str, pix_fmt: str, frames: list[np.ndarray]) -> str:
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        for img in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    return str(path)


def test_lowres_decoding_for_intra_only_codecs(tmp_path):
    from shot_media import render

    frames, _ = render([Take("coffee", 30, "pan")], size=(640, 480))
    mjpeg = _write(tmp_path / "m.avi", "mjpeg", "yuvj420p", frames)
    small, full = every_frame_prints(mjpeg), every_frame_prints(mjpeg, lowres=False)
    assert small.lowres == 3 and full.lowres == 0
    per_frame = np.abs(small.prints.astype(int) - full.prints.astype(int)).reshape(30, -1).mean(axis=1)
    assert per_frame.max() < 2.5 and np.ptp(per_frame) < 1  # close, and no drift: each frame stands alone
    # MPEG-4 Part 2 has lowres too, but drifts over a GOP with it: full size
    assert every_frame_prints(_write(tmp_path / "p.avi", "mpeg4", "yuv420p", frames)).lowres == 0
    assert lowres_level("h264", 1920, 1080) == 0 and lowres_level("mjpeg", 100, 80) == 0
    assert lowres_level("mjpeg", 1920, 1080) == 3 and lowres_level("mjpeg", 200, 150) == 1


# --------------------------------------------------------------------------- the peer: PySceneDetect


def _peer_cuts(path: str) -> list[int]:
    """PySceneDetect's ContentDetector (defaults) on PyAV: each scene's first frame, the first dropped."""
    scenedetect = pytest.importorskip("scenedetect")
    video = scenedetect.open_video(path, backend="pyav")
    manager = scenedetect.SceneManager()
    manager.add_detector(scenedetect.ContentDetector())
    manager.detect_scenes(video)
    return [start.frame_num for start, _ in manager.get_scene_list()][1:]


def _ours(path: str) -> list[int]:
    fp = every_frame_prints(path)
    return shot_bounds(detect_shots(fp.prints, fp.times_s, end_s=fp.end_s))


HARD_CUTS = [Take("astronaut", 40, "pan"), Take("coffee", 30, "zoom"), Take("chelsea", 35, "shake"),
             Take("rocket", 30, "fast_pan"), Take("hubble_deep_field", 30, "pan"),
             Take("immunohistochemistry", 25, "still"), Take("retina", 30, "fast_pan"),
             Take("grace_hopper", 30, "zoom")]


def test_hard_cuts_agree_with_pyscenedetect(tmp_path):
    """Takes with pans, whip pans, zooms and shake, cut hard: both find every
    cut, at the same frame (±1 allowed; they agree exactly here)."""
    path = str(tmp_path / "cuts.mp4")
    truth = make_shot_clip(path, HARD_CUTS)
    ours, peer = _ours(path), _peer_cuts(path)
    assert ours == truth.cuts
    assert len(peer) == len(ours) and all(abs(a - b) <= 1 for a, b in zip(ours, peer))


def test_flashes_and_fades_where_the_peer_differs(tmp_path):
    """A white flash inside a take, a fade through black, a fade through white,
    a two-frame flash: ours finds the two cuts and one transition per fade,
    at its darkest (brightest) frame, and no cut at a flash. ContentDetector
    cuts at flashes (a big change both ways; its merge filter keeps one of the
    two jumps) and where a fade's frames change most, not at its darkest."""
    path = str(tmp_path / "events.mp4")
    truth = make_shot_clip(path, [Take("astronaut", 40, "pan"), Flash(20), Take("coffee", 40, "zoom"),
                                  Fade(), Take("chelsea", 40, "pan"), Fade(colour=255),
                                  Take("rocket", 40, "shake"), Flash(10, 2),
                                  Take("grace_hopper", 40, "fast_pan")])
    ours, peer = _ours(path), _peer_cuts(path)
    assert ours == truth.transitions
    for cut in truth.cuts:  # the hard cuts: the same frame
        assert any(abs(cut - p) <= 1 for p in peer)
    # Where the peer differs (PySceneDetect 0.7.2 here: [20, 40, 80, 140, 168]): it cuts at
    # the first flash (20) and at the end of the second (140), which its merge filter
    # joined with the white fade 14 frames before; it cuts into the black fade's held
    # frames (80) rather than at their middle (82).
    assert truth.flashes[0][0] in peer


@pytest.mark.parametrize("name", ["demo_kitchen.mp4", "demo_park.mp4", "demo_street.mp4"])
def test_demo_clips_have_one_shot_for_both(name):
    """Objects popping in and drifting over a still background: no cut."""
    path = str(SAMPLES / name)
    assert _ours(path) == [] and _peer_cuts(path) == []


@pytest.mark.parametrize("name", ["photos_montage.mp4", "coffee_and_cat.mp4"])
def test_cuts_through_black_gaps(name):
    """Photos separated by 12 black frames (hard cuts into and out of each
    gap). Ours: one transition per gap, at its middle; black at the start and
    end belongs to the first and last shot. ContentDetector puts its cut at
    one end or the other of a gap, by where its merge filter lands, and may
    skip a gap or cut into the closing black."""
    path = str(SAMPLES / name)
    fp = every_frame_prints(path)
    from pipeline.analysis.cues import runs

    gaps = [(a, b) for a, b in runs(black_mask(fp.prints)) if a > 0 and b < len(fp.prints)]
    assert gaps and _ours(path) == [(a + b) // 2 for a, b in gaps]
    for p in _peer_cuts(path):
        assert any(p in (a, b) for a, b in runs(black_mask(fp.prints)))


# --------------------------------------------------------------------------- labels per shot, edges at cuts


@st.composite
def shot_lists(draw):
    """Shots tiling frames 0..N at ``fps``, and the fps."""
    fps = draw(st.sampled_from([24.0, 25.0, 30000 / 1001]))
    lengths = draw(st.lists(st.integers(1, 60), min_size=1, max_size=8))
    bounds = np.cumsum([0, *lengths])
    shots = [Shot(k + 1, a / fps, b / fps, int(a), int(b), "start" if k == 0 else "cut")
             for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    return shots, fps


@given(shot_lists(), st.data())
def test_shot_labels_are_means_over_each_shots_samples(shots_fps, data):
    shots, fps = shots_fps
    n_frames = shots[-1].end_frame
    frames = sorted(data.draw(st.sets(st.integers(0, n_frames - 1), max_size=40)))
    times = np.round(np.array(frames, np.float64) / fps, 3)  # as frames.csv writes them
    labels = ["cup", "ball", "tree"]
    scores = np.array(data.draw(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3),
                                         min_size=len(frames), max_size=len(frames))), np.float64)
    scores = scores.reshape(len(frames), 3)
    thresholds = [0.5, 0.3, 0.7]
    result = shot_labels(shots, times, scores, labels, thresholds)
    assert [r.shot for r in result] == [s.shot for s in shots]
    for r, shot in zip(result, shots):
        mine = [k for k, f in enumerate(frames) if shot.start_frame <= f < shot.end_frame]
        assert r.samples == len(mine)
        if not mine:
            assert r.labels == () and all(np.isnan(r.means))
            continue
        means = scores[mine].mean(axis=0)
        assert np.allclose(r.means, means)
        assert set(r.labels) == {lab for lab, m, t in zip(labels, means, thresholds) if m >= t}
        assert [r.means[labels.index(lab)] for lab in r.labels] == sorted(
            (r.means[labels.index(lab)] for lab in r.labels), reverse=True)
    unsampled = [s for s, r in zip(shots, result) if r.samples == 0]
    assert probe_frames(shots, times) == [middle_frame(s) for s in unsampled]
    for s in unsampled:
        assert s.start_frame <= middle_frame(s) < s.end_frame


def test_shot_labels_checks_its_thresholds():
    shots = [Shot(1, 0.0, 1.0, 0, 25, "start")]
    with pytest.raises(ValueError):
        shot_labels(shots, np.array([0.5]), np.array([[0.9, 0.1]]), ["a", "b"], [0.5])
    assert sample_shots(shots, np.array([-0.5, 0.0, 0.9995, 1.5])).tolist() == [0, 1, 0, 0]


@given(st.lists(st.floats(0, 100), max_size=20), st.lists(st.floats(0, 100), max_size=10),
       st.sampled_from([24.0, 25.0, 30000 / 1001, 60.0]), st.floats(0, 3))
def test_snap_edges(edges, cuts, fps, tolerance):
    edges = np.sort(np.array(edges, np.float64))
    snapped = snap_edges(edges, cuts, fps=fps, tolerance_frames=tolerance)
    reach = tolerance / fps + 1e-9
    for e, s in zip(edges, snapped):
        near = [c for c in cuts if abs(c - e) <= reach]
        if near:
            assert s in cuts and abs(s - e) == min(abs(c - e) for c in cuts)
        else:
            assert s == e
    assert np.all(np.diff(snapped) >= 0)  # order kept
    assert np.array_equal(snap_edges(snapped, cuts, fps=fps, tolerance_frames=tolerance), snapped)


@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0.001, 5)), max_size=10), st.lists(st.floats(0, 60),
                                                                                         max_size=8))
def test_snap_segments_never_collapse_one(segs, cuts):
    segments = [(a, a + d) for a, d in segs]
    out = snap_segments(segments, cuts, fps=25.0, tolerance_frames=2)
    assert len(out) == len(segments)
    for (a, b), (x, y) in zip(segments, out):
        assert y > x
        assert abs(x - a) <= 2 / 25 + 1e-9 and abs(y - b) <= 2 / 25 + 1e-9


def test_a_cut_between_two_moving_shots(tmp_path):
    """A whip pan cut to a shaky shot: every jump around the cut is large, the
    cut only 2.5 times them, but it replaces the colours. PySceneDetect 0.7.2
    misses this one: the pan's frames pass its threshold in the 15 before the
    cut and its merge filter swallows the cut with them."""
    path = str(tmp_path / "moving.mp4")
    truth = make_shot_clip(path, [Take("immunohistochemistry", 31, "zoom"),
                                  Take("grace_hopper", 32, "fast_pan"), Take("astronaut", 41, "shake"),
                                  Take("coffee", 18, "zoom")], fps=24)
    assert _ours(path) == truth.cuts == [31, 63, 104]
    assert 63 not in _peer_cuts(path)  # the whip pan's cut
