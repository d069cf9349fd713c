"""A lost node, on record: a simulated three-node Ray cluster (head + two
workers, one CPU each, :class:`ray.cluster_utils.Cluster`); a worker is
removed while the job decodes and embeds. The job completes, every input's
segments equal the local engine's, each frame is in the store once, and the
run index lists every input. Slow (three raylets on a small machine), run in CI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray.data")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
INPUTS = 12


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> list[Path]:
    from media import make_clip

    folder = tmp_path_factory.mktemp("library")
    patterns = ["bits", "solid"]
    return [Path(make_clip(folder / f"clip{i:02d}.mp4", seconds=3 + i % 3, fps=10, size=(64, 48),
                           pattern=patterns[i % len(patterns)])) for i in range(INPUTS)]


def _config(tmp_path: Path, model: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{id: '{model}', device: cpu, precision: fp32, runtime: torch, batch_size: 4}}\n"
                    "sampling: {every_seconds: 0.5}\ndecoder: {strategy: exact}\n"
                    "labels: [cat, dog, car]\nsegments: {threshold: 0.3, min_duration_s: 0.0}\n"
                    "output: {formats: [csv, json]}\n")
    return path


def _run(config: Path, inputs: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", *map(str, inputs), "-c", str(config),
         "-o", str(out), "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
             "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})


def _same_segments(a: Path, b: Path, name: str) -> None:
    """Equal segments: labels, edges and frames exactly; scores to 1e-4 (a batch
    of other frames sums in another order, as tests/test_ray.py allows)."""
    sa, sb = (pd.read_csv(folder / name / "segments.csv") for folder in (a, b))
    assert len(sa) == len(sb), name
    pd.testing.assert_frame_equal(sa, sb, check_exact=False, atol=1e-4, rtol=0)
    assert (sa["start_frame"].tolist(), sa["end_frame"].tolist()) == (sb["start_frame"].tolist(),
                                                                      sb["end_frame"].tolist())


def test_a_worker_lost_mid_job_costs_nothing(tmp_path, tiny_model_dir, library):
    from ray.cluster_utils import Cluster

    config = _config(tmp_path, tiny_model_dir)
    local = _run(config, library, tmp_path / "local", "--engine", "local")
    assert local.wait(timeout=600) == 0, local.stderr.read()

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        out = tmp_path / "ray"
        job = _run(config, library, out, "--engine", "ray", "--ray-address", cluster.address)
        removed = threading.Event()

        def remove_a_worker_once_work_is_under_way() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and job.poll() is None:
                if any(out.glob("*/summary.json")):  # the first input is done: the rest are in flight
                    cluster.remove_node(workers[0])
                    removed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=remove_a_worker_once_work_is_under_way)
        killer.start()
        rc = job.wait(timeout=900)
        killer.join()
        stderr = job.stderr.read()
        assert removed.is_set(), "the job ended before a worker could be removed"
        assert rc == 0, stderr
    finally:
        cluster.shutdown()

    names = [p.stem for p in library]
    with (out / "index.csv").open(newline="") as fh:
        index = list(csv.DictReader(fh))
    assert sorted(r["name"] for r in index) == sorted(names)
    assert all(r["status"] == "ok" for r in index), index
    for name in names:
        _same_segments(out, tmp_path / "local", name)

    from pipeline.store.db import EmbeddingStore

    store = EmbeddingStore.open(out / "store")
    videos = store.videos()
    assert len(videos) == INPUTS
    rows = store.frames(vectors=False)
    pairs = list(zip(rows.input_path, rows.frame_index))
    assert len(pairs) == len(set(pairs)) == sum(v.frames for v in videos) == store.count()
