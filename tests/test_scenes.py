"""Drawn scenes (pipeline/embed/scenes.py): the cartoon-like frames int8's calibration,
validation and ``precision: auto``'s check hold besides photos and flat scenes."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipeline.embed.scenes import drawn_scenes


@given(size=st.sampled_from([32, 64, 224]), seed=st.integers(0, 10_000))
def test_the_same_seed_draws_the_same_scenes(size, seed):
    first, again = drawn_scenes(size, 3, seed=seed), drawn_scenes(size, 3, seed=seed)
    assert all(a.shape == (size, size, 3) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_other_seeds_draw_other_scenes():
    scenes = [s.tobytes() for seed in range(20) for s in drawn_scenes(64, 2, seed=seed)]
    assert len(set(scenes)) == len(scenes)


def test_scenes_are_drawn_flat_fills_with_edges_not_noise():
    """What sets them apart from photos and the flat box scenes: most neighbouring pixels
    are equal (flat fills), yet each scene has several colours and hard edges."""
    for scene in drawn_scenes(224, 12, seed=3):
        pixels = scene.astype(np.int16)
        step = np.abs(np.diff(pixels, axis=1)).sum(axis=2)
        assert (step == 0).mean() > 0.5  # flat fills
        assert (step > 60).sum() > 50  # hard edges: outlines, shapes, bands
        assert len(np.unique(scene.reshape(-1, 3), axis=0)) >= 4
