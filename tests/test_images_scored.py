"""Still images are scored like video frames: the config's mode, thresholds
and NSFW labels. Frames of the demo clips (truth in demo_truth.json) saved
as PNGs and run under configs/demo.yaml with the demo model. And the sample
photos score through ``scenetag run`` as transformers' zero-shot pipeline
scores them: the picture is resized as the model's own processor resizes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_assets import CONFIG, MODEL, ROOT, TRUTH, needs_demo
from tiny_families import build_tiny_siglip, build_tiny_siglip2
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app

PHOTOS = sorted(str(p) for p in (ROOT / "sample_videos").glob("*.jpg"))


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


@needs_demo
def test_images_csv_has_nsfw_columns_and_verdicts(image_run):
    images, table, _, _ = image_run
    assert {"skull", "nsfw_verdict", "tags", "coffee cup", "ball", "car"} <= set(table.columns)
    assert table.loc[images["skull"], "nsfw_verdict"] == "unsafe"
    assert table.loc[images["skull"], "skull"] >= 0.6  # demo.yaml's nsfw.threshold
    assert table.loc[images["cup"], "nsfw_verdict"] == "safe"
    assert table.loc[images["empty"], "nsfw_verdict"] == "safe"


@needs_demo
def test_image_tags_are_the_labels_over_threshold(image_run):
    images, table, _, _ = image_run
    tags = ["coffee cup", "ball", "tree", "car", "house"]
    # binary, as demo.yaml says: independent yes/no scores, not a softmax summing to 1
    assert table.loc[images["empty"], tags].max() < 0.5
    assert table.loc[images["empty"], "tags"] == ""
    cup = table.loc[images["cup"]]
    assert cup["top_label"] == "coffee cup" and cup["tags"] == f"coffee cup: {cup['coffee cup']:.4f}"
    assert table.loc[images["skull"], "tags"] == ""  # the skull is an NSFW label, not a tag


@needs_demo
def test_the_run_index_lists_images_with_the_same_tags_and_verdicts(image_run):
    images, table, index, summary = image_run
    for path in images.values():
        assert index.loc[path, "tags"] == table.loc[path, "tags"]
        assert index.loc[path, "nsfw_verdict"] == table.loc[path, "nsfw_verdict"]
    by_input = {im["input"]: im for im in summary["images"]}
    assert by_input[images["skull"]]["nsfw_verdict"] == "unsafe"
    assert by_input[images["cup"]]["tags"] == ["coffee cup"]


# --------------------------------------------------------------------------- the reference's scores

LABELS = ["cat", "dog", "cup of coffee", "astronaut"]  # canonical already: SigLIP cleans no text away
DEMO_LABELS = ["a coffee cup", "a ball", "a tree", "a car", "a house"]  # words the demo model knows


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    folder = tmp_path_factory.mktemp("families")
    return {"clip": (tiny_model_dir, LABELS), "demo": (MODEL, DEMO_LABELS),
            "siglip": (build_tiny_siglip(folder / "siglip"), LABELS),
            "siglip2": (build_tiny_siglip2(folder / "siglip2"), LABELS)}


def _zero_shot(model_dir: Path, labels: list[str], template: str) -> dict[str, dict[str, float]]:
    """Every photo's scores from transformers' pipeline, with the processor
    and tokenizer of the model's own folder."""
    from transformers import AutoImageProcessor, AutoTokenizer, pipeline

    classify = pipeline("zero-shot-image-classification", model=str(model_dir), device="cpu",
                        image_processor=AutoImageProcessor.from_pretrained(model_dir),
                        tokenizer=AutoTokenizer.from_pretrained(model_dir))
    return {photo: {r["label"]: r["score"] for r in classify(photo, candidate_labels=labels,
                                                           hypothesis_template=template)}
            for photo in PHOTOS}


