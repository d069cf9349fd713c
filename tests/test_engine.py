"""The local engine's streaming and batching, and the embedder's fast preprocessing path.

Fake decoders stand in for video files so the tests can control exactly when
frames appear; a fake ``embed_images`` records every model call.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pipeline.engine.local import LocalEngine, default_chunk_size
from pipeline.progress import RunProgress, expected_frames
from pipeline.types import DecodeStats, Frame, Sampling, VideoInfo


class FakeDecoder:
    """Yields ``count`` frames whose pixels all equal their index (mod 256).

    ``after_first`` (optional) is called once the first ``pause_after``
    frames have been yielded, before the next one: a hook to block decoding.
    """

    def __init__(self, path: str, count: int, size=(6, 10), pause_after: int | None = None,
                 after_first=None):
        self.path, self.count, self.size = path, count, size
        self.pause_after, self.after_first = pause_after, after_first
        self.stats = DecodeStats()

    def __enter__(self):
        h, w = self.size
        self.info = VideoInfo(path=self.path, container="fake", codec="fake", width=w, height=h,
                              duration_s=self.count, avg_fps=1.0, frame_count=self.count)
        return self

    def __exit__(self, *exc):
        return None

    def frames(self, sampling: Sampling):
        for i in range(self.count):
            if self.pause_after is not None and i == self.pause_after and self.after_first:
                self.after_first()
            self.stats.frames_decoded += 1
            yield Frame(index=i, pts_s=float(i), image=np.full((*self.size, 3), i % 256, np.uint8))


class RecordingModel:
    """``embed_images`` stand-in: vector = [mean pixel, 1], calls recorded."""

    def __init__(self):
        self.calls: list[int] = []
        self.called = threading.Event()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        self.called.set()
        means = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([means, np.ones_like(means)], axis=1).astype(np.float32)


@pytest.mark.parametrize("batch", [1, 2, 8, 32, 64, 256, 1024])
def test_default_chunk_is_at_most_a_batch(batch):
    chunk = default_chunk_size(batch)
    assert 1 <= chunk <= batch
    assert chunk <= max(16, batch // 16)


def test_queue_holds_about_two_batches():
    engine = LocalEngine(lambda p: None, Sampling(), batch_size=256)
    assert engine.queue_size * engine.chunk_size >= 2 * 256
    small = LocalEngine(lambda p: None, Sampling(), batch_size=32)
    assert small.queue_size == 8 and small.chunk_size == 8


@pytest.mark.parametrize("batch,chunk", [(4, None), (8, 3), (5, 5), (64, None)])
def test_every_frame_is_embedded_once_in_order(batch, chunk):
    counts = {"a.mp4": 13, "b.mp4": 1, "c.mp4": 9}
    model = RecordingModel()
    engine = LocalEngine(lambda p: FakeDecoder(p, counts[p]), Sampling(), batch_size=batch,
                         chunk_size=chunk)
    results = list(engine.run(list(counts), model))
    assert [r.path for r in results] == list(counts)
    for result in results:
        n = counts[result.path]
        assert result.error is None
        np.testing.assert_array_equal(result.indices, np.arange(n))
        np.testing.assert_allclose(result.embeddings[:, 0], np.arange(n) % 256)
    assert sum(model.calls) == sum(counts.values())
    # Whole chunks are handed over; the embedder splits them into batches.
    assert max(model.calls) < batch + engine.chunk_size


def test_model_starts_before_a_full_batch_is_decoded():
    """Decode blocks after its first chunk until the model has been called:
    an engine that waited for a full batch (or the input's end) would stall."""
    model = RecordingModel()
    released = []

    def wait_for_model():
        released.append(model.called.wait(timeout=10))

    def opener(path):
        return FakeDecoder(path, 40, pause_after=4, after_first=wait_for_model)

    engine = LocalEngine(opener, Sampling(), batch_size=32, chunk_size=4)
    (result,) = engine.run(["clip.mp4"], model)
    assert released == [True]
    assert model.calls[0] == 4
    assert len(result.indices) == 40


def test_batches_grow_when_the_model_is_the_slower_stage():
    """While a model call runs, decoded chunks queue up; the next call takes
    them all at once (up to the batch size)."""
    gate = threading.Event()
    model = RecordingModel()

    def slow_model(images):
        if not model.calls:
            gate.wait(timeout=10)  # first call: let decode run ahead
        return model(images)

    def opener(path):
        return FakeDecoder(path, 40, pause_after=20, after_first=gate.set)

    engine = LocalEngine(opener, Sampling(), batch_size=16, chunk_size=4)
    list(engine.run(["clip.mp4"], slow_model))
    assert sum(model.calls) == 40
    assert max(model.calls[1:]) == 16


# --------------------------------------------------------------------------- progress


def _video(duration=None, fps=None, frames=None, image=False) -> VideoInfo:
    return VideoInfo(path="v", container="fake", codec="fake", width=8, height=8, duration_s=duration,
                     avg_fps=fps, frame_count=frames, is_image=image)


@pytest.mark.parametrize("info,sampling,expected", [
    (_video(4.0, 10.0, 40), Sampling(every_seconds=0.5), 8),
    (_video(10.02, 24.0, 240), Sampling(every_seconds=1.0), 10),  # last frame at 9.96 s
    (_video(10.02, None, None), Sampling(every_seconds=1.0), 11),  # no rate: from the duration
    (_video(1.0, 10.0, 10), Sampling(every_n_frames=3), 4),
    (_video(1.0, 10.0, None), Sampling(every_n_frames=3), 4),  # frames from duration x fps
    (_video(3.0, 30.0, 90), Sampling(target_fps=2.0), 6),
    (_video(100.0, 25.0, 2500), Sampling(every_seconds=0.5, max_frames=10), 10),
    (_video(None, None, None), Sampling(every_seconds=0.5), None),  # unknown: no total
    (_video(None, None, None), Sampling(every_seconds=0.5, max_frames=7), 7),
    (_video(None, 25.0, None), Sampling(every_n_frames=2), None),
    (_video(float("inf"), 25.0, None), Sampling(every_seconds=1.0), None),
    (_video(image=True), Sampling(every_seconds=1.0), 1),
    (None, Sampling(), None),
])
def test_expected_frames(info, sampling, expected):
    assert expected_frames(info, sampling) == expected


@pytest.mark.parametrize("every_s", [0.05, 0.1, 0.25, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("fps,frames", [(12.0, 47), (29.97, 300), (10.0, 40)])
def test_expected_frames_matches_what_the_sampler_keeps(every_s, fps, frames):
    from pipeline.decode import select_indices

    pts = np.arange(frames) / fps
    sampling = Sampling(every_seconds=every_s)
    info = _video(frames / fps, fps, frames)
    assert expected_frames(info, sampling) == len(select_indices(sampling, pts))


def test_progress_bars_get_totals_from_each_input():
    import io

    buf = io.StringIO()
    with RunProgress(["a.mp4", "b.mp4", "c.mp4"], Sampling(every_seconds=1.0), file=buf,
                     disable=False) as progress:
        progress.started("a.mp4", _video(10.0, 10.0, 100))
        assert progress.input_bar.total == 10
        assert progress.run_bar.total == 30  # a's 10, and as many for each unopened input
        progress.embedded("a.mp4", 4)
        assert (progress.input_bar.n, progress.run_bar.n) == (4, 4)
        progress.started("b.mp4", _video(20.0, 10.0, 200))  # decode runs ahead
        assert progress.input_bar.total == 10 and progress.run_bar.total == 45
        progress.finished("a.mp4", 10)
        assert progress.input_bar.total == 20 and progress.input_bar.desc.startswith("b.mp4")
        progress.started("c.mp4", _video(None, None, None))
        assert progress.run_bar.total == 45  # a's real 10, b's 20, their mean for unknown c
        progress.finished("b.mp4", 20)
        assert progress.input_bar.total is None  # c: frames counted, no total
        progress.finished("c.mp4", 5)
        assert progress.run_bar.total == progress.run_bar.n == 35
    text = buf.getvalue()
    assert "0/10 [" in text and "/45 [" in text and "<" in text  # done/expected and the ETA


def test_progress_by_input_counts_inputs_with_an_eta():
    import io

    buf = io.StringIO()
    with RunProgress(["a.mp4", "b.mp4", "c.mp4"], Sampling(every_seconds=1.0), file=buf, disable=False,
                     resumed=1, by_input=True) as progress:
        assert progress.input_bar is None and (progress.run_bar.n, progress.run_bar.total) == (1, 4)
        progress.started("a.mp4", _video(10.0, 10.0, 100))  # frames are not the unit here
        progress.embedded("a.mp4", 4)
        assert progress.run_bar.n == 1
        progress.finished("a.mp4", 10)
        progress.finished("a.mp4", 10)  # told twice, counted once
        assert progress.run_bar.n == 2
        progress.finished("b.mp4", 3)
    text = buf.getvalue()
    assert "3/4 [" in text and "input" in text and "<" in text  # done/all and the ETA


class ProgressRecorder:
    def __init__(self):
        self.opened: list[tuple[str, int]] = []
        self.frames: dict[str, int] = {}

    def started(self, path, info):
        self.opened.append((path, info.frame_count))

    def embedded(self, path, frames):
        self.frames[path] = self.frames.get(path, 0) + frames


def test_local_engine_tells_progress_about_each_input():
    counts = {"a.mp4": 13, "b.mp4": 1, "c.mp4": 9}
    recorder = ProgressRecorder()
    engine = LocalEngine(lambda p: FakeDecoder(p, counts[p]), Sampling(), batch_size=4,
                         progress=recorder)
    list(engine.run(list(counts), RecordingModel()))
    assert recorder.opened == list(counts.items())
    assert recorder.frames == counts


def test_run_draws_frame_totals(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    """A real run, bars forced on: the bars show done/expected for the clip."""
    import io

    from media import make_clip

    from pipeline.config import parse_config
    from pipeline.run import job as run_mod

    buf = io.StringIO()

    class Shown(RunProgress):
        def __init__(self, paths, sampling, **kwargs):
            super().__init__(paths, sampling, enabled=True, file=buf, disable=False)

    monkeypatch.setattr(run_mod, "RunProgress", Shown)
    clip = make_clip(tmp_path / "c.mp4", seconds=4, fps=10)
    config = parse_config({"model": {"id": str(tiny_model_dir), "device": "cpu"},
                           "sampling": {"every_seconds": 0.5}, "labels": [{"name": "cat"}],
                           "output": {"formats": ["json"]}})
    report = run_mod.run_job([clip], config, tmp_path / "out",
                             run_mod.RunOptions(use_store=False), embedder=tiny_embedder)
    assert report.exit_code == 0
    text = buf.getvalue()
    assert "0/8 [" in text and "c.mp4" in text  # both bars: 4 s every 0.5 s is 8 frames
    # before the first frame, what the seconds go on: on a terminal within a moment of the start
    assert "scenetag: loading the model and prompts" in text.split("0/8 [")[0]


# --------------------------------------------------------------------------- embed preprocessing


def _reference_preprocess(embedder, frames: np.ndarray):
    """The straightforward float path the fast path must match."""
    import torch

    from pipeline.embed import _center_crop, _resize

    spec = embedder.preprocess_spec
    x = _resize(torch, torch.from_numpy(frames).permute(0, 3, 1, 2), spec).float()
    if spec.crop_hw is not None:
        x = _center_crop(x, spec.crop_hw)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x * spec.rescale - mean) / std


@pytest.mark.parametrize("shape", [(3, 32, 57, 3), (2, 57, 32, 3), (2, 32, 32, 3), (2, 48, 80, 3),
                                   (1, 20, 30, 3)])
def test_uint8_crop_path_matches_the_float_path(tiny_embedder, shape):
    import torch

    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ours = tiny_embedder.preprocess(torch.from_numpy(frames))
    ref = _reference_preprocess(tiny_embedder, frames)
    assert tuple(ours.shape) == tuple(ref.shape)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_preprocess_leaves_the_input_untouched(tiny_embedder):
    import torch

    frames = np.random.default_rng(1).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    tensor = torch.from_numpy(frames.copy())
    tiny_embedder.preprocess(tensor)
    np.testing.assert_array_equal(tensor.numpy(), frames)


def test_cpu_bf16_runs_the_whole_model_in_bf16(tiny_model_dir):
    import torch

    from pipeline.embed import load_embedder

    images = np.random.default_rng(2).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    bf16 = load_embedder(str(tiny_model_dir), device="cpu", precision="bf16")
    fp32 = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert bf16.preprocess(torch.from_numpy(images)).dtype == torch.bfloat16
    vectors = bf16.embed_images(images)
    assert vectors.dtype == np.float32
    assert np.min(np.sum(vectors * fp32.embed_images(images), axis=1)) > 0.99


def test_decoder_threads_setting_reaches_the_decoder(tmp_path, tiny_model_dir, tiny_embedder,
                                                     monkeypatch):
    """Frame threads by default (they flag damaged frames); ``slice`` on request."""
    from media import make_clip

    from pipeline.config import parse_config
    from pipeline.run import job as run_mod

    seen = []
    real = run_mod.open_decoder

    def spy(path, *args, **kwargs):
        seen.append(kwargs.get("threads"))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(run_mod, "open_decoder", spy)
    clip = make_clip(tmp_path / "c.mp4", seconds=1, fps=10)
    for threads in (None, "slice"):
        config = parse_config({"model": {"id": str(tiny_model_dir), "device": "cpu"},
                               "labels": [{"name": "cat"}],
                               **({"decoder": {"threads": threads}} if threads else {})})
        report = run_mod.run_job([clip], config, tmp_path / f"out-{threads}",
                                 run_mod.RunOptions(progress=False, use_store=False),
                                 embedder=tiny_embedder)
        assert report.exit_code == 0
    assert seen == ["frame", "slice"]
