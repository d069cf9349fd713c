"""Technical cues (black, frozen, fades): property tests on drawn thumbnails,
and the cues of generated and sample videos decoded frame by frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shot_media import Fade, Take, make_shot_clip

from pipeline.analysis.cues import (
    Cue,
    black_frames,
    black_mask,
    detect_cues,
    fades,
    frame_ends,
    frozen_frames,
    runs,
)
from pipeline.decode.every_frame import every_frame_prints

SAMPLES = Path(__file__).resolve().parents[1] / "sample_videos"
H, W = 24, 32
CELLS = H * W


def _black(rng: np.random.Generator, specks: int = 0) -> np.ndarray:
    """A black frame (every pixel at most 51), with ``specks`` bright cells."""
    frame = rng.integers(0, 52, (H, W, 3)).astype(np.uint8)
    where = rng.choice(CELLS, specks, replace=False)
    frame.reshape(CELLS, 3)[where] = 255
    return frame


def _picture(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(60, 256, (H, W, 3)).astype(np.uint8)


@given(st.integers(0, 2**32 - 1), st.lists(st.booleans(), min_size=1, max_size=60),
       st.sampled_from([25.0, 30000 / 1001]))
def test_black_cues_are_the_runs_of_black_frames(seed, pattern, fps):
    rng = np.random.default_rng(seed)
    prints = np.stack([_black(rng, int(rng.integers(0, 8))) if b else _picture(rng) for b in pattern])
    times = np.arange(len(pattern)) / fps
    cues = black_frames(prints, times)
    assert [(c.start_frame, c.end_frame) for c in cues] == runs(np.array(pattern))
    ends = frame_ends(times)
    for c in cues:
        assert c.kind == "black" and c.start_s == times[c.start_frame] and c.end_s == ends[c.end_frame - 1]


@given(st.integers(0, 2**32 - 1), st.integers(0, 40))
def test_coverage_is_rekognitions_99_percent(seed, specks):
    """768 cells: up to 7 bright ones (0.9%) leave a frame black, 8 (1.04%) do not."""
    rng = np.random.default_rng(seed)
    assert bool(black_mask(_black(rng, specks)[None])[0]) == (specks <= 7)


@given(st.floats(0.0, 1.0), st.floats(0.5, 1.0), st.integers(0, 255))
def test_black_thresholds_are_parameters(pixel, coverage, level):
    frame = np.full((1, H, W, 3), level, np.uint8)
    assert bool(black_mask(frame, max_pixel_threshold=pixel, min_coverage=coverage)[0]) == (
        level <= pixel * 255 + 1e-6)


@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.floats(0, 1.5))
def test_minimum_black_duration(seed, frames, minimum):
    rng = np.random.default_rng(seed)
    prints = np.stack([_picture(rng)] + [_black(rng)] * frames + [_picture(rng)])
    times = np.arange(len(prints)) / 25
    cues = black_frames(prints, times, min_duration_s=minimum)
    assert len(cues) == (frames / 25 >= minimum - 1e-9)


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 80), min_size=1, max_size=5),
       st.sampled_from([25.0, 30.0]))
def test_frozen_runs(seed, lengths, fps):
    """Takes of one picture held (with compression-like noise) or moving;
    held ones of two seconds or more are frozen cues, exactly."""
    rng = np.random.default_rng(seed)
    frames, expected = [], []
    for n, length in enumerate(lengths):
        held = n % 2 == 0
        base = _picture(rng).astype(np.int16)
        start = len(frames)
        for k in range(length):
            if held:
                noise = rng.integers(-1, 2, base.shape)  # frames differ by up to 2, 0.9 on average
                frames.append(np.clip(base + noise, 0, 255).astype(np.uint8))
            else:
                frames.append(np.roll(base, k + 1, axis=1).astype(np.uint8))  # sliding
        if held and length / fps >= 2.0 - 1e-9 and length > 1:
            expected.append((start, start + length))
    prints = np.stack(frames)
    cues = frozen_frames(prints, np.arange(len(prints)) / fps)
    assert [(c.start_frame, c.end_frame) for c in cues] == expected


def test_a_slow_drift_ends_a_frozen_run():
    """Compared with the run's first picture, not the previous frame: one grey
    level every 30 frames ends the run when it has drifted past the noise."""
    base = np.full((H, W, 3), 100, np.uint8)
    prints = np.stack([base + k // 30 for k in range(100)])
    cues = frozen_frames(prints, np.arange(100) / 25)
    assert [(c.start_frame, c.end_frame) for c in cues] == [(0, 60)]


def test_black_is_not_frozen():
    prints = np.zeros((100, H, W, 3), np.uint8)
    assert frozen_frames(prints, np.arange(100) / 25) == []


@given(st.integers(0, 2**32 - 1), st.integers(0, 20), st.integers(1, 10), st.integers(0, 20))
def test_fades_out_and_in(seed, out, hold, into):
    rng = np.random.default_rng(seed)
    a, b = _picture(rng), _picture(rng)
    frames = [a] * 10
    frames += [(a * (1 - (k + 1) / (out + 1))).astype(np.uint8) for k in range(out)]
    frames += [np.zeros_like(a)] * hold
    frames += [(b * ((k + 1) / (into + 1))).astype(np.uint8) for k in range(into)]
    frames += [b] * 10
    prints = np.stack(frames)
    times = np.arange(len(prints)) / 25
    black = runs(black_mask(prints))
    assert len(black) == 1
    first, end = black[0]
    got = {c.kind: (c.start_frame, c.end_frame) for c in fades(prints, times)}
    # frames dark enough to pass for black belong to the black run, the rest to the fades
    assert ("fade_out" in got) == ((first - 10) / 25 >= 0.2 - 1e-9)
    assert ("fade_in" in got) == ((10 + out + hold + into - end) / 25 >= 0.2 - 1e-9)
    if "fade_out" in got:
        assert got["fade_out"] == (10, first)
    if "fade_in" in got:
        assert got["fade_in"] == (end, 10 + out + hold + into)


def test_a_cut_to_black_is_no_fade():
    rng = np.random.default_rng(1)
    prints = np.stack([_picture(rng)] * 10 + [np.zeros((H, W, 3), np.uint8)] * 5 + [_picture(rng)] * 10)
    assert fades(prints, np.arange(25) / 25) == []
    assert [c.kind for c in detect_cues(prints, np.arange(25) / 25)] == ["black"]


def test_detect_cues_orders_and_checks():
    assert detect_cues(np.zeros((0, H, W, 3), np.uint8), np.zeros(0)) == []
    with pytest.raises(ValueError):
        detect_cues(np.zeros((2, H, W, 3), np.uint8), np.zeros(1))
    prints = np.zeros((60, H, W, 3), np.uint8)
    assert detect_cues(prints, np.arange(60) / 30, end_s=2.0) == [Cue("black", 0.0, 2.0, 0, 60)]


def test_cues_of_a_generated_clip(tmp_path):
    """A held take (3 s) frozen, a fade through black, the black itself."""
    path = str(tmp_path / "cues.mp4")
    truth = make_shot_clip(path, [Take("astronaut", 50, "pan"), Take("coffee", 75, "still"),
                                  Fade(out=10, hold=6, into=10), Take("chelsea", 40, "pan")])
    fp = every_frame_prints(path)
    cues = detect_cues(fp.prints, fp.times_s, end_s=fp.end_s)
    kinds = [c.kind for c in cues]
    assert kinds == ["frozen", "fade_out", "black", "fade_in"], cues
    frozen = cues[0]
    assert frozen.start_frame == 50 and frozen.end_frame >= 115  # held until its fade begins
    (a, b), = truth.fades
    black = cues[2]
    assert black.start_frame <= a and black.end_frame >= b  # the darkest fade frames pass for black too
    assert cues[1].end_frame == black.start_frame and cues[3].start_frame == black.end_frame


def test_cues_of_the_photo_montage():
    """Black gaps of 12 frames (0.5 s) between photos, at the start and the end."""
    fp = every_frame_prints(str(SAMPLES / "photos_montage.mp4"))
    cues = detect_cues(fp.prints, fp.times_s, end_s=fp.end_s)
    assert [(c.kind, c.start_frame, c.end_frame) for c in cues] == [
        ("black", a, a + 12) for a in (0, 96, 192, 288, 384, 480)]
    assert cues[1].start_s == pytest.approx(4.0) and cues[1].end_s == pytest.approx(4.5)
