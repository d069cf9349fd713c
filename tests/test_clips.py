"""Clips: exact cuts hold exactly the frames asked for (decoded and compared
with the source's), copy cuts start at the keyframe before, audio is cut to
the same span, supercuts join parts in time order, and a failed write
leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media import is_upright, make_clip, make_rotated_clip, make_vfr_clip, read_index
from shot_media import Take, make_shot_clip

from pipeline.clips import ClipError, Part, cut_clip, supercut
from pipeline.types import VideoOpenError

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ROOT / "sample_videos" / "demo_kitchen.mp4"
# The demo run's coffee cup segment (configs/demo.yaml on demo_kitchen.mp4, refined):
# segments.csv reads "coffee cup,tag,2.0,6.0,...,30,90,both".
CUP = (2.0, 6.0, 30, 90)


def _decoded(path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = s.start_time or 0
        frames = [(f.to_ndarray(format="rgb24"), float((f.pts - start) * s.time_base)) for f in c.decode(s)]
    return [f for f, _ in frames], [t for _, t in frames]


def _audio_samples(path) -> int:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0
        return sum(f.samples for f in c.decode(c.streams.audio[0]))


def _audio_length(path) -> int:
    """The audio stream's length in samples as the container states it (the
    last AAC packet's duration trims its padding), checked against what
    decodes: decoders give whole 1024-sample frames, so at most 1023 more."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        assert stream.time_base == Fraction(1, stream.codec_context.sample_rate)
        length = stream.duration
    decoded = _audio_samples(path)
    assert length <= decoded < length + 1024
    return length


@pytest.fixture(scope="module")
def bits_clip(tmp_path_factory) -> str:
    """200 frames at 25 fps, each showing its own index; a keyframe every 48."""
    return make_clip(tmp_path_factory.mktemp("bits") / "bits.mp4", seconds=8, fps=25, size=(160, 96), gop=48)


def test_the_demo_coffee_cup_segment_exactly(tmp_path):
    """The clip holds frames 30-89 of the source: as many, in order, each the
    source frame's picture within codec loss and far from its neighbours'."""
    start_s, end_s, a, b = CUP
    out = tmp_path / "cup.mp4"
    result = cut_clip(str(KITCHEN), start_s, end_s, out, start_frame=a, end_frame=b)
    assert result.frames == b - a and result.duration_s == pytest.approx(4.0)
    clip, times = _decoded(out)
    source, _ = _decoded(KITCHEN)
    assert len(clip) == b - a
    assert times == pytest.approx([k / 15 for k in range(b - a)])
    for k, frame in enumerate(clip):
        errors = [np.abs(frame.astype(int) - source[i].astype(int)).mean() for i in range(a - 3, b + 3)]
        assert int(np.argmin(errors)) == k + 3  # the closest source frame is its own
        assert errors[k + 3] < 1.5  # crf 18: within compression noise
    # the same segment given by its seconds alone (as written to the millisecond)
    again = cut_clip(str(KITCHEN), 2.0, 6.0, tmp_path / "cup2.mp4")
    assert again.frames == 60


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 199), st.integers(1, 80))
def test_exact_cuts_hold_exactly_their_frames(tmp_path_factory, bits_clip, start, length):
    end = min(start + length, 200)
    out = tmp_path_factory.mktemp("cut") / "c.mp4"
    result = cut_clip(bits_clip, start / 25, end / 25, out, start_frame=start, end_frame=end)
    frames, times = _decoded(out)
    assert [read_index(f) for f in frames] == list(range(start, end))
    assert times == pytest.approx([k / 25 for k in range(end - start)])
    assert result.frames == end - start and result.early_s == result.late_s == 0


def test_times_select_the_same_frames_as_frame_numbers(tmp_path, bits_clip):
    cut_clip(bits_clip, 1.28, 2.6, tmp_path / "t.mp4")  # frames 32..64 (65 starts at 2.6)
    assert [read_index(f) for f in _decoded(tmp_path / "t.mp4")[0]] == list(range(32, 65))
    cut_clip(bits_clip, 1.2801, 2.6004, tmp_path / "u.mp4")  # a millisecond's rounding either way
    assert [read_index(f) for f in _decoded(tmp_path / "u.mp4")[0]] == list(range(32, 65))


def test_copy_starts_at_the_keyframe_before(tmp_path, bits_clip):
    result = cut_clip(bits_clip, 60 / 25, 110 / 25, tmp_path / "k.mp4", mode="copy")
    indices = [read_index(f) for f in _decoded(tmp_path / "k.mp4")[0]]
    assert indices[0] == 48  # the keyframe at or before frame 60
    assert result.early_s == pytest.approx(12 / 25)
    assert set(range(48, 110)) <= set(indices)  # every frame asked for
    assert max(indices) < 110 + 4 and result.late_s == pytest.approx((max(indices) + 1 - 110) / 25)
    assert result.duration_s == pytest.approx((max(indices) + 1 - 48) / 25)
    # on a keyframe: nothing early
    assert cut_clip(bits_clip, 96 / 25, 120 / 25, tmp_path / "k2.mp4", mode="copy").early_s == 0


def test_the_demo_cup_by_copy(tmp_path):
    """The demo clip has one keyframe (frame 0): a copy starts 2 s early."""
    result = cut_clip(str(KITCHEN), 2.0, 6.0, tmp_path / "cup.mp4", mode="copy")
    assert result.early_s == pytest.approx(2.0)
    frames, times = _decoded(tmp_path / "cup.mp4")
    source, _ = _decoded(KITCHEN)
    assert np.abs(frames[0].astype(int) - source[0].astype(int)).mean() == 0  # copied, not re-encoded
    assert len(frames) >= 90


