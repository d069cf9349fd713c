"""The offline demo model's tools: the scene renderer and a few training steps.

The shipped model (models/scenetag-demo-clip) is never retrained here; a
3-step run into tmp_path checks the training script end to end.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def render():
    return _load("render_scenes")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    train = _load("train_demo_model")
    out = tmp_path_factory.mktemp("demo") / "clip"
    train.main(["--out", str(out), "--steps", "3", "--train-size", "32", "--eval-size", "14",
                "--batch-size", "16"])
    return out


def test_render_is_deterministic_for_a_seed(render):
    a, cap_a = render.render_scene(np.random.default_rng(7), obj="car", background="street")
    b, cap_b = render.render_scene(np.random.default_rng(7), obj="car", background="street")
    c, _ = render.render_scene(np.random.default_rng(8), obj="car", background="street")
    assert cap_a == cap_b and cap_a.startswith("a photo of a") and cap_a.endswith("car on a street")
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("obj", ["coffee cup", "ball", "tree", "car", "house", "skull"])
def test_each_class_draws_something_on_the_empty_scene(render, obj):
    assert obj in render.CLASSES
    empty, caption = render.render_scene(np.random.default_rng(3), obj=None, background="kitchen", clutter=0)
    assert caption == "a photo of an empty kitchen"
    drawn = render.draw_object(empty.copy(), obj, (0.5, 0.5), 0.4, "red", np.random.default_rng(0))
    changed = np.any(np.asarray(drawn) != np.asarray(empty), axis=-1).mean()
    assert changed > 0.03, f"{obj} changed only {changed:.1%} of the pixels"


def test_training_writes_a_loadable_model(trained):
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    for name in ("model.safetensors", "config.json", "vocab.json", "merges.txt", "tokenizer.json",
                 "preprocessor_config.json", "README.md"):
        assert (trained / name).is_file(), name
    model = CLIPModel.from_pretrained(trained)
    tok = AutoTokenizer.from_pretrained(trained)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    assert eos == len(tok.get_vocab()) - 1 == model.config.text_config.eos_token_id

    ids = tok("a photo of a coffee cup.")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[1:-1] == ["a</w>", "photo</w>", "of</w>", "a</w>", "coffee</w>", "cup</w>", ".</w>"]
    assert ids[-1] == eos and eos not in ids[:-1]

    processor = CLIPImageProcessor.from_pretrained(trained)
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    pixels = processor(images=[frame], return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, 64, 64)
    out = model.get_image_features(pixel_values=pixels)
    emb = out if hasattr(out, "shape") else out.pooler_output  # transformers 4.x tensor / 5.x output
    assert tuple(emb.shape) == (1, model.config.projection_dim)
