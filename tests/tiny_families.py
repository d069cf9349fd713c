"""Tiny random-weight SigLIP and SigLIP 2 (NaFlex) saved as Hugging Face model folders.

Built at test time (no network) and loaded through the production loader.
Their tokenizers are ``tokenizers``-backed (no sentencepiece on this
machine): one token per character, with upper case and punctuation in the
vocabulary so that text cleaning changes the token ids. The text tower pools
the last position, so padding changes embeddings, as in the real models.
``logit_scale`` and ``logit_bias`` are set to trained-looking values
(exp(scale) = 10, bias = -5) instead of the zeros of a fresh model.
"""

from __future__ import annotations

import math
import string
from pathlib import Path

TEXT_LENGTH = 64  # SigLIP's trained text length
SPECIALS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def _vocab() -> dict[str, int]:
    vocab = dict(SPECIALS)
    for ch in "▁" + string.ascii_letters + string.digits + string.punctuation + "éï—“”½":
        vocab.setdefault(ch, len(vocab))
    return vocab


def _text_config(vocab: dict[str, int], tower: dict) -> dict:
    return {"vocab_size": len(vocab), "max_position_embeddings": TEXT_LENGTH, "pad_token_id": 0,
            "eos_token_id": 1, "bos_token_id": 2, **tower}


def _save_model(model, folder: Path) -> None:
    import torch

    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-5.0)
    model.save_pretrained(folder, safe_serialization=True)


def _siglip_tokenizer(vocab: dict[str, int]):
    """SigLIP-1-like: right padding, an end token appended (as T5's tokenizer does)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", model_max_length=TEXT_LENGTH, padding_side="right")


def build_tiny_siglip(folder: Path, *, seed: int = 0, image_size: int = 32, patch_size: int = 8,
                      tower: dict | None = None) -> Path:
    """A fixed-resolution SigLIP (model type ``siglip``), bicubic resize to a
    square. ``tower`` sizes both towers (default :data:`TOWER`, tiny; the
    families benchmark passes ViT-B sizes)."""
    tower = tower or TOWER
    import torch
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    _siglip_tokenizer(vocab).save_pretrained(folder)
    config = SiglipConfig(text_config=_text_config(vocab, tower),
                          vision_config={"image_size": image_size, "patch_size": patch_size, **tower})
    torch.manual_seed(seed)
    _save_model(SiglipModel(config), folder)
    SiglipImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def build_tiny_siglip2(folder: Path, *, seed: int = 0, patch_size: int = 8,
                       max_num_patches: int = 64, tower: dict | None = None) -> Path:
    """A SigLIP 2 NaFlex model (model type ``siglip2``) with transformers'
    SigLIP 2 tokenizer class; ``tower`` as for :func:`build_tiny_siglip`."""
    tower = tower or TOWER
    import torch
    from transformers import Siglip2Config, Siglip2Model
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil
    from transformers.models.siglip2.tokenization_siglip2 import Siglip2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=TEXT_LENGTH).save_pretrained(folder)
    config = Siglip2Config(text_config=_text_config(vocab, tower),
                           vision_config={"patch_size": patch_size, "num_patches": max_num_patches, **tower})
    torch.manual_seed(seed)
    _save_model(Siglip2Model(config), folder)
    Siglip2ImageProcessorPil(patch_size=patch_size, max_num_patches=max_num_patches).save_pretrained(folder)
    return folder


def sample_photos() -> dict[str, object]:
    """The real photos shipped with scikit-image and matplotlib (RGB uint8 arrays)."""
    import matplotlib
    import numpy as np
    from PIL import Image
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {"coffee": data.coffee(), "chelsea": data.chelsea(), "astronaut": data.astronaut(),
            "grace_hopper": np.asarray(Image.open(hopper).convert("RGB"))}
