"""Rescoring a store: its embeddings scored with another config, every
report written as ``run`` writes it, and nothing decoded that the store holds.

Edge refinement works from the refinement frames the store kept; only the
frames new thresholds need that it lacks are decoded (from the input, when
it is still there unchanged) and embedded with the store's model, then kept
too (:class:`_StoredProber`). The model is loaded only when the store's
text and picture caches lack something the config needs
(:func:`rescore_classifier`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from pipeline import prepare
from pipeline.analysis.score import Classifier, build_classifier, prompt_texts
from pipeline.config import Config, SamplingConfig
from pipeline.decode import open_decoder
from pipeline.decode.gaps import is_live
from pipeline.engine.base import EmbeddedInput
from pipeline.prepare import Provenance
from pipeline.run.index import write_run_outputs
from pipeline.run.inputs import existing_outputs, output_names
from pipeline.run.job import RunReport, handle_input
from pipeline.types import StoreError

log = logging.getLogger(__name__)


def rescore_job(config: Config, store_dir: Path, out_dir: Path, *, model: str | None = None,
                embedder=None) -> RunReport:
    """Score stored embeddings with ``config``'s labels and write every report
    as ``run_job`` would, without decoding the sampled frames. Edge
    refinement works from the refinement frames the store kept, and decodes
    and embeds (with the store's model) only the frames new thresholds need
    that it lacks, keeping them too. The model is the store's, unless
    ``model`` names another of the same dimension; it is not even loaded when
    the store's text cache holds every prompt of ``config``."""
    from pipeline.store.db import EmbeddingStore

    store = EmbeddingStore.open(store_dir)
    videos = {v.input_path: v for v in store.videos()}  # newest copy per input wins
    if not videos:
        raise StoreError(f"embedding store {store_dir} holds no embeddings")
    model = None if model == store.model_id else model  # naming the store's own model
    classifier, model_id, revision = rescore_classifier(config, store, model, embedder)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, run = _rescore_names(list(videos.values()), existing_outputs(out_dir)), RunReport()
    stored = list(videos.values())
    # the store's model's family (unknown in stores made before it was kept)
    family = (store.model_family if model is None else getattr(embedder, "family", None)) or ""
    _warn_stored_sampling(config, stored)
    if config.shots.enabled:  # shots decode every frame; rescore reads the store alone
        log.warning("rescore never decodes every frame: shots are left out (scenetag run --shots finds them)")
        config = config.model_copy(update={"shots": config.shots.model_copy(update={"enabled": False})})
    prober = _StoredProber(config, store, embedder if model is None else None, allowed=model is None)
    for video, embedded in zip(stored, store.embedded_many(stored)):
        cfg = config.model_copy(update={"sampling": SamplingConfig.of(video.sampling_obj)})
        if cfg.segments.refine and not is_live(embedded.stats):  # a stream cannot be read again
            embedded = prober.refine(embedded, video, cfg, classifier)
        # the precision is the stored frames': it is what the scores rest on
        provenance = Provenance.stored(model_id, revision, video.precision, family)
        handle_input(embedded, config=cfg, classifier=classifier,
                     provenance=provenance, names=names, out_dir=out_dir, run=run)
    write_run_outputs(run.results, run.images, out_dir, config.output.formats)
    return run


def _rescore_names(stored: Sequence, existing: dict[str, str | None]) -> dict[str, str]:
    """Folder names for rescored inputs: a file's as ``run`` names it, a live
    stream's as its live run did (from its address: ``cam1-554-stream1``)."""
    from pipeline.live.session import live_names
    from pipeline.live.sources import LiveSource, live_kind

    streams = [v.input_path for v in stored if is_live(v.stats)]
    names = output_names([v.input_path for v in stored if v.input_path not in streams], existing)
    sources = {path: LiveSource(path, live_kind(path) or "file") for path in streams}
    by_source = live_names(list(sources.values()), existing, set(names.values()))
    return {**names, **{path: by_source[source] for path, source in sources.items()}}


class _StoredProber:
    """Edge refinement for ``rescore``: frames the store lacks are decoded
    from the input, when it is still there unchanged, and embedded with the
    store's model (loaded on first need), then kept in the store."""

    def __init__(self, config: Config, store, embedder, *, allowed: bool) -> None:
        self.config, self.store, self.embedder, self.allowed = config, store, embedder, allowed

    def refine(self, embedded: EmbeddedInput, video, config: Config, classifier: Classifier) -> EmbeddedInput:
        from pipeline.run import refine as refine_rounds

        probe = partial(self._probe, video=video) if self.allowed else None
        scan = partial(self._scan, video=video) if self.allowed else None
        refined = refine_rounds.fetch([embedded], config, classifier, probe, scan)[0]
        if refined.refine is not None and (refined.refine.embedded or refined.refine.scanned):
            self._keep(refined, video)
        return refined

    def _probe(self, requests: dict[str, list[int]], *, video, frames=None) -> dict[str, EmbeddedInput]:
        path = next(iter(requests))
        if not self._unchanged(path, video):
            return {}  # left out: fetch gives this input's searches up
        return self._engine(video).probe(requests, self.embedder.embed_images, frames=frames)

    def _scan(self, requests: dict[str, list[tuple[int, int]]], *, video) -> dict:
        path = next(iter(requests))
        return self._engine(video).scan(requests) if self._unchanged(path, video) else {}

    def _unchanged(self, path: str, video) -> bool:
        from pipeline.store.keys import content_hash

        checked = getattr(self, "_checked", {})
        if (path, video.content_hash) not in checked:  # once per input: scan and probes ask
            try:
                same = content_hash(path) == video.content_hash
            except OSError:
                same = False
            if not same:
                log.warning("%s: missing or changed since it was stored; edges its stored frames do "
                            "not pin keep their sampled resolution", path)
            self._checked = checked | {(path, video.content_hash): same}
        return self._checked[(path, video.content_hash)]

    def _engine(self, video):
        if self.embedder is None:
            self.embedder = prepare.load_model(self.config, self.store.model_id, self.store.model_revision,
                                               stored=[video.precision])
        return _stored_engine(video, self.config, self.embedder)

    def _keep(self, embedded: EmbeddedInput, video) -> None:
        try:
            self.store.put(embedded, chash=video.content_hash, sampling=video.sampling_obj,
                           sampling_desc=video.sampling, model_id=self.store.model_id,
                           revision=self.store.model_revision, precision=video.precision,
                           family=self.store.model_family)
        except StoreError as ex:
            log.warning("refinement frames of %s not kept in the store: %s", embedded.path, ex)


def _stored_engine(video, config: Config, embedder):
    """A local engine decoding as the stored frames were (backend and
    strategy are the last parts of the stored sampling's description)."""
    from pipeline.decode import BACKENDS
    from pipeline.engine.local import LocalEngine

    parts = [p.strip() for p in video.sampling.split(";")]
    backend = parts[-1] if parts and parts[-1] in BACKENDS else config.decoder.backend
    opener = partial(open_decoder, backend=backend, short_side=embedder.input_size,
                     strategy=config.decoder.strategy, threads=config.decoder.threads)
    return LocalEngine(opener, video.sampling_obj, batch_size=embedder.batch_size)


def _warn_stored_sampling(config: Config, stored: Sequence) -> None:
    """Rescore never decodes, so frames come at the store's sampling: say so
    (once) when the config asks for another."""
    if "sampling" not in config.model_fields_set:
        return  # the config does not ask for any sampling
    wanted = config.sampling.to_sampling()
    kept = sorted({v.sampling_obj.describe() for v in stored
                   if v.sampling_obj is not None and v.sampling_obj != wanted})
    if kept:
        log.warning("rescore never decodes: using the store's sampling (%s), not the config's (%s)",
                    ", ".join(kept), wanted.describe())


def rescore_classifier(config: Config, store, model: str | None,
                       embedder) -> tuple[Classifier, str, str | None]:
    """The classifier for ``rescore`` and the id and revision of the model
    behind it. The prompts are looked up in the store's prompt cache once; the
    model is loaded only when some (or some example pictures, looked up in
    its picture cache) are missing (or for ``model``, another
    model, whose prompts the cache does not hold), or when the scores need
    the logit bias of a sigmoid model and the cache predates keeping it.
    Calibration (:mod:`pipeline.measure.calibrate`) scores a store with it too."""
    from pipeline.store.cache import embed_and_keep

    texts = list(dict.fromkeys(prompt_texts(config)))
    found, logit_scale = store.text_vectors(store.model_id, store.model_revision, texts) \
        if model is None else ({}, None)
    hashes = config.image_hashes()
    pictures = store.picture_vectors(store.model_id, store.model_revision, list(hashes.values())) \
        if model is None else {}
    missing_texts = [t for t in texts if t not in found]
    missing = missing_texts + [p for p, h in hashes.items() if h not in pictures]
    model_id, revision = store.model_id, store.model_revision
    bias, rule = 0.0, "softmax"
    cached = _cached_scoring(store) if embedder is None and model is None and not missing else None
    if cached is not None:
        logit_scale, bias, rule = cached
        log.info("every prompt and the model's scoring constants are in the store's text cache: "
                 "the model is not loaded")
    elif embedder is None and not missing and logit_scale is not None \
            and not _may_score_by_sigmoid(config, model_id, revision):
        log.info("every prompt is in the store's text cache: the model is not loaded")
    else:
        stored = None if model else [v.precision for v in store.videos()]
        embedder = embedder or prepare.load_model(config, model or store.model_id,
                                                  None if model else store.model_revision, stored=stored)
        store.check_model(embedder.model_id, embedder.revision, embedder.dim, same_model=model is None)
        if missing_texts:
            found.update(embed_and_keep(store, embedder, missing_texts) if model is None
                         else dict(zip(missing_texts, embedder.embed_texts(missing_texts))))
        if hashes:
            embed = prepare.example_embedder(config, store if model is None else None, embedder)
            pictures = dict(zip(hashes.values(), embed(list(hashes))))
        logit_scale, model_id, revision = embedder.logit_scale, embedder.model_id, embedder.revision
        bias, rule = embedder.logit_bias, embedder.scoring_rule

    def lookup(batch: list[str]) -> np.ndarray:
        return np.stack([found[t] for t in batch])

    def pictures_of(paths: list[str]) -> np.ndarray:
        return np.stack([pictures[hashes[p]] for p in paths])

    classifier = build_classifier(config, lookup, logit_scale, logit_bias=bias, native_rule=rule,
                                  embed_pictures=pictures_of)
    return classifier, model_id, revision


def _cached_scoring(store) -> tuple[float, float, str] | None:
    """``(logit_scale, logit_bias, native rule)`` kept with the store's
    cached prompts; None when a cache predates them (or names an untested family)."""
    from pipeline.embed import FAMILIES

    kept = store.text_calibration(store.model_id, store.model_revision)
    if kept is None or kept.get("family") not in FAMILIES:
        return None
    return float(kept["logit_scale"]), float(kept["logit_bias"]), FAMILIES[kept["family"]].scoring_rule


def _may_score_by_sigmoid(config: Config, model_id: str, revision: str | None) -> bool:
    """Whether ``config`` may score by sigmoid with this model, which needs
    its logit bias: ``sigmoid``, or a mode resolved by the model's native rule
    when its config.json names a SigLIP (or cannot be read)."""
    mode = config.scoring.mode
    if mode in ("softmax", "binary"):
        return False
    if mode == "sigmoid":
        return True
    try:
        from transformers import AutoConfig

        from pipeline.embed.load import hub_revision

        model_type = AutoConfig.from_pretrained(model_id, revision=hub_revision(revision),
                                                local_files_only=True, trust_remote_code=False).model_type
    except Exception:  # unreadable here: loading the model will tell
        log.debug("cannot read the config of %s", model_id, exc_info=True)
        return True
    return "siglip" in str(model_type)

