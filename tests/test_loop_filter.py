"""skip_loop_filter per decode strategy (pipeline.decode.pyav.LOOP_FILTER_SKIP): the
keyframes strategy decodes without deblocking, the others keep it, and the frames
stay what the filtered decode gives, give or take the filter's few levels."""

from __future__ import annotations

import numpy as np
import pytest
from media import make_clip

from pipeline.decode import open_decoder, pyav
from pipeline.types import Sampling


@pytest.fixture(scope="module")
def blocky_clip(tmp_path_factory):
    # the index bands' hard edges give the deblocking filter something to smooth
    path = tmp_path_factory.mktemp("lf") / "gop10.mp4"
    return make_clip(path, seconds=2.0, fps=10, size=(160, 96), gop=10)


def _frames(path: str, strategy: str, skip: dict[str, str]) -> list:
    saved = dict(pyav.LOOP_FILTER_SKIP)
    pyav.LOOP_FILTER_SKIP.clear()
    pyav.LOOP_FILTER_SKIP.update(skip)
    try:
        with open_decoder(path, strategy=strategy) as decoder:
            frames = list(decoder.frames(Sampling(every_seconds=1.0)))
            assert decoder.stats.strategy == strategy
            return frames
    finally:
        pyav.LOOP_FILTER_SKIP.clear()
        pyav.LOOP_FILTER_SKIP.update(saved)


def test_only_keyframes_skips_the_loop_filter():
    assert pyav.LOOP_FILTER_SKIP == {"keyframes": "all"}  # measured: docs/PERFORMANCE.md


def test_keyframes_without_the_filter_are_the_same_frames_nearly_the_same_pixels(blocky_clip):
    filtered = _frames(blocky_clip, "keyframes", {})
    unfiltered = _frames(blocky_clip, "keyframes", {"keyframes": "all"})
    assert [f.index for f in unfiltered] == [f.index for f in filtered] and len(filtered) == 2
    diff = [np.abs(a.image.astype(int) - b.image.astype(int)) for a, b in zip(filtered, unfiltered)]
    assert max(d.max() for d in diff) > 0  # the option reached the decoder
    assert max(d.mean() for d in diff) < 4.0  # deblocking moves few pixels by few levels


def test_fast_keeps_the_filter(blocky_clip):
    default = _frames(blocky_clip, "fast", dict(pyav.LOOP_FILTER_SKIP))
    filtered = _frames(blocky_clip, "fast", {})
    assert all(np.array_equal(a.image, b.image) for a, b in zip(default, filtered))
