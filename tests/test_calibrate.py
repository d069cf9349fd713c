"""``scenetag calibrate`` on the demo clips: a deliberately bad config (every
threshold 0.995, minimum duration 5 s) tuned on two labelled clips must find
the objects of the third, which it never saw labelled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from demo_assets import CONFIG, MODEL, ROOT, TRUTH, needs_demo
from hypothesis import given, settings
from hypothesis import strategies as st
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
    assert cfg.segments.min_duration_s < 5.0
    header = [line for line in tuned.read_text().splitlines() if line.startswith("#")]
    assert any("held out demo_kitchen.mp4" in line for line in header)
    assert any("held out demo_street.mp4" in line for line in header)
    # every label the two clips show is found; a threshold that ties the best (car's 0.995
    # under the tuned minimum duration) is kept, as the config had it
    for name in ("coffee cup", "ball", "car", "house", "skull"):
        assert f"#   {name}: 0.000 -> 1.000" in header, header

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


def effective_rules(cfg) -> dict:
    """Every label's enter and exit threshold as a run applies them (a label's
    own, else its section's; exit defaults to 0.9 x enter), and the sections'
    window, minimum duration and gap merge."""
    out = {}
    for kind, section, smoothing, labels in (("tag", cfg.segments, cfg.smoothing, cfg.labels),
                                              ("nsfw", cfg.nsfw, cfg.nsfw.smoothing, cfg.nsfw.labels)):
        for label in labels:
            enter = label.threshold if label.threshold is not None else section.threshold
            exit_ = label.exit_threshold if label.exit_threshold is not None else section.exit_threshold
            out[label.name] = (enter, 0.9 * enter if exit_ is None or exit_ > enter else exit_)
        out[kind] = (smoothing.window_s, section.min_duration_s, section.merge_gap_s)
    return out


def test_a_config_already_at_f1_1_comes_back_unchanged(bad_run, tmp_path):
    """The demo config finds every object of the three clips; calibrating it
    on them must not move a value for no gain (ties keep the incumbent)."""
    root, _, _, _ = bad_run
    tuned = tmp_path / "tuned.yaml"
    result = invoke("calibrate", "-c", str(CONFIG), "--store", str(root / "run" / "store"),
                    "--truth", str(TRUTH), "-o", str(tuned))
    assert result.exit_code == 0, result.output
    header = [line for line in tuned.read_text().splitlines() if line.startswith("#   ")]
    per_label = [line for line in header if "->" in line and "held out" not in line and "mean" not in line]
    assert per_label and all(line.endswith(": 1.000 -> 1.000") for line in per_label), header
    before, after = effective_rules(load_config(CONFIG)), effective_rules(load_config(tuned))
    assert after.keys() == before.keys()
    for key, values in before.items():
        assert after[key] == pytest.approx(values, abs=1e-4), key


STEP = 0.5


@st.composite
def labelled_clips(draw):
    """One label on one to three clips: runs of samples with and without the
    object (true where it is), its scores high inside and low outside plus
    noise, and a setting to start from (thresholds off the grid too)."""
    from pipeline.measure.calibrate import Clip, Problem, Setting, Tunables

    clips = []
    for c in range(draw(st.integers(1, 3))):
        runs = draw(st.lists(st.integers(2, 12), min_size=2, max_size=7))
        on = np.concatenate([np.full(n, i % 2 == 1) for i, n in enumerate(runs)])
        times = np.arange(len(on)) * STEP
        edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
        truth = [(float(a * STEP), float(b * STEP)) for a, b in zip(edges[::2], edges[1::2])]
        noise = np.random.default_rng(draw(st.integers(0, 2**16))).normal(0, draw(st.floats(0, 0.3)),
                                                                           len(on))
        scores = np.clip(np.where(on, draw(st.floats(0.4, 1.0)), draw(st.floats(0.0, 0.6))) + noise, 0, 1)
        clips.append(Clip(f"clip{c}.mp4", times, len(on) * STEP, scores[:, None], {"a": truth}, 1 / STEP))
    start = Tunables(enter=draw(st.floats(0.02, 0.98)), exit_ratio=draw(st.floats(0.5, 1.0)),
                  window_s=STEP * draw(st.sampled_from([0, 1, 3])),
                  min_duration_s=STEP * draw(st.sampled_from([0, 1, 2])),
                  merge_gap_s=STEP * draw(st.sampled_from([0, 1, 2])))
    return Problem(["a"], ["tag"], ["median"], clips, 0.5), Setting({"a": start}, start)


@settings(max_examples=25)
@given(labelled_clips())
def test_fit_moves_a_setting_only_for_a_gain(case):
    """Fitted on some clips, the result is never worse there than the setting
    it started from, and differs from it only when it is strictly better
    (F1, then mean IoU): a tie keeps the incumbent."""
    from pipeline.measure.calibrate import fit

    problem, incumbent = case
    fitted = fit(problem, problem.clips, incumbent)
    before = problem.overall(incumbent, problem.clips)
    after = problem.overall(fitted, problem.clips)
    key = (round(after.f1, 9), round(after.mean_iou, 9))
    assert key >= (round(before.f1, 9), round(before.mean_iou, 9))
    if key == (round(before.f1, 9), round(before.mean_iou, 9)):
        assert fitted.rules == incumbent.rules and fitted.shared == incumbent.shared


@pytest.mark.parametrize("which", ["config", "truth"])
def test_an_output_that_is_an_input_is_refused(bad_run, which):
    """-o over -c lost the user's comments; -o over --truth turned the truth into YAML."""
    root, bad, train, _ = bad_run
    target = bad if which == "config" else train
    before = target.read_bytes()
    result = invoke("calibrate", "-c", str(bad), "--store", str(root / "run" / "store"),
                    "--truth", str(train), "-o", str(target), "--shared-unseen")
    assert result.exit_code == 2
    flag = "-c" if which == "config" else "--truth"
    assert result.output.strip() == (f"scenetag: error: -o: {target} is the {flag} file calibrate reads; "
                                     "write the tuned config elsewhere, or pass --force to replace it")
    assert target.read_bytes() == before