@pytest.mark.parametrize("family", ["clip", pytest.param("demo", marks=needs_demo), "siglip", "siglip2"])
def test_sample_photos_score_as_the_zero_shot_pipeline_scores_them(models, family, tmp_path):
    """``scenetag run`` on the sample photos, the model's native rule (a
    softmax over the labels for CLIP, a sigmoid per label for SigLIP): every
    label's score within 1e-4 of transformers' zero-shot pipeline."""
    model_dir, labels = models[family]
    template = "a photo of {}" if family.startswith("siglip") else "a photo of {}."
    config = tiny_config(tmp_path, model_dir, f"scoring: {{templates: ['{template}']}}\n"
                                              f"labels: {json.dumps(labels)}\n")
    result = CliRunner().invoke(app, ["run", *PHOTOS, "-c", str(config), "-o", str(tmp_path / "out"), "-q",
                                      "--no-store"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "images.csv", keep_default_na=False).set_index("input")
    assert len(PHOTOS) >= 2 and set(table.index) == set(PHOTOS)
    for photo, reference in _zero_shot(model_dir, labels, template).items():
        ours = table.loc[photo, labels].astype(float)
        np.testing.assert_allclose(ours, [reference[label] for label in labels], rtol=0, atol=1e-4,
                                   err_msg=f"{family}: {photo}")


# Video frames keep the fast path (the decoder shrinks a frame to the model's
# short side with an area filter, torch finishes the resize): its distance to
# the processor's path, measured on the sample photos treated as frames, as
# docs/MODELS.md states it (max |score - pipeline score|, min image-vector cosine).
FAST_PATH = {"clip": (0.004, 0.9999), "demo": (0.02, 0.999), "siglip": (0.001, 0.999),
             "siglip2": (0.01, 0.98)}


def _as_video_frame(picture, short_side: int) -> np.ndarray:
    """``picture`` as PyAV's decoder hands a frame of that size to the model."""
    import av

    from pipeline.decode.av_open import frame_converter
    from pipeline.types import VideoInfo

    info = VideoInfo(path="frame", container="mp4", codec="h264", width=picture.width, height=picture.height,
                     duration_s=None, avg_fps=None, frame_count=None)
    return frame_converter(info, short_side)(av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24"))


def _native_scores(embedder, image_vector: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """The model's own rule over the labels: a softmax (CLIP) or a sigmoid each (SigLIP)."""
    logits = embedder.logit_scale * image_vector @ texts.T + embedder.logit_bias
    if embedder.scoring_rule == "sigmoid":
        return 1 / (1 + np.exp(-logits))
    odds = np.exp(logits - logits.max())
    return odds / odds.sum()


@pytest.mark.parametrize("family", ["clip", pytest.param("demo", marks=needs_demo), "siglip", "siglip2"])
def test_video_frames_keep_the_fast_path_within_what_the_readme_says(models, family):
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor

    from pipeline.embed import load_embedder

    model_dir, labels = models[family]
    template = "a photo of {}" if family.startswith("siglip") else "a photo of {}."
    embedder = load_embedder(str(model_dir), device="cpu", precision="fp32")
    processor = AutoImageProcessor.from_pretrained(model_dir)
    texts = embedder.embed_texts([template.format(label) for label in labels])
    worst_score, worst_cosine = 0.0, 1.0
    for photo, reference in _zero_shot(model_dir, labels, template).items():
        picture = Image.open(photo).convert("RGB")
        fast = embedder.embed_images(_as_video_frame(picture, embedder.input_size)[None])[0]
        with torch.inference_mode():
            exact = embedder.model.get_image_features(**processor(images=[picture], return_tensors="pt"))
        exact = getattr(exact, "pooler_output", exact)[0].numpy()
        worst_cosine = min(worst_cosine, float(fast @ exact) / float(np.linalg.norm(exact)))
        scores = _native_scores(embedder, fast, texts)
        worst_score = max(worst_score, float(np.abs(scores - [reference[label] for label in labels]).max()))
    most, least = FAST_PATH[family]
    assert worst_score <= most and worst_cosine >= least, (worst_score, worst_cosine)
