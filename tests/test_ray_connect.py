"""Connecting to Ray the way Ray users do: ``--ray-address`` wins, else
``RAY_ADDRESS`` (set inside a RayJob, a Ray Jobs submission, or a shell a Ray
user prepared), else a local Ray sized to this machine; an address that does
not answer is one line, at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.engine.ray import cluster_address

ROOT = Path(__file__).parent.parent


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{id: '{model}', device: cpu, precision: fp32, runtime: torch}}\n"
                    "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    return path


def _run(tmp_path, model, clip, *extra, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip), "-c", str(_config(tmp_path, model)),
         "-o", str(tmp_path / "out"), "--engine", "ray", "--no-store", "-q", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
             "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})})


def test_the_flag_wins_over_the_environment_and_neither_means_local(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert cluster_address("ray://head:10001") == "ray://head:10001"
    assert cluster_address(None) == "10.0.0.1:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster_address(None) is None


@pytest.mark.parametrize("where", ["env", "flag"])
def test_an_address_that_does_not_answer_is_one_line_naming_its_source(tmp_path, tiny_model_dir,
                                                                        clip_dir, where):
    pytest.importorskip("ray.data")
    env_port, flag_port = _closed_port(), _closed_port()
    extra = ("--ray-address", f"127.0.0.1:{flag_port}") if where == "flag" else ()
    started = time.monotonic()
    proc = _run(tmp_path, tiny_model_dir, clip_dir / "ten.mp4", *extra,
                env={"RAY_ADDRESS": f"127.0.0.1:{env_port}"}, timeout=120)
    assert time.monotonic() - started < 60  # ray.init alone retries for minutes
    port, source = (flag_port, "--ray-address") if where == "flag" else (env_port, "RAY_ADDRESS")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"scenetag: error: cannot reach Ray at 127.0.0.1:{port} ({source}): Connection refused"]


def test_a_run_joins_the_cluster_ray_address_names(tmp_path, tiny_model_dir, clip_dir):
    """RAY_ADDRESS set and no flag: the run joins that cluster (it used to
    stop with "num_cpus and num_gpus must not be provided")."""
    pytest.importorskip("ray.data")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        proc = _run(tmp_path, tiny_model_dir, clip_dir / "ten.mp4", env={"RAY_ADDRESS": cluster.address})
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "out" / "ten" / "segments.csv").exists()
    finally:
        cluster.shutdown()


def test_ray_actors_run_what_the_driver_measured():
    """Under ``runtime: auto`` each actor would load and measure on its own
    (a partial decision measures again): the actors get the driver's pick."""
    from types import SimpleNamespace

    from pipeline.config import parse_config
    from pipeline.run.job import RunOptions, _make_engine

    config = parse_config({"labels": ["a"]})
    embedder = SimpleNamespace(input_size=224, still_resize=None, batch_size=8, precision="int8",
                               runtime=SimpleNamespace(name="onnxruntime"), auto_choice={"chosen": "x"})
    engine = _make_engine(config, RunOptions(engine="ray"), embedder)
    assert (engine.config.model.runtime, engine.config.model.precision) == ("onnxruntime", "int8")
    embedder.auto_choice = None  # chosen by the config, not measured: the config stands
    engine = _make_engine(config, RunOptions(engine="ray"), embedder)
    assert (engine.config.model.runtime, engine.config.model.precision) == ("auto", "auto")
