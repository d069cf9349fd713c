"""The run side of the store: which of a run's inputs are already embedded
(:func:`lookup`, :class:`RunCache`, :func:`open_run_cache`), keeping the new
ones and their shots, and the model's
text and picture embedders put behind the store's label caches
(:func:`embed_and_keep`, :func:`cached_text_embedder`,
:func:`cached_picture_embedder`).

This is policy, not storage: what counts as a hit (same content, model and
sampling), when a fresh input is kept, and that maintenance and the label
caches are optimisations only, whose failures are warnings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.engine.base import EmbeddedInput
from pipeline.store.db import COMPACT_MIN_FRAGMENTS, EmbeddingStore
from pipeline.store.keys import content_hashes, input_key, input_sampling, sampling_key
from pipeline.types import Sampling, StoreError

log = logging.getLogger(__name__)


def lookup(store: EmbeddingStore, paths: Sequence[str], *, model_id: str, revision: str | None,
           sampling_desc: str) -> tuple[dict[str, EmbeddedInput], dict[str, str]]:
    """Split ``paths`` into stored inputs and the content hashes of all.

    Returns:
        ``(hits, hashes)``: ``hits`` maps a path to its stored
        :class:`EmbeddedInput`; ``hashes`` maps every readable path to its
        content hash (unreadable ones are left to the decoder to report).
    """
    hashes = content_hashes(paths)
    if not store.same_model(model_id, revision):
        return {}, hashes  # a different model can only miss; put() will refuse clearly
    ident = store.stored_model_id(model_id, revision)
    keys = {path: input_key(h, ident, revision, input_sampling(path, sampling_desc))
            for path, h in hashes.items()}
    found = store.find(list(set(keys.values())))
    stored = {path: found[key] for path, key in keys.items() if key in found}
    for path, video in stored.items():
        here = os.path.abspath(path)
        # a moved file, or a path kept relative by an older scenetag: keep the absolute one
        if video.input_path != here and (not os.path.isabs(video.input_path)
                                         or not os.path.exists(video.input_path)):
            store.set_path(video.key, here)
    embedded = store.embedded_many(list(stored.values()), list(stored))
    return dict(zip(stored, embedded)), hashes


class RunCache:
    """What ``run`` needs from the store: which inputs are already embedded,
    and a place to keep the new ones. Used from the run's main thread only."""

    def __init__(self, store: EmbeddingStore, embedder, sampling: Sampling, sampling_desc: str,
                 *, use_cache: bool = True) -> None:
        self.store = store
        self.embedder = embedder
        self.sampling = sampling
        self.sampling_desc = sampling_desc
        self.use_cache = use_cache
        self.hashes: dict[str, str] = {}
        self.hits: set[str] = set()
        self.added = 0

    def split(self, paths: Sequence[str]) -> tuple[list[EmbeddedInput], list[str]]:
        """``(stored inputs, paths still to decode)``, each in input order."""
        e = self.embedder
        hits, self.hashes = lookup(self.store, paths, model_id=e.model_id, revision=e.revision,
                                   sampling_desc=self.sampling_desc)
        if not self.use_cache:
            hits = {}
        self.hits = set(hits)
        if hits:
            log.info("%d of %d inputs taken from the embedding store", len(hits), len(paths))
        return [hits[p] for p in paths if p in hits], [p for p in paths if p not in hits]

    def save(self, embedded: EmbeddedInput) -> None:
        """Keep a freshly embedded input (failed ones are not stored, nor
        cached ones unless edge refinement embedded new frames of them, or
        decoded new gaps of them for cut evidence)."""
        chash = self.hashes.get(embedded.path)
        grew = embedded.refine is not None and (embedded.refine.embedded > 0 or embedded.refine.scanned > 0)
        if (embedded.path in self.hits and not grew) or embedded.error is not None or chash is None \
                or not len(embedded.embeddings):
            return
        e = self.embedder
        self.store.put(embedded, chash=chash, sampling=self.sampling,
                       sampling_desc=input_sampling(embedded.path, self.sampling_desc), model_id=e.model_id,
                       revision=e.revision, precision=_precision_label(e), family=getattr(e, "family", None))
        self.added += 1
        if self.added % COMPACT_MIN_FRAGMENTS == 0:  # else each put slows the next (PERFORMANCE.md)
            self._maintain(self.store.compact)

    def save_shots(self, path: str, shots, *, config_hash: str = "") -> None:
        """Keep the shots ``run --shots`` found in ``path`` beside its stored
        frames (replacing earlier ones). An input the store does not hold
        keeps none; a store that refuses them costs a warning: shots add to
        a run, they never fail it."""
        chash = self.hashes.get(path)
        if chash is None or shots is None:
            return
        e = self.embedder
        key = input_key(chash, self.store.stored_model_id(e.model_id, e.revision), e.revision,
                        input_sampling(path, self.sampling_desc))
        try:
            self.store.put_shots(key, shots, config_hash=config_hash)
        except StoreError as ex:
            log.warning("%s: shots not kept in the embedding store: %s", path, ex)

    def finish(self) -> None:
        """After the run, when it kept anything: index and compact the store."""
        if self.added:
            self._maintain(self.store.ensure_index)
            self._maintain(self.store.compact)

    def _maintain(self, step: Callable[[], object]) -> None:
        """Index and compaction only speed the store up: a failure is a
        warning, not a reason to lose the run (a later run retries)."""
        try:
            step()
        except StoreError as ex:
            log.warning("embedding store maintenance skipped: %s", ex)


