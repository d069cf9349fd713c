"""The one place that knows the order of stages:
inputs → decode → embed → score → smooth → reports.

``run_job`` never raises for a bad input: that input's result carries
``status="error"`` and the rest of the run goes on. It raises only when the
whole run cannot start (bad config, model that will not load).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from pipeline import report
from pipeline.analyse import analyse, image_confidences
from pipeline.config import Config, SamplingConfig
from pipeline.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_image, open_decoder
from pipeline.engine.base import EmbeddedInput
from pipeline.score import Classifier, build_classifier, prompt_texts
from pipeline.types import StoreError, VideoInfo, VideoResult

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = frozenset(IMAGE_EXTENSIONS) | frozenset(VIDEO_EXTENSIONS)


@dataclass
class RunOptions:
    """How to run, beyond the config (which says what to compute)."""

    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int | None = None  # embedding actors; default one per GPU, else one
    resume: bool = False
    progress: bool = True
    store: Path | None = None  # embedding store; None: <out_dir>/store
    use_store: bool = True
    use_cache: bool = True  # reuse stored embeddings instead of decoding
    store_wait_s: float | None = None  # a store write waits this long for another writer


@dataclass
class RunReport:
    results: list[VideoResult] = field(default_factory=list)
    images: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    skipped: int = 0

    @property
    def exit_code(self) -> int:
        """0 when every input succeeded, 1 when any failed."""
        return 1 if any(r.status != "ok" for r in self.results) else 0


# --------------------------------------------------------------------------- inputs


def expand_inputs(args: Sequence[str]) -> tuple[list[str], list[VideoResult]]:
    """Turn CLI arguments into media paths.

    Accepts files, folders (searched recursively for known extensions), glob
    patterns, and ``.txt`` files listing one path per line. Arguments that
    match nothing become error results rather than stopping the run.
    """
    paths: list[str] = []
    errors: list[VideoResult] = []
    for arg in args:
        found, problem = _expand_one(arg)
        paths.extend(found)
        if problem:
            errors.append(VideoResult(input_path=arg, name="", status="error", error=problem))
    return list(dict.fromkeys(paths)), errors


def _expand_one(arg: str) -> tuple[list[str], str | None]:
    path = Path(arg)
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*")
                       if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
        return found, None if found else f"no videos or images found in folder {arg}"
    if path.suffix.lower() == ".txt" and path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as ex:
            return [], f"cannot read list file {arg}: {' '.join(str(ex).split())}"
        return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")], None
    if path.exists() or path.is_symlink():
        return [arg], None
    if glob.has_magic(arg):
        found = sorted(glob.glob(arg, recursive=True))
        return found, None if found else f"no files match {arg}"
    return [arg], None  # a missing file fails in the decoder with a clear reason


def output_names(paths: Sequence[str]) -> dict[str, str]:
    """A safe, unique folder name per input, from its file name.

    Names keep letters and digits (any script), ``-``, ``_`` and ``.``; never
    start with a dot; and get ``-2``, ``-3`` … when two inputs share a name,
    so two ``clip.mp4`` from different folders never overwrite each other.
    """
    names: dict[str, str] = {}
    used: set[str] = set()
    for path in paths:
        base = safe_name(Path(path).stem) or "input"
        name, n = base, 1
        while name.lower() in used or name.lower() in ("index", "images", "store"):
            n += 1
            name = f"{base}-{n}"
        used.add(name.lower())
        names[path] = name
    return names


def safe_name(text: str, max_len: int = 80) -> str:
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[^\w.\-]+", "_", text, flags=re.UNICODE).strip("._")
    return text[:max_len]


# --------------------------------------------------------------------------- run


def run_job(inputs: Sequence[str], config: Config, out_dir: Path,
            options: RunOptions | None = None, *, embedder=None) -> RunReport:
    """Process every input and write all outputs under ``out_dir``.

    Args:
        inputs: CLI input arguments (files, folders, globs, list files).
        config: the validated, effective config.
        out_dir: where ``<name>/`` folders, ``index.csv`` and ``images.csv`` go.
        options: engine and resume settings.
        embedder: an already loaded :class:`pipeline.embed.Embedder`; loaded
            from the config when omitted.

    Raises:
        PipelineError: only when the run cannot start (e.g. model load).
    """
    options = options or RunOptions()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, failures = expand_inputs(inputs)
    names = output_names(paths)
    run = RunReport(results=list(failures))
    for failure in failures:
        log.error("%s: %s", failure.input_path, failure.error)
    todo = [p for p in paths if not (options.resume and _is_complete(out_dir / names[p], p, config))]
    run.skipped = len(paths) - len(todo)
    if todo:
        embedder = embedder or _load_embedder(config)
        cache = _open_cache(config, options, embedder, out_dir)
        texts_from = cache.store if cache and cache.use_cache else None  # --no-cache: embed afresh
        classifier = build_classifier(config, _text_embedder(texts_from, embedder), embedder.logit_scale)
        cached, to_decode = cache.split(todo) if cache else ([], todo)
        engine = _make_engine(config, options, embedder)
        handle = partial(_handle_input, config=config, classifier=classifier,
                         provenance=Provenance.of(embedder), names=names, out_dir=out_dir, run=run)
        with _frames_progress(options) as counted:
            fresh = engine.run(to_decode, counted(embedder.embed_images)) if to_decode else []
            for embedded in _progress(itertools.chain(cached, fresh), len(todo), options):
                if cache:
                    cache.save(embedded)
                handle(embedded)
        if cache:
            cache.finish()
    run.results.extend(_load_previous(out_dir, names, paths, todo))
    _write_run_outputs(run, out_dir, config.output.formats)
    return run


@dataclass(frozen=True)
class Provenance:
    """Which model made the embeddings a result was scored from."""

    model_id: str
    revision: str | None
    precision: str

    @classmethod
    def of(cls, embedder) -> Provenance:
        return cls(embedder.model_id, embedder.revision, embedder.precision)


def _handle_input(embedded: EmbeddedInput, *, config: Config, classifier: Classifier,
                  provenance: Provenance, names: dict[str, str], out_dir: Path,
                  run: RunReport) -> None:
    started = time.perf_counter()
    if embedded.error is None and embedded.info is not None and embedded.info.is_image:
        conf = image_confidences(embedded.embeddings, classifier)[0]
        tag_names = [n for n, k in zip(classifier.names, classifier.kinds) if k == "tag"]
        run.images.append((embedded.path, dict(zip(tag_names, map(float, conf)))))
        return
    result = _video_result(embedded, config, classifier, provenance, names[embedded.path])
    result.wall_time_s = round(embedded.decode_s + time.perf_counter() - started, 3)
    if result.status != "ok":
        log.error("%s: %s", embedded.path, result.error)
    report.write_video_outputs(result, out_dir / result.name, formats=tuple(config.output.formats),
                               top_frames=config.output.top_frames)
    run.results.append(result)


def _video_result(embedded: EmbeddedInput, config: Config, classifier: Classifier,
                  provenance: Provenance, name: str) -> VideoResult:
    result = VideoResult(input_path=embedded.path, name=name, info=embedded.info,
                         sampling=config.sampling.to_sampling(), decode=embedded.stats,
                         model_id=provenance.model_id, model_revision=provenance.revision,
                         precision=provenance.precision, config_hash=config.hash())
    if embedded.error is not None:
        result.status, result.error = "error", _one_line(embedded.error)
        return result
    result.frame_indices, result.times_s = embedded.indices, embedded.times_s
    for key, value in analyse(embedded.times_s, embedded.embeddings, classifier, config,
                              embedded.info).items():
        setattr(result, key, value)
    return result


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _load_embedder(config: Config, model_id: str | None = None, revision: str | None = None):
    from pipeline.embed import load_embedder

    m = config.model
    model_id, revision = (model_id, revision) if model_id else (m.id, m.revision)
    if revision and revision.startswith("sha256:"):
        revision = None  # a local folder's content hash, not a Hub revision
    return load_embedder(model_id, revision=revision, device=m.device, precision=m.precision,
                         batch_size=m.batch_size, compile_model=m.compile)


def _text_embedder(store, embedder) -> Callable[[list[str]], np.ndarray]:
    """The embedder's text function, behind ``store``'s prompt cache when given."""
    if store is None:
        return embedder.embed_texts
    from pipeline.store import cached_text_embedder

    return cached_text_embedder(store, embedder)


def _open_cache(config: Config, options: RunOptions, embedder, out_dir: Path):
    if not options.use_store:
        return None
    from pipeline.store import open_run_cache

    d = config.decoder
    return open_run_cache(options.store or out_dir / "store", embedder,
                          config.sampling.to_sampling(), strategy=d.strategy, backend=d.backend,
                          use_cache=options.use_cache, required=options.store is not None,
                          wait_s=options.store_wait_s)


def rescore_job(config: Config, store_dir: Path, out_dir: Path, *, model: str | None = None,
                embedder=None) -> RunReport:
    """Score stored embeddings with ``config``'s labels and write every report
    as ``run_job`` would, without decoding. The model is the store's, unless
    ``model`` names another of the same dimension; it is not even loaded when
    the store's text cache holds every prompt of ``config``."""
    from pipeline.store import EmbeddingStore

    store = EmbeddingStore.open(store_dir)
    videos = {v.input_path: v for v in store.videos()}  # newest copy per input wins
    if not videos:
        raise StoreError(f"embedding store {store_dir} holds no embeddings")
    model = None if model == store.model_id else model  # naming the store's own model
    classifier, model_id, revision = _rescore_classifier(config, store, model, embedder)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, run = output_names(list(videos)), RunReport()
    stored = list(videos.values())
    for video, embedded in zip(stored, store.embedded_many(stored)):
        cfg = config.model_copy(update={"sampling": SamplingConfig.of(video.sampling_obj)})
        # the precision is the stored frames': it is what the scores rest on
        provenance = Provenance(model_id, revision, video.precision)
        _handle_input(embedded, config=cfg, classifier=classifier,
                      provenance=provenance, names=names, out_dir=out_dir, run=run)
    _write_run_outputs(run, out_dir, config.output.formats)
    return run


