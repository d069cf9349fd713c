"""Still images are scored like video frames: the config's mode, thresholds
and NSFW labels. Frames of the demo clips (truth in demo_truth.json) saved
as PNGs and run under configs/demo.yaml with the demo model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from demo_assets import CONFIG, ROOT, TRUTH, needs_demo
from typer.testing import CliRunner

from pipeline.cli import app

pytestmark = needs_demo


def _middle_of(clip: str, label: str | None) -> float:
    """The middle of ``label``'s interval in ``clip``, or of the longest
    stretch with no object when ``label`` is None."""
    intervals = json.loads(TRUTH.read_text())["clips"][clip]["intervals"]
    if label is not None:
        iv = next(iv for iv in intervals if iv["label"] == label)
        return (iv["start_s"] + iv["end_s"]) / 2
    edges = [0.0] + [t for iv in intervals for t in (iv["start_s"], iv["end_s"])]
    gaps = list(zip(edges[::2], edges[1::2]))
    start, end = max(gaps, key=lambda g: g[1] - g[0])
    return (start + end) / 2


def save_frame(clip: str, time_s: float, path: Path) -> str:
    """The full-size frame of ``clip`` nearest ``time_s``, saved as PNG."""
    from PIL import Image

    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    with open_decoder(str(ROOT / "sample_videos" / clip)) as dec:
        frame = min(dec.frames(Sampling(every_seconds=0.5)), key=lambda f: abs(f.pts_s - time_s))
        Image.fromarray(frame.image).save(path)
    return str(path)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    images = {
        "skull": save_frame("demo_street.mp4", _middle_of("demo_street.mp4", "skull"), folder / "skull.png"),
        "cup": save_frame("demo_kitchen.mp4", _middle_of("demo_kitchen.mp4", "coffee cup"),
                          folder / "cup.png"),
        "empty": save_frame("demo_kitchen.mp4", _middle_of("demo_kitchen.mp4", None), folder / "empty.png"),
    }
    out = folder / "out"
    result = CliRunner().invoke(app, ["run", *images.values(), "-c", str(CONFIG), "-o", str(out), "-q",
                                      "--no-store", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "images.csv", keep_default_na=False).set_index("input")
    index = pd.read_csv(out / "index.csv", keep_default_na=False).set_index("input")
    return images, table, index, json.loads(result.stdout)


def test_images_csv_has_nsfw_columns_and_verdicts(image_run):
    images, table, _, _ = image_run
    assert {"skull", "nsfw_verdict", "tags", "coffee cup", "ball", "car"} <= set(table.columns)
    assert table.loc[images["skull"], "nsfw_verdict"] == "unsafe"
    assert table.loc[images["skull"], "skull"] >= 0.6  # demo.yaml's nsfw.threshold
    assert table.loc[images["cup"], "nsfw_verdict"] == "safe"
    assert table.loc[images["empty"], "nsfw_verdict"] == "safe"


def test_image_tags_are_the_labels_over_threshold(image_run):
    images, table, _, _ = image_run
    tags = ["coffee cup", "ball", "tree", "car", "house"]
    # binary, as demo.yaml says: independent yes/no scores, not a softmax summing to 1
    assert table.loc[images["empty"], tags].max() < 0.5
    assert table.loc[images["empty"], "tags"] == ""
    cup = table.loc[images["cup"]]
    assert cup["top_label"] == "coffee cup" and cup["tags"] == f"coffee cup: {cup['coffee cup']:.4f}"
    assert table.loc[images["skull"], "tags"] == ""  # the skull is an NSFW label, not a tag


def test_the_run_index_lists_images_with_the_same_tags_and_verdicts(image_run):
    images, table, index, summary = image_run
    for path in images.values():
        assert index.loc[path, "tags"] == table.loc[path, "tags"]
        assert index.loc[path, "nsfw_verdict"] == table.loc[path, "nsfw_verdict"]
    by_input = {im["input"]: im for im in summary["images"]}
    assert by_input[images["skull"]]["nsfw_verdict"] == "unsafe"
    assert by_input[images["cup"]]["tags"] == ["coffee cup"]
