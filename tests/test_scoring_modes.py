"""Scoring modes: SigLIP's sigmoid, ``auto`` resolution, and parity with the
reference, transformers' ``zero-shot-image-classification`` pipeline, for a
tiny random CLIP (softmax) and a tiny random SigLIP (independent sigmoids).

Parity is checked twice on the sample photos: with both sides given the
same pixels (images already at the model's input size, so neither side
resizes: this pins the scoring rule and the text path), and end to end
through our decoder and preprocessing against the pipeline on the original
PIL image (the still is resized as the processor resizes it).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_score import fake_embed_texts

from pipeline.analysis.score import build_classifier, resolve_mode, score
from pipeline.config import parse_config

# Canonical (SigLIP text is lower-cased and stripped of punctuation before tokenising, as
# big_vision trained it), and given to the pipeline too, so both tokenise the same text.
TEMPLATE = "this is a photo of {}"
LABELS = ["cat", "coffee", "astronaut", "woman", "rocket"]


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    from tiny_families import build_tiny_siglip

    return build_tiny_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip")


@pytest.fixture(scope="session")
def tiny_siglip(tiny_siglip_dir):
    from pipeline.embed import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu", precision="fp32", batch_size=8)


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as img:
        hopper = np.asarray(img.convert("RGB"))
    return {"coffee": skimage.data.coffee(), "chelsea": skimage.data.chelsea(),
            "astronaut": skimage.data.astronaut(), "grace_hopper": hopper}


def _config(mode="auto"):
    return parse_config({"labels": LABELS, "scoring": {"mode": mode, "templates": [TEMPLATE]}})


def _reference(model_dir, images) -> np.ndarray:
    """The pipeline's scores, N x labels in LABELS order."""
    from PIL import Image
    from transformers import pipeline

    classify = pipeline("zero-shot-image-classification", model=str(model_dir), device="cpu")
    rows = []
    for image in images:
        out = classify(Image.fromarray(image), candidate_labels=LABELS, hypothesis_template=TEMPLATE)
        by_label = {r["label"]: r["score"] for r in out}
        rows.append([by_label[label] for label in LABELS])
    return np.array(rows)


def _ours(embedder, images) -> np.ndarray:
    clf = build_classifier(_config(), embedder.embed_texts, embedder.logit_scale,
                           logit_bias=embedder.logit_bias, native_rule=embedder.scoring_rule)
    return score(clf, np.concatenate([embedder.embed_images(im[None]) for im in images]))


def _at_input_size(embedder, image: np.ndarray) -> np.ndarray:
    """What the model's own processor resizes (and crops) ``image`` to, made
    with PIL as the processor does, as uint8: given this, neither side resizes."""
    from PIL import Image

    spec = embedder.preprocess_spec
    pil = Image.fromarray(image)
    if spec.resize_hw is not None:
        pil = pil.resize(spec.resize_hw[::-1], Image.Resampling.BICUBIC)
    else:
        scale = spec.resize_short / min(pil.size)
        pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.BICUBIC)
    if spec.crop_hw is not None:
        ch, cw = spec.crop_hw
        left, top = (pil.width - cw) // 2, (pil.height - ch) // 2
        pil = pil.crop((left, top, left + cw, top + ch))
    return np.asarray(pil)


def _decoded(embedder, image: np.ndarray, folder) -> np.ndarray:
    """``image`` as a user's run reads it: saved as PNG, through our image decoder."""
    from PIL import Image

    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    path = folder / f"photo{len(list(folder.iterdir()))}.png"
    Image.fromarray(image).save(path)
    with open_decoder(str(path), short_side=embedder.input_size, still_resize=embedder.still_resize) as dec:
        return next(iter(dec.frames(Sampling(every_seconds=1.0)))).image


# --------------------------------------------------------------------------- rules


def test_sigmoid_mode_is_sigmoid_of_scaled_cosine_plus_bias():
    cfg = _config("sigmoid")
    clf = build_classifier(cfg, fake_embed_texts, logit_scale=10.0, logit_bias=-2.5, native_rule="sigmoid")
    images = fake_embed_texts(["an image", "another image"])
    expected = 1.0 / (1.0 + np.exp(-(10.0 * images @ clf.label_matrix.T - 2.5)))
    np.testing.assert_allclose(score(clf, images), expected, rtol=1e-5, atol=1e-7)
    # independent: a label's own vector scores high, and scores need not sum to 1
    probs = score(clf, clf.label_matrix)
    assert clf.mode == "sigmoid" and np.all(np.diag(probs) > 0.99) and np.all(probs.sum(1) > 1.0)


