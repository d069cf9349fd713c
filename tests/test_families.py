"""Model families embedded as they were trained: SigLIP and SigLIP 2 (NaFlex)
against transformers' own processors, model methods and zero-shot pipeline,
on real photos; the family check, text cleaning and padding; remote code refused."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tiny_families import build_tiny_siglip, build_tiny_siglip2, sample_photos

from pipeline.embed import canonicalize_text, family_for, load_embedder
from pipeline.types import ModelLoadError

LEVEL = 2 / 255  # one uint8 step after SigLIP's (x / 255 - 0.5) / 0.5


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory) -> Path:
    return build_tiny_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip")


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory) -> Path:
    return build_tiny_siglip2(tmp_path_factory.mktemp("models") / "tiny-siglip2")


@pytest.fixture(scope="module", params=["siglip", "siglip2"])
def sig_dir(request) -> Path:
    return request.getfixturevalue(f"{request.param}_dir")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: np.array(image) for name, image in sample_photos().items()}  # writable copies


def _load(folder: Path):
    return load_embedder(str(folder), device="cpu", precision="fp32", batch_size=4)


def _unit(x) -> np.ndarray:
    x = getattr(x, "pooler_output", x).detach().float().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference_text(embedder, texts: list[str], padding="max_length") -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedder.model_id)
    tokens = tokenizer(texts, padding=padding, max_length=64, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return _unit(embedder.model.get_text_features(**tokens))


# --------------------------------------------------------------------------- the family check


@pytest.mark.parametrize("model_type, family", [("clip", "clip"), ("siglip", "siglip"),
                                                ("siglip2", "siglip2")])
def test_family_is_chosen_by_the_exact_model_type(model_type, family):
    assert family_for(model_type).name == family


def test_loaded_models_say_their_family_and_scoring_rule(tiny_embedder, siglip_dir, siglip2_dir):
    siglip, siglip2 = _load(siglip_dir), _load(siglip2_dir)
    clip = (tiny_embedder.family, tiny_embedder.scoring_rule, tiny_embedder.logit_bias)
    assert clip == ("clip", "softmax", 0.0)
    for embedder, family in ((siglip, "siglip"), (siglip2, "siglip2")):
        assert (embedder.family, embedder.scoring_rule) == (family, "sigmoid")
        # The tiny models were saved with exp(logit_scale) = 10 and logit_bias = -5.
        assert embedder.logit_scale == pytest.approx(10.0) and embedder.logit_bias == pytest.approx(-5.0)
        assert embedder.text_max_length == 64


def test_an_untested_model_type_is_run_as_clip_with_a_warning(caplog):
    assert family_for("chinese_clip").name == "clip"
    assert "not a tested family" in caplog.text


# --------------------------------------------------------------------------- texts


@pytest.mark.parametrize("text, canonical", [
    ("A Photo of a DOG.", "a photo of a dog"),
    ("  rock'n'roll   concert!! ", "rocknroll concert"),
    ("sea_waves at dusk", "sea waves at dusk"),
    ("Tom &amp; Jerry", "tom jerry"),
    ("&amp;lt;b&amp;gt;bold", "bbold"),  # entities unescaped twice, then < > dropped
    ("line\nbreak\ttab\u00a0nbsp", "line break tab nbsp"),
    (unicodedata.normalize("NFD", "Café"), "café"),  # NFC: one code point, as ftfy gives
    ("naïve — “quoted” ½", "naïve — “quoted” ½"),  # only ASCII punctuation is removed
    ("{}-shaped (x2) $5 #1 @home", "shaped x2 5 1 home"),
    ("...", ""),
])
def test_canonical_text_follows_open_clip(text, canonical):
    assert canonicalize_text(text) == canonical


def test_siglip_texts_are_canonicalised_clip_texts_are_not(sig_dir, tiny_embedder):
    embedder = _load(sig_dir)
    a, b = embedder.embed_texts(["A Photo of a DOG!", "a photo of a dog"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    a, b = tiny_embedder.embed_texts(["A Photo of a DOG!", "a photo of a dog"])
    assert float(a @ b) < 0.9999


def test_siglip_text_embeddings_equal_the_model_on_max_length_padding(sig_dir):
    """Our texts → the model's own ``get_text_features`` on the tokenizer's
    ``max_length`` (64) padding, one text or many (cosine ≥ 0.9999)."""
    embedder = _load(sig_dir)
    texts = ["a photo of a dog", "a cup of coffee on a table", "an astronaut", "x"]
    ours = embedder.embed_texts(texts)
    assert float(np.sum(ours * _reference_text(embedder, texts), axis=1).min()) >= 0.9999
    alone = np.concatenate([embedder.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(ours, alone, atol=1e-5)


def test_padding_to_the_longest_would_give_other_embeddings(sig_dir):
    """The trap the padding rule avoids: the text tower pools the last
    position, so ``padding=True`` changes what it sees."""
    embedder = _load(sig_dir)
    texts = ["a photo of a dog", "a dog"]
    ours = embedder.embed_texts(texts)
    longest = _reference_text(embedder, texts, padding=True)
    assert float(np.sum(ours * longest, axis=1).min()) < 0.999
    assert all(v.shape[-1] == 64 for v in embedder.text_inputs(texts).values())


# --------------------------------------------------------------------------- images


def test_siglip_image_embeddings_equal_the_model_on_the_processor_inputs(sig_dir, photos):
    """Full-resolution photos through our torch preprocessing → the model's
    own ``get_image_features`` on the HF processor's inputs (cosine ≥ 0.9999)."""
    import torch
    from transformers import AutoImageProcessor

    embedder = _load(sig_dir)
    processor = AutoImageProcessor.from_pretrained(sig_dir)
    for name, photo in photos.items():
        inputs = processor(images=[Image.fromarray(photo)], return_tensors="pt")
        with torch.inference_mode():
            ref = _unit(embedder.model.get_image_features(**inputs))
        ours = embedder.embed_images(photo[None])
        assert float(ours[0] @ ref[0]) >= 0.9999, name


