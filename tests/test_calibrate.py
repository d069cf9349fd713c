"""``scenetag calibrate`` on the demo clips: a deliberately bad config (every
threshold 0.995, minimum duration 5 s) tuned on two labelled clips must find
the objects of the third, which it never saw labelled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from demo_assets import CONFIG, MODEL, ROOT, TRUTH, needs_demo
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config

HELD_OUT = "demo_park.mp4"

pytestmark = needs_demo


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def truth_csv(path: Path, keep) -> Path:
    """The demo truth as a truth CSV, only the clips ``keep`` accepts."""
    clips = json.loads(TRUTH.read_text())["clips"]
    rows = [(name, iv["label"], iv["start_s"], iv["end_s"])
            for name, clip in clips.items() if keep(name) for iv in clip["intervals"]]
    pd.DataFrame(rows, columns=["input", "label", "start_s", "end_s"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """All three clips run once with the bad config (their embeddings stored)."""
    root = tmp_path_factory.mktemp("calibrate")
    data = yaml.safe_load(CONFIG.read_text())
    (root / "cfg").mkdir()
    data["model"]["id"] = os.path.relpath(MODEL, root / "cfg")  # relative: the tuned copy must rebase it
    for label in data["labels"] + data["nsfw"]["labels"]:
        label["threshold"] = 0.995
    data["segments"].update(threshold=0.995, exit_threshold=0.995, min_duration_s=5.0)
    data["nsfw"].update(threshold=0.995, min_duration_s=5.0)
    bad = root / "cfg" / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    clips = [str(ROOT / "sample_videos" / name) for name in json.loads(TRUTH.read_text())["clips"]]
    result = invoke("run", *clips, "-c", str(bad), "-o", str(root / "run"), "-q")
    assert result.exit_code == 0, result.output
    train = truth_csv(root / "train.csv", lambda name: name != HELD_OUT)
    test = truth_csv(root / "test.csv", lambda name: name == HELD_OUT)
    return root, bad, train, test


def overall_f1(folder: Path) -> float:
    rows = pd.read_csv(folder / "eval.csv")
    return float(rows[rows["level"] == "overall"]["f1"].iloc[0])


def test_calibrated_on_two_clips_finds_the_third(bad_run):
    root, bad, train, test = bad_run
    result = invoke("eval", str(root / "run"), "--truth", str(test), "-o", str(root / "before"), "-q")
    assert result.exit_code == 0, result.output
    assert overall_f1(root / "before") < 0.2  # the bad config finds (nearly) nothing

    tuned = root / "out" / "tuned.yaml"
    result = invoke("calibrate", "-c", str(bad), "--store", str(root / "run" / "store"),
                    "--truth", str(train), "-o", str(tuned), "--shared-unseen")
    assert result.exit_code == 0, result.output
    assert "1 stored input without truth rows skipped" in result.output  # the held-out clip

    cfg = load_config(tuned)
    assert cfg.model.id == str(MODEL.resolve())  # rebased for the new folder
    assert cfg.segments.min_duration_s < 5.0 and all(lab.threshold < 0.995 for lab in cfg.labels)
    header = [line for line in tuned.read_text().splitlines() if line.startswith("#")]
    assert any("held out demo_kitchen.mp4" in line for line in header)
    assert any("held out demo_street.mp4" in line for line in header)
    assert any(line.startswith("#   coffee cup: 0.000 -> ") for line in header)

    result = invoke("rescore", "-c", str(tuned), "--store", str(root / "run" / "store"),
                    "-o", str(root / "tuned_run"), "-q")
    assert result.exit_code == 0, result.output
    result = invoke("eval", str(root / "tuned_run"), "--truth", str(test), "-q")
    assert result.exit_code == 0, result.output
    assert overall_f1(root / "tuned_run") >= 0.95


def test_a_label_without_positive_truth_is_refused(bad_run):
    root, bad, train, _ = bad_run
    out = root / "refused.yaml"
    result = invoke("calibrate", "-c", str(bad), "--store", str(root / "run" / "store"),
                    "--truth", str(train), "-o", str(out))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "error" in line]
    assert len(lines) == 1 and "cannot calibrate 'tree': no positive truth" in lines[0]
    assert not out.exists()


def test_a_truth_label_the_config_lacks_names_its_line(bad_run, tmp_path):
    root, bad, _, _ = bad_run
    truth = tmp_path / "t.csv"
    truth.write_text("input,label,start_s,end_s\ndemo_kitchen,coffee cup,2,6\ndemo_kitchen,cat,1,2\n")
    result = invoke("calibrate", "-c", str(bad), "--store", str(root / "run" / "store"),
                    "--truth", str(truth), "-o", str(tmp_path / "x.yaml"))
    assert result.exit_code == 2
    assert f"{truth}:3: label 'cat' is not in the config" in result.output
