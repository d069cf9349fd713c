"""One job over a run's inputs: the one place that knows the order of stages,
inputs → decode → embed → refine → store → score → shots → reports, then
the shots into the store.

``run_job`` never raises for a bad input, nor for a failure writing one
input's reports: that input's result carries ``status="error"`` and the rest
of the run goes on. It raises only when the
whole run cannot start (bad config, model that will not load).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import prepare, report
from pipeline.analysis.analyse import ImageResult, analyse, analyse_image
from pipeline.analysis.score import Classifier
from pipeline.atomic import atomic_dir, remove_dir
from pipeline.config import Config
from pipeline.decode import open_decoder
from pipeline.decode.gaps import is_live
from pipeline.engine.base import EmbeddedInput
from pipeline.prepare import Provenance
from pipeline.progress import RunProgress
from pipeline.run.index import is_complete, load_previous, write_run_outputs
from pipeline.run.inputs import existing_outputs, expand_inputs, output_names
from pipeline.types import VideoResult, describe_error

if TYPE_CHECKING:  # pipeline.live.session imports av: loaded only when a run has live inputs
    from pipeline.live.session import LiveOptions

log = logging.getLogger(__name__)


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
    live: LiveOptions | None = None  # how live inputs run (None: defaults)


@dataclass
class RunReport:
    """What a run (or rescore) did: a result per video input and live
    stream, failures included; a result per still image; how many inputs
    ``--resume`` skipped."""

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
    from pipeline.live.reserve import discard_reserves
    from pipeline.live.sources import split_live

    discard_reserves(out_dir)  # a killed live run's space reserve is no output

    force = bool(options.live and options.live.force)
    live, inputs = split_live(list(inputs), force=force)
    paths, failures = expand_inputs(inputs, out_dir, options.store or out_dir / "store")
    listed, paths = split_live(paths)  # URLs, - and cameras listed in .txt lists
    live += [source for source in listed if source not in live]
    names = output_names(paths, existing_outputs(out_dir))
    run = RunReport(results=list(failures))
    for failure in failures:
        log.error("%s", _failure_line(failure.input_path, failure.error))
    todo = [p for p in paths if not (options.resume and is_complete(out_dir / names[p], p, config))]
    run.skipped = len(paths) - len(todo)
    if todo:
        with _progress(todo, config, options, resumed=run.skipped) as progress:
            with progress.stage("loading the model and prompts"):  # a terminal sees it at once
                embedder = embedder or prepare.load_model(config)
                cache = prepare.open_cache(config, options, embedder, out_dir)
                classifier = prepare.run_classifier(config, embedder, cache)
                cached, to_decode = cache.split(todo) if cache else ([], todo)
            handle = partial(handle_input, config=config, classifier=classifier,
                             provenance=Provenance.of(embedder), names=names, out_dir=out_dir, run=run)
            _embed_and_handle(cached, to_decode, config, options, embedder, classifier, cache,
                              progress, handle)
        if cache:
            cache.finish()
    run.results.extend(load_previous(out_dir, names, paths, todo))
    if live:  # URLs, pipes, cameras: tagged as they play (pipeline.live)
        _run_live(live, config, out_dir, options, embedder or prepare.load_model(config), run, names)
    write_run_outputs(run.results, run.images, out_dir, config.output.formats)
    return run


def _embed_and_handle(cached: list[EmbeddedInput], to_decode: list[str], config: Config,
                      options: RunOptions, embedder, classifier: Classifier, cache, progress: RunProgress,
                      handle) -> None:
    """The engine's job over ``to_decode``, after the inputs the store had;
    each input refined (in groups), kept in the store and handed to ``handle``."""
    with _make_engine(config, options, embedder, progress) as engine:
        fresh = engine.run(to_decode, embedder.embed_images) if to_decode else []
        for group in _refine_groups(itertools.chain(cached, fresh), config, engine):
            for embedded in _refined(group, config, classifier, engine, embedder):
                if cache:
                    cache.save(embedded)
                progress.finished(embedded.path, len(embedded.indices))
                result = handle(embedded)
                if cache and result is not None and result.status == "ok" and result.shots is not None:
                    cache.save_shots(embedded.path, result.shots, config_hash=result.config_hash)


def _refine_groups(stream, config: Config, engine):
    """Inputs in the groups whose edges are refined together, so each round's
    frames fill larger model calls; the engine says how many
    (``refine_group_size``: None is all at once, after its job). One at a
    time without refinement."""
    if not config.segments.refine:
        yield from ([embedded] for embedded in stream)
        return
    size = engine.refine_group_size()
    if size is None:
        yield list(stream)
        return
    group: list[EmbeddedInput] = []
    for embedded in stream:
        group.append(embedded)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _refined(group: list[EmbeddedInput], config: Config, classifier: Classifier, engine,
             embedder) -> list[EmbeddedInput]:
    """``group`` with the frames edge refinement needs (``segments.refine``)."""
    if not config.segments.refine:
        return group
    from pipeline.run import refine as refine_rounds

    probe = partial(engine.probe, embed_images=embedder.embed_images)
    return refine_rounds.fetch(group, config, classifier, probe, engine.scan)


def handle_input(embedded: EmbeddedInput, *, config: Config, classifier: Classifier,
                 provenance: Provenance, names: dict[str, str], out_dir: Path,
                 run: RunReport) -> VideoResult | None:
    """Score one embedded input and add it to ``run``: a still image to
    ``run.images``; a video (or live stream from the store) to
    ``run.results``, its reports written to ``out_dir / names[path]``.
    Never raises for the input's own failures (see :func:`run_job`).

    Returns:
        the video's result as written (None for a still image).
    """
    started = time.perf_counter()
    if embedded.error is None and embedded.info is not None and embedded.info.is_image:
        # an image is scored as a video's frames are: same mode, thresholds, NSFW labels
        run.images.append(analyse_image(embedded.path, embedded.embeddings, classifier, config))
        return None
    result = _video_result(embedded, config, classifier, provenance, names[embedded.path])
    if config.shots.enabled and result.status == "ok" and not is_live(embedded.stats):
        from pipeline.run.shots import with_shots

        result = with_shots(result, config)
    result.wall_time_s = round(embedded.decode_s + time.perf_counter() - started, 3)
    result = _write_reports(result, out_dir / result.name, config)
    if result.status != "ok":
        log.error("%s", _failure_line(embedded.path, result.error))
    elif (note := report.partial_note(result)) is not None:  # ok, but say what was missed
        log.warning("%s: %s", embedded.path, note)
    run.results.append(result)
    return result


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
                         model_auto=provenance.auto, scoring_mode=classifier.mode,
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
    if is_live(embedded.stats):  # a live stream from the store (rescore): piece by piece between its gaps
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


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _make_engine(config: Config, options: RunOptions, embedder, progress: RunProgress | None = None):
    """The engine that decodes and embeds the run's files: local, or Ray's."""
    d = config.decoder
    opener = partial(open_decoder, backend=d.backend, short_side=embedder.input_size,
                     strategy=d.strategy, threads=d.threads, still_resize=embedder.still_resize)
    if options.engine == "ray":
        from pipeline.engine.ray import RayEngine

        if getattr(embedder, "auto_choice", None) is not None:
            # the actors run what the driver measured: one decision (no actor measures on its
            # own, even where the driver's is partial) and one precision for every stored frame
            pinned = {"runtime": embedder.runtime.name, "precision": embedder.precision}
            config = config.model_copy(update={"model": config.model.model_copy(update=pinned)})
        return RayEngine(config, address=options.ray_address, short_side=embedder.input_size,
                         still_resize=embedder.still_resize, num_actors=options.ray_actors,
                         # Ray Data's bars (blocks per stage: is embed waiting on decode?)
                         # for --debug; ours count inputs
                         progress=options.progress and log.isEnabledFor(logging.DEBUG))
    from pipeline.engine.local import LocalEngine

    return LocalEngine(opener, config.sampling.to_sampling(), batch_size=embedder.batch_size,
                       timeout_s=d.timeout_s, progress=progress if progress and progress.enabled else None)


def _progress(paths: Sequence[str], config: Config, options: RunOptions, resumed: int = 0) -> RunProgress:
    """Frames done / expected, with ETAs, for the run and the current input;
    inputs done / all for Ray (its actors embed where the driver cannot
    count frames); off under ``progress=False``."""
    # disable=None: no bars when stderr is not a terminal
    return RunProgress(paths, config.sampling.to_sampling(), enabled=options.progress, disable=None,
                       resumed=resumed, by_input=options.engine == "ray")


def _run_live(live, config: Config, out_dir: Path, options: RunOptions, embedder, run: RunReport,
              names: dict[str, str]) -> None:
    """Tag the live inputs (:func:`pipeline.live.session.run_live`) into ``run``;
    their folders take no name the file inputs have."""
    from pipeline.live.session import run_live

    report = run_live(live, config, out_dir, options, embedder, taken=set(names.values()),
                      existing=existing_outputs(out_dir))
    run.results.extend(report.results)
    run.interrupted = report.signal == signal.SIGINT
