"""The CUDA path (fp16 weights, pinned memory, non-blocking copies,
preprocessing on the GPU) against the CPU fp32 reference.

Skipped on machines without a CUDA GPU, which includes CI; they run on a GPU
machine through ``benchmarks/gpu_session.sh``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def test_cuda_fp16_embeddings_match_cpu_fp32(tiny_model_dir, tiny_embedder):
    from pipeline.embed import load_embedder

    gpu = load_embedder(str(tiny_model_dir), device="cuda", batch_size=16)
    assert (gpu.device, gpu.precision) == ("cuda", "fp16")
    rng = np.random.default_rng(0)
    size = gpu.input_size
    frames = rng.integers(0, 256, (40, size, size * 16 // 9, 3), dtype=np.uint8)  # 3 batches
    cpu_vectors, gpu_vectors = tiny_embedder.embed_images(frames), gpu.embed_images(frames)
    assert gpu_vectors.dtype == np.float32 and gpu_vectors.shape == cpu_vectors.shape
    np.testing.assert_allclose(np.linalg.norm(gpu_vectors, axis=1), 1.0, atol=1e-5)
    assert _min_cosine(cpu_vectors, gpu_vectors) >= 0.999
    texts = ["a photo of a cat.", "a city street at night", "x"]
    assert _min_cosine(tiny_embedder.embed_texts(texts), gpu.embed_texts(texts)) >= 0.999


def test_cuda_run_scores_like_the_cpu_run(tmp_path, tiny_model_dir, tiny_embedder):
    from media import make_clip

    from pipeline.config import parse_config
    from pipeline.embed import load_embedder
    from pipeline.run.job import RunOptions, run_job

    clip = make_clip(tmp_path / "clip.mp4", seconds=3, fps=10, size=(96, 64))
    config = parse_config({"model": {"id": str(tiny_model_dir)}, "sampling": {"every_seconds": 0.5},
                           "labels": [{"name": "red"}, {"name": "blue"}, {"name": "a cat"}]})
    gpu = load_embedder(str(tiny_model_dir), device="cuda")
    for name, embedder in (("cpu", tiny_embedder), ("gpu", gpu)):
        report = run_job([clip], config, tmp_path / name, RunOptions(progress=False, use_store=False),
                         embedder=embedder)
        assert report.exit_code == 0
    cpu_frames = pd.read_csv(tmp_path / "cpu" / "clip" / "frames.csv")
    gpu_frames = pd.read_csv(tmp_path / "gpu" / "clip" / "frames.csv")
    assert list(cpu_frames["time_s"]) == list(gpu_frames["time_s"])
    scores = [c for c in cpu_frames.columns if c.startswith("score:")]
    np.testing.assert_allclose(gpu_frames[scores], cpu_frames[scores], atol=0.02)
    summary = json.loads((tmp_path / "gpu" / "clip" / "summary.json").read_text())
    assert summary["model"]["precision"] == "fp16"
