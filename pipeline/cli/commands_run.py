"""The commands that write run folders: ``run``, ``rescore`` (a run from
stored embeddings, with the same summary), ``download-model`` (the model a
run needs, fetched beforehand) and ``report`` (a run's reports rewritten).

Each command body is a ``job`` run by :func:`~pipeline.cli.messages.guarded`;
the heavy modules are imported inside it, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pipeline.cli.configs import FLAGS, config_path, csv_list, label_list, mode_for, sampling_overrides
from pipeline.cli.messages import EXIT_INPUT_FAILED, EXIT_OK, error, guarded, plural
from pipeline.cli.options import (
    FORMATS,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    EveryNOpt,
    EverySecondsOpt,
    FormatsOpt,
    FpsOpt,
    JsonOpt,
    LabelsOpt,
    ModelOpt,
    ModeOpt,
    NoRefineOpt,
    QuietOpt,
    RuntimeOpt,
    StoreModelOpt,
    StoreOpt,
    above_zero,
)
from pipeline.config import DEFAULT_MODEL
from pipeline.types import PipelineError

log = logging.getLogger("scenetag")


def run(
    inputs: Annotated[list[str], typer.Argument(
        metavar="INPUT...", help="Video/image files, folders, globs or .txt lists; live: URLs "
                                 "(rtsp, http, hls, ...), - (stdin), /dev/video*.")],
    config: ConfigOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Output folder.")]
    = Path("reports"),
    model: ModelOpt = None,
    revision: Annotated[str | None, typer.Option(metavar="REV",
                                                 help="Model revision (Hub branch/commit).")] = None,
    labels: LabelsOpt = None,
    mode: ModeOpt = None,
    every_seconds: EverySecondsOpt = None,
    every_n_frames: EveryNOpt = None,
    fps: FpsOpt = None,
    max_frames: Annotated[int | None, typer.Option(metavar="N", min=1,
                                                   help="Stop after N frames per input.")] = None,
    decoder: Annotated[Literal["pyav", "decord"] | None, typer.Option(
        help="Decoder backend. Default: pyav.")] = None,
    decode_strategy: Annotated[Literal["auto", "exact", "fast", "keyframes"] | None, typer.Option(
        help="How frames are reached (docs/DECODE.md). Default: auto.")] = None,
    timeout: Annotated[float | None, typer.Option(
        metavar="S", callback=above_zero, help="Per-input decode stall timeout. Default: 600.")] = None,
    device: DeviceOpt = None,
    precision: Annotated[Literal["auto", "fp32", "fp16", "bf16", "int8"] | None, typer.Option(
        help="Model precision (int8: exported runtimes only, image tower quantised). Default: auto "
             "(exported runtimes: the fastest agreeing with fp32, measured once per model).")] = None,
    runtime: RuntimeOpt = None,
    batch_size: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="Frames per model call. Default: auto.")] = None,
    formats: FormatsOpt = None,
    top_frames: Annotated[int | None, typer.Option(
        "--top-frames", metavar="N", min=0, help="Save the N best frames per label as JPEGs "
                                                 "(top_frames/). Default: 0.")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="Where decode and embed run.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        metavar="ADDR", help="Ray cluster address (auto, ray://host:10001, host:6379). "
                             "Default: RAY_ADDRESS when set, else a local Ray.")] = None,
    ray_actors: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="Ray embedding actors. Default: one per GPU.")] = None,
    resume: Annotated[bool, typer.Option(help="Skip inputs already finished with the same config.")] = False,
    store: Annotated[Path | None, typer.Option(
        "--store", metavar="DIR", help="Embedding store. Default: OUTPUT/store.", file_okay=False)] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not store embeddings.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache",
                                           help="Decode even inputs already in the store.")] = False,
    no_refine: NoRefineOpt = False,
    shots: Annotated[bool, typer.Option(
        "--shots", help="Also find shots and cues (one more pass decoding every frame): shots.csv, "
                        "cues.csv; timelines cut into shots. Default: the config's shots.enabled.")] = False,
    as_json: JsonOpt = False,
    store_wait: Annotated[float | None, typer.Option(
        "--store-wait", metavar="S", min=0, help="Seconds a store write waits for another run writing "
        "the same store. Default: 300.")] = None,
    live: Annotated[bool, typer.Option(
        "--live", help="Treat file inputs as live streams too (URLs, -, /dev/video* always are).")] = False,
    duration: Annotated[float | None, typer.Option(
        "--duration", metavar="S", min=0.0, help="Live: stop each stream after S seconds of it.")] = None,
    events: Annotated[str | None, typer.Option(
        "--events", metavar="PATH|-", help="Live: segment events as JSON lines to PATH, - for stdout.")]
    = None,
    events_url: Annotated[str | None, typer.Option(
        "--events-url", metavar="URL", help="Live: POST each event as JSON to URL (retried; failures "
        "are warnings).")] = None,
    flush_every: Annotated[float, typer.Option(
        "--flush-every", metavar="S", min=0.1, help="Live: rewrite summary.json and timeline.png every "
        "S seconds.")] = 10.0,
    reconnect: Annotated[bool, typer.Option(
        "--reconnect", help="Live: reopen a dropped URL or camera, backing off up to 30 s.")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classify sampled frames of each input and write reports per input.

    Without --config or --labels the packaged default config applies: model
    openai/clip-vit-base-patch32, one frame every 1.0 s, 7 scene labels
    (indoors, city street, nature, beach, people, sports, text or screen).
    """

    def job() -> int:
        from pipeline.config import load_config
        from pipeline.run.job import RunOptions, run_job

        overrides = {
            "model.id": model, "model.revision": revision, "model.device": device,
            "model.precision": precision, "model.runtime": runtime, "model.batch_size": batch_size,
            "scoring.mode": mode_for(mode, config, labels), "decoder.backend": decoder,
            "decoder.strategy": decode_strategy,
            "decoder.timeout_s": timeout, "sampling.max_frames": max_frames,
            "labels": label_list(labels), "output.formats": csv_list(formats, "--formats", FORMATS),
            "output.top_frames": top_frames, "segments.refine": False if no_refine else None,
            "shots.enabled": True if shots else None,
            **sampling_overrides(every_seconds, every_n_frames, fps),
        }
        cfg = load_config(config_path(config, labels), overrides, flags=FLAGS)
        _check_output_folder(output)
        options = RunOptions(engine=engine, ray_address=ray_address, ray_actors=ray_actors, resume=resume,
                             progress=not quiet, store=store, use_store=not no_store,
                             use_cache=not no_cache, store_wait_s=store_wait,
                             live=_live_options(live, duration, events, events_url, flush_every, reconnect,
                                               as_json))
        result = run_job(inputs, cfg, output, options)
        _print_run_summary(result, output, quiet, as_json)
        return result.exit_code

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def rescore(
    config: ConfigOpt = None,
    store: StoreOpt = Path("reports/store"),
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Output folder.")]
    = Path("reports/rescore"),
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    no_refine: NoRefineOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Re-score stored embeddings with a new config's labels (decodes only edge frames the store lacks)."""

    def job() -> int:
        from pipeline.config import load_config
        from pipeline.run.rescore import rescore_job

        cfg = load_config(config_path(config, None), {"model.device": device, "model.runtime": runtime,
                                                       "segments.refine": False if no_refine else None},
                          flags=FLAGS)
        _check_output_folder(output)
        result = rescore_job(cfg, store, output, model=model)
        _print_run_summary(result, output, quiet, as_json)
        return result.exit_code

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def download_model(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Hub id.")] = DEFAULT_MODEL,
    revision: Annotated[str | None, typer.Option(metavar="REV", help="Branch or commit.")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fetch a model into the Hugging Face cache, for later offline runs."""

    def job() -> int:
        from pipeline.embed import download
        from pipeline.types import ModelLoadError

        try:
            folder = download(model, revision=revision)
        except ModelLoadError as ex:  # the network or the Hub said no: the job failed, not the command line
            log.debug("download failed", exc_info=True)
            error(str(ex))
            return EXIT_INPUT_FAILED
        typer.echo(f"{model} is cached at {folder}; set HF_HUB_OFFLINE=1 to run without network.")
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


REPORT_FORMATS = ("html", "vtt", "edl", "thumbs", "otio", "fcpxml", "chapters", "edl-events")


def report_cmd(
    folder: Annotated[Path, typer.Argument(metavar="DIR",
                                           help="A `scenetag run` output folder, or one input's folder.",
                                           exists=True, file_okay=False)],
    formats: Annotated[str | None, typer.Option(
        metavar="F,F,...", help=f"Comma-separated, of: {','.join(REPORT_FORMATS)}. "
                                "Default: html,vtt,edl.")] = None,
    top_frames: Annotated[int, typer.Option("--top-frames", metavar="N", min=0,
                                            help="Also save the N best frames per label.")] = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Rewrite HTML reports and exports from a run's files; loads no model."""

    def job() -> int:
        from pipeline.report import regenerate

        wanted = csv_list(formats, "--formats", REPORT_FORMATS, check=False)
        results = regenerate(folder, wanted, top_frames=top_frames)
        if not quiet:
            typer.echo(f"scenetag: {plural(len(results), 'report')} rewritten in {folder}/", err=True)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def _check_output_folder(output: Path) -> None:
    """The output folder must be a folder we can write, before any work."""
    if output.exists() and not output.is_dir():
        raise PipelineError(f"--output: {output} is a file, not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise PipelineError(f"--output: cannot create {output}: {ex.strerror or ex}") from ex
    if not os.access(output, os.W_OK | os.X_OK):
        raise PipelineError(f"--output: cannot write to {output} (permission denied)")


def _live_options(force: bool, duration: float | None, events: str | None, events_url: str | None,
                  flush_every: float, reconnect: bool, as_json: bool) -> Any:
    """The live flags of ``run`` (see pipeline.live.session.LiveOptions)."""
    from pipeline.live.session import LiveOptions

    if events == "-" and as_json:
        raise PipelineError("--events -: stdout already carries --json; give --events a file")
    return LiveOptions(force=force, duration_s=duration, events=events, events_url=events_url,
                       flush_every_s=flush_every, reconnect=reconnect)


def _print_run_summary(result: Any, output: Path, quiet: bool, as_json: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(run_summary(result, output), ensure_ascii=False))
    if quiet:
        return
    totals = run_summary(result, output)["totals"]
    parts = [f"{totals[key]} {key}" for key in ("ok", "failed", "resumed") if totals[key]] + \
        ([plural(totals["images"], "image")] if totals["images"] else [])
    if totals["partial"]:  # ok inputs decoded only in part (each also had its warning line)
        parts[0] += f" ({totals['partial']} partial)"
    typer.echo(f"scenetag: {', '.join(parts) or '0 ok'}; reports in {output}/ (index.csv)", err=True)


def run_summary(result: Any, output: Path) -> dict[str, Any]:
    """The machine-readable run summary ``--json`` prints: one entry per
    input (status, error, notes, tags, segments, NSFW verdict, output
    folder) and totals."""
    from pipeline.report import partial_note

    inputs = [{
        "input": r.input_path, "name": r.name, "status": r.status, "error": r.error,
        "notes": [note] if (note := partial_note(r)) else [], "tags": list(r.tags),
        "segments": [{"label": s.label, "kind": s.kind, "start_s": round(s.start_s, 3),
                      "end_s": round(s.end_s, 3), "peak": round(s.peak, 4), "mean": round(s.mean, 4)}
                     for s in r.segments],
        "nsfw_verdict": r.nsfw_verdict, "output": str(output / r.name),
    } for r in result.results]
    images = [{"input": im.input_path, "scores": {k: round(float(v), 4) for k, v in im.scores.items()},
               "tags": list(im.tags), "nsfw_verdict": im.nsfw_verdict} for im in result.images]
    # Resumed inputs are in the results (rebuilt from their summary.json, all
    # ok): each is counted once, as resumed.
    ok = sum(r["status"] == "ok" for r in inputs)
    return {"output": str(output), "inputs": inputs, "images": images,
            "totals": {"inputs": len(inputs), "ok": ok - result.skipped, "failed": len(inputs) - ok,
                       "resumed": result.skipped, "images": len(images),
                       "partial": sum(bool(r["notes"]) for r in inputs)},
            "exit_code": result.exit_code}
