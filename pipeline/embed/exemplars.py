"""Example pictures of a label (``labels[].images``, ``negative_images``)
turned into embeddings.

Each picture is decoded by the project's image decoder, shrunk to the
model's input size as video frames are (an area-like filter, then torch), and
embedded by the model's image tower. Not with the processor's own resize, as
a still-image input is: the pictures are matched against frames, and the
demo's skull crops resized the processor's way found their segment at IoU
0.57 instead of >= 0.8. ``run`` and ``rescore`` put this behind the
store's picture cache (:func:`pipeline.store.cache.cached_picture_embedder`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.decode.images import ImageDecoder
from pipeline.types import ConfigError, PipelineError, Sampling


def picture_embedder(embedder) -> Callable[[list[str]], np.ndarray]:
    """``paths → N x D`` normalised embeddings, one image-tower call per picture
    (pictures differ in size; a label has few)."""

    def embed(paths: list[str]) -> np.ndarray:
        return np.stack([embedder.embed_images(_decoded(path, embedder.input_size)[None])[0]
                         for path in paths]) if paths else np.zeros((0, embedder.dim), np.float32)

    return embed


def _decoded(path: str, short_side: int) -> np.ndarray:
    """The picture as the decoder gives a still image: upright RGB, resized."""
    try:
        # the decoder open_decoder gives a still image, whatever the file's extension
        with ImageDecoder(path, short_side=short_side) as decoder:
            frame = next(iter(decoder.frames(Sampling(every_seconds=1.0))))
    except (PipelineError, StopIteration) as ex:
        raise ConfigError(f"example picture {path}: {ex}") from ex
    return frame.image