def _rescore_classifier(config: Config, store, model: str | None,
                        embedder) -> tuple[Classifier, str, str | None]:
    """The classifier for ``rescore`` and the id and revision of the model
    behind it. The prompts are looked up in the store's prompt cache once; the
    model is loaded only when some are missing (or for ``model``, another
    model, whose prompts the cache does not hold)."""
    from pipeline.store import embed_and_keep

    texts = list(dict.fromkeys(prompt_texts(config)))
    found, logit_scale = store.text_vectors(store.model_id, store.model_revision, texts) \
        if model is None else ({}, None)
    missing = [t for t in texts if t not in found]
    model_id, revision = store.model_id, store.model_revision
    if embedder is None and not missing and logit_scale is not None:
        log.info("every prompt is in the store's text cache: the model is not loaded")
    else:
        embedder = embedder or _load_embedder(config, model or store.model_id,
                                              None if model else store.model_revision)
        store.check_model(embedder.model_id, embedder.revision, embedder.dim, same_model=model is None)
        if missing:
            found.update(embed_and_keep(store, embedder, missing) if model is None
                         else dict(zip(missing, embedder.embed_texts(missing))))
        logit_scale, model_id, revision = embedder.logit_scale, embedder.model_id, embedder.revision

    def lookup(batch: list[str]) -> np.ndarray:
        return np.stack([found[t] for t in batch])

    return build_classifier(config, lookup, logit_scale), model_id, revision