@pytest.mark.parametrize("mode, rule, labels, expected", [
    ("auto", "softmax", 3, "softmax"), ("auto", "sigmoid", 3, "sigmoid"),
    ("auto", "softmax", 1, "binary"), ("auto", "sigmoid", 1, "sigmoid"),
    ("independent", "softmax", 3, "binary"), ("independent", "sigmoid", 3, "sigmoid"),
    ("softmax", "sigmoid", 3, "softmax"), ("binary", "sigmoid", 3, "binary"),
    ("sigmoid", "sigmoid", 3, "sigmoid"),
])
def test_auto_and_independent_resolve_by_the_models_rule(mode, rule, labels, expected):
    cfg = parse_config({"labels": LABELS[:labels], "scoring": {"mode": mode}})
    assert resolve_mode(cfg, rule) == expected


def test_sigmoid_on_a_softmax_model_warns(caplog):
    assert resolve_mode(_config("sigmoid"), "softmax") == "sigmoid"
    assert "every label scores near 1.0" in caplog.text


def test_embedders_report_their_rule_and_bias(tiny_embedder, tiny_siglip):
    assert (tiny_embedder.scoring_rule, tiny_embedder.logit_bias) == ("softmax", 0.0)
    assert tiny_siglip.scoring_rule == "sigmoid"
    assert tiny_siglip.logit_bias == pytest.approx(float(tiny_siglip.model.logit_bias.detach()))
    assert tiny_siglip.logit_scale == pytest.approx(float(tiny_siglip.model.logit_scale.detach().exp()))


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_scores_equal_the_zero_shot_pipeline(family, request, capsys):
    model_dir = request.getfixturevalue("tiny_model_dir" if family == "clip" else "tiny_siglip_dir")
    embedder = request.getfixturevalue("tiny_embedder" if family == "clip" else "tiny_siglip")
    images = [_at_input_size(embedder, im) for im in photos().values()]
    ours, reference = _ours(embedder, images), _reference(model_dir, images)
    if family == "clip":
        np.testing.assert_allclose(ours.sum(1), 1.0, atol=1e-5)
    else:
        assert not np.allclose(ours.sum(1), 1.0, atol=0.05)  # independent sigmoids
    with capsys.disabled():
        print(f"\n{family} same pixels: max |ours - pipeline| = {np.abs(ours - reference).max():.2e}")
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_end_to_end_scores_stay_close_to_the_pipeline(family, request, tmp_path, capsys):
    """Our decoder resizes a still as the processor does (Pillow, its
    filter, from the full picture): the same bound as for the same pixels;
    the measured difference is printed."""
    model_dir = request.getfixturevalue("tiny_model_dir" if family == "clip" else "tiny_siglip_dir")
    embedder = request.getfixturevalue("tiny_embedder" if family == "clip" else "tiny_siglip")
    originals = list(photos().values())
    ours = _ours(embedder, [_decoded(embedder, im, tmp_path) for im in originals])
    reference = _reference(model_dir, originals)
    diff = np.abs(ours - reference).max()
    with capsys.disabled():
        print(f"\n{family} end to end: max |ours - pipeline| = {diff:.2e}")
    assert diff < 1e-4


# --------------------------------------------------------------------------- run and rescore


def test_a_siglip_run_scores_by_sigmoid_and_rescore_takes_the_bias_from_the_cache(tmp_path, tiny_siglip_dir,
                                                                                  tiny_siglip, monkeypatch):
    """The store's prompt cache keeps the logit scale, bias and family:
    rescoring a sigmoid model's embeddings needs no model load, and scores the same."""
    import json

    import pandas as pd
    from media import make_clip

    from pipeline.run import job as run_mod
    from pipeline.run.rescore import rescore_job

    clip = make_clip(tmp_path / "c.mp4", seconds=2, fps=10, size=(48, 32))
    config = parse_config({"model": {"id": str(tiny_siglip_dir), "device": "cpu", "precision": "fp32"},
                           "sampling": {"every_seconds": 0.5}, "labels": LABELS[:3],
                           "scoring": {"templates": [TEMPLATE]}, "output": {"formats": ["csv", "json"]}})
    run = run_mod.run_job([clip], config, tmp_path / "out", run_mod.RunOptions(progress=False),
                          embedder=tiny_siglip)
    assert run.exit_code == 0
    summary = json.loads((tmp_path / "out" / "c" / "summary.json").read_text())
    assert summary["scoring"] == {"mode": "sigmoid"}
    loads = []

    def load(*args, **kwargs):
        loads.append(args)
        return tiny_siglip

    monkeypatch.setattr("pipeline.prepare.load_model", load)
    again = rescore_job(config, tmp_path / "out" / "store", tmp_path / "re")
    assert again.exit_code == 0 and not loads
    before, after = (pd.read_csv(tmp_path / d / "c" / "frames.csv") for d in ("out", "re"))
    pd.testing.assert_frame_equal(before, after)
