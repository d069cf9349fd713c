"""The Ray engine against the local engine on the same generated clips: same
frames.csv values, same segments, bad inputs fail alone, resume skips work."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from demo_assets import CONFIG, MODEL, ROOT, needs_demo  # noqa: E402

from pipeline.config import parse_config  # noqa: E402
from pipeline.run.job import RunOptions, run_job  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    return parse_config({
        "model": {"id": str(tiny_model_dir), "device": "cpu", "precision": "fp32", "batch_size": 4},
        "sampling": {"every_seconds": 0.5},
        "decoder": {"strategy": "exact"},
        "labels": [{"name": "cat"}, {"name": "dog"}, {"name": "car"}],
        "smoothing": {"method": "median", "window_s": 1.0},
        "segments": {"threshold": 0.3, "min_duration_s": 0.0},
        "output": {"formats": ["csv", "json"]},
    })


def _options(engine: str, **kw) -> RunOptions:
    return RunOptions(engine=engine, progress=False, use_store=False, **kw)


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory, local_ray, config, clip_dir, tiny_embedder):
    inputs = [str(clip_dir / "ten.mp4"), str(clip_dir / "twentyfive.mp4")]
    out = tmp_path_factory.mktemp("engines")
    local = run_job(inputs, config, out / "local", _options("local"), embedder=tiny_embedder)
    remote = run_job(inputs, config, out / "ray", _options("ray"), embedder=tiny_embedder)
    return local, remote, out


def test_ray_matches_local_frames_and_segments(both_runs):
    local, remote, out = both_runs
    assert local.exit_code == remote.exit_code == 0
    for name in ("ten", "twentyfive"):
        a = pd.read_csv(out / "local" / name / "frames.csv")
        b = pd.read_csv(out / "ray" / name / "frames.csv")
        assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
        assert (a["frame_index"] == b["frame_index"]).all()
        pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-4, rtol=0)
        sa = pd.read_csv(out / "local" / name / "segments.csv")
        sb = pd.read_csv(out / "ray" / name / "segments.csv")
        pd.testing.assert_frame_equal(sa, sb, check_exact=False, atol=1e-4, rtol=0)
    # edge refinement ran on Ray too, with the same gap scans, cut evidence and frames
    blocks = {engine: [json.loads((out / engine / n / "summary.json").read_text())["refine"]
                       for n in ("ten", "twentyfive")] for engine in ("local", "ray")}
    assert blocks["ray"] == blocks["local"]
    assert sum(b["edges_pinned"] for b in blocks["ray"] if b) > 0


def test_ray_summary_carries_video_metadata(both_runs):
    _, _, out = both_runs
    a = json.loads((out / "local" / "twentyfive" / "summary.json").read_text())
    b = json.loads((out / "ray" / "twentyfive" / "summary.json").read_text())
    assert b["status"] == "ok" and b["frames_scored"] == a["frames_scored"] == 6
    assert b["video"] == a["video"] and b["config_hash"] == a["config_hash"]
    assert b["decode"]["frames_decoded"] == a["decode"]["frames_decoded"]


@pytest.mark.expect_errors
def test_bad_input_fails_alone(tmp_path, local_ray, config, clip_dir, tiny_embedder):
    (tmp_path / "notes.mp4").write_text("this is not a video", encoding="utf-8")
    inputs = [str(clip_dir / "ten.mp4"), str(tmp_path / "notes.mp4"), str(tmp_path / "missing.mp4")]
    report = run_job(inputs, config, tmp_path / "out", _options("ray"), embedder=tiny_embedder)
    assert report.exit_code == 1
    status = {r.name: (r.status, r.error) for r in report.results}
    assert status["ten"] == ("ok", None)
    for name in ("notes", "missing"):
        state, error = status[name]
        assert state == "error" and error and "\n" not in error
    local = run_job(inputs, config, tmp_path / "local", _options("local"), embedder=tiny_embedder)
    assert {r.name: r.error for r in local.results} == {n: e for n, (_, e) in status.items()}


def test_frames_split_into_chunks_regroup_in_order(local_ray, config, clip_dir, tiny_embedder):
    from pipeline.engine.ray import RayEngine

    paths = [str(clip_dir / "twentyfive.mp4"), str(clip_dir / "ten.mp4")]
    engine = RayEngine(config, short_side=tiny_embedder.input_size, chunk_size=3, rows_per_call=2,
                       progress=False)
    results = list(engine.run(paths))
    assert [r.path for r in results] == paths
    for result, frames in zip(results, (6, 8), strict=True):
        assert result.error is None and len(result.indices) == frames
        assert (np.diff(result.times_s) > 0).all()
        assert result.embeddings.shape == (frames, tiny_embedder.dim)
        assert np.linalg.norm(result.embeddings, axis=1) == pytest.approx(1.0, abs=1e-5)


def test_resume_skips_finished_inputs(tmp_path, both_runs, config, clip_dir, tiny_embedder):
    out = tmp_path / "out"
    shutil.copytree(both_runs[2] / "ray" / "ten", out / "ten")  # finished by the ray engine
    stamp = (out / "ten" / "summary.json").stat().st_mtime_ns
    inputs = [str(clip_dir / "ten.mp4"), str(clip_dir / "twentyfive.mp4")]
    again = run_job(inputs, config, out, _options("ray", resume=True), embedder=tiny_embedder)
    assert again.exit_code == 0 and again.skipped == 1
    assert (out / "ten" / "summary.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "twentyfive" / "summary.json").read_text())["status"] == "ok"
    assert sorted(pd.read_csv(out / "index.csv")["name"]) == ["ten", "twentyfive"]


def test_inputs_are_written_while_the_ray_job_streams_on(tmp_path, local_ray, config, clip_dir,
                                                         tiny_embedder, monkeypatch):
    # refined and written a group at a time on a CPU cluster: a killed driver loses at most a group
    from pipeline.engine import ray as ray_engine
    from pipeline.run import job

    monkeypatch.setattr(ray_engine, "RAY_REFINE_GROUP", 1)
    shutil.copy(clip_dir / "ten.mp4", tmp_path / "again.mp4")
    inputs = [str(clip_dir / "ten.mp4"), str(clip_dir / "twentyfive.mp4"), str(tmp_path / "again.mp4")]
    order: list[tuple[str, str]] = []
    streamed, handled = ray_engine.RayEngine.run, job.handle_input

    def run(self, paths, embed_images=None):
        for embedded in streamed(self, paths, embed_images):
            order.append(("streamed", embedded.path))
            yield embedded

    def handle_input(embedded, **kw):
        order.append(("written", embedded.path))
        handled(embedded, **kw)

    monkeypatch.setattr(ray_engine.RayEngine, "run", run)
    monkeypatch.setattr(job, "handle_input", handle_input)
    report = run_job(inputs, config, tmp_path / "out", _options("ray"), embedder=tiny_embedder)
    assert report.exit_code == 0
    assert order.index(("written", inputs[0])) < order.index(("streamed", inputs[2]))
    assert json.loads((tmp_path / "out" / "again" / "summary.json").read_text())["refine"]


def test_a_ray_run_shows_inputs_done_with_an_eta(tmp_path, local_ray, config, clip_dir, tiny_embedder,
                                                monkeypatch):
    import io

    from pipeline.progress import RunProgress
    from pipeline.run import job

    buf = io.StringIO()

    class Shown(RunProgress):
        def __init__(self, paths, sampling, **kwargs):
            super().__init__(paths, sampling, enabled=True, file=buf, disable=False,
                             by_input=kwargs["by_input"])

    monkeypatch.setattr(job, "RunProgress", Shown)
    inputs = [str(clip_dir / "ten.mp4"), str(clip_dir / "twentyfive.mp4")]
    report = run_job(inputs, config, tmp_path / "out", RunOptions(engine="ray", use_store=False),
                     embedder=tiny_embedder)
    assert report.exit_code == 0
    assert "2/2 [" in buf.getvalue() and "input" in buf.getvalue()


def test_missing_ray_is_one_line_install_hint(monkeypatch):
    import builtins

    from pipeline.engine import ray as ray_engine
    from pipeline.types import PipelineError

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(PipelineError, match=r'pip install "scenetag\[ray\]"'):
        ray_engine._import_ray()


@needs_demo
def test_ray_pins_the_demo_edges_at_their_cuts_as_local_does(local_ray, tmp_path):
    """Issue 16 on Ray: the same gap scans, cut evidence, frames and edges."""
    from pipeline.config import load_config
    from pipeline.embed import load_embedder

    embedder = load_embedder(str(MODEL), device="cpu", precision="fp32")
    cfg = load_config(CONFIG, {"sampling.every_seconds": 2.0, "model.id": str(MODEL),
                               "output.formats": ["csv"]})
    clip = [str(ROOT / "sample_videos" / "demo_street.mp4")]
    for engine in ("local", "ray"):
        assert run_job(clip, cfg, tmp_path / engine, _options(engine), embedder=embedder).exit_code == 0
    a, b = (json.loads((tmp_path / e / "demo_street" / "summary.json").read_text())["refine"]
            for e in ("local", "ray"))
    assert a == b and a["edges_by_cut"] > 0 and a["edges_unpinned"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "demo_street" / "segments.csv"),
                                  pd.read_csv(tmp_path / "ray" / "demo_street" / "segments.csv"),
                                  check_exact=False, atol=1e-4, rtol=0)  # the same frames and edges
