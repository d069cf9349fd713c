"""Conformance suite for pipeline.decode, parametrised over every backend."""

from __future__ import annotations

import math

import av
import media
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decode import BACKENDS, is_image, open_decoder, probe, read_frames_at
from pipeline.decode.base import PtsSampler, scaled_size, select_indices
from pipeline.types import DecodeError, Sampling, VideoOpenError

FPS = 25
SECONDS = 4
N_FRAMES = FPS * SECONDS
VFR_PTS = [0.0, 0.04, 0.1, 0.3, 0.31, 0.5, 0.9, 1.0, 1.45, 2.0, 2.02, 2.5, 3.1]


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Every test clip, generated once per session (well under a second)."""
    d = tmp_path_factory.mktemp("media")
    c = {
        "cfr": media.make_clip(d / "cfr.mp4", seconds=SECONDS, fps=FPS, gop=25),
        "cfr_mkv": media.make_clip(d / "cfr.mkv", seconds=SECONDS, fps=FPS, gop=25),
        "intra": media.make_clip(d / "intra.mkv", seconds=2, fps=FPS, codec="mjpeg", pix_fmt="yuvj420p"),
        "vfr": media.make_vfr_clip(d / "vfr.mp4", VFR_PTS),
        "wide": media.make_clip(d / "wide.mp4", seconds=0.4, fps=FPS, size=(160, 90)),
        "audio": media.make_audio_only(d / "audio.m4a"),
        "zero": media.make_zero_byte(d / "zero.mp4"),
        "text": media.make_text_as_mp4(d / "text.mp4"),
        "missing": str(d / "missing.mp4"),
        "png": media.make_image(d / "still.png"),
        "jpg_exif": media.make_image(d / "exif.jpg", exif_orientation=6),
    }
    for rot in (90, 180, 270):
        c[f"rot{rot}"] = media.make_rotated_clip(d / f"rot{rot}.mp4", rotation=rot, seconds=0.4)
    c["truncated"] = media.make_truncated(c["cfr_mkv"], d / "truncated.mkv", 0.5)
    return c


def decode_all(path, sampling, **kw):
    with open_decoder(path, **kw) as dec:
        frames = list(dec.frames(sampling))
        return frames, dec.stats, dec.info


def assert_frames_match_content(frames):
    """Each frame shows the picture of the frame its index names."""
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.ndim == 3 and f.image.shape[2] == 3
        assert media.read_index(f.image) == f.index, (f.index, f.pts_s)
        assert media.is_upright(f.image)


# --------------------------------------------------------------------------- sampler


def test_sampler_every_n():
    assert select_indices(Sampling(every_n_frames=3), [i / 10 for i in range(10)]) == [0, 3, 6, 9]


def test_sampler_time_based_no_duplicates_on_vfr():
    times = [0.0, 0.04, 0.1, 0.3, 0.31, 0.5, 0.9, 1.0]
    kept = select_indices(Sampling(every_seconds=0.25), times)
    # targets 0, 0.25 -> 0.3 (next target 0.5), 0.5 -> 0.5, 0.75 -> 0.9, 1.0 -> 1.0
    assert [times[i] for i in kept] == [0.0, 0.3, 0.5, 0.9, 1.0]


def test_sampler_max_frames_and_validation():
    s = PtsSampler(Sampling(target_fps=10, max_frames=2))
    assert [s.keep(i, i * 0.1) for i in range(4)] == [True, True, False, False]
    assert s.done
    with pytest.raises(ValueError):
        PtsSampler(Sampling(every_n_frames=2, every_seconds=1.0))


@settings(max_examples=150, deadline=None)
@given(
    fps=st.floats(5, 60),
    interval=st.floats(0.05, 3.0),
    jitter=st.lists(st.floats(0.2, 1.8), min_size=20, max_size=300),
)
def test_sampler_properties(fps, interval, jitter):
    dt = 1.0 / fps
    times = np.cumsum([0.0] + [j * dt for j in jitter[1:]])
    kept = [times[i] for i in select_indices(Sampling(every_seconds=interval), times)]
    assert kept[0] == 0.0
    gaps = np.diff(kept)
    max_dt = 1.8 * dt  # the largest frame spacing the jitter allows
    assert np.all(gaps > 0)
    assert np.all(gaps > interval - max_dt - 1e-9)
    assert np.all(gaps < interval + max_dt + 1e-9)
    # each kept frame claims a distinct multiple of the interval
    assert len(kept) <= times[-1] / interval + 1 + 1e-9
    assert len(kept) >= (times[-1] - max_dt) / (interval + max_dt)


def test_scaled_size_keeps_aspect():
    assert scaled_size(1920, 1080, 224) == (398, 224)
    assert scaled_size(1080, 1920, 224) == (224, 398)
    assert scaled_size(64, 48, None) == (64, 48)


# --------------------------------------------------------------------------- probe


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_metadata(clips, backend):
    info = probe(clips["cfr"], backend=backend)
    assert (info.width, info.height) == (64, 48)
    assert info.avg_fps == pytest.approx(FPS)
    assert info.duration_s == pytest.approx(SECONDS, abs=0.05)
    assert info.frame_count == N_FRAMES
    assert info.codec == "h264" and "mp4" in info.container
    assert info.rotation == 0 and info.pix_fmt == "yuv420p" and not info.is_image


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "sampling, expected",
    [
        (Sampling(every_n_frames=7), list(range(0, N_FRAMES, 7))),
        # targets every 0.5 s = 12.5 frames: the first frame at or after each
        (Sampling(every_seconds=0.5), [math.ceil(k * 0.5 * FPS) for k in range(8)]),
        (Sampling(target_fps=5), list(range(0, N_FRAMES, 5))),
        (Sampling(every_n_frames=2, max_frames=3), [0, 2, 4]),
    ],
    ids=["every_n", "every_s", "target_fps", "max_frames"],
)
def test_exact_sample_times_cfr(clips, backend, sampling, expected):
    frames, stats, _ = decode_all(clips["cfr"], sampling, backend=backend, strategy="exact")
    assert [f.index for f in frames] == expected
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in expected], abs=1e-4)
    assert stats.frames_sampled == len(expected) and stats.strategy == "exact"
    assert_frames_match_content(frames)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vfr_true_pts(clips, backend):
    frames, _, _ = decode_all(clips["vfr"], Sampling(every_seconds=0.25), backend=backend)
    expected = [VFR_PTS[i] for i in select_indices(Sampling(every_seconds=0.25), VFR_PTS)]
    assert [f.pts_s for f in frames] == pytest.approx(expected, abs=1e-3)
    assert_frames_match_content(frames)


def test_vfr_backends_agree(clips):
    runs = [decode_all(clips["vfr"], Sampling(target_fps=3), backend=b)[0] for b in BACKENDS]
    a, b = ([f.pts_s for f in r] for r in runs)
    assert len(a) == len(b)
    assert np.allclose(a, b, atol=0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_side_resize(clips, backend):
    frames, _, info = decode_all(clips["wide"], Sampling(every_n_frames=5), backend=backend, short_side=36)
    assert (info.width, info.height) == (160, 90)  # info stays native
    assert {f.image.shape for f in frames} == {(36, 64, 3)}
    assert_frames_match_content(frames)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_early_close_and_reiterate(clips, backend):
    with open_decoder(clips["cfr"], backend=backend) as dec:
        first = next(dec.frames(Sampling(every_n_frames=10)))  # abandoned generator
        again = list(dec.frames(Sampling(every_n_frames=10)))
        pending = dec.frames(Sampling(every_n_frames=10))
        next(pending)
    assert first.index == 0 and len(again) == 10
    assert list(pending) == []  # closed while suspended: ends quietly, no crash


# --------------------------------------------------------------------------- strategies


def pts_of(path, strategy, sampling):
    frames, stats, _ = decode_all(path, sampling, strategy=strategy)
    return frames, stats


@pytest.mark.parametrize("clip", ["cfr", "intra", "vfr"])
@pytest.mark.parametrize("strategy", ["fast", "keyframes"])
def test_skipping_strategies_return_true_pts(clips, clip, strategy):
    sampling = Sampling(every_seconds=0.3)
    every, _ = pts_of(clips[clip], "exact", Sampling())
    true_pts = {round(f.pts_s, 4): media.read_index(f.image) for f in every}
    frames, stats = pts_of(clips[clip], strategy, sampling)
    # the VFR clip has a single keyframe: keyframes is refused for fast (test below)
    assert stats.strategy == ("fast" if (clip, strategy) == ("vfr", "keyframes") else strategy) and frames
    for f in frames:
        assert round(f.pts_s, 4) in true_pts  # a real frame time, not a target
        assert media.read_index(f.image) == true_pts[round(f.pts_s, 4)]
    assert np.all(np.diff([f.pts_s for f in frames]) > 0)
    assert stats.frames_decoded <= len(every)


@pytest.mark.parametrize("strategy", ["exact", "fast"])
def test_slice_threading_decodes_the_same_frames(clips, strategy):
    """Threading is a speed choice only: frames, times and pixels are identical."""
    sampling = Sampling(every_seconds=0.2)
    frame_threads, _, _ = decode_all(clips["cfr"], sampling, strategy=strategy, threads="frame")
    slice_threads, _, _ = decode_all(clips["cfr"], sampling, strategy=strategy, threads="slice")
    assert [(f.index, f.pts_s) for f in slice_threads] == [(f.index, f.pts_s) for f in frame_threads]
    for a, b in zip(frame_threads, slice_threads):
        np.testing.assert_array_equal(a.image, b.image)
    with pytest.raises(ValueError, match="threading"):
        open_decoder(clips["cfr"], threads="many")


def test_fast_decodes_less_and_keeps_targets_close(clips):
    frames, stats = pts_of(clips["cfr"], "fast", Sampling(every_seconds=0.4))
    assert stats.frames_decoded < N_FRAMES
    for k, f in enumerate(frames):
        assert 0.4 * k - 1e-6 <= f.pts_s < 0.4 * k + 0.2


def test_keyframes_on_all_intra_video_is_exact(clips):
    exact, _ = pts_of(clips["intra"], "exact", Sampling(every_seconds=0.3))
    keys, _ = pts_of(clips["intra"], "keyframes", Sampling(every_seconds=0.3))
    assert [f.pts_s for f in keys] == pytest.approx([f.pts_s for f in exact])
    assert_frames_match_content(keys)


def test_keyframes_on_the_gop_grid_give_the_exact_frames(clips):
    """A fixed GOP sampled at its own spacing: keyframe-only decoding returns
    the very frames exact decoding keeps, decoding only those."""
    sampling = Sampling(every_seconds=1.0)
    exact, _ = pts_of(clips["cfr"], "exact", sampling)
    keys, stats = pts_of(clips["cfr"], "keyframes", sampling)
    assert [(f.index, f.pts_s) for f in keys] == [(f.index, f.pts_s) for f in exact] and len(keys) == 4
    assert stats.frames_decoded == 4
    assert_frames_match_content(keys)


def vfr_pts(n: int) -> list[float]:
    """Runs of 20 frames alternating 24 and 8 fps, in whole milliseconds."""
    times, t = [], 0.0
    for i in range(n):
        times.append(round(t, 3))
        t += 1 / 24 if (i // 20) % 2 == 0 else 1 / 8
    return times


def test_keyframes_on_vfr_with_one_keyframe_is_refused_for_fast(tmp_path, caplog):
    """A VFR phone-style clip with one keyframe in 13 s: keyframe decoding gave
    one sample and a bogus "stream ended at 0.00 s (truncated?)" note."""
    path = media.make_vfr_clip(tmp_path / "vfr.mp4", vfr_pts(160))
    frames, stats, info = decode_all(path, Sampling(every_seconds=1.0), strategy="keyframes")
    exact, _, _ = decode_all(path, Sampling(every_seconds=1.0), strategy="exact")
    assert stats.strategy == "fast"
    assert len(frames) == len(exact) == math.floor(info.duration_s) + 1
    assert [n for n in stats.notes if "keyframes refused" in n] and not [n for n in stats.notes
                                                                        if "truncated" in n]
    assert any("keyframes refused" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert_frames_match_content(frames)


def test_keyframes_on_vfr_with_regular_keyframes_samples_each_keyframe(tmp_path):
    times = vfr_pts(160)
    path = media.make_vfr_clip(tmp_path / "vfr_gop.mp4", times, gop=10)
    frames, stats, _ = decode_all(path, Sampling(every_seconds=1.0), strategy="keyframes")
    assert stats.strategy == "keyframes" and not stats.notes
    # the samples a time rule picks from the keyframes (every 10th frame) alone
    expected = [10 * k for k in select_indices(Sampling(every_seconds=1.0), times[::10])]
    assert [f.index for f in frames] == expected and len(expected) >= 8
    assert_frames_match_content(frames)


@pytest.mark.parametrize("step, spacings, expected", [
    (50, [25, 25, 25], True),  # two GOPs: the long-standing rule
    (50, [25], True),
    (25, [25, 25, 25], True),  # on the grid of a fixed GOP
    (29.97, [30, 30, 30, 30], True),  # 29.97 fps, a keyframe every 30 frames, sampled every 1 s
    (75, [25, 25, 25], True),
    (25, [25, 25], False),  # too few spacings to call the GOP fixed
    (25, [25, 40, 25, 12], False),  # scene-cut keyframes: irregular
    (37, [25, 25, 25], False),
    (24, [25, 25, 25], False),
    (30, [], False),
    (30, [0, 0, 0], False),
])
def test_keyframes_suffice(step, spacings, expected):
    from pipeline.decode.pyav import keyframes_suffice

    assert keyframes_suffice(step, spacings) is expected


@pytest.mark.parametrize("codec, ext", [("libx264", "mp4"), ("libx265", "mkv"), ("libvpx-vp9", "webm"),
                                        ("mpeg2video", "ts"), ("mpeg4", "avi"), ("libsvtav1", "mkv")])
def test_fixed_gop_keyframes_across_codecs_and_containers(tmp_path, codec, ext):
    """A keyframe every second, sampled every second: ``auto`` decodes the
    keyframes alone and gets exactly the frames exact decoding keeps, whatever
    the codec, container or GOP structure (x265's open GOPs included)."""
    try:
        av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError):  # pragma: no cover - depends on the FFmpeg build
        pytest.skip(f"this PyAV's FFmpeg has no {codec} encoder")
    path = media.make_clip(tmp_path / f"clip.{ext}", seconds=4, fps=10, codec=codec, gop=10)
    sampling = Sampling(every_seconds=1.0)
    exact, _ = pts_of(path, "exact", sampling)
    auto, stats = pts_of(path, "auto", sampling)
    assert stats.strategy == "keyframes" and stats.frames_decoded == 4
    assert [(f.index, f.pts_s) for f in auto] == [(f.index, f.pts_s) for f in exact]
    assert_frames_match_content(auto)


