""""None of these": a softmax with background sentences has an implicit none
class, ``--labels`` alone scores each label on its own, and a one-label
softmax (always 1.0) is refused. Unit cases on a deterministic text 'model',
end to end on the demo clips with the demo model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from demo_assets import CONFIG as DEMO
from demo_assets import MODEL, ROOT, TRUTH, needs_demo
from test_score import fake_embed_texts
from typer.testing import CliRunner

from pipeline.analysis.score import build_classifier, score
from pipeline.cli import app
from pipeline.config import load_config, parse_config
from pipeline.types import ConfigError

BACKGROUND = ["an empty room.", "an empty street."]


def softmax_config(background=BACKGROUND, labels=("cat", "dog", "car")):
    return parse_config({"labels": [{"name": n} for n in labels],
                         "scoring": {"mode": "softmax", "templates": ["a photo of {}."],
                                     "background": list(background)}})


def test_background_is_a_none_class_in_the_softmax():
    clf = build_classifier(softmax_config(), fake_embed_texts, logit_scale=100.0)
    assert clf.names == ("cat", "dog", "car") and clf.none_vector.shape == (1, 32)
    empty = fake_embed_texts(BACKGROUND).mean(0)
    probs = score(clf, np.stack([empty / np.linalg.norm(empty), clf.label_matrix[0]]))
    assert probs.shape == (2, 3)
    assert probs[0].max() < 0.05  # an empty frame: no label
    assert probs[1, 0] > 0.9 and probs[1].sum() <= 1.0 + 1e-6  # a cat: the none class loses


def test_softmax_without_background_has_no_none_class():
    clf = build_classifier(softmax_config(background=[]), fake_embed_texts, logit_scale=100.0)
    assert clf.none_vector is None
    np.testing.assert_allclose(score(clf, clf.label_matrix).sum(1), 1.0, atol=1e-5)


def test_one_label_softmax_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="scoring.mode softmax with one label") as info:
        softmax_config(background=[], labels=("car",))
    assert "\n" not in str(info.value) and "labels" in str(info.value)
    assert softmax_config(labels=("car",)).labels[0].name == "car"  # label vs none: fine


def test_one_label_under_auto_is_scored_on_its_own():
    cfg = parse_config({"labels": ["car"]})
    clf = build_classifier(cfg, fake_embed_texts, logit_scale=100.0)
    assert clf.mode == "binary" and len(clf.negatives[0]) == len(cfg.scoring.background) > 0


def test_labels_without_a_config_can_answer_nothing():
    result = CliRunner().invoke(app, ["config", "show", "--labels", "car,tree"])
    assert result.exit_code == 0, result.output
    scoring = yaml.safe_load(result.output)["scoring"]
    assert scoring["mode"] == "independent" and scoring["background"]
    clf = build_classifier(load_config(None, {"labels": [{"name": "car"}, {"name": "tree"}],
                                              "scoring.mode": "independent"}),
                           fake_embed_texts, logit_scale=100.0)
    assert clf.mode == "binary"


def test_cli_refuses_a_one_label_softmax(tmp_path):
    result = CliRunner().invoke(app, ["run", str(tmp_path / "x.mp4"), "--labels", "car",
                                      "--mode", "softmax", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "scoring.mode softmax with one label" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- demo clips


def _iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


@needs_demo
def test_labels_car_tags_nothing_on_the_kitchen(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(ROOT / "sample_videos" / "demo_kitchen.mp4"),
                                      "--labels", "car", "--model", str(MODEL), "-o", str(out),
                                      "-q", "--no-store"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo_kitchen" / "summary.json").read_text())
    assert summary["tags"] == [] and summary["segments"] == []
    assert summary["scoring"]["mode"] == "binary"


@needs_demo
def test_a_softmax_config_with_background_tags_only_the_true_objects(tmp_path):
    demo = yaml.safe_load(DEMO.read_text())
    truth = json.loads(TRUTH.read_text())["clips"]
    names = sorted({iv["label"] for clip in truth.values() for iv in clip["intervals"]})
    prompts = {lab["name"]: lab["prompts"] for lab in demo["labels"] + demo["nsfw"]["labels"]}
    config = {**{k: demo[k] for k in ("sampling", "smoothing", "segments")},
              "model": {"id": str(MODEL), "device": "cpu", "precision": "fp32"},
              "scoring": {"mode": "softmax", "templates": demo["scoring"]["templates"],
                          "background": demo["scoring"]["background"]},
              "labels": [{"name": n, "prompts": prompts[n]} for n in names],  # no negatives
              "output": {"formats": ["csv", "json"]}}
    path = tmp_path / "softmax.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "out"
    clips = [str(ROOT / "sample_videos" / name) for name in truth]
    result = CliRunner().invoke(app, ["run", *clips, "-c", str(path), "-o", str(out), "-q", "--no-store"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for clip, info in truth.items():
        segments = pd.read_csv(out / Path(clip).stem / "segments.csv")
        found = [(s.label, s.start_s, s.end_s) for s in segments.itertuples()]
        assert len(found) == len(info["intervals"]), f"{clip}: {found}"
        for iv in info["intervals"]:
            best = max((_iou((start, end), (iv["start_s"], iv["end_s"])) for label, start, end in found
                        if label == iv["label"]), default=0.0)
            assert best >= 0.8, f"{clip}: {iv['label']} {iv['start_s']}-{iv['end_s']} s: {found}"
        summary = json.loads((out / Path(clip).stem / "summary.json").read_text())
        assert sorted(summary["tags"]) == sorted({iv["label"] for iv in info["intervals"]})
        assert summary["scoring"]["mode"] == "softmax"
