"""``Frame.index`` is the true presentation-order index, whatever the strategy.

The reference is PyAV itself: decode every frame of the file and number them
in the order they come out (presentation order). Every strategy, both
backends and :func:`read_frames_at` must give each frame that number, on
constant and variable frame rate video, with B-frames and a start offset.
"""

from __future__ import annotations

import av
import media
import pytest

from pipeline.decode import BACKENDS, open_decoder, read_frames_at
from pipeline.types import Sampling


def vfr_times(n: int = 160) -> list[float]:
    """Alternating 24 fps and 8 fps runs of 20 frames (average ~12 fps)."""
    times, t = [], 0.0
    for i in range(n):
        times.append(round(t, 3))
        t += 1 / 24 if (i // 20) % 2 == 0 else 1 / 8
    return times


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("index")
    return {
        "vfr": media.make_vfr_clip(d / "vfr.mp4", vfr_times()),
        "vfr_mkv": media.make_vfr_clip(d / "vfr.mkv", vfr_times(), gop=15),
        "cfr_bframes": media.make_clip(d / "cfr.mp4", seconds=6, fps=25, gop=12),
        "cfr_mkv": media.make_clip(d / "cfr.mkv", seconds=6, fps=25, gop=12),
        "cfr_gop50": media.make_clip(d / "gop50.mp4", seconds=6, fps=25, gop=50),
        "ts_offset": media.make_clip(d / "offset.ts", seconds=6, fps=25, gop=12),
    }


def reference_indices(path: str) -> dict[float, int]:
    """PTS (seconds from the stream start, rounded to µs) → PyAV's own index."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        start, tb = stream.start_time or 0, stream.time_base
        return {round(float((vf.pts - start) * tb), 6): i for i, vf in enumerate(container.decode(stream))}


def assert_true_indices(frames, ref: dict[float, int]) -> None:
    assert frames
    wrong = [(f.pts_s, f.index, ref.get(round(f.pts_s, 6))) for f in frames
             if ref.get(round(f.pts_s, 6)) != f.index]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("clip", ["vfr", "vfr_mkv", "cfr_bframes", "cfr_mkv", "ts_offset"])
@pytest.mark.parametrize("strategy", ["exact", "fast", "keyframes"])
def test_pyav_index_is_presentation_order(clips, clip, strategy):
    with open_decoder(clips[clip], strategy=strategy) as dec:
        frames = list(dec.frames(Sampling(every_seconds=0.5)))
    assert_true_indices(frames, reference_indices(clips[clip]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree_on_vfr_indices(clips, backend):
    pytest.importorskip("decord") if backend == "decord" else None
    with open_decoder(clips["vfr"], backend=backend) as dec:
        frames = list(dec.frames(Sampling(every_seconds=1.0)))
    assert_true_indices(frames, reference_indices(clips["vfr"]))


@pytest.mark.parametrize("clip", ["vfr", "cfr_bframes", "ts_offset"])
def test_read_frames_at_gives_true_indices(clips, clip):
    times = [0.0, 1.3, 2.2, 2.21, 4.0, 5.5, 1.0]  # unsorted, two close together
    frames = read_frames_at(clips[clip], times)
    assert_true_indices(frames, reference_indices(clips[clip]))
    for t, f in zip(times, frames, strict=True):
        assert f.pts_s >= t - 1e-6  # the first frame at or after each time
        assert media.read_index(f.image) == f.index  # and its picture is that frame's


def test_packet_index_reads_only_as_far_as_asked(tmp_path):
    """A run that stops early (max_frames) must not demux the whole file for its indices."""
    from pipeline.decode.packets import LOOKAHEAD, PacketIndex

    path = media.make_clip(tmp_path / "long.mp4", seconds=40, fps=25, gop=12)
    ref = reference_indices(path)
    with av.open(path) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        packets = PacketIndex(container, stream)
        for t in (0.0, 0.4, 2.0):
            assert packets.index_of(round(t / tb)) == ref[t]
        assert len(packets._all) <= 2.0 * 25 + LOOKAHEAD + 1
        assert packets.index_of(round(1.0 / tb)) == ref[1.0]  # an earlier time still answers
        assert packets.last_pts() == round(39.96 / tb)  # reads on to the end only when asked
        assert packets.keyframe_at_or_before(round(28.9 / tb)) == round(28.8 / tb)  # frame 720 = 12 x 60


def test_max_frames_run_on_fast_keeps_true_indices(clips):
    with open_decoder(clips["vfr"], strategy="fast") as dec:
        frames = list(dec.frames(Sampling(every_seconds=1.0, max_frames=3)))
    assert len(frames) == 3
    assert_true_indices(frames, reference_indices(clips["vfr"]))


def _encode(path, codec: str, *, bframes: int = 0, options: dict | None = None) -> str:
    """150 index frames at 25 fps, a keyframe every 12, with B-frames where asked."""
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=25, options=options or {})
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.gop_size = 12
    if bframes:
        stream.codec_context.max_b_frames = bframes
    for i in range(150):
        for packet in stream.encode(av.VideoFrame.from_ndarray(media.index_image(i), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return str(path)


@pytest.mark.parametrize("name, codec, bframes, options", [
    ("hevc_open_gop.mkv", "libx265", 0, {"x265-params": "keyint=12:open-gop=1:bframes=3:log-level=error"}),
    ("vp9.webm", "libvpx-vp9", 0, None),
    ("vp8_altref.webm", "libvpx", 0, {"auto-alt-ref": "1", "lag-in-frames": "16"}),
    ("mpeg2_bframes.ts", "mpeg2video", 2, None),
    ("mpeg4_bframes.avi", "mpeg4", 2, None),  # AVI stores no PTS: packets are placed by DTS
])
def test_skipping_strategies_give_true_indices_across_codecs(tmp_path, name, codec, bframes, options):
    path = _encode(tmp_path / name, codec, bframes=bframes, options=options)
    ref = reference_indices(path)
    for strategy in ("fast", "keyframes"):
        with open_decoder(path, strategy=strategy) as dec:
            frames = list(dec.frames(Sampling(every_seconds=0.5)))
        assert_true_indices(frames, ref)
        assert all(media.read_index(f.image) == f.index for f in frames)


# --------------------------------------------------------------------------- frame rules


def reference_pts(path: str) -> list[float]:
    """Every frame's PTS (seconds from the stream start, rounded to µs), in PyAV's own order."""
    return sorted(reference_indices(path), key=reference_indices(path).get)


@pytest.mark.parametrize("clip", ["cfr_bframes", "cfr_gop50", "vfr", "ts_offset"])
@pytest.mark.parametrize("strategy", ["auto", "exact"])
def test_every_n_frames_gets_exactly_every_nth_frame(clips, clip, strategy):
    """Frames 0, N, 2N, ... of PyAV's own order; before, auto chose fast and
    turned the rule into a time step: frame 105 is a skipped B-frame of
    cfr_gop50, so 106 came instead, and vfr got frames 0, 24, 34, 50."""
    every = 15
    ref = reference_pts(clips[clip])
    with open_decoder(clips[clip], strategy=strategy) as dec:
        frames = list(dec.frames(Sampling(every_n_frames=every)))
    assert [f.index for f in frames] == list(range(0, len(ref), every))
    assert [round(f.pts_s, 6) for f in frames] == ref[::every]
    assert all(media.read_index(f.image) == f.index for f in frames)


@pytest.mark.parametrize("strategy", ["fast", "keyframes"])
def test_a_frame_rule_under_a_skipping_strategy_warns_once(clips, strategy, caplog, monkeypatch):
    """A forced skipping strategy keeps its documented behaviour (the first
    decoded frame at or after each N-th frame's time) and says so: one warning
    however many inputs, a note in each input's stats."""
    import pipeline.decode.pyav as pyav

    monkeypatch.setattr(pyav, "_WARNED", set())
    every, notes = 15, []
    for clip in ("cfr_bframes", "cfr_mkv"):
        ref = reference_pts(clips[clip])
        with caplog.at_level("WARNING"), open_decoder(clips[clip], strategy=strategy) as dec:
            frames = list(dec.frames(Sampling(every_n_frames=every)))
            notes.append(dec.stats.notes)
        assert dec.stats.strategy == strategy
        assert frames and frames[0].index == 0
        assert all(ref[f.index] == round(f.pts_s, 6) for f in frames)  # true indices still
        targets = ref[::every]
        assert all(any(t <= f.pts_s + 1e-6 for t in targets) for f in frames)
    warnings = [r for r in caplog.records if "every_n_frames" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "exact" in warnings[0].getMessage()
    assert all(any("every_n_frames" in n for n in ns) for ns in notes), notes


def test_run_every_n_frames_scores_exactly_every_nth_frame(tmp_path, tiny_model_dir):
    """Through the CLI: `scenetag run --every-n-frames 15` scores frames 0, 15, 30, ..."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    from tiny_model import tiny_config

    clip = media.make_clip(tmp_path / "clip.mp4", seconds=6, fps=25, gop=50)  # B-frames, 150 frames
    cfg = tiny_config(tmp_path, tiny_model_dir, "labels: [{name: cat}, {name: dog}]\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", clip, "-c", str(cfg), "-o", str(out), "-q",
           "--no-store", "--no-refine", "--every-n-frames", "15", "--formats", "csv,json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = pd.read_csv(out / "clip" / "frames.csv")
    assert list(frames["frame_index"]) == list(range(0, 150, 15))
    assert list(frames["time_s"]) == pytest.approx([i / 25 for i in range(0, 150, 15)], abs=1e-6)
