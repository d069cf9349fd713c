"""The image/text embedding model behind one small interface.

:func:`load_embedder` loads a transformers model (a local folder or a Hub
id), picks its :class:`~pipeline.embed.family.Family` from the model type
(CLIP, SigLIP, SigLIP 2 NaFlex) and returns an :class:`Embedder` whose
``embed_images`` / ``embed_texts`` give L2-normalised float32 vectors, with
the model's own ``logit_scale``, ``logit_bias`` and ``scoring_rule``.

Modules: ``embedder`` (runtime: device, precision, batching), ``family``
(the per-family interface), ``clip`` and ``siglip`` (the families),
``preprocess`` (image preprocessing: torch for frames, Pillow for stills,
NaFlex included), ``text`` (SigLIP text canonicalisation), ``load``
(loading, refusals, download), ``runtime`` (torch, OpenVINO, ONNX Runtime),
``export`` (their export cache), ``choose`` (``precision: auto`` on one
runtime; the check and calibration images), ``auto`` and ``trial``
(``runtime: auto`` on a CPU: runtime and precision measured together),
``cpu`` (the CPU's signature), ``doctor`` (this machine's table),
``cpu_share`` (thread pools beside the decoder), ``scenes`` (drawn scenes).

Preprocessing runs in torch on the inference device: the decoder already
resized frames so their short side equals ``Embedder.input_size`` (a still
image to the processor's own target, with ``Embedder.still_resize``); here we
crop/resize, rescale and normalise with the model's own processor constants,
so transforms never drift from the weights.
"""

from pipeline.embed.embedder import AUTO_BATCH, TEXT_BATCH, Embedder, resolve_device, resolve_precision
from pipeline.embed.family import Family
from pipeline.embed.load import FAMILIES, download, family_for, load_embedder
from pipeline.embed.preprocess import Preprocess
from pipeline.embed.preprocess import center_crop as _center_crop
from pipeline.embed.preprocess import resize as _resize
from pipeline.embed.text import canonicalize_text

__all__ = ["AUTO_BATCH", "FAMILIES", "TEXT_BATCH", "Embedder", "Family", "Preprocess", "_center_crop",
           "_resize", "canonicalize_text", "download", "family_for", "load_embedder", "resolve_device",
           "resolve_precision"]