def test_audio_is_cut_to_the_same_span(tmp_path):
    src = tmp_path / "a.mp4"
    make_shot_clip(src, [Take("coffee", 50, "pan"), Take("rocket", 50, "zoom")], audio=True)
    out = tmp_path / "cut.mp4"
    result = cut_clip(str(src), 0, 0, out, start_frame=13, end_frame=77)
    assert result.audio and result.frames == 64
    assert _audio_length(out) == round(64 / 25 * 48000)  # 2.56 s of 48 kHz samples, exactly
    odd = cut_clip(str(src), 0, 0, tmp_path / "odd.mp4", start_frame=13, end_frame=70)
    assert _audio_length(tmp_path / "odd.mp4") == round(odd.frames / 25 * 48000)  # 109440: 106.9 AAC frames
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        first = next(c.decode(audio))
        assert first.pts == 0  # starting with the first frame
    copy = cut_clip(str(src), 13 / 25, 77 / 25, tmp_path / "copy.mp4", mode="copy")
    assert copy.audio and _audio_samples(tmp_path / "copy.mp4") > 0


def test_variable_frame_rate_keeps_its_times(tmp_path):
    times = [round(t, 3) for t in np.cumsum([0.0] + [0.04, 0.1, 0.033, 0.2] * 10)[:40]]
    src = make_vfr_clip(tmp_path / "vfr.mp4", times, size=(96, 64), gop=10)
    cut_clip(src, times[7], times[30], tmp_path / "v.mp4", start_frame=7, end_frame=30)
    frames, got = _decoded(tmp_path / "v.mp4")
    assert [read_index(f) for f in frames] == list(range(7, 30))
    assert got == pytest.approx([t - times[7] for t in times[7:30]], abs=1e-3)


def test_a_rotated_source_plays_upright(tmp_path):
    src = make_rotated_clip(tmp_path / "r.mp4", seconds=1, fps=25, size=(96, 64), rotation=90)
    cut_clip(src, 0.2, 0.6, tmp_path / "up.mp4")
    frames, _ = _decoded(tmp_path / "up.mp4")
    assert len(frames) == 10 and all(is_upright(f) for f in frames)


def test_supercut_joins_parts_in_time_order(tmp_path, bits_clip):
    parts = [Part(bits_clip, 150 / 25, 160 / 25, 150, 160), Part(bits_clip, 10 / 25, 20 / 25, 10, 20),
             Part(bits_clip, 15 / 25, 30 / 25, 15, 30)]  # the last two overlap: one part
    result = supercut(parts, tmp_path / "s.mp4")
    frames, times = _decoded(tmp_path / "s.mp4")
    assert [read_index(f) for f in frames] == [*range(10, 30), *range(150, 160)]
    assert result.parts == 2 and result.frames == 30
    assert times == pytest.approx([k / 25 for k in range(30)])  # one clock, no gap at the join


def test_supercut_of_two_sources_with_and_without_audio(tmp_path, bits_clip):
    src = tmp_path / "a.mp4"
    make_shot_clip(src, [Take("coffee", 40, "pan")], size=(160, 96), audio=True)
    result = supercut([(str(src), 0.4, 1.2), (bits_clip, 2.0, 2.4)], tmp_path / "s.mp4")
    frames, _ = _decoded(tmp_path / "s.mp4")
    assert len(frames) == 20 + 10 and result.audio
    assert [read_index(f) for f in frames[20:]] == list(range(50, 60))
    assert _audio_length(tmp_path / "s.mp4") == round(1.2 * 48000)  # the bits part is silence
    with pytest.raises(ClipError, match="one source"):
        supercut([(str(src), 0.4, 1.2), (bits_clip, 2.0, 2.4)], tmp_path / "c.mp4", mode="copy")


def test_errors_are_one_line_and_leave_nothing(tmp_path, bits_clip):
    with pytest.raises(VideoOpenError, match="file not found"):
        cut_clip(str(tmp_path / "moved.mp4"), 0, 1, tmp_path / "x.mp4")
    with pytest.raises(ClipError, match="nothing to cut"):
        cut_clip(bits_clip, 2.0, 2.0, tmp_path / "x.mp4")
    with pytest.raises(ClipError, match="no frame"):
        cut_clip(bits_clip, 30.0, 31.0, tmp_path / "x.mp4")
    with pytest.raises(ClipError, match="use .m4v, .mkv, .mov, .mp4"):
        cut_clip(bits_clip, 0, 1, tmp_path / "x.gif")
    with pytest.raises(ClipError, match="unknown clip mode"):
        cut_clip(bits_clip, 0, 1, tmp_path / "x.mp4", mode="smart")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, bits_clip):
    """The write fails part way (a file size limit: EFBIG, as ENOSPC would):
    the target is not created, no temporary is left, one line is reported."""
    out = tmp_path / "big.mp4"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
        "from pipeline.clips import ClipError, cut_clip\n"
        "try:\n"
        f"    cut_clip({bits_clip!r}, 0, 8, {str(out)!r})\n"
        "except ClipError as ex:\n"
        "    print(ex); sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 3, run.stderr
    message = run.stdout.strip()
    assert "\n" not in message and message.startswith(f"cannot write clip {out}")
    assert list(tmp_path.iterdir()) == []