@settings(max_examples=200, deadline=None)
@given(lead_in=st.integers(0, 3), gops=st.lists(st.integers(1, 40), max_size=30),
       at=st.lists(st.floats(0, 1, exclude_max=True), max_size=5))
def test_damage_watch_spans_cover_the_packets_in_flight(lead_in, gops, at):
    """Damage heard after packet p (here: p failed) makes the packets then in
    flight, SUSPECT_PACKETS back, suspect. The spans to decode again cover
    every one of them, in whole GOPs that each hold a suspect packet, apart
    and in order, each led by the GOP before it."""
    from types import SimpleNamespace

    from pipeline.decode.damage import SUSPECT_PACKETS, DamageWatch

    keys = [False] * lead_in + [i == 0 for n in gops for i in range(n)] or [False]
    hits = {int(f * len(keys)) for f in at}
    watch, pts = DamageWatch(), [1000 + 7 * i for i in range(len(keys))]
    for i, key in enumerate(keys):
        watch.feeding(SimpleNamespace(is_keyframe=key, pts=pts[i], dts=pts[i]))
        watch.decoded([], [], failed=i in hits)
    suspect = {p for hit in hits for p in range(max(hit + 1 - SUSPECT_PACKETS, 0), hit + 1)}
    keyframes = [i for i, key in enumerate(keys) if key]
    position = {pts[i]: i for i in keyframes}

    def gop(p: int) -> int | None:  # the keyframe at or before packet p (None: before the first)
        return max((k for k in keyframes if k <= p), default=None)

    ranges = []
    for span in watch.spans():
        lo = 0 if span.first is None else position[span.first]
        hi = len(keys) if span.end is None else position[span.end]
        before = [k for k in keyframes if k < lo]
        assert span.lead == (pts[before[-1]] if before and span.first is not None else None)
        assert {gop(p) for p in range(lo, hi)} <= {gop(p) for p in suspect}
        ranges.append((lo, hi))
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(any(lo <= p < hi for lo, hi in ranges) for p in suspect)


