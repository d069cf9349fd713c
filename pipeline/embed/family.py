"""The family interface: what differs between model families that were
trained differently (CLIP, SigLIP, SigLIP 2, ...).

A family says how its images are preprocessed, how its texts are cleaned
and tokenised, which model inputs it takes and how its makers score it. The
:class:`~pipeline.embed.embedder.Embedder` owns everything else (device,
precision, batching, normalising), so adding a family is one small module.
"""

from __future__ import annotations

from typing import Any

from pipeline.embed.preprocess import Preprocess

# PIL resampling codes (what processor configs store) → torch's interpolate modes.
_INTERPOLATION = {2: "bilinear", 3: "bicubic"}
_BICUBIC = 3  # what a processor naming no filter is taken to use


class Family:
    """One model family. Subclasses override what their training did differently.

    Attributes:
        name: ``"clip"``, ``"siglip"``, ``"siglip2"`` (recorded in results).
        scoring_rule: the rule the model was trained with: ``"softmax"`` over
            labels (contrastive) or ``"sigmoid"`` per label.
        padding: the tokenizer padding the text tower was trained with.
    """

    name = "clip"
    scoring_rule = "softmax"
    padding: bool | str = True

    def preprocess_spec(self, processor: Any) -> Preprocess:
        """The image preprocessing read from the model's image processor."""
        size = _as_dict(getattr(processor, "size", None))
        crop = _as_dict(getattr(processor, "crop_size", None)) \
            if getattr(processor, "do_center_crop", False) else {}
        resize_short = size.get("shortest_edge")
        resample = getattr(processor, "resample", None)
        resample = _BICUBIC if resample is None else int(resample)
        return Preprocess(
            resize_short=int(resize_short) if resize_short else None,
            resize_hw=(size["height"], size["width"]) if "height" in size else None,
            crop_hw=(crop["height"], crop["width"]) if "height" in crop else None,
            mean=tuple(float(m) for m in processor.image_mean),  # type: ignore[arg-type]
            std=tuple(float(s) for s in processor.image_std),  # type: ignore[arg-type]
            rescale=float(getattr(processor, "rescale_factor", 1 / 255)),
            interpolation=_interpolation(resample),
            resample=resample,
        )

    def clean_text(self, text: str) -> str:
        """The text as the family's training fed it to the tokenizer."""
        return text

    def text_inputs(self, tokenizer: Any, texts: list[str], max_length: int) -> dict[str, Any]:
        """Tokenise ``texts`` into the text tower's keyword arguments."""
        tokens = tokenizer([self.clean_text(t) for t in texts], padding=self.padding, truncation=True,
                           max_length=max_length, return_tensors="pt")
        return {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")}

    def image_inputs(self, embedder: Any, frames: Any) -> dict[str, Any]:
        """uint8 NHWC frames on the device → the image tower's keyword arguments."""
        return {"pixel_values": embedder.preprocess(frames)}

    def logit_bias(self, model: Any) -> float:
        """The bias added to scaled cosines before the scoring rule (0 for CLIP)."""
        bias = getattr(model, "logit_bias", None)
        return 0.0 if bias is None else float(bias.detach().float().reshape(-1)[0].item())


def _interpolation(resample: int) -> str:
    # Lanczos, nearest and others have no antialiased torch twin: bicubic is the nearest.
    return _INTERPOLATION.get(resample, "bicubic")


def _as_dict(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return {k: v for k, v in vars(value).items() if v is not None} if hasattr(value, "__dict__") else {}
