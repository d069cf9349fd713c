"""The Ray engine with an exported runtime: each actor loads the runtime and precision
the config names, from the export cache the driver filled (no export in an actor), and
scores as the local engine does; summary.json names the runtime and precision.

OpenVINO int8 (static activation ranges) makes a frame's vector independent of the
frames batched with it. ONNX Runtime's dynamic int8 does not: it quantises each
batch's activations with that batch's range, and Ray batches differently from the
local engine (scores moved by up to 0.005 on the tiny model), so it is not the one
compared here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

from pipeline.config import parse_config  # noqa: E402
from pipeline.embed import load_embedder  # noqa: E402
from pipeline.run.job import RunOptions, run_job  # noqa: E402


@pytest.fixture(scope="module")
def xdg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xdg-ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def local_ray(xdg):
    # the workers' cache is the driver's (a worker on another machine would fill its own)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             ignore_reinit_error=True, runtime_env={"env_vars": {"XDG_CACHE_HOME": str(xdg)}})
    yield
    ray.shutdown()


def test_ray_actors_run_the_configured_exported_runtime(tmp_path, local_ray, xdg, tiny_model_dir, clip_dir):
    config = parse_config({
        "model": {"id": str(tiny_model_dir), "device": "cpu", "precision": "int8", "runtime": "openvino",
                  "batch_size": 4},
        "sampling": {"every_seconds": 0.5}, "decoder": {"strategy": "exact"},
        "labels": [{"name": "cat"}, {"name": "dog"}, {"name": "car"}],
        "output": {"formats": ["csv", "json"]}})
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="openvino",
                             batch_size=4)  # exports into the shared cache
    entries = sorted(p.name for p in (xdg / "scenetag" / "exports").iterdir())
    inputs = [str(clip_dir / "ten.mp4")]
    frames = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        report = run_job(inputs, config, out, RunOptions(engine=engine, progress=False, use_store=False),
                         embedder=embedder)
        assert report.exit_code == 0
        frames[engine] = pd.read_csv(out / "ten" / "frames.csv")
        model = json.loads((out / "ten" / "summary.json").read_text())["model"]
        assert (model["runtime"], model["precision"]) == ("openvino", "int8")
    # the actors exported nothing
    assert sorted(p.name for p in (xdg / "scenetag" / "exports").iterdir()) == entries
    scores = [c for c in frames["local"].columns if c.startswith("score:")]
    np.testing.assert_allclose(frames["ray"][scores], frames["local"][scores], atol=1e-6, rtol=0)
    # and torch would not have given these scores: the actors ran the int8 graph
    torch_run = run_job(inputs, config.model_copy(update={"model": config.model.model_copy(
        update={"runtime": "torch", "precision": "fp32"})}), tmp_path / "torch",
        RunOptions(progress=False, use_store=False))
    torch_frames = pd.read_csv(tmp_path / "torch" / "ten" / "frames.csv")
    assert torch_run.exit_code == 0
    sampled = [f[f["refine"] == 0] for f in (torch_frames, frames["ray"])]  # edges may be refined apart
    assert np.abs(sampled[0][scores].to_numpy() - sampled[1][scores].to_numpy()).max() > 1e-5