def _make_engine(config: Config, options: RunOptions, embedder):
    d = config.decoder
    opener = partial(open_decoder, backend=d.backend, short_side=embedder.input_size,
                     strategy=d.strategy, threads=d.threads)
    if options.engine == "ray":
        from pipeline.engine.ray import RayEngine

        return RayEngine(config, address=options.ray_address, short_side=embedder.input_size,
                         num_actors=options.ray_actors, progress=options.progress)
    from pipeline.engine.local import LocalEngine

    return LocalEngine(opener, config.sampling.to_sampling(), batch_size=embedder.batch_size,
                       timeout_s=d.timeout_s)


def _progress(results: Iterable[EmbeddedInput], total: int, options: RunOptions) -> Iterable[EmbeddedInput]:
    if not options.progress or options.engine == "ray":  # Ray Data draws its own bars
        return results
    from tqdm import tqdm

    return tqdm(results, total=total, unit="input", desc="scenetag", leave=False,
                disable=None)  # None: off when stderr is not a terminal


@contextlib.contextmanager
def _frames_progress(options: RunOptions) -> Iterator[Callable[[Callable], Callable]]:
    """A second bar counting embedded frames, so one long video shows
    progress too. Yields a wrapper for the embed function."""
    if not options.progress or options.engine == "ray":
        yield lambda embed: embed
        return
    from tqdm import tqdm

    with tqdm(unit="frame", desc="frames", leave=False, disable=None, position=1) as bar:
        def wrap(embed: Callable) -> Callable:
            def counted(images):
                vectors = embed(images)
                bar.update(len(images))
                return vectors
            return counted

        yield wrap


# --------------------------------------------------------------------------- resume


def _is_complete(folder: Path, path: str, config: Config) -> bool:
    """A finished input has a summary.json (written last) for the same input
    and the same effective config."""
    summary = _read_summary(folder)
    return bool(summary) and summary.get("status") == "ok" and \
        summary.get("config_hash") == config.hash() and summary.get("input") == path


def _read_summary(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _load_previous(out_dir: Path, names: dict[str, str], paths: Sequence[str],
                   todo: Sequence[str]) -> list[VideoResult]:
    """Resumed inputs still appear in index.csv, rebuilt from their summary.json."""
    pending = set(todo)
    return [_result_from_summary(path, names[path], _read_summary(out_dir / names[path]) or {})
            for path in paths if path not in pending and not is_image(path)]


def _result_from_summary(path: str, name: str, summary: dict) -> VideoResult:
    video = summary.get("video") or {}
    known = {f.name for f in dataclasses.fields(VideoInfo)} - {"path"}
    info = VideoInfo(path=path, **{k: v for k, v in video.items() if k in known}) if video else None
    return VideoResult(input_path=path, name=name, status=summary.get("status", "ok"), info=info,
                       tags=list(summary.get("tags", [])),
                       nsfw_verdict=summary.get("nsfw_verdict", "n/a"),
                       frame_indices=np.zeros(int(summary.get("frames_scored", 0)), np.int64),
                       config_hash=summary.get("config_hash", ""))


def _write_run_outputs(run: RunReport, out_dir: Path, formats: Sequence[str] = ()) -> None:
    run.results.sort(key=lambda r: r.name or r.input_path)
    report.write_run_outputs(run.results, out_dir, formats)
    if run.images:
        report.write_images_csv(run.images, out_dir)