@pytest.mark.parametrize("max_num_patches", [64, 256, 1024])
def test_naflex_preprocessing_matches_the_processor_on_real_photos(photos, max_num_patches):
    """At SigLIP 2's real patch size: the same patch grid and mask, and every
    pixel within one uint8 step of transformers' processor."""
    import torch
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

    from pipeline.embed.preprocess import naflex_inputs
    from pipeline.embed.siglip import Siglip2Family

    processor = Siglip2ImageProcessorPil(patch_size=16, max_num_patches=max_num_patches)
    spec = Siglip2Family().preprocess_spec(processor)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    scale, shift = spec.rescale / std, torch.tensor(spec.mean).view(1, 3, 1, 1) / std
    for name, photo in photos.items():
        ref = processor(images=[Image.fromarray(photo)], return_tensors="pt")
        ours = naflex_inputs(torch, torch.from_numpy(photo)[None].permute(0, 3, 1, 2), spec, scale, shift)
        assert ours["spatial_shapes"].tolist() == ref["spatial_shapes"].tolist(), name
        assert torch.equal(ours["pixel_attention_mask"], ref["pixel_attention_mask"].to(torch.int32)), name
        diff = (ours["pixel_values"] - ref["pixel_values"]).abs()
        assert float(diff.max()) <= LEVEL + 1e-6 and float(diff.mean()) < 0.002, name


