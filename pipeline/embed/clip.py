"""CLIP (OpenAI CLIP and transformers' ``clip`` models): the base family.

Resize the short side, centre-crop, normalise with the processor's constants;
texts padded to the longest in the batch (the end token is pooled, so padding
does not change an embedding); scored with a softmax over labels, as
contrastive training does.
"""

from __future__ import annotations

from pipeline.embed.family import Family


class ClipFamily(Family):
    """transformers' ``clip`` model type: the :class:`Family` defaults."""

    name = "clip"
    scoring_rule = "softmax"
    padding = True
