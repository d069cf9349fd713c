"""SigLIP and SigLIP 2 (transformers' ``siglip`` and ``siglip2`` model types).

Both are sigmoid-trained: each label's probability is
``sigmoid(exp(logit_scale)·cos + logit_bias)``, independent of the others.
Their text tower pools the *last* position, so texts must be padded to the
trained ``max_length`` (64), and big_vision fed it canonical text (lower case,
no punctuation). ``siglip`` checkpoints take a fixed square input;
``siglip2`` ones are NaFlex: native aspect ratio, at most ``max_num_patches``
patches, fed as a padded patch sequence with a mask and the patch grid.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipeline.embed.family import Family
from pipeline.embed.preprocess import Preprocess, naflex_inputs
from pipeline.embed.text import canonicalize_text


class SiglipFamily(Family):
    """Fixed-resolution SigLIP (and SigLIP 2 checkpoints saved as ``siglip``)."""

    name = "siglip"
    scoring_rule = "sigmoid"
    padding = "max_length"

    def clean_text(self, text: str) -> str:
        return canonicalize_text(text)


class Siglip2Family(SiglipFamily):
    """SigLIP 2 NaFlex checkpoints (model type ``siglip2``)."""

    name = "siglip2"

    def preprocess_spec(self, processor: Any) -> Preprocess:
        base = super().preprocess_spec(processor)
        return replace(base, resize_short=None, resize_hw=None, crop_hw=None,
                       patch_size=int(processor.patch_size), max_num_patches=int(processor.max_num_patches))

    def image_inputs(self, embedder: Any, frames: Any) -> dict[str, Any]:
        import torch

        inputs = naflex_inputs(torch, frames.permute(0, 3, 1, 2), embedder.preprocess_spec,
                               embedder.pixel_scale, embedder.pixel_shift)
        inputs["pixel_values"] = inputs["pixel_values"].to(embedder.model_dtype())
        return inputs