def test_keyframe_packets_fall_back_when_no_packet_is_flagged():
    from types import SimpleNamespace

    from pipeline.decode.pyav import GOP_PROBE_PACKETS, _keyframe_packets

    def packets(key_every):
        for i in range(GOP_PROBE_PACKETS + 50):
            yield SimpleNamespace(i=i, size=100, is_keyframe=bool(key_every) and i % key_every == 0)
        yield SimpleNamespace(i=-1, size=0, is_keyframe=False)  # the flush packet

    flagged = [p.i for p in _keyframe_packets(packets(30))]
    assert flagged == list(range(0, GOP_PROBE_PACKETS + 50, 30)) + [-1]
    unflagged = [p.i for p in _keyframe_packets(packets(0))]
    assert unflagged == list(range(GOP_PROBE_PACKETS, GOP_PROBE_PACKETS + 50)) + [-1]


@pytest.mark.parametrize(
    "sampling, expected",
    [
        (Sampling(), "exact"),
        (Sampling(every_n_frames=2), "exact"),
        (Sampling(target_fps=10), "exact"),  # 2.5 frames apart
        (Sampling(every_seconds=0.4), "fast"),  # 10 frames; GOP is 25
        (Sampling(every_seconds=2.0), "keyframes"),  # 50 frames = 2 GOPs
        (Sampling(every_seconds=1.0), "keyframes"),  # 25 frames = the fixed GOP: on the grid
        (Sampling(every_n_frames=25), "exact"),  # a frame rule names frames: only exact knows which
        (Sampling(every_seconds=1.5), "fast"),  # 1.5 GOPs: keyframes would drift off the grid
        (Sampling(every_seconds=0.96), "fast"),  # 24 frames: 4% short of the GOP
    ],
)
def test_auto_strategy(clips, sampling, expected):
    with open_decoder(clips["cfr"]) as dec:
        assert dec.choose_strategy(sampling) == expected
        list(dec.frames(sampling))
        assert dec.stats.strategy == expected