def test_siglip2_decoder_resized_frames_match_full_resolution(siglip2_dir, photos):
    """The fast path (the decoder resizes to ``input_size`` first, never
    upsampling past the NaFlex target) against the processor on the full
    photo: cosine ≥ 0.999 where the patch grid is kept. The decoder's
    rounding of the long side can move the grid by one patch (one photo
    here; 3 in 738 frame sizes at 256 patches of 16)."""
    import torch
    from transformers import AutoImageProcessor

    from pipeline.embed.preprocess import naflex_size

    embedder = _load(siglip2_dir)
    spec, processor = embedder.preprocess_spec, AutoImageProcessor.from_pretrained(siglip2_dir)
    kept = 0
    for name, photo in photos.items():
        h, w = photo.shape[:2]
        scale = embedder.input_size / min(h, w)
        small = np.asarray(Image.fromarray(photo).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
        grids = [naflex_size(*im.shape[:2], spec.patch_size, spec.max_num_patches) for im in (photo, small)]
        assert all(abs(a - b) <= spec.patch_size for a, b in zip(*grids)), name
        if grids[0] != grids[1]:
            continue
        kept += 1
        inputs = processor(images=[Image.fromarray(photo)], return_tensors="pt")
        with torch.inference_mode():
            ref = _unit(embedder.model.get_image_features(**inputs))
        assert float(embedder.embed_images(small[None])[0] @ ref[0]) >= 0.999, name
    assert kept >= 3


def test_siglip_scores_equal_the_zero_shot_pipeline(sig_dir, photos):
    """sigmoid(logit_scale · cos + logit_bias) from our vectors equals
    transformers' ``zero-shot-image-classification`` pipeline within 1e-4."""
    from transformers import pipeline

    embedder = _load(sig_dir)
    labels = ["cat", "dog", "cup of coffee", "astronaut"]
    classify = pipeline("zero-shot-image-classification", model=str(sig_dir), device="cpu")
    texts = embedder.embed_texts([f"a photo of {label}" for label in labels])  # already canonical
    for name, photo in photos.items():
        ref = {r["label"]: r["score"] for r in classify(Image.fromarray(photo), candidate_labels=labels,
                                                         hypothesis_template="a photo of {}")}
        logits = embedder.logit_scale * embedder.embed_images(photo[None])[0] @ texts.T + embedder.logit_bias
        ours = 1 / (1 + np.exp(-logits))
        np.testing.assert_allclose(ours, [ref[label] for label in labels], atol=1e-4, err_msg=name)


# --------------------------------------------------------------------------- still pictures


@pytest.fixture(scope="module")
def still_files(tmp_path_factory, photos) -> list[str]:
    """Photo files as a run gets them: the sample photos and the
    scikit-image/matplotlib ones (saved as PNG: odd sizes, a square one)."""
    folder = tmp_path_factory.mktemp("stills")
    for name, photo in photos.items():
        Image.fromarray(photo).save(folder / f"{name}.png")
    shipped = Path(__file__).parent.parent / "sample_videos"
    return sorted(str(p) for p in (*shipped.glob("*.jpg"), *folder.glob("*.png")))


class _Recording:
    """An embedder's runtime that keeps what its image tower was given."""

    def __init__(self, runtime) -> None:
        self.runtime, self.image_inputs = runtime, []

    def image_features(self, inputs):
        self.image_inputs.append(inputs)
        return self.runtime.image_features(inputs)

    def text_features(self, inputs):
        return self.runtime.text_features(inputs)


@pytest.mark.parametrize("family", ["clip", "siglip", "siglip2"])
def test_a_still_reaches_the_tower_as_the_processor_prepares_it(request, family, still_files):
    """A still picture decoded as a run decodes it, then the embedder's steps:
    the image tower gets the processor's inputs (pixels, and NaFlex's mask and
    patch grid) to float rounding, whichever runtime then runs the tower."""
    import torch
    from transformers import AutoImageProcessor
    from transformers.image_utils import load_image

    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    folder = request.getfixturevalue("tiny_model_dir" if family == "clip" else f"{family}_dir")
    embedder = _load(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    embedder.runtime = recording = _Recording(embedder.runtime)
    for path in still_files:
        opened = open_decoder(path, short_side=embedder.input_size, still_resize=embedder.still_resize)
        with opened as decoder:
            embedder.embed_images(next(decoder.frames(Sampling())).image[None])
        ours, ref = recording.image_inputs[-1], processor(images=[load_image(path)], return_tensors="pt")
        assert set(ours) == set(ref), path
        for key, expected in ref.items():
            if expected.is_floating_point():
                assert ours[key].shape == expected.shape, (path, key)
                assert float((ours[key] - expected).abs().max()) <= 1e-5, (path, key)
            else:
                assert torch.equal(ours[key].long(), expected.long()), (path, key)


# family -> (transformers' Pillow processor, its size settings for a target side)
PROCESSORS = {
    "clip": ("CLIPImageProcessorPil", lambda side: {"size": {"shortest_edge": side},
                                                    "crop_size": {"height": side, "width": side}}),
    "siglip": ("SiglipImageProcessorPil", lambda side: {"size": {"height": side, "width": side + 3}}),
}


@settings(max_examples=60)
@given(family=st.sampled_from(sorted(PROCESSORS)), side=st.integers(1, 48),
       resample=st.integers(0, 5),  # every PIL filter: nearest, lanczos, bilinear, bicubic, box, hamming
       height=st.integers(1, 96), width=st.integers(1, 96), seed=st.integers(0, 2**16))
def test_resize_still_is_the_processors_resize(family, side, resample, height, width, seed):
    """Any picture size, target and Pillow filter a processor config can
    name: :func:`resize_still` gives the processor's resized pixels exactly."""
    import transformers

    from pipeline.embed.preprocess import resize_still

    name, kwargs = PROCESSORS[family]
    processor = getattr(transformers, name)(resample=resample, **kwargs(side))
    picture = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))
    ref = processor(images=[picture], do_center_crop=False, do_rescale=False, do_normalize=False,
                    return_tensors="np")["pixel_values"][0]
    ours = np.asarray(resize_still(picture, family_for(family).preprocess_spec(processor)))
    np.testing.assert_array_equal(ours, ref.transpose(1, 2, 0))


