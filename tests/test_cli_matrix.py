"""The paths users take, through the CLI: every demo clip x scoring mode x
sampling step x label set scores every input (``--labels "coffee cup"``
once failed on demo_street.mp4 and demo_park.mp4 with ``cannot score:
KeyError``, while the suite passed), with refined segments that make sense
and the run's JSON telling the truth about each input."""

from __future__ import annotations

import json

import pytest
from demo_assets import MODEL, ROOT, TRUTH, needs_demo
from typer.testing import CliRunner

from pipeline.cli import app

pytestmark = needs_demo

CLIPS = sorted(str(p) for p in (ROOT / "sample_videos").glob("demo_*.mp4"))
ALL = "coffee cup,ball,tree,car,house,skull"
# Each single label is present in one demo clip and absent from the other two.
LABEL_SETS = {"one": "coffee cup", "other": "house", "all": ALL}
STEPS = (0.5, 1.0, 2.0, 3.0)
# mode -> (model, extra arguments): softmax scores the labels against
# background prompts (one label alone would score 1.0), from SOFTMAX.
MODES = {
    "auto": ("demo", []),
    "softmax": ("demo", ["-c", "SOFTMAX", "--mode", "softmax"]),
    "binary": ("demo", ["--mode", "binary"]),
    "independent": ("demo", ["--mode", "independent"]),
    "sigmoid": ("siglip", ["--mode", "sigmoid"]),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tiny_families import build_tiny_siglip

    folder = tmp_path_factory.mktemp("m")
    softmax = folder / "softmax.yaml"  # the demo's background prompts, labels from --labels
    softmax.write_text("scoring:\n  mode: softmax\n  templates: ['a photo of {}.']\n"
                       "  background: ['a photo of an empty kitchen.', 'a photo of an empty street.',"
                       " 'a photo of an empty park.']\n")
    return {"demo": str(MODEL), "siglip": str(build_tiny_siglip(folder / "siglip")), "SOFTMAX": str(softmax)}


@pytest.mark.parametrize("labels", list(LABEL_SETS))
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", list(MODES))
def test_every_input_is_scored_on_every_path(models, tmp_path, mode, step, labels):
    model, extra = MODES[mode]
    extra = [models.get(a, a) for a in extra]
    formats = [] if step == 2.0 else ["--formats", "csv,json,vtt,edl"]  # 2 s: every default output
    args = ["run", *CLIPS, "--model", models[model], "--labels", LABEL_SETS[labels], *extra,
            "--every-seconds", str(step), "-o", str(tmp_path / "out"), "--no-store", "--json", "-q", *formats]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [i["status"] for i in summary["inputs"]] == ["ok"] * len(CLIPS), summary["inputs"]
    durations = {name: clip["duration_s"] for name, clip in json.loads(TRUTH.read_text())["clips"].items()}
    for item in summary["inputs"]:
        duration = durations[item["input"].rsplit("/", 1)[-1]]
        for seg in item["segments"]:
            assert 0.0 <= seg["start_s"] < seg["end_s"] <= duration + 1e-6, (item["input"], seg)
        written = json.loads((tmp_path / "out" / item["name"] / "summary.json").read_text())
        assert written["refine"] is not None  # refinement ran (and cost nothing it should not)
