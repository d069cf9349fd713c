"""The embedder, loaded through the production path from a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.embed import load_embedder, resolve_precision
from pipeline.types import ModelLoadError


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful picture: resampling differences stay small on it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    chans = [np.sin(xx * rng.uniform(2, 6) + yy * rng.uniform(2, 6) + rng.uniform(0, 3)) for _ in range(3)]
    return ((np.stack(chans, -1) + 1) * 127.5).astype(np.uint8)


def test_vectors_are_unit_length_and_deterministic(tiny_embedder):
    images = np.stack([smooth_image(32, 48, s) for s in range(5)])
    a = tiny_embedder.embed_images(images)
    b = tiny_embedder.embed_images(images)
    assert a.shape == (5, tiny_embedder.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)


def test_batching_does_not_change_results(tiny_model_dir):
    images = np.stack([smooth_image(32, 32, s) for s in range(7)])
    one = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", batch_size=1)
    many = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", batch_size=4)
    np.testing.assert_allclose(one.embed_images(images), many.embed_images(images), atol=1e-5)


def test_torch_preprocessing_matches_the_reference_processor(tiny_embedder, tiny_model_dir):
    """Our on-device crop/normalise must agree with CLIPImageProcessor on the
    same decoder-resized frame (cosine ≥ 0.999)."""
    import torch
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor.from_pretrained(tiny_model_dir)
    for seed in range(3):
        frame = smooth_image(32, 57, seed)  # short side already = input size, as the decoder gives
        ours = tiny_embedder.embed_images(frame[None])[0]
        pixels = processor(images=Image.fromarray(frame), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = tiny_embedder.model.get_image_features(pixel_values=pixels)
        ref = getattr(out, "pooler_output", out)[0].numpy()
        ref = ref / np.linalg.norm(ref)
        assert float(ours @ ref) >= 0.999


def test_text_embeddings_unit_and_distinct(tiny_embedder):
    vecs = tiny_embedder.embed_texts(["a photo of a cat.", "a photo of a dog."])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert float(vecs[0] @ vecs[1]) < 0.9999


def test_bf16_agrees_with_fp32(tiny_model_dir):
    images = np.stack([smooth_image(32, 32, s) for s in range(4)])
    fp32 = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32").embed_images(images)
    bf16 = load_embedder(str(tiny_model_dir), device="cpu", precision="bf16").embed_images(images)
    assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.98


def test_revision_is_a_content_hash_for_local_folders(tiny_embedder):
    assert tiny_embedder.revision.startswith("sha256:")


def test_precision_auto_rules():
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")


def test_missing_local_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelLoadError) as info:
        load_embedder(str(tmp_path / "no-such-model"))
    assert "\n" not in str(info.value) and "no-such-model" in str(info.value)


def test_uncached_hub_model_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelLoadError) as info:
        load_embedder("someorg/not-a-cached-model")
    message = str(info.value)
    assert "scenetag download-model someorg/not-a-cached-model" in message and "\n" not in message


@pytest.mark.parametrize("clip", ["photos_montage.mp4", "demo_street.mp4"])
def test_decoder_resize_plus_torch_preprocessing_match_reference_on_sample_clips(clip, tmp_path):
    """The fast path (resize in the decoder, crop/normalise in torch) against
    the tutorial path (full-resolution frame → CLIPImageProcessor) on real
    clips, at CLIP's 224 px input: cosine ≥ 0.999 for every frame."""
    import torch
    from tiny_model import build_tiny_clip
    from transformers import CLIPImageProcessor

    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    path = Path(__file__).parent.parent / "sample_videos" / clip
    folder = build_tiny_clip(tmp_path / "clip224", image_size=224, patch_size=32)
    embedder = load_embedder(str(folder), device="cpu", precision="fp32")
    sampling = Sampling(every_seconds=3.0)
    with open_decoder(str(path), short_side=embedder.input_size, strategy="exact") as dec:
        ours = embedder.embed_images(np.stack([f.image for f in dec.frames(sampling)]))
    with open_decoder(str(path), strategy="exact") as dec:
        full = [Image.fromarray(f.image) for f in dec.frames(sampling)]
    pixels = CLIPImageProcessor.from_pretrained(folder)(images=full, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = embedder.model.get_image_features(pixel_values=pixels)
    ref = getattr(out, "pooler_output", out).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert len(ours) == len(ref) >= 5
    assert float(np.sum(ours * ref, axis=1).min()) >= 0.999


def test_texts_are_embedded_in_bounded_batches(tiny_model_dir, monkeypatch):
    from pipeline.embed import embedder as embedder_module

    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32")
    monkeypatch.setattr(embedder_module, "TEXT_BATCH", 7)
    seen: list[int] = []
    real = embedder.model.get_text_features

    def spy(**tokens):
        seen.append(int(tokens["input_ids"].shape[0]))
        return real(**tokens)

    monkeypatch.setattr(embedder.model, "get_text_features", spy)
    texts = [f"a photo of thing {i}." for i in range(30)]
    together = embedder.embed_texts(texts)
    assert seen and max(seen) <= 7 and sum(seen) == 30
    one_by_one = np.concatenate([embedder.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert embedder.embed_texts([]).shape == (0, embedder.dim)


@pytest.mark.parametrize("model_id", ["./no-such-model", "no/such/model", "~/no-such-model-here"])
def test_local_looking_missing_model_never_suggests_download(model_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_embedder(model_id)
    message = str(info.value)
    assert message.startswith("no model folder at /") and "download-model" not in message


def _damaged_copy(src: Path, dst: Path, damage) -> str:
    import shutil

    shutil.copytree(src, dst)
    damage(dst)
    return str(dst)


def _lying_header(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = (10**12).to_bytes(8, "little")  # claims a terabyte of header
    weights.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: (d / "config.json").write_text("{not json", encoding="utf-8"), "config.json is invalid"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
     "weights are damaged"),
    (_lying_header, "weights are damaged"),
])
def test_damaged_model_folders_say_what_is_wrong(tiny_model_dir, tmp_path, damage, fragment):
    folder = _damaged_copy(tiny_model_dir, tmp_path / "m", damage)
    with pytest.raises(ModelLoadError) as info:
        load_embedder(folder, device="cpu")
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert "Hugging Face cache" not in message and "download-model" not in message