@settings(max_examples=300)
@given(patch=st.sampled_from([8, 14, 16]), max_patches=st.sampled_from([64, 256, 729, 1024]),
       height=st.integers(16, 4096), width=st.integers(16, 4096))
def test_a_picture_at_its_naflex_size_is_not_resized_again(patch, max_patches, height, width):
    """The embedder recomputes a NaFlex frame's target from its size: a
    still resized to its target must map to itself, or it is resized twice."""
    from pipeline.embed.preprocess import naflex_size

    target = naflex_size(height, width, patch, max_patches)
    assert naflex_size(*target, patch, max_patches) == target


def test_siglip2_runs_in_bf16(siglip2_dir, photos):
    """The patch sequence is cast to the weights' dtype; bf16 agrees with fp32."""
    images = np.stack([np.asarray(Image.fromarray(p).resize((96, 64))) for p in photos.values()])
    fp32 = _load(siglip2_dir).embed_images(images)
    bf16 = load_embedder(str(siglip2_dir), device="cpu", precision="bf16").embed_images(images)
    assert bf16.dtype == np.float32 and float(np.sum(fp32 * bf16, axis=1).min()) > 0.98


# --------------------------------------------------------------------------- remote code


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_a_model_folder_asking_for_remote_code_is_refused(tiny_model_dir, tmp_path, config_file):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    path = folder / config_file
    config = json.loads(path.read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel", "AutoTokenizer": ["tok.Evil", None]}
    path.write_text(json.dumps(config), encoding="utf-8")
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n", encoding="utf-8")
    with pytest.raises(ModelLoadError) as info:
        load_embedder(str(folder), device="cpu")
    message = str(info.value)
    assert "\n" not in message and "its own code" in message and config_file in message


# --------------------------------------------------------------------------- know your model


def _run_config(model_dir: Path):
    from pipeline.config import parse_config

    return parse_config({"model": {"id": str(model_dir), "device": "cpu", "precision": "fp32"},
                         "sampling": {"every_seconds": 0.5},
                         "labels": [{"name": n} for n in ("red", "blue", "green")]})


def test_summary_and_store_record_the_family_and_the_prompt_cache_the_bias(tmp_path, siglip2_dir,
                                                                          monkeypatch):
    """summary.json names the family (run and rescore), the store keeps it,
    and the prompt cache keeps ``logit_bias`` beside ``logit_scale``: a
    sigmoid rescore from the cache alone scores as the run did, without the model."""
    pytest.importorskip("lancedb")
    from media import make_clip

    from pipeline.run.job import RunOptions, run_job
    from pipeline.run.rescore import rescore_job
    from pipeline.store.db import EmbeddingStore

    clip = str(make_clip(tmp_path / "clip.mp4", seconds=2, fps=10, size=(96, 64)))
    config = _run_config(siglip2_dir)
    assert run_job([clip], config, tmp_path / "out", RunOptions(progress=False)).exit_code == 0
    summary = json.loads((tmp_path / "out" / "clip" / "summary.json").read_text(encoding="utf-8"))
    assert summary["model"]["family"] == "siglip2"
    store = EmbeddingStore.open(tmp_path / "out" / "store")
    assert store.model_family == "siglip2"
    kept = store.text_calibration(store.model_id, store.model_revision)
    assert kept == {"logit_scale": pytest.approx(10.0), "logit_bias": pytest.approx(-5.0),
                    "family": "siglip2"}
    monkeypatch.setattr("pipeline.prepare.load_model", _must_not_load)
    assert rescore_job(config, tmp_path / "out" / "store", tmp_path / "re").exit_code == 0
    rescored = json.loads((tmp_path / "re" / "clip" / "summary.json").read_text(encoding="utf-8"))
    assert rescored["model"]["family"] == "siglip2"
    assert rescored["scoring"] == summary["scoring"] == {"mode": "sigmoid"}
    frames = [(tmp_path / d / "clip" / "frames.csv").read_text(encoding="utf-8") for d in ("out", "re")]
    assert frames[0] == frames[1]


def _must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded")


def test_a_prompt_cache_made_before_the_bias_was_kept_gains_it(tmp_path):
    """Old cached rows stay usable; the bias is unknown (None) until a prompt
    is cached with it, and then it is the new rows'."""
    pytest.importorskip("lancedb")
    import pyarrow as pa

    from pipeline.store.db import EmbeddingStore

    store = EmbeddingStore.open(tmp_path / "store", create=True)
    old = np.eye(4, dtype=np.float32)[:1]
    store.put_texts(["warm up"], old, model_id="m", revision="r1", precision="fp32", logit_scale=10.0)
    shutil.rmtree(tmp_path / "store" / "texts.lance")  # as a store of the previous layout had it
    rows = {"model_id": ["m"], "model_revision": ["r1"], "precision": ["fp32"], "logit_scale": [10.0],
            "text": ["old prompt"], "vector": pa.array(list(old), pa.list_(pa.float32(), 4))}
    store._db.create_table("texts", pa.table(rows))
    store = EmbeddingStore.open(tmp_path / "store")
    assert store.text_calibration("m", "r1") is None
    assert set(store.text_vectors("m", "r1", ["old prompt"])[0]) == {"old prompt"}
    store.put_texts(["new prompt"], np.eye(4, dtype=np.float32)[1:2], model_id="m", revision="r1",
                    precision="fp32", logit_scale=10.0, logit_bias=-5.0, family="siglip")
    store = EmbeddingStore.open(tmp_path / "store")
    assert store.text_calibration("m", "r1") == {"logit_scale": 10.0, "logit_bias": -5.0, "family": "siglip"}
    assert set(store.text_vectors("m", "r1", ["old prompt", "new prompt"])[0]) == {"old prompt", "new prompt"}