def open_run_cache(store_dir: str | os.PathLike, embedder, sampling: Sampling, *,
                   strategy: str, backend: str, use_cache: bool = True,
                   required: bool = True, wait_s: float | None = None) -> RunCache | None:
    """The run's view of the store at ``store_dir``, checked against the model.

    Args:
        required: False for the default store: without lancedb installed the
            run goes on without a store (with a warning) instead of failing.
        wait_s: how long each write waits for another writer (``--store-wait``).

    Raises:
        StoreError: the store is corrupt, newer, read-only, busy past
            ``wait_s``, or holds another model's vectors.
    """
    if not required:
        try:
            import lancedb  # noqa: F401
        except ImportError:
            log.warning("lancedb is not installed: embeddings are not stored "
                        "(pip install 'scenetag[store]', or pass --no-store)")
            return None
    store = EmbeddingStore.open(store_dir, create=True, wait_s=wait_s)
    store.check_model(embedder.model_id, embedder.revision, embedder.dim)
    store.check_writable()
    return RunCache(store, embedder, sampling,
                    sampling_key(sampling, strategy=strategy, backend=backend), use_cache=use_cache)


def embed_and_keep(store: EmbeddingStore, embedder, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Embed ``texts`` (ones the prompt cache lacks) and keep them there.

    The cache is an optimisation only: a store that cannot be written
    (read-only media) costs a warning, and the vectors are returned anyway.
    """
    vectors = embedder.embed_texts(list(texts))
    try:
        store.put_texts(texts, vectors, model_id=embedder.model_id, revision=embedder.revision,
                        precision=_precision_label(embedder), logit_scale=embedder.logit_scale,
                        logit_bias=getattr(embedder, "logit_bias", 0.0),
                        family=getattr(embedder, "family", None))
    except StoreError as ex:
        log.warning("prompt embeddings not cached: %s", ex)
    return dict(zip(texts, vectors))


def cached_text_embedder(store: EmbeddingStore, embedder) -> Callable[[list[str]], np.ndarray]:
    """``embedder.embed_texts`` behind the store's prompt cache: texts embedded
    before are looked up, new ones are embedded and kept (:func:`embed_and_keep`)."""

    def embed_texts(texts: list[str]) -> np.ndarray:
        found, _ = store.text_vectors(embedder.model_id, embedder.revision, texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(embed_and_keep(store, embedder, missing))
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, embedder.dim), np.float32)

    return embed_texts


def cached_picture_embedder(store: EmbeddingStore, embedder, hashes: dict[str, str],
                            embed_pictures: Callable[[list[str]], np.ndarray]
                            ) -> Callable[[list[str]], np.ndarray]:
    """``embed_pictures`` (paths → vectors) behind the store's picture cache,
    looked up by ``hashes`` (path → sha256 of its bytes, from the config):
    pictures embedded before by this model need no decode and no image tower.
    The cache is an optimisation only: a store that cannot be written costs a
    warning."""

    def embed(paths: list[str]) -> np.ndarray:
        found = store.picture_vectors(embedder.model_id, embedder.revision, [hashes[p] for p in paths])
        missing = list({hashes[p]: p for p in reversed(paths) if hashes[p] not in found}.values())
        if missing:
            vectors = embed_pictures(missing)
            found.update(zip((hashes[p] for p in missing), vectors))
            try:
                store.put_pictures([hashes[p] for p in missing], vectors, model_id=embedder.model_id,
                                   revision=embedder.revision, precision=_precision_label(embedder),
                                   family=getattr(embedder, "family", None))
            except StoreError as ex:
                log.warning("example-picture embeddings not cached: %s", ex)
        return np.stack([found[hashes[p]] for p in paths])

    return embed


def _precision_label(embedder: object) -> str:
    """What the ``precision`` columns keep: the precision, and the runtime when it is an
    exported one (``openvino-int8``); embedders without the label give their precision."""
    return getattr(embedder, "precision_label", embedder.precision)