# --------------------------------------------------------------------------- rotation, images


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_gives_upright_frames(clips, backend, rotation):
    path = clips[f"rot{rotation}"]
    frames, _, info = decode_all(path, Sampling(every_n_frames=3), backend=backend, short_side=24)
    assert info.rotation == rotation
    assert (info.width, info.height) == (64, 48)
    assert {f.image.shape for f in frames} == {(24, 32, 3)}
    assert_frames_match_content(frames)


@pytest.mark.parametrize("name", ["png", "jpg_exif"])
def test_images_are_one_frame_videos(clips, name):
    assert is_image(clips[name])
    frames, stats, info = decode_all(clips[name], Sampling(every_seconds=1.0), short_side=24)
    assert info.is_image and (info.width, info.height) == (64, 48)
    assert len(frames) == 1 and frames[0].index == 0 and frames[0].pts_s == 0.0
    assert frames[0].image.shape == (24, 32, 3) and media.is_upright(frames[0].image)
    assert stats.frames_sampled == 1


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["missing", "zero", "text", "audio"])
def test_bad_inputs_raise_one_line_open_error(clips, backend, name):
    with pytest.raises(VideoOpenError) as err, open_decoder(clips[name], backend=backend):
        pass
    message = str(err.value)
    assert message and "\n" not in message and clips[name] in message


