"""CLI words: flag mistakes name the flag in the tool's own words, help shows
choices and ranges, --version, --json on stdout only, plurals, a clean stderr
on Ray runs, and user mistakes that are exit 2 with one line (never exit 3)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
ROOT = Path(__file__).parent.parent


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def config_file(tmp_path: Path, model_dir: Path, body: str = "labels: [cat, dog]\n") -> Path:
    return tiny_config(tmp_path, model_dir, "sampling: {every_seconds: 0.5}\n" + body)


@pytest.mark.parametrize("args, expected", [
    (["--mode", "binay"],
     "scenetag: error: --mode: must be one of auto, softmax, binary, sigmoid, independent; got 'binay'"),
    (["--labels", ","], "scenetag: error: --labels: give at least one label name"),
    (["--labels", ""], "scenetag: error: --labels: give at least one label name"),
    (["--formats", ""], "scenetag: error: --formats: give at least one of csv, plot"),
    (["--formats", "csv,pdf"], "scenetag: error: --formats: must be one of csv"),
    (["--timeout", "inf"], "scenetag: error: --timeout: must be a finite number; got inf"),
    (["--top-frames", "-1"], "scenetag: error: --top-frames: must be at least 0"),
    (["--every-seconds", "0", "--decode-strategy", "fast"], "scenetag: error: --every-seconds: must be"),
])
def test_flag_mistakes_name_the_flag(tmp_path, tiny_model_dir, args, expected):
    cfg = config_file(tmp_path, tiny_model_dir)
    result = invoke("run", "x.mp4", "-c", str(cfg), "-o", str(tmp_path / "o"), *args)
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(expected), line
    assert str(cfg) not in line and "Input should" not in line and "Value error" not in line


def test_eps_without_dbscan_is_an_error(tmp_path):
    for flag, value in (("--eps", "0.3"), ("--min-samples", "5")):
        result = invoke("cluster", "--store", str(tmp_path / "store"), flag, value)
        assert result.exit_code == 2
        assert error_line(result).startswith(f"scenetag: error: {flag} applies to DBSCAN only")


def test_help_shows_choices_ranges_and_defaults():
    text = invoke("run", "--help").output
    assert "{inputs}" not in text and "<list[str]>" not in text
    assert "range>" not in text and "<str>" not in text
    assert "INPUT..." in text and "<auto|softmax|binary|sigmoid|independent>" in text
    assert "<auto|exact|fast|keyframes>" in text
    assert "openai/clip-vit-base-patch32" in text and "one frame every 1.0 s" in text
    assert "FILE|NAME" in text
    for command in ("cluster", "search", "report", "rescore", "config show", "config validate"):
        text = invoke(*command.split(), "--help").output
        assert "<str>" not in text and "range>" not in text and "<list[" not in text, command


def test_version_comes_from_package_metadata():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"scenetag {version('scenetag')}"


def test_named_config_is_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("config", "show", "-c", "demo")
    assert result.exit_code == 0, result.output
    assert f"id: {ROOT / 'models' / 'scenetag-demo-clip'}" in result.output
    result = invoke("config", "show", "-c", "no-such-config")
    assert result.exit_code == 2 and "no shipped config named 'no-such-config'" in error_line(result)


def test_output_that_is_a_file_or_read_only_is_exit_2(tmp_path, tiny_model_dir, clip_dir):
    cfg = config_file(tmp_path, tiny_model_dir)
    (tmp_path / "afile").write_text("x")
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "afile"))
    assert result.exit_code == 2 and "--output:" in error_line(result) and "is a file" in result.output
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "afile" / "out"))
    assert result.exit_code == 2 and "--output: cannot create" in error_line(result)
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(locked / "out"))
    assert result.exit_code == 2 and "--output: cannot create" in error_line(result)


@pytest.mark.parametrize("body, fragment", [
    ("labels: [cat]\nscoring: {templates: ['{x} {}']}", "scoring.templates"),
    ("labels: [cat]\nscoring: {templates: ['{0.__class__} {}']}", "scoring.templates"),
    ("labels: [cat]\nlabels: [dog]\n", "duplicate key 'labels'"),
])
def test_config_mistakes_are_exit_2_not_internal_errors(tmp_path, tiny_model_dir, clip_dir, body, fragment):
    cfg = config_file(tmp_path, tiny_model_dir, body)
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and fragment in error_line(result)


def test_non_utf8_and_deeply_nested_configs_are_exit_2(tmp_path):
    for raw in (b"labels: [caf\xe9]\n", b"[" * 100_000):
        (tmp_path / "c.yaml").write_bytes(raw)
        result = invoke("config", "validate", str(tmp_path / "c.yaml"))
        assert result.exit_code == 2 and "internal error" not in result.output
        assert error_line(result).startswith(f"scenetag: error: {tmp_path / 'c.yaml'}: ")


@pytest.fixture(scope="module")
def json_run(tmp_path_factory, tiny_model_dir, clip_dir):
    out = tmp_path_factory.mktemp("json")
    cfg = config_file(out, tiny_model_dir, "labels: [cat, dog]\n"
                      "segments: {threshold: 0.3, min_duration_s: 0}\noutput: {formats: [csv, json]}\n")
    (out / "bad.mp4").write_text("not a video")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip_dir / "ten.mp4"), str(out / "bad.mp4"),
         "-c", str(cfg), "-o", str(out / "reports"), "--json", "--no-store"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    return proc, out / "reports"


def test_json_summary_is_all_of_stdout(json_run):
    proc, reports = json_run
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    by_name = {entry["name"]: entry for entry in summary["inputs"]}
    ok, bad = by_name["ten"], by_name["bad"]
    assert ok["status"] == "ok" and ok["error"] is None and ok["output"] == str(reports / "ten")
    assert set(ok) >= {"input", "name", "status", "error", "tags", "segments", "nsfw_verdict", "output"}
    assert ok["input"].endswith("ten.mp4") and ok["nsfw_verdict"] in ("safe", "unsafe", "n/a")
    for seg in ok["segments"]:
        assert seg["label"] in ("cat", "dog") and 0 <= seg["start_s"] <= seg["end_s"]
    stored = json.loads((reports / "ten" / "summary.json").read_text())
    assert sorted(ok["tags"]) == sorted(stored.get("tags", ok["tags"]))
    assert bad["status"] == "error" and bad["error"]
    assert summary["totals"] == {"inputs": 2, "ok": 1, "failed": 1, "resumed": 0, "images": 0}
    assert "scenetag: 1 ok, 1 failed" in proc.stderr


def test_plurals_in_summary_lines(tmp_path, tiny_model_dir):
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "one.png")
    cfg = config_file(tmp_path, tiny_model_dir)
    result = invoke("run", str(tmp_path / "one.png"), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "1 image;" in result.output and "1 images" not in result.output


@pytest.mark.slow  # one Ray start-up in a subprocess: ~30-60 s on 2 cores
def test_ray_run_keeps_stderr_clean(tmp_path, tiny_model_dir, clip_dir):
    pytest.importorskip("ray.data")
    cfg = config_file(tmp_path, tiny_model_dir, "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip_dir / "ten.mp4"), "-c", str(cfg),
         "-o", str(tmp_path / "o"), "--engine", "ray", "--no-store", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_BACKEND_LOG_LEVEL"},
             "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "core_worker" not in proc.stderr and " E " not in proc.stderr and "ERROR" not in proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_fifo_and_symlink_inputs_say_what_they_are(tmp_path):
    from pipeline.decode.base import check_readable
    from pipeline.types import VideoOpenError

    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    expected = {"pipe.mp4": "is a named pipe (FIFO), not a media file", "loop.mp4": "symbolic link loop",
                "dangling.mp4": "broken symbolic link", "absent.mp4": "file not found"}
    for name, fragment in expected.items():
        with pytest.raises(VideoOpenError, match=re.escape(fragment)):
            check_readable(str(tmp_path / name))


def test_rescore_json_summary(tmp_path, tiny_model_dir, clip_dir):
    cfg = config_file(tmp_path, tiny_model_dir, "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    out = tmp_path / "o"
    assert invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out), "-q").exit_code == 0
    new = config_file(tmp_path, tiny_model_dir, "labels: [car, tree]\noutput: {formats: [csv]}\n")
    result = invoke("rescore", "-c", str(new), "--store", str(out / "store"), "-o", str(tmp_path / "re"),
                    "--json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [e["status"] for e in summary["inputs"]] == ["ok"] and summary["totals"]["ok"] == 1
    assert summary["inputs"][0]["output"] == str(tmp_path / "re" / summary["inputs"][0]["name"])


def test_shipped_configs_are_package_data():
    """`-c coffee` must work for an installed package (no checkout around it)."""
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "configs/*.yaml" in package_data["pipeline"] and "*.yaml" in package_data["pipeline"]
    for name in ("coffee", "nsfw"):
        packaged = ROOT / "pipeline" / "configs" / f"{name}.yaml"
        assert packaged.is_file() and (ROOT / "configs" / f"{name}.yaml").resolve() == packaged.resolve()
