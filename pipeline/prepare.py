"""What a job sets up before its first frame: the model, the embedding
store it keeps frames (and prompts) in, and the classifier.

Shared by file runs (:mod:`pipeline.run.job`, :mod:`pipeline.run.rescore`)
and live runs (:mod:`pipeline.live.session`), so both load the model the
same way, cache prompts and example pictures in the same store, and record
the same provenance. Heavy libraries (torch, lancedb) load only when a
function here is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.analysis.score import Classifier, build_classifier
from pipeline.config import Config


class StoreOptions(Protocol):
    """What :func:`open_cache` reads of a run's options
    (:class:`pipeline.run.job.RunOptions` has these)."""

    store: Path | None  # embedding store; None: <out_dir>/store
    use_store: bool
    use_cache: bool  # reuse stored embeddings instead of decoding
    store_wait_s: float | None  # a store write waits this long for another writer


@dataclass(frozen=True)
class Provenance:
    """Which model made the embeddings a result was scored from."""

    model_id: str
    revision: str | None
    precision: str
    family: str = ""
    runtime: str = ""
    auto: dict | None = field(default=None, compare=False)  # how auto chose runtime/precision, when it did

    @classmethod
    def of(cls, embedder) -> Provenance:
        return cls(embedder.model_id, embedder.revision, embedder.precision, getattr(embedder, "family", ""),
                   getattr(getattr(embedder, "runtime", None), "name", "torch"),
                   getattr(embedder, "auto_choice", None))

    @classmethod
    def stored(cls, model_id: str, revision: str | None, label: str, family: str) -> Provenance:
        """From a store's precision label (``bf16``, ``openvino-int8``: see Embedder.precision_label)."""
        from pipeline.embed.runtime import split_label

        runtime, precision = split_label(label)
        return cls(model_id, revision, precision, family, runtime if label else "")


def load_model(config: Config, model_id: str | None = None, revision: str | None = None,
               stored: list[str] | None = None):
    """``config``'s model (or ``model_id`` at ``revision``), on the device,
    precision, batch size and runtime the config asks for; ``stored``: the
    precision labels of stored frames the model must match (see
    :func:`pipeline.embed.load_embedder`)."""
    from pipeline.embed import load_embedder
    from pipeline.embed.load import hub_revision

    m = config.model
    model_id, revision = (model_id, revision) if model_id else (m.id, m.revision)
    return load_embedder(model_id, revision=hub_revision(revision), device=m.device, precision=m.precision,
                         batch_size=m.batch_size, compile_model=m.compile, runtime=m.runtime, stored=stored)


def text_embedder(store, embedder) -> Callable[[list[str]], np.ndarray]:
    """The embedder's text function, behind ``store``'s prompt cache when given."""
    if store is None:
        return embedder.embed_texts
    from pipeline.store.cache import cached_text_embedder

    return cached_text_embedder(store, embedder)


def example_embedder(config: Config, store, embedder) -> Callable[[list[str]], np.ndarray]:
    """The labels' example pictures → embeddings, behind ``store``'s picture cache when given."""
    from pipeline.embed.exemplars import picture_embedder

    if store is None:
        return picture_embedder(embedder)
    from pipeline.store.cache import cached_picture_embedder

    return cached_picture_embedder(store, embedder, config.image_hashes(), picture_embedder(embedder))


def open_cache(config: Config, options: StoreOptions, embedder, out_dir: Path):
    """The run's embedding store (:func:`pipeline.store.cache.open_run_cache`):
    ``options.store``, else ``<out_dir>/store``; None under ``use_store=False``."""
    if not options.use_store:
        return None
    from pipeline.store.cache import open_run_cache

    d = config.decoder
    return open_run_cache(options.store or out_dir / "store", embedder,
                          config.sampling.to_sampling(), strategy=d.strategy, backend=d.backend,
                          use_cache=options.use_cache, required=options.store is not None,
                          wait_s=options.store_wait_s)


def run_classifier(config: Config, embedder, cache) -> Classifier:
    """The classifier of a run that embeds frames with ``embedder``: its
    prompts and example pictures go through ``cache``'s store (from
    :func:`open_cache`), unless there is none or ``--no-cache`` asks to
    embed afresh."""
    texts_from = cache.store if cache and cache.use_cache else None
    return build_classifier(config, text_embedder(texts_from, embedder), embedder.logit_scale,
                            logit_bias=embedder.logit_bias, native_rule=embedder.scoring_rule,
                            embed_pictures=example_embedder(config, texts_from, embedder))