def test_text_as_image_raises_open_error(tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a jpeg")
    with pytest.raises(VideoOpenError):
        probe(str(fake))


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_file_keeps_the_good_part(clips, backend):
    sampling = Sampling(every_n_frames=5)
    frames, stats, _ = decode_all(clips["truncated"], sampling, backend=backend, strategy="exact")
    assert 5 <= len(frames) < N_FRAMES // 5
    assert stats.frames_sampled == len(frames)
    assert_frames_match_content(frames)
    if backend == "pyav":
        assert any("truncated" in note for note in stats.notes)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("strategy", ["exact", "fast"])
def test_corrupt_middle_is_skipped(clips, tmp_path, backend, strategy):
    big = media.make_clip(tmp_path / "big.mkv", seconds=SECONDS, fps=FPS, gop=25, size=(160, 120))
    bad = media.make_corrupted(big, tmp_path / "bad.mkv", at=0.33)
    frames, stats, _ = decode_all(bad, Sampling(every_n_frames=5), backend=backend, strategy=strategy)
    assert len(frames) >= 5 and frames[-1].pts_s > 3.0  # kept going after the damage
    for f in frames:  # every kept frame shows the picture of its true time
        assert media.read_index(f.image) == round(f.pts_s * FPS)
    if backend == "pyav":  # decord hides most damage from its caller
        assert stats.corrupt_packets >= 1 and stats.notes
        assert_frames_match_content(frames)  # index resynced past the lost frames


def test_headers_only_file_raises_decode_error(clips, tmp_path):
    cut = media.make_truncated(clips["cfr_mkv"], tmp_path / "head.mkv", 0.02)
    with pytest.raises((DecodeError, VideoOpenError)):
        decode_all(cut, Sampling(every_n_frames=1))


def test_unknown_backend_and_strategy():
    with pytest.raises(ValueError):
        open_decoder("x.mp4", backend="nope")
    with pytest.raises(ValueError):
        open_decoder("x.mp4", strategy="nope")


# --------------------------------------------------------------------------- read_frames_at


def test_read_frames_at_returns_frame_at_or_after(clips):
    times = [0.0, 1.0, 0.5, 2.03, 99.0]
    frames = read_frames_at(clips["cfr"], times, short_side=24)
    assert [f.index for f in frames] == [0, 25, 13, 51, N_FRAMES - 1]
    assert_frames_match_content(frames)
    assert frames[0].image.shape == (24, 32, 3)


def test_read_frames_at_vfr_and_image(clips):
    frames = read_frames_at(clips["vfr"], [0.2, 0.95])
    assert [f.pts_s for f in frames] == pytest.approx([0.3, 1.0], abs=1e-3)
    assert [media.read_index(f.image) for f in frames] == [3, 7]
    assert len(read_frames_at(clips["png"], [0.0, 5.0])) == 2
