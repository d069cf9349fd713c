"""``scenetag config show | validate | init``."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config

runner = CliRunner()
ROOT = Path(__file__).parent.parent


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_show_prints_the_effective_config_with_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("labels: [cat, dog]\nsampling: {every_seconds: 2}\n", encoding="utf-8")
    result = invoke("config", "show", "-c", str(cfg), "--mode", "binary", "--fps", "4",
                    "--set", "segments.threshold=0.7", "--set", "output.formats=[csv]")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["scoring"]["mode"] == "binary" and shown["segments"]["threshold"] == 0.7
    assert shown["sampling"]["fps"] == 4 and shown["sampling"]["every_seconds"] is None
    assert [lab["name"] for lab in shown["labels"]] == ["cat", "dog"]
    assert shown["output"]["formats"] == ["csv"]
    # what it prints is itself a valid config that loads to the same thing
    again = tmp_path / "again.yaml"
    again.write_text(result.output, encoding="utf-8")
    assert load_config(again).model_dump() == shown


def test_show_without_config_is_the_packaged_default():
    result = invoke("config", "show")
    assert result.exit_code == 0
    assert yaml.safe_load(result.output)["model"]["id"] == "openai/clip-vit-base-patch32"


def test_show_blames_a_bad_set_on_the_flag(tmp_path):
    result = invoke("config", "show", "--set", "segments.threshold=2")
    assert result.exit_code == 2
    assert "--set segments.threshold: must be at most 1" in result.output


def test_validate_reports_every_error_with_its_key_path(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("labels: [cat]\n", encoding="utf-8")
    bad.write_text("labels: [{name: cat, threshold: 2}]\nsampling: {fps: -1}\nsmoothing: {method: x}\n",
                   encoding="utf-8")
    result = invoke("config", "validate", str(good), str(bad), "demo")
    assert result.exit_code == 2
    assert f"{good}: ok" in result.output and "configs/demo.yaml: ok" in result.output
    error = next(line for line in result.output.splitlines() if line.startswith("scenetag: error:"))
    for key in ("labels.0.threshold", "sampling.fps", "smoothing.method"):
        assert key in error
    assert invoke("config", "validate", str(good)).exit_code == 0


def test_init_writes_a_commented_valid_starter_and_never_overwrites(tmp_path):
    path = tmp_path / "mine.yaml"
    assert invoke("config", "init", str(path)).exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert text.count("#") > 10 and load_config(path).labels
    path.write_text("labels: [mine]\n", encoding="utf-8")
    result = invoke("config", "init", str(path))
    assert result.exit_code == 2 and "--force" in result.output
    assert path.read_text(encoding="utf-8") == "labels: [mine]\n"
    assert invoke("config", "init", str(path), "--force").exit_code == 0
    assert path.read_text(encoding="utf-8") == text
