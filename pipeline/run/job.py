"""The one place that knows the order of stages:
inputs → decode → embed → score → smooth → reports.

``run_job`` never raises for a bad input, nor for a failure writing one
input's reports: that input's result carries ``status="error"`` and the rest
of the run goes on. It raises only when the
whole run cannot start (bad config, model that will not load).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import report
from pipeline.analysis.analyse import ImageResult, analyse, analyse_image
from pipeline.atomic import atomic_dir, atomic_write_text, bounded_name, remove_dir
from pipeline.config import Config, SamplingConfig
from pipeline.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_image, open_decoder
from pipeline.engine.base import EmbeddedInput
from pipeline.progress import RunProgress
from pipeline.analysis.score import Classifier, build_classifier, prompt_texts
from pipeline.types import StoreError, VideoInfo, VideoResult, describe_error

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
    live: Any = None  # pipeline.live.session.LiveOptions: how live inputs run (None: defaults)


@dataclass
class RunReport:
    results: list[VideoResult] = field(default_factory=list)
    images: list[ImageResult] = field(default_factory=list)
    skipped: int = 0
    interrupted: bool = False  # live streams were ended by SIGINT

    @property
    def exit_code(self) -> int:
        """0 when every input succeeded, 1 when any failed; 130 when SIGINT ended live streams."""
        if self.interrupted:
            return 130
        return 1 if any(r.status != "ok" for r in self.results) else 0


# --------------------------------------------------------------------------- inputs


# Files and folders a run (or search/cluster/rescore into the same folder)
# writes next to the per-input folders: no input's folder may take these names.
RUN_LEVEL_NAMES = frozenset({
    "index", "images", "store", "rescore", "index.csv", "index.html", "images.csv",
    "search.csv", "search.png", "clusters.csv", "clusters.png", "clusters.html", "outliers.csv"})
# Written into every output folder a run or rescore fills: input folders and
# globs of later runs skip that folder's reports, store and run-level files
# (an earlier run's thumbnails and plots are not videos to tag).
OUTPUT_MARKER = ".scenetag-output"
_MARKER_TEXT = "This folder holds scenetag reports; scenetag runs do not read them as inputs.\n"


def expand_inputs(args: Sequence[str], out_dir: Path | None = None,
                  store: Path | None = None) -> tuple[list[str], list[VideoResult]]:
    """Turn CLI arguments into media paths.

    Accepts files, folders (searched recursively for known extensions), glob
    patterns, and ``.txt`` files listing one path per line (relative entries
    are relative to the list file's folder). Arguments that match nothing
    become error results rather than stopping the run. Folders and globs
    never pick up the run's own outputs: ``store``, ``out_dir`` and, when
    ``out_dir`` itself is searched, its report folders.
    """
    outputs = _Outputs(out_dir, store)
    paths: list[str] = []
    errors: list[VideoResult] = []
    for arg in args:
        found, problem = _expand_one(arg, outputs)
        paths.extend(found)
        if problem:
            errors.append(VideoResult(input_path=arg, name="", status="error", error=problem))
    return list(dict.fromkeys(paths)), errors


def _expand_one(arg: str, outputs: _Outputs) -> tuple[list[str], str | None]:
    path = Path(arg)
    if path.is_dir():
        found = outputs.walk(path)
        return found, None if found else f"no videos or images found in folder {arg}"
    if path.suffix.lower() == ".txt" and path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as ex:
            return [], f"cannot read list file {arg}: {' '.join(str(ex).split())}"
        entries = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        return [_relative_to(path.parent, entry) for entry in entries], None
    if path.exists() or path.is_symlink():
        return [arg], None
    if glob.has_magic(arg):
        found = sorted(p for p in glob.glob(arg, recursive=True) if not outputs.covers(Path(p)))
        return found, None if found else f"no files match {arg}"
    return [arg], None  # a missing file fails in the decoder with a clear reason


def _relative_to(folder: Path, entry: str) -> str:
    """A list entry as a path usable from the cwd: relative entries are taken
    relative to the list file's folder, as in M3U playlists; URLs stay as they are."""
    if os.path.isabs(entry) or folder == Path(".") or "://" in entry:
        return entry
    return str(folder / entry)


class _Outputs:
    """What input expansion must skip: the store, the output folder and, when
    a search starts at or above it, the report folders inside it (an input
    folder may hold its own output folder; the output folder may be searched
    for inputs when they sit beside the reports)."""

    def __init__(self, out_dir: Path | None, store: Path | None) -> None:
        self.out = _resolved(out_dir)
        self.skip = {p for p in (self.out, _resolved(store)) if p is not None}
        self._marked: dict[Path, bool] = {}

    def walk(self, folder: Path) -> list[str]:
        """Media files under ``folder``, sorted, outputs pruned."""
        found = []
        start = _resolved(folder)
        for root, dirs, files in os.walk(folder):
            here = Path(root)
            dirs[:] = [d for d in dirs if not self._is_output(here / d, start)]
            found += [str(here / f) for f in files if Path(f).suffix.lower() in MEDIA_EXTENSIONS
                      and (here / f).is_file() and not self._is_run_file(here / f)]
        return sorted(found)

    def covers(self, path: Path) -> bool:
        """Whether ``path`` lies in (or is) an output folder or is a run-level file."""
        full = _resolved(path)
        if full is None:
            return False
        return any(self._is_output(p, None) for p in (full, *full.parents)) or self._is_run_file(full)

    def _is_output(self, folder: Path, start: Path | None) -> bool:
        """A store, this run's output folder, or a report folder (or
        temporary) inside an output folder, this run's or an earlier one's.
        An output folder itself is searched (inputs may sit beside reports):
        an earlier one always, this run's when the search starts there."""
        full = _resolved(folder)
        if full is None or full == start:
            return False  # searching the output folder itself: only its reports are skipped
        if full in self.skip or is_store_folder(full):
            return True
        return self._holds_reports(full.parent) and (folder.name.startswith(".") or
                                                      (folder / "summary.json").is_file())

    def _is_run_file(self, path: Path) -> bool:
        return is_run_level_name(path.name) and self._holds_reports(_resolved(path.parent))

    def _holds_reports(self, folder: Path | None) -> bool:
        """This run's output folder, or one an earlier run marked."""
        if folder is None:
            return False
        if folder not in self._marked:
            self._marked[folder] = folder == self.out or (folder / OUTPUT_MARKER).is_file()
        return self._marked[folder]


def is_run_level_name(name: str) -> bool:
    """A file name a run, rescore, search or cluster writes into an output
    folder itself (``search-<query>.png`` included)."""
    lower = name.lower()
    return lower in RUN_LEVEL_NAMES or (lower.startswith(("search-", "search_", "clusters-", "clusters_"))
                                        and lower.endswith((".csv", ".png", ".jpg", ".html")))


def is_store_folder(folder: Path) -> bool:
    """Whether ``folder`` is an embedding store (a LanceDB database holding
    scenetag's ``meta`` table), wherever it lies."""
    return (folder / "meta.lance").is_dir()


def mark_output_folder(out_dir: Path) -> None:
    """Leave :data:`OUTPUT_MARKER` in ``out_dir`` (once)."""
    marker = out_dir / OUTPUT_MARKER
    if not marker.is_file():
        atomic_write_text(marker, _MARKER_TEXT)


def _resolved(path: Path | None) -> Path | None:
    if path is None:
        return None
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None


def output_names(paths: Sequence[str], existing: dict[str, str | None] | None = None) -> dict[str, str]:
    """A safe, unique folder name per input, from its file name.

    Names keep letters and digits (any script), ``-``, ``_`` and ``.``; never
    start with a dot; are at most 80 bytes; never equal a run-level file
    (``index.csv``, ``store`` …, compared case-insensitively); and get ``-2``,
    ``-3`` … when two inputs share a name, so two ``clip.mp4`` from different
    folders never overwrite each other.

    Args:
        paths: the inputs.
        existing: what the output folder already holds (see
            :func:`existing_outputs`): folder name → the input its
            ``summary.json`` names, or ``None`` for anything else. An input
            keeps the folder it had; no input takes another's folder or a
            name that is not a report folder.
    """
    existing = existing or {}
    taken = {k.lower(): v for k, v in existing.items()}
    had: dict[str, list[str]] = {}
    for folder, owner in sorted(existing.items()):
        if owner is not None and folder.lower() not in RUN_LEVEL_NAMES:
            had.setdefault(owner, []).append(folder)
    names: dict[str, str] = {}
    used: set[str] = set()
    for path in paths:
        base = safe_name(Path(path).stem) or "input"
        name, n = next((f for f in had.get(path, []) if f.lower() not in used), base), 1
        while name.lower() in used or name.lower() in RUN_LEVEL_NAMES or \
                taken.get(name.lower(), path) != path:
            n += 1
            name = f"{base}-{n}"
        used.add(name.lower())
        names[path] = name
    return names


def existing_outputs(out_dir: Path) -> dict[str, str | None]:
    """Entries of an output folder that input folders must respect: folder
    name → the input its ``summary.json`` names (``None``: not a report
    folder, or not one of ours). Hidden entries (temporaries) are left out."""
    found: dict[str, str | None] = {}
    with contextlib.suppress(OSError):
        for entry in out_dir.iterdir():
            if not entry.name.startswith("."):
                summary = _read_summary(entry) if entry.is_dir() and not entry.is_symlink() else None
                owner = summary.get("input") if isinstance(summary, dict) else None
                found[entry.name] = owner if isinstance(owner, str) else None
    return found


def safe_name(text: str, max_len: int = 80) -> str:
    """``text`` as a folder name: see :func:`pipeline.atomic.bounded_name`
    (``max_len`` counts UTF-8 bytes)."""
    return bounded_name(text, max_len, dots=True)


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
    from pipeline.live.sources import split_live

    force = bool(options.live and options.live.force)
    live, inputs = split_live(list(inputs), force=force)
    paths, failures = expand_inputs(inputs, out_dir, options.store or out_dir / "store")
    listed, paths = split_live(paths)  # URLs, - and cameras listed in .txt lists
    live += [source for source in listed if source not in live]
    names = output_names(paths, existing_outputs(out_dir))
    run = RunReport(results=list(failures))
    for failure in failures:
        log.error("%s", _failure_line(failure.input_path, failure.error))
    todo = [p for p in paths if not (options.resume and _is_complete(out_dir / names[p], p, config))]
    run.skipped = len(paths) - len(todo)
    if todo:
        embedder = embedder or _load_embedder(config)
        cache = _open_cache(config, options, embedder, out_dir)
        texts_from = cache.store if cache and cache.use_cache else None  # --no-cache: embed afresh
        classifier = build_classifier(config, _text_embedder(texts_from, embedder), embedder.logit_scale,
                                      logit_bias=embedder.logit_bias, native_rule=embedder.scoring_rule,
                                      embed_pictures=_picture_embedder(config, texts_from, embedder))
        cached, to_decode = cache.split(todo) if cache else ([], todo)
        handle = partial(_handle_input, config=config, classifier=classifier,
                         provenance=Provenance.of(embedder), names=names, out_dir=out_dir, run=run)
        with _progress(todo, config, options, resumed=run.skipped) as progress, \
                _make_engine(config, options, embedder, progress) as engine:
            fresh = engine.run(to_decode, embedder.embed_images) if to_decode else []
            for group in _refine_groups(itertools.chain(cached, fresh), config, options):
                for embedded in _refined(group, config, classifier, engine, embedder):
                    if cache:
                        cache.save(embedded)
                    progress.finished(embedded.path, len(embedded.indices))
                    handle(embedded)
        if cache:
            cache.finish()
    run.results.extend(_load_previous(out_dir, names, paths, todo))
    if live:  # URLs, pipes, cameras: tagged as they play (pipeline.live)
        _run_live(live, config, out_dir, options, embedder or _load_embedder(config), run, names)
    _write_run_outputs(run, out_dir, config.output.formats)
    return run


REFINE_GROUP = 8  # inputs whose refinement rounds share model calls (local engine)


def _refine_groups(stream, config: Config, options: RunOptions):
    """Inputs in the groups whose edges are refined together, so each round's
    frames fill larger model calls: ``REFINE_GROUP`` consecutive inputs with
    the local engine (its decode thread runs ahead meanwhile); all at once
    with Ray, whose refinement rounds must not run beside the job still
    streaming. One at a time without refinement."""
    if not config.segments.refine:
        yield from ([embedded] for embedded in stream)
        return
    if options.engine == "ray":
        yield list(stream)
        return
    group: list[EmbeddedInput] = []
    for embedded in stream:
        group.append(embedded)
        if len(group) >= REFINE_GROUP:
            yield group
            group = []
    if group:
        yield group


def _refined(group: list[EmbeddedInput], config: Config, classifier: Classifier, engine,
             embedder) -> list[EmbeddedInput]:
    """``group`` with the frames edge refinement needs (``segments.refine``)."""
    if not config.segments.refine:
        return group
    from pipeline.run import refine as refining

    probe = partial(engine.probe, embed_images=embedder.embed_images)
    return refining.fetch(group, config, classifier, probe, engine.scan)


@dataclass(frozen=True)
class Provenance:
    """Which model made the embeddings a result was scored from."""

    model_id: str
    revision: str | None
    precision: str
    family: str = ""
    runtime: str = ""

    @classmethod
    def of(cls, embedder) -> Provenance:
        return cls(embedder.model_id, embedder.revision, embedder.precision, getattr(embedder, "family", ""),
                   getattr(getattr(embedder, "runtime", None), "name", "torch"))

    @classmethod
    def stored(cls, model_id: str, revision: str | None, label: str, family: str) -> Provenance:
        """From a store's precision label (``bf16``, ``openvino-int8``: see Embedder.precision_label)."""
        from pipeline.embed.runtime import split_label

        runtime, precision = split_label(label)
        return cls(model_id, revision, precision, family, runtime if label else "")


def _handle_input(embedded: EmbeddedInput, *, config: Config, classifier: Classifier,
                  provenance: Provenance, names: dict[str, str], out_dir: Path,
                  run: RunReport) -> None:
    started = time.perf_counter()
    if embedded.error is None and embedded.info is not None and embedded.info.is_image:
        # an image is scored as a video's frames are: same mode, thresholds, NSFW labels
        run.images.append(analyse_image(embedded.path, embedded.embeddings, classifier, config))
        return
    result = _video_result(embedded, config, classifier, provenance, names[embedded.path])
    result.wall_time_s = round(embedded.decode_s + time.perf_counter() - started, 3)
    result = _write_reports(result, out_dir / result.name, config)
    if result.status != "ok":
        log.error("%s", _failure_line(embedded.path, result.error))
    elif (note := report.partial_note(result)) is not None:  # ok, but say what was missed
        log.warning("%s: %s", embedded.path, note)
    run.results.append(result)


def _failure_line(path: str, error: str | None) -> str:
    """``path: error`` with the path said once: most messages name the file
    already (``file not found: x.mp4``, ``no files match x*``)."""
    return error if error and path in error else f"{path}: {error}"


def _write_reports(result: VideoResult, folder: Path, config: Config) -> VideoResult:
    """Write one input's reports as a whole new folder (see
    :func:`pipeline.atomic.atomic_dir`), so it never mixes two runs' files.

    Any failure (a library bug, a full disk, a name the file system refuses)
    costs this input only: it becomes an error whose folder holds just its
    ``summary.json``, or no folder at all when even that cannot be written
    (a previous run's folder is removed rather than left to pass for this
    run's). Returns the result as written.
    """
    try:
        _replace_folder(result, folder, config)
        return result
    except Exception as ex:  # the batch must go on, whatever broke
        log.debug("writing reports for %s failed", result.input_path, exc_info=True)
        result = _failed(result, f"cannot write reports: {describe_error(ex)}")
    try:
        _replace_folder(result, folder, config)
    except Exception:
        log.debug("writing the error summary for %s failed", result.input_path, exc_info=True)
        with contextlib.suppress(OSError):
            remove_dir(folder)
    return result


def _replace_folder(result: VideoResult, folder: Path, config: Config) -> None:
    with atomic_dir(folder) as tmp:
        report.write_video_outputs(result, tmp, formats=tuple(config.output.formats),
                                   top_frames=config.output.top_frames)


def _failed(result: VideoResult, reason: str) -> VideoResult:
    """``result`` as an error: the reason, and none of the analysis."""
    return dataclasses.replace(result, status="error", error=reason, tracks=[], segments=[], totals=[],
                               tags=[], nsfw_verdict="n/a")


def _video_result(embedded: EmbeddedInput, config: Config, classifier: Classifier,
                  provenance: Provenance, name: str) -> VideoResult:
    result = VideoResult(input_path=embedded.path, name=name, info=embedded.info,
                         model_family=provenance.family,
                         sampling=config.sampling.to_sampling(), decode=embedded.stats,
                         model_id=provenance.model_id, model_revision=provenance.revision,
                         precision=provenance.precision, runtime=provenance.runtime,
                         scoring_mode=classifier.mode,
                         config_hash=config.hash())
    if embedded.error is not None:
        result.status, result.error = "error", _one_line(embedded.error)
        return result
    result.frame_indices, result.times_s = embedded.indices, embedded.times_s
    try:
        analysis = _analysis(embedded, classifier, config)
    except Exception as ex:  # a scoring bug on one input's data must not cost the batch
        log.debug("scoring %s failed", embedded.path, exc_info=True)
        return _failed(result, f"cannot score: {describe_error(ex)}")
    for key, value in analysis.items():
        setattr(result, key, value)
    return result


def _analysis(embedded: EmbeddedInput, classifier: Classifier, config: Config) -> dict:
    if _is_live(embedded):  # a live stream from the store (rescore): piece by piece between its gaps
        from pipeline.live.stored import analyse_stream

        return analyse_stream(embedded, classifier, config)
    if config.segments.refine and not (embedded.refine is not None and embedded.refine.failed):
        from pipeline.run.refine import analyse_refined

        try:
            return analyse_refined(embedded, classifier, config)
        except Exception as ex:  # refinement improves edges: it is never a reason for "cannot score"
            log.warning("%s: edge refinement failed (%s); its edges stay at sample resolution",
                        embedded.path, describe_error(ex))
            log.debug("refining %s failed", embedded.path, exc_info=True)
    return analyse(embedded.times_s, embedded.embeddings, classifier, config, embedded.info)


def _is_live(embedded: EmbeddedInput) -> bool:
    return embedded.stats is not None and embedded.stats.strategy == "live"


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _load_embedder(config: Config, model_id: str | None = None, revision: str | None = None,
                   stored: list[str] | None = None):
    """``config``'s model (or ``model_id``); ``stored``: see ``load_embedder``."""
    from pipeline.embed import load_embedder
    from pipeline.embed.load import hub_revision

    m = config.model
    model_id, revision = (model_id, revision) if model_id else (m.id, m.revision)
    return load_embedder(model_id, revision=hub_revision(revision), device=m.device, precision=m.precision,
                         batch_size=m.batch_size, compile_model=m.compile, runtime=m.runtime, stored=stored)


def _text_embedder(store, embedder) -> Callable[[list[str]], np.ndarray]:
    """The embedder's text function, behind ``store``'s prompt cache when given."""
    if store is None:
        return embedder.embed_texts
    from pipeline.store.cache import cached_text_embedder

    return cached_text_embedder(store, embedder)


def _picture_embedder(config: Config, store, embedder) -> Callable[[list[str]], np.ndarray]:
    """The labels' example pictures → embeddings, behind ``store``'s picture cache when given."""
    from pipeline.analysis.exemplars import picture_embedder

    if store is None:
        return picture_embedder(embedder)
    from pipeline.store.cache import cached_picture_embedder

    return cached_picture_embedder(store, embedder, config.image_hashes(), picture_embedder(embedder))


def _open_cache(config: Config, options: RunOptions, embedder, out_dir: Path):
    if not options.use_store:
        return None
    from pipeline.store.cache import open_run_cache

    d = config.decoder
    return open_run_cache(options.store or out_dir / "store", embedder,
                          config.sampling.to_sampling(), strategy=d.strategy, backend=d.backend,
                          use_cache=options.use_cache, required=options.store is not None,
                          wait_s=options.store_wait_s)


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
    classifier, model_id, revision = _rescore_classifier(config, store, model, embedder)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, run = _rescore_names(list(videos.values()), existing_outputs(out_dir)), RunReport()
    stored = list(videos.values())
    # the store's model's family (unknown in stores made before it was kept)
    family = (store.model_family if model is None else getattr(embedder, "family", None)) or ""
    _warn_stored_sampling(config, stored)
    prober = _StoredProber(config, store, embedder if model is None else None, allowed=model is None)
    for video, embedded in zip(stored, store.embedded_many(stored)):
        cfg = config.model_copy(update={"sampling": SamplingConfig.of(video.sampling_obj)})
        if cfg.segments.refine and not _is_live(embedded):  # a stream cannot be read again
            embedded = prober.refine(embedded, video, cfg, classifier)
        # the precision is the stored frames': it is what the scores rest on
        provenance = Provenance.stored(model_id, revision, video.precision, family)
        _handle_input(embedded, config=cfg, classifier=classifier,
                      provenance=provenance, names=names, out_dir=out_dir, run=run)
    _write_run_outputs(run, out_dir, config.output.formats)
    return run


def _rescore_names(stored: Sequence, existing: dict[str, str | None]) -> dict[str, str]:
    """Folder names for rescored inputs: a file's as ``run`` names it, a live
    stream's as its live run did (from its address: ``cam1-554-stream1``)."""
    from pipeline.live.session import live_names
    from pipeline.live.sources import LiveSource, live_kind

    streams = [v.input_path for v in stored if v.stats is not None and v.stats.strategy == "live"]
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
        from pipeline.run import refine as refining

        probe = partial(self._probe, video=video) if self.allowed else None
        scan = partial(self._scan, video=video) if self.allowed else None
        refined = refining.fetch([embedded], config, classifier, probe, scan)[0]
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
            self.embedder = _load_embedder(self.config, self.store.model_id, self.store.model_revision,
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


def _rescore_classifier(config: Config, store, model: str | None,
                        embedder) -> tuple[Classifier, str, str | None]:
    """The classifier for ``rescore`` and the id and revision of the model
    behind it. The prompts are looked up in the store's prompt cache once; the
    model is loaded only when some (or some example pictures, looked up in
    its picture cache) are missing (or for ``model``, another
    model, whose prompts the cache does not hold), or when the scores need
    the logit bias of a sigmoid model and the cache predates keeping it."""
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
        embedder = embedder or _load_embedder(config, model or store.model_id,
                                              None if model else store.model_revision,
                                              stored=None if model else [v.precision for v in store.videos()])
        store.check_model(embedder.model_id, embedder.revision, embedder.dim, same_model=model is None)
        if missing_texts:
            found.update(embed_and_keep(store, embedder, missing_texts) if model is None
                         else dict(zip(missing_texts, embedder.embed_texts(missing_texts))))
        if hashes:
            embed = _picture_embedder(config, store if model is None else None, embedder)
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

        model_type = AutoConfig.from_pretrained(model_id, revision=hub_revision(revision), local_files_only=True,
                                                trust_remote_code=False).model_type
    except Exception:  # unreadable here: loading the model will tell
        log.debug("cannot read the config of %s", model_id, exc_info=True)
        return True
    return "siglip" in str(model_type)


def _make_engine(config: Config, options: RunOptions, embedder, progress: RunProgress | None = None):
    d = config.decoder
    opener = partial(open_decoder, backend=d.backend, short_side=embedder.input_size,
                     strategy=d.strategy, threads=d.threads, still_resize=embedder.still_resize)
    if options.engine == "ray":
        from pipeline.engine.ray import RayEngine

        return RayEngine(config, address=options.ray_address, short_side=embedder.input_size,
                         still_resize=embedder.still_resize, num_actors=options.ray_actors,
                         progress=options.progress)
    from pipeline.engine.local import LocalEngine

    return LocalEngine(opener, config.sampling.to_sampling(), batch_size=embedder.batch_size,
                       timeout_s=d.timeout_s, progress=progress if progress and progress.enabled else None)


def _progress(paths: Sequence[str], config: Config, options: RunOptions, resumed: int = 0) -> RunProgress:
    """Frames done / expected, with ETAs, for the run and the current input;
    off under ``progress=False`` and for Ray (Ray Data draws its own bars)."""
    enabled = options.progress and options.engine != "ray"
    # disable=None: no bars when stderr is not a terminal
    return RunProgress(paths, config.sampling.to_sampling(), enabled=enabled, disable=None, resumed=resumed)


def _run_live(live, config: Config, out_dir: Path, options: RunOptions, embedder, run: RunReport,
              names: dict[str, str]) -> None:
    from pipeline.live.session import run_live

    report = run_live(live, config, out_dir, options, embedder, taken=set(names.values()),
                      existing=existing_outputs(out_dir))
    run.results.extend(report.results)
    run.interrupted = report.signal == signal.SIGINT


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
    """Resumed inputs still appear in the run's results, rebuilt from their summary.json."""
    pending = set(todo)
    return [_result_from_summary(path, names[path], _read_summary(out_dir / names[path]) or {})
            for path in paths if path not in pending and not is_image(path)]


def _result_from_summary(path: str, name: str, summary: dict) -> VideoResult:
    video = summary.get("video") or {}
    known = {f.name for f in dataclasses.fields(VideoInfo)} - {"path"}
    info = VideoInfo(path=path, **{k: v for k, v in video.items() if k in known}) if video else None
    return VideoResult(input_path=path, name=name, status=summary.get("status", "ok"), info=info,
                       error=summary.get("error"), tags=list(summary.get("tags") or []),
                       nsfw_verdict=summary.get("nsfw_verdict", "n/a"),
                       frame_indices=np.zeros(int(summary.get("frames_scored") or 0), np.int64),
                       config_hash=summary.get("config_hash", ""),
                       decode=report.decode_stats(summary.get("decode")))  # a partial input stays one


def _write_run_outputs(run: RunReport, out_dir: Path, formats: Sequence[str] = ()) -> None:
    mark_output_folder(out_dir)
    run.results.sort(key=_index_order)
    report.write_run_outputs(_index_rows(run, out_dir), out_dir, formats)
    if run.images:
        report.write_images_csv(run.images, out_dir)


def _index_order(r: VideoResult) -> str:
    return r.name or r.input_path


def _index_rows(run: RunReport, out_dir: Path) -> list[VideoResult]:
    """What ``index.csv``/``index.html`` list: every complete input folder in
    ``out_dir`` (read from its ``summary.json`` now, so runs that share an
    output merge instead of the last one winning), this run's results for
    its own inputs, and the still images (this run's, else the
    ``images.csv`` already there)."""
    mine = {r.name.lower() for r in run.results if r.name}
    inputs = {r.input_path for r in run.results}
    others = []
    for folder in sorted(p for p in out_dir.iterdir() if not p.name.startswith(".")
                         and p.name.lower() not in mine and p.is_dir()):
        summary = _read_summary(folder)
        if isinstance(summary, dict) and isinstance(summary.get("input"), str) \
                and summary["input"] not in inputs:
            with contextlib.suppress(TypeError, ValueError):  # a summary.json not of ours
                others.append(_result_from_summary(summary["input"], folder.name, summary))
    images = [_image_row(image.input_path, _tag_cells(image), image.nsfw_verdict)
              for image in run.images] or _images_from_csv(out_dir)
    return sorted([*run.results, *others], key=_index_order) + images


def _image_row(path: str, tags: list[str], verdict: str) -> VideoResult:
    """A still image as an index row: its tags (``label: score``, best
    first) and NSFW verdict, as in ``images.csv``."""
    return VideoResult(input_path=path, name="", tags=tags, nsfw_verdict=verdict,
                       frame_indices=np.zeros(1, np.int64))


def _tag_cells(image: ImageResult) -> list[str]:
    return [f"{label}: {image.scores[label]:.4f}" for label in image.tags]


def _images_from_csv(out_dir: Path) -> list[VideoResult]:
    import pandas as pd

    try:
        table = pd.read_csv(out_dir / "images.csv", keep_default_na=False, dtype=str)
        return [_image_row(row["input"], [row["tags"]] if row["tags"] else [],
                           row.get("nsfw_verdict") or "n/a")
                for row in table.to_dict("records")]
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return []  # none yet, or not readable (or an older layout): the index just lists no images