def test_force_writes_over_the_config_it_tunes(bad_run, tmp_path):
    root, bad, train, _ = bad_run
    config = tmp_path / "bad.yaml"
    config.write_text(bad.read_text().replace(f"id: {yaml.safe_load(bad.read_text())['model']['id']}",
                                              f"id: {MODEL.resolve()}"))
    result = invoke("calibrate", "-c", str(config), "--store", str(root / "run" / "store"),
                    "--truth", str(train), "-o", str(config), "--shared-unseen", "--force", "-q")
    assert result.exit_code == 0, result.output
    assert config.read_text().startswith("# scenetag calibrate:")


def test_a_store_of_another_model_is_refused_unless_model_names_it(bad_run, tmp_path):
    """Thresholds fitted on the store's vectors were written into a config
    naming a model they were never measured on."""
    root, bad, train, _ = bad_run
    data = yaml.safe_load(bad.read_text())
    data["model"]["id"] = "openai/clip-vit-base-patch32"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data, sort_keys=False))
    store = root / "run" / "store"
    result = invoke("calibrate", "-c", str(other), "--store", str(store), "--truth", str(train),
                    "-o", str(tmp_path / "tuned.yaml"), "--shared-unseen")
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line
    assert line.startswith(f"scenetag: error: {store} was embedded with {MODEL.resolve()}")
    assert "not the config's model openai/clip-vit-base-patch32" in line and "pass --model" in line
    assert not (tmp_path / "tuned.yaml").exists()

    result = invoke("calibrate", "-c", str(other), "--store", str(store), "--truth", str(train),
                    "-o", str(tmp_path / "tuned.yaml"), "--shared-unseen", "--model", str(MODEL), "-q")
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / "tuned.yaml").model.id == str(MODEL.resolve())
    # named relative to the tuned config, as its example pictures are: the pair moves together
    written = yaml.safe_load((tmp_path / "tuned.yaml").read_text())["model"]["id"]
    assert written == os.path.relpath(MODEL.resolve(), tmp_path.resolve())
