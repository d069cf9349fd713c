"""The CLI end to end on generated clips with the tiny model: files, columns,
times, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
ROOT = Path(__file__).parent.parent


def write_config(tmp_path: Path, model_dir: Path, extra: str = "") -> Path:
    return tiny_config(tmp_path, model_dir,
                       "sampling: {every_seconds: 0.5}\n"
                       "decoder: {strategy: exact}\n"
                       "labels: [{name: cat}, {name: dog}, {name: car}]\n"
                       "smoothing: {method: median, window_s: 1.0}\n" + extra)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, tiny_model_dir, clip_dir):
    out = tmp_path_factory.mktemp("out")
    cfg = write_config(out, tiny_model_dir)
    result = invoke("run", str(clip_dir / "ten.mp4"), str(clip_dir / "twentyfive.mp4"),
                    "-c", str(cfg), "-o", str(out / "reports"), "-q")
    return result, out / "reports"


def test_every_output_file_exists(good_run):
    result, reports = good_run
    assert result.exit_code == 0, result.output
    for name in ("ten", "twentyfive"):
        for file in ("frames.csv", "segments.csv", "timeline.png", "summary.json"):
            assert (reports / name / file).is_file(), f"{name}/{file}"
    assert (reports / "index.csv").is_file()


def test_frames_csv_columns_and_times(good_run):
    _, reports = good_run
    frames = pd.read_csv(reports / "ten" / "frames.csv")
    assert list(frames.columns[:2]) == ["frame_index", "time_s"] and frames.columns[-1] == "refine"
    assert frames["time_s"].is_monotonic_increasing  # refinement frames in their place
    frames = frames[frames["refine"] == 0]  # the sampled frames
    for label in ("cat", "dog", "car"):
        assert f"score:{label}" in frames.columns and f"smoothed:{label}" in frames.columns
    assert frames["time_s"].is_monotonic_increasing
    assert frames["time_s"].between(0, 4.0).all()
    assert list(frames["time_s"]) == pytest.approx([0.5 * i for i in range(8)], abs=1e-3)
    assert list(frames["frame_index"]) == [5 * i for i in range(8)]
    softmax_sum = frames[[f"score:{x}" for x in ("cat", "dog", "car")]].sum(axis=1)
    assert softmax_sum.to_numpy() == pytest.approx(1.0, abs=1e-4)


def test_summary_and_index(good_run):
    _, reports = good_run
    summary = json.loads((reports / "twentyfive" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["frames_scored"] == 6
    assert summary["video"]["width"] == 80 and summary["video"]["avg_fps"] == pytest.approx(25)
    assert summary["model"]["id"].endswith("tiny-clip")
    index = pd.read_csv(reports / "index.csv")
    assert sorted(index["name"]) == ["ten", "twentyfive"] and set(index["status"]) == {"ok"}


@pytest.mark.expect_errors
def test_bad_inputs_fail_alone_with_exit_1(tmp_path, tiny_model_dir, clip_dir):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is not a video", encoding="utf-8")
    cfg = write_config(tmp_path, tiny_model_dir)
    out = tmp_path / "reports"
    result = invoke("run", str(tmp_path / "empty.mp4"), str(clip_dir / "ten.mp4"),
                    str(tmp_path / "notes.mp4"), str(tmp_path / "missing.mp4"),
                    "-c", str(cfg), "-o", str(out), "-q")
    assert result.exit_code == 1
    index = pd.read_csv(out / "index.csv").set_index("name")
    assert index.loc["ten", "status"] == "ok"
    assert (index["status"] == "error").sum() == 3
    assert (out / "ten" / "frames.csv").is_file()
    broken = json.loads((out / "empty" / "summary.json").read_text())
    assert broken["status"] == "error" and "\n" not in broken["error"]


def test_same_file_names_get_unique_folders(tmp_path, tiny_model_dir, clip_dir):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(clip_dir / "ten.mp4", tmp_path / sub / "clip.mp4")
    out = tmp_path / "reports"
    result = invoke("run", str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4"),
                    "-c", str(write_config(tmp_path, tiny_model_dir)), "-o", str(out), "-q")
    assert result.exit_code == 0
    inputs = {json.loads((out / n / "summary.json").read_text())["input"] for n in ("clip", "clip-2")}
    assert len(inputs) == 2


def test_images_go_to_images_csv(tmp_path, tiny_model_dir):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    out = tmp_path / "reports"
    result = invoke("run", str(tmp_path / "red.png"), "-c", str(write_config(tmp_path, tiny_model_dir)),
                    "-o", str(out), "-q")
    assert result.exit_code == 0
    rows = pd.read_csv(out / "images.csv")
    assert len(rows) == 1 and rows.loc[0, "top_label"] in ("cat", "dog", "car")
    assert rows[["cat", "dog", "car"]].sum(axis=1)[0] == pytest.approx(1.0, abs=1e-3)


def test_config_error_is_exit_2_one_line(tmp_path, tiny_model_dir, clip_dir):
    cfg = write_config(tmp_path, tiny_model_dir, "smoothing: {method: wobble}\n")
    cfg.write_text(cfg.read_text().replace("smoothing: {method: median, window_s: 1.0}\n", ""))
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "smoothing.method" in result.output and "Traceback" not in result.output


def test_missing_model_is_exit_2_without_traceback(tmp_path, clip_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip_dir / "ten.mp4"), "--labels", "cat,dog",
         "--model", str(tmp_path / "no-model"), "-o", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("scenetag: error:") and "no-model" in proc.stderr


def test_resume_skips_finished_inputs(tmp_path, tiny_model_dir, clip_dir):
    cfg = write_config(tmp_path, tiny_model_dir)
    out = tmp_path / "reports"
    args = ["run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out), "-q"]
    assert invoke(*args).exit_code == 0
    first = (out / "ten" / "summary.json").stat().st_mtime_ns
    assert invoke(*args, "--resume").exit_code == 0
    assert (out / "ten" / "summary.json").stat().st_mtime_ns == first
    assert len(pd.read_csv(out / "index.csv")) == 1


def test_help_reads_well():
    result = invoke("run", "--help")
    assert result.exit_code == 0 and "--every-seconds" in result.output
