"""``scenetag`` command line: argv → config → run → exit code.

The only module that sets up logging and turns errors into one-line
messages. Exit codes: 0 every input ok; 1 some input failed (the others are
still written); 2 usage, config or model error (nothing was processed).
Tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from pipeline.config import DEFAULT_MODEL
from pipeline.types import PipelineError

log = logging.getLogger("scenetag")


class _Argument(TyperArgument):
    """An argument shown as its metavar (``INPUT...``), without typer's
    ``{inputs}...`` usage braces and ``<list[str]>`` type label."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


class _AboveZero(TyperOption):
    """A number option that must be above 0, and whose help says so
    (``[x>0]``): typer's ``min`` is inclusive, so ``min=0`` would promise
    that 0 works. Checked by :func:`_above_zero`."""

    def _get_number_range_help_str(self) -> str | None:
        return "x>0" if self.max is None else f"0<x<={self.max:g}"


def _above_zero(value: float | None) -> float | None:
    """The callback of an option that must be above 0 (see :class:`_AboveZero`)."""
    if value is not None and not value > 0:  # NaN too
        raise typer.BadParameter(f"must be greater than 0; got {value:g}")
    return value


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument and param.metavar:
                param.__class__ = _Argument
            elif type(param) is TyperOption and param.callback is not None \
                    and inspect.unwrap(param.callback) is _above_zero:
                param.__class__ = _AboveZero


class _Group(TyperGroup):
    """Usage mistakes as one ``scenetag: error: --flag: ...`` line (exit 2),
    in the same words as config errors, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        from typer import Abort
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as ex:  # bare `scenetag`: the help text, as click prints it
            ex.show()
            code = ex.exit_code
        except UsageError as ex:
            _error(_usage_line(ex))
            code = EXIT_USAGE
        except ClickException as ex:
            _error(ex.format_message())
            code = ex.exit_code
        except Abort:
            _error("aborted")
            code = 130
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _usage_line(ex: Any) -> str:
    """A usage mistake as ``--flag: what is wrong``, pointing to the
    command's help; a path that is missing or of the wrong kind is the
    file's problem, not the command line's, so it gets no pointer."""
    from typer._click.exceptions import NoSuchOption

    if isinstance(ex, NoSuchOption):
        return _unknown_option(ex.option_name, ex.possibilities or [], _help_pointer(ex))
    path = _path_problem(str(ex.message))
    if path:
        return _with_hint(ex, path)
    return f"{_with_hint(ex, _usage_message(str(ex.message)))} {_help_pointer(ex)}"


def _help_pointer(ex: Any) -> str:
    return f"(see `{ex.ctx.command_path if ex.ctx is not None else 'scenetag'} --help`)"


def _unknown_option(name: str, close: list[str], pointer: str) -> str:
    """click finds the close matches (difflib, best first) but its message
    leaves them out; the best one is the suggestion."""
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"{name}: no such option{guess} {pointer}"


def _usage_message(message: str) -> str:
    message = message.removeprefix("Value error, ")
    choice = re.fullmatch(r"(.+) is not one of (.+)\.", message)
    if choice:
        message = f"must be one of {choice.group(2).replace(chr(39), '')}; got {choice.group(1)}"
    message = re.sub(r"^Input should be greater than or equal to", "must be at least", message)
    return re.sub(r"^Input should be", "must be", message)


# typer's path checks ("dir 'x' does not exist.") in the words of the rest of
# the CLI ("folder not found: x", as for a missing input).
_PATH_PROBLEMS = (
    (r"file (['\"])(?P<p>.*)\1 does not exist\.", "file not found: {p}"),
    (r"dir (['\"])(?P<p>.*)\1 does not exist\.", "folder not found: {p}"),
    (r"path (['\"])(?P<p>.*)\1 does not exist\.", "not found: {p}"),
    (r"\w+ (['\"])(?P<p>.*)\1 is a file\.", "{p} is a file, not a folder"),
    (r"\w+ (['\"])(?P<p>.*)\1 is a directory\.", "{p} is a folder, not a file"),
    (r"\w+ (['\"])(?P<p>.*)\1 is not readable\.", "cannot read {p} (permission denied)"),
    (r"\w+ (['\"])(?P<p>.*)\1 is not writable\.", "cannot write to {p} (permission denied)"),
)


def _path_problem(message: str) -> str | None:
    for pattern, words in _PATH_PROBLEMS:
        found = re.fullmatch(pattern, message)
        if found:
            return words.format(p=found.group("p"))
    return None


def _with_hint(ex: Any, message: str) -> str:
    """``message`` after the flag (or argument) it is about."""
    param = getattr(ex, "param", None)
    hint = getattr(ex, "param_hint", None) or (param.get_error_hint() if param is not None else None)
    if isinstance(hint, (list, tuple)):
        hint = " / ".join(hint)
    # click quotes each name of a flag with several: "'--top' / '-k'"
    names = re.sub(r"'([^']*)'", r"\1", str(hint)) if hint else None
    return f"{names}: {message}" if names else message


app = typer.Typer(
    name="scenetag",
    help="Tag scenes in videos with CLIP: sampled frames → zero-shot scores → timestamped tags.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=_Group,
)
config_app = typer.Typer(help="Show, check or start a config file.", no_args_is_help=True,
                         add_completion=False, rich_markup_mode=None, cls=_Group)
app.add_typer(config_app, name="config")

EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE = 0, 1, 2

FORMATS = ("csv", "plot", "json", "html", "vtt", "edl", "thumbs")

# Options shared by several commands.
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", "-c", metavar="FILE|NAME",
    help="YAML config file, or the name of a shipped one (demo, coffee, nsfw, default: "
         "configs/NAME.yaml). Default: the packaged default.yaml: 7 scene labels.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", metavar="ID|DIR",
                                              help="Hub id or local model folder. "
                                                   f"Default: the config's; {DEFAULT_MODEL}.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Verbose logs and full tracebacks.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", metavar="DEV",
                                               help="auto, cpu, cuda, cuda:N or mps. "
                                                    "Default: the config's; auto.")]
RuntimeOpt = Annotated[Literal["auto", "torch", "openvino", "onnxruntime"] | None, typer.Option(
    help="What runs the model: torch, or a graph exported for OpenVINO / ONNX Runtime (CPU; fp32, "
         "int8, OpenVINO also bf16; needs scenetag[cpu]). Default: the config's; auto (OpenVINO on a CPU "
         "where installed, else torch; SCENETAG_CPU_RUNTIME=torch makes it torch).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout "
                                                      "(nothing else goes to stdout).")]
LabelsOpt = Annotated[str | None, typer.Option(
    metavar="A,B,...", help="Comma-separated labels, replacing the config's.")]
ModeOpt = Annotated[Literal["auto", "softmax", "binary", "sigmoid", "independent"] | None, typer.Option(
    help="auto: the model's own rule (CLIP softmax, SigLIP sigmoid); softmax: labels exclude each "
         "other; binary: each label is its own yes/no; sigmoid: SigLIP's independent probabilities; "
         "independent: sigmoid for SigLIP, else binary. Default: the config's; auto "
         "(--labels without --config: independent).")]
EverySecondsOpt = Annotated[float | None, typer.Option(
    metavar="S", callback=_above_zero, help="Sample one frame every S seconds. Default: the config's; 1.0.")]
EveryNOpt = Annotated[int | None, typer.Option(metavar="N", min=1, help="Sample every N-th frame.")]
FpsOpt = Annotated[float | None, typer.Option(metavar="FPS", callback=_above_zero,
                                              help="Sample this many frames per second.")]
FormatsOpt = Annotated[str | None, typer.Option(
    metavar="F,F,...", help=f"Comma-separated, of: {','.join(FORMATS)}. "
                            "Default: the config's; all but thumbs.")]

# A flag's errors name the flag: the config key each override sets.
FLAGS = {"model.id": "--model", "model.revision": "--revision", "model.device": "--device",
         "model.precision": "--precision", "model.runtime": "--runtime", "model.batch_size": "--batch-size",
         "scoring.mode": "--mode",
         "decoder.backend": "--decoder", "decoder.strategy": "--decode-strategy",
         "decoder.timeout_s": "--timeout", "sampling.max_frames": "--max-frames", "labels": "--labels",
         "output.formats": "--formats", "output.top_frames": "--top-frames",
         "sampling.every_seconds": "--every-seconds", "sampling.every_n_frames": "--every-n-frames",
         "sampling.fps": "--fps", "segments.refine": "--no-refine"}
NoRefineOpt = Annotated[bool, typer.Option(
    "--no-refine", help="Keep segment edges at sample resolution (no frame-accurate edge refinement).")]


def _print_version(value: bool) -> None:
    if value:
        from pipeline.about import version

        typer.echo(f"scenetag {version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version, help="Print the version and exit.")] = False,
) -> None:
    """Tag scenes in videos with CLIP: sampled frames → zero-shot scores → timestamped tags."""


@app.command(cls=_Command)
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
        metavar="S", callback=_above_zero, help="Per-input decode stall timeout. Default: 600.")] = None,
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
        metavar="ADDR", help="Ray cluster address (auto, ray://host:10001).")] = None,
    ray_actors: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="Ray embedding actors. Default: one per GPU.")] = None,
    resume: Annotated[bool, typer.Option(help="Skip inputs already finished with the same config.")] = False,
    store: Annotated[Path | None, typer.Option(
        "--store", metavar="DIR", help="Embedding store. Default: OUTPUT/store.", file_okay=False)] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not store embeddings.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache",
                                           help="Decode even inputs already in the store.")] = False,
    no_refine: NoRefineOpt = False,
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
            "scoring.mode": _mode_for(mode, config, labels), "decoder.backend": decoder,
            "decoder.strategy": decode_strategy,
            "decoder.timeout_s": timeout, "sampling.max_frames": max_frames,
            "labels": _label_list(labels), "output.formats": _csv_list(formats, "--formats", FORMATS),
            "output.top_frames": top_frames, "segments.refine": False if no_refine else None,
            **_sampling_overrides(every_seconds, every_n_frames, fps),
        }
        cfg = load_config(_config_path(config, labels), overrides, flags=FLAGS)
        _check_output_folder(output)
        options = RunOptions(engine=engine, ray_address=ray_address, ray_actors=ray_actors, resume=resume,
                             progress=not quiet, store=store, use_store=not no_store,
                             use_cache=not no_cache, store_wait_s=store_wait,
                             live=_live_options(live, duration, events, events_url, flush_every, reconnect,
                                               as_json))
        result = run_job(inputs, cfg, output, options)
        _print_run_summary(result, output, quiet, as_json)
        return result.exit_code

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command("download-model", cls=_Command)
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
            _error(str(ex))
            return EXIT_INPUT_FAILED
        typer.echo(f"{model} is cached at {folder}; set HF_HUB_OFFLINE=1 to run without network.")
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


REPORT_FORMATS = ("html", "vtt", "edl", "thumbs")


@app.command("report", cls=_Command)
def report_cmd(
    folder: Annotated[Path, typer.Argument(metavar="DIR",
                                           help="A `scenetag run` output folder, or one input's folder.",
                                           exists=True, file_okay=False)],
    formats: Annotated[str | None, typer.Option(
        metavar="F,F,...", help=f"Comma-separated, of: {','.join(REPORT_FORMATS)}. "
                                "Default: those the run wrote.")] = None,
    top_frames: Annotated[int, typer.Option("--top-frames", metavar="N", min=0,
                                            help="Also save the N best frames per label.")] = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Rewrite HTML reports and exports from a run's files; loads no model."""

    def job() -> int:
        from pipeline.report.html import regenerate

        wanted = _csv_list(formats, "--formats", REPORT_FORMATS, check=False)
        results = regenerate(folder, wanted, top_frames=top_frames)
        if not quiet:
            typer.echo(f"scenetag: {_plural(len(results), 'report')} rewritten in {folder}/", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


StoreOpt = Annotated[Path, typer.Option("--store", metavar="DIR",
                                         help="Embedding store folder (from `scenetag run`).",
                                         file_okay=False)]
StoreModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="ID|DIR", help="Model for queries. "
                                            "Default: the one the store was built with.")]
SamplingOpt = Annotated[str | None, typer.Option(
    "--sampling", metavar="RULE", help="Only inputs stored with this sampling, e.g. 'every 0.5 s'. "
    "Default: all (a frame stored twice counts once).")]


@app.command(cls=_Command)
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

        cfg = load_config(_config_path(config, None), {"model.device": device, "model.runtime": runtime,
                                                       "segments.refine": False if no_refine else None},
                          flags=FLAGS)
        _check_output_folder(output)
        result = rescore_job(cfg, store, output, model=model)
        _print_run_summary(result, output, quiet, as_json)
        return result.exit_code

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


TruthOpt = Annotated[Path, typer.Option(
    "--truth", metavar="FILE", exists=True, dir_okay=False,
    help="Truth: CSV input,label,start_s,end_s; scenetag's segments.csv/segments.json; "
         "or JSON {clips: {NAME: {intervals: [...]}}}.")]


@app.command("eval", cls=_Command)
def eval_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", exists=True, file_okay=False,
                                            help="A `scenetag run` output folder, or one input's folder.")],
    truth: TruthOpt,
    iou: Annotated[float, typer.Option("--iou", metavar="X", max=1.0, callback=_above_zero,
                                       help="IoU a segment needs to match a true one.")] = 0.5,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR",
                                                help="Where eval.csv/.json/.png go. Default: RUN_DIR.")]
    = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure a run's segments and scores against truth; loads no model."""

    def job() -> int:
        from pipeline.measure.evaluate import evaluate, load_run, write_eval
        from pipeline.measure.truth import load_truth

        result = evaluate(load_run(run_dir), load_truth(truth), iou)
        write_eval(result, output or run_dir)
        if not quiet:
            total = result.overall()
            typer.echo(f"scenetag: {_plural(len(result.inputs), 'input')} evaluated: segment F1 "
                       f"{total.f1:.3f} (precision {total.precision:.3f}, recall {total.recall:.3f}, "
                       f"IoU >= {iou:g}); eval.csv, eval.json, eval.png in {output or run_dir}/", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command(cls=_Command)
def calibrate(
    truth: TruthOpt,
    config: ConfigOpt = None,
    store: StoreOpt = Path("reports/store"),
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE",
                                         help="The tuned config to write.", dir_okay=False)]
    = Path("tuned.yaml"),
    iou: Annotated[float, typer.Option("--iou", metavar="X", max=1.0, callback=_above_zero,
                                       help="IoU a segment needs to match a true one.")] = 0.5,
    shared_unseen: Annotated[bool, typer.Option(
        "--shared-unseen", help="Give labels without positive truth the values tuned on the others "
                                "(default: refuse).")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Tune thresholds and segment rules on labelled clips from stored embeddings; never decodes."""

    def job() -> int:
        import numpy as np

        from pipeline.atomic import atomic_path
        from pipeline.measure.calibrate import calibrate as run_calibration
        from pipeline.measure.calibrate import tuned_yaml
        from pipeline.config import load_config
        from pipeline.measure.truth import load_truth

        path = _config_path(config, None)
        if path is None:
            raise PipelineError("--config: calibrate needs the config file to tune")
        cfg = load_config(path)
        result = run_calibration(cfg, store, load_truth(truth), min_iou=iou, allow_unseen=shared_unseen)
        text = tuned_yaml(path, cfg, result, output, truth, store)
        with atomic_path(output) as tmp:
            tmp.write_text(text, encoding="utf-8")
            load_config(tmp)  # what we write must load
        if not quiet:
            before = np.mean([b for b, _ in result.per_label().values()])
            after = np.mean([a for _, a in result.per_label().values()])
            cv = f"; cross-validated {np.mean([f[2] for f in result.folds]):.3f}" if result.folds else ""
            typer.echo(f"scenetag: mean segment F1 {before:.3f} -> {after:.3f}{cv} "
                       f"({_plural(len(result.problem.clips), 'input')}, {result.seconds:.1f} s); "
                       f"wrote {output}{' (unchanged: nothing beat the config)' if result.unchanged else ''}",
                       err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


def _query_text(value: str | None) -> str | None:
    """QUERY, refused when empty or blank (it would match nothing in particular)
    or not text (bytes that are not UTF-8 reach Python as lone surrogates)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("give words to search for (the query is empty or blank)")
    if value is not None and _has_surrogate(value):
        raise typer.BadParameter("not UTF-8 text (check the terminal's encoding)")
    return value


def _output_folder(out: Path) -> None:
    """Make ``out`` and mark it as scenetag's, so later runs never take its
    search sheets or cluster plots for inputs."""
    from pipeline.report.folders import mark_output_folder

    out.mkdir(parents=True, exist_ok=True)
    mark_output_folder(out)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@app.command(cls=_Command)
def search(
    query: Annotated[str | None, typer.Argument(metavar="QUERY", help='Text query, e.g. "a coffee cup".',
                                                callback=_query_text)] = None,
    store: StoreOpt = Path("reports/store"),
    image: Annotated[Path | None, typer.Option("--image", metavar="FILE",
                                               help="Query with an image file instead.",
                                               dir_okay=False)] = None,
    top: Annotated[int, typer.Option("--top", "-k", metavar="N", min=1, help="Number of results.")] = 10,
    video: Annotated[str | None, typer.Option(metavar="INPUT",
                                              help="Only this input (path, file name or stem).")] = None,
    sampling: SamplingOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="DIR",
        help="Folder for search-QUERY.csv, .moments.csv and .png. Default: the store's parent.")] = None,
    reports: Annotated[Path | None, typer.Option(
        "--reports", metavar="DIR", file_okay=False,
        help="Report folders whose NSFW segments blur frames in the contact sheet. "
             "Default: the store's parent.")] = None,
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Find the stored frames closest to a text or image query, and the moments they lie in."""

    def job() -> int:
        from pipeline.explore import search as s
        from pipeline.serve.library import find_reports, match_reports
        from pipeline.store.db import EmbeddingStore

        if (query is None) == (image is None):
            raise PipelineError("give a text QUERY or --image FILE (one of them)")
        if reports is not None and not reports.is_dir():
            raise PipelineError(f"--reports: no folder {reports}")
        db = EmbeddingStore.open(store)
        vector = s.query_vector(db, lambda: _store_embedder(db, model, device, runtime), query, image,
                                cached=model in (None, db.model_id))
        videos = s.select_videos(db, video=video, sampling=sampling)
        hits = s.search(db, vector, top_k=top, video=video, sampling=sampling)
        moments = s.find_moments(db, vector, hits, videos)
        known = match_reports([v.input_path for v in db.videos()], find_reports(reports or store.parent))
        nsfw = [h.input_path in known and known[h.input_path].nsfw_at(h.time_s) for h in hits]
        out, stem = output or store.parent, s.output_stem(query, image)
        _output_folder(out)
        written = [s.write_csv(hits, out, stem=stem), s.write_moments_csv(moments, out, stem=stem),
                   s.write_contact_sheet(hits, out, title=f"search: {query or image.name}", stem=stem,
                                         nsfw=nsfw)]
        if not quiet:
            typer.echo(s.format_table(hits))
            typer.echo("")
            typer.echo(s.format_moments(moments))
            typer.echo(f"scenetag: {_plural(len(hits), 'result')} in {_plural(len(moments), 'moment')}; "
                       f"{', '.join(str(p) for p in written)}", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@app.command(cls=_Command)
def cluster(
    store: StoreOpt = Path("reports/store"),
    k: Annotated[int | None, typer.Option(
        "--k", metavar="K", min=1, help="KMeans clusters. Default: auto by silhouette.")] = None,
    dbscan: Annotated[bool, typer.Option("--dbscan", help="Use DBSCAN (cosine) instead of KMeans.")] = False,
    eps: Annotated[float | None, typer.Option("--eps", metavar="D", callback=_above_zero,
                                              help="With --dbscan: radius in cosine distance. "
                                                   "Default: 0.1.")] = None,
    min_samples: Annotated[int | None, typer.Option("--min-samples", metavar="N", min=1,
                                                    help="With --dbscan: core neighbourhood size. "
                                                         "Default: 3.")] = None,
    outliers: Annotated[int, typer.Option("--outliers", metavar="N", min=0,
                                          help="KMeans: cap on outliers (frames far from their "
                                               "cluster).")] = 10,
    video: Annotated[str | None, typer.Option(metavar="INPUT",
                                              help="Only this input (path, file name or stem).")] = None,
    sampling: SamplingOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="DIR",
        help="Folder for clusters.csv/png. Default: the store's parent.")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", metavar="FILE|NAME",
        help="Name each cluster by its nearest label or background prompt of this config (in the "
             "legends, with the cosine similarity). Default: clusters are numbered only.")] = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Cluster stored frames; write clusters.csv, outliers.csv, clusters.png and clusters.html."""

    def job() -> int:
        from pipeline.explore import cluster as c
        from pipeline.explore.search import select_videos
        from pipeline.store.db import EmbeddingStore

        if dbscan and k is not None:
            raise PipelineError("give --k or --dbscan, not both")
        if not dbscan and (eps is not None or min_samples is not None):
            flag = "--eps" if eps is not None else "--min-samples"
            raise PipelineError(f"{flag} applies to DBSCAN only: add --dbscan (without it KMeans runs)")
        db = EmbeddingStore.open(store)
        rows = db.frames(select_videos(db, video=video, sampling=sampling), unique=True)
        result = c.cluster(rows.vectors, k=k, dbscan_eps=(0.1 if eps is None else eps) if dbscan else None,
                           min_samples=3 if min_samples is None else min_samples, outliers=outliers)
        if config is not None:
            from dataclasses import replace

            from pipeline.config import load_config

            names, vectors = c.config_names(load_config(_find_config(config)),
                                            _store_texts(db, device, runtime))
            result = replace(result, holds=c.nearest_names(rows.vectors, result.labels, names, vectors))
        out = output or store.parent
        _output_folder(out)
        c.write_outputs(rows, result, out)
        if not quiet:
            typer.echo(f"scenetag: {_plural(len(rows), 'frame')}, {result.method}: "
                       f"{_plural(result.k, 'cluster')}, {_plural(int(result.is_outlier.sum()), 'outlier')}; "
                       f"{out}/clusters.csv", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


# --------------------------------------------------------------------------- config


@config_app.command("show", cls=_Command)
def config_show(
    config: ConfigOpt = None,
    model: ModelOpt = None,
    labels: LabelsOpt = None,
    mode: ModeOpt = None,
    every_seconds: EverySecondsOpt = None,
    every_n_frames: EveryNOpt = None,
    fps: FpsOpt = None,
    formats: FormatsOpt = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Override any key, e.g. --set segments.threshold=0.6 "
                                           "(VALUE is YAML; repeatable).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the effective config (file + defaults + overrides) as YAML."""

    def job() -> int:
        import yaml

        from pipeline.config import load_config

        overrides = {"model.id": model, "scoring.mode": _mode_for(mode, config, labels),
                     "labels": _label_list(labels),
                     "output.formats": _csv_list(formats, "--formats", FORMATS),
                     **_sampling_overrides(every_seconds, every_n_frames, fps), **_set_overrides(sets)}
        flags = {**FLAGS, **{key: f"--set {key}" for key in _set_overrides(sets)}}
        cfg = load_config(_config_path(config, labels), overrides, flags=flags)
        typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
                   nl=False)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=False, debug=debug))


@config_app.command("validate", cls=_Command)
def config_validate(
    files: Annotated[list[str], typer.Argument(metavar="FILE|NAME...", help="Configs to check.")],
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check configs; print every error with its key path. Exit 0 when all are valid, else 2."""

    def job() -> int:
        from pipeline.config import load_config

        bad = 0
        for name in files:
            try:
                path = _find_config(name, flag="")
                load_config(path)
            except PipelineError as ex:
                bad += 1
                _error(str(ex))
                continue
            if not quiet:
                typer.echo(f"{path}: ok")
        return EXIT_USAGE if bad else EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


@config_app.command("init", cls=_Command)
def config_init(
    path: Annotated[Path, typer.Argument(metavar="[PATH]", help="Where to write it.", dir_okay=False)]
    = Path("scenetag.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter config."""

    def job() -> int:
        from pipeline.config import STARTER_CONFIG_PATH

        if path.exists() and not force:
            raise PipelineError(f"{path} exists; pass --force to overwrite it")
        try:
            path.write_text(STARTER_CONFIG_PATH.read_text(encoding="utf-8"), encoding="utf-8")
        except OSError as ex:
            raise PipelineError(f"cannot write {path}: {ex.strerror or ex}") from ex
        typer.echo(f"scenetag: wrote {path}; edit its labels, then `scenetag run VIDEO -c {path}`", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=False, debug=debug))


# --------------------------------------------------------------------------- serve


@app.command(cls=_Command)
def serve(
    store: StoreOpt = Path("reports/store"),
    reports: Annotated[Path | None, typer.Option(
        "--reports", metavar="DIR", file_okay=False,
        help="Report folders (`scenetag run -o DIR`) to show: tags, NSFW verdicts, timelines.")] = None,
    host: Annotated[str, typer.Option(metavar="ADDR", help="Address to listen on. Anything but "
                                                           "loopback lets other machines connect.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="N", min=0, max=65535, help="Port (0: any free one).")]
    = 8765,
    token: Annotated[str | None, typer.Option(
        metavar="TEXT", envvar="SCENETAG_TOKEN",
        help="Require this token (open the page as /?token=TEXT). Env: SCENETAG_TOKEN.")] = None,
    threads: Annotated[int, typer.Option(metavar="N", min=1,
                                         help="CPU threads for the model (a query is one short text: "
                                              "more threads mostly contend).")] = 1,
    model: StoreModelOpt = None,
    device: DeviceOpt = None,
    runtime: RuntimeOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Search and browse the store in a browser (needs the serve extra)."""

    def job() -> int:
        from pipeline.serve import require_web

        require_web()
        from pipeline.serve import server
        from pipeline.serve.app import create_app
        from pipeline.store.db import EmbeddingStore

        if reports is not None and not reports.is_dir():
            raise PipelineError(f"--reports: no folder {reports}")
        if token is not None and not token.strip():
            raise PipelineError("--token: give a non-empty token")
        db = EmbeddingStore.open(store)
        sock = server.bind(host, port)
        if not server.is_loopback(host):
            log.warning("listening on %s: other machines can reach this server%s", host,
                        "" if token else "; anyone who can connect sees every stored video (set --token)")
        server.limit_model_threads(threads)
        embedder = _store_embedder(db, model, device, runtime)
        web = create_app(db, embedder, reports=reports, token=token,
                         allowed_hosts=server.allowed_hosts(host), prompt_cache=model in (None, db.model_id))
        url = server.url_of(sock) + ("?token=" + token if token else "")
        count = _plural(len(web.state.scenetag.library), "input")
        try:
            server.run_forever(web, sock, on_ready=None if quiet else lambda: typer.echo(
                f"scenetag: serving {count} at {url} (Ctrl-C stops)", err=True))
        except KeyboardInterrupt:  # uvicorn stopped gracefully, then re-raised the Ctrl-C
            if not quiet:
                typer.echo("scenetag: stopped", err=True)
        return EXIT_OK

    raise typer.Exit(_guarded(job, quiet=quiet, debug=debug))


# --------------------------------------------------------------------------- helpers


def _store_embedder(db: Any, model: str | None, device: str | None, runtime: str | None = None) -> Any:
    """The store's model (or ``model``, which must have the same dimension),
    on the runtime the stored frames were embedded with unless ``runtime`` says."""
    from pipeline.embed import load_embedder

    from pipeline.embed.load import hub_revision

    revision = None if model else hub_revision(db.model_revision)
    embedder = load_embedder(model or db.model_id, revision=revision, device=device or "auto",
                             runtime=runtime or "auto",
                             stored=None if model else [v.precision for v in db.videos()])
    db.check_model(embedder.model_id, embedder.revision, embedder.dim, same_model=model is None)
    return embedder



def _store_texts(db: Any, device: str | None, runtime: str | None) -> Callable[[list[str]], Any]:
    """Texts -> vectors from the store's prompt cache; the store's model is
    loaded (once) only for texts the cache lacks, which it then keeps."""
    import numpy as np

    from pipeline.store.db import embed_and_keep

    embedder: list[Any] = []

    def embed_texts(texts: list[str]) -> Any:
        found, _ = db.text_vectors(db.model_id, db.model_revision, texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            embedder[:] = embedder or [_store_embedder(db, None, device, runtime)]
            found.update(embed_and_keep(db, embedder[0], missing))
        return np.stack([found[t] for t in texts])

    return embed_texts


def _guarded(job: Callable[[], int], *, quiet: bool, debug: bool) -> int:
    """Run a command body: set up logging, map errors to one line + exit code."""
    _setup_logging(quiet=quiet, debug=debug)
    try:
        return job()
    except PipelineError as ex:
        log.debug("failed", exc_info=True)
        _error(str(ex))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted; finished inputs are complete, rerun with --resume to continue")
        return 130
    except OSError as ex:  # the machine said no (read-only, full, permissions), not a bug of ours
        if debug:
            raise
        where = f" ({ex.filename})" if ex.filename else ""
        _error(f"{ex.strerror or ex}{where}")
        return EXIT_USAGE
    except Exception as ex:  # the last line of defence: no traceback without --debug
        if debug:
            raise
        _error(f"internal error: {type(ex).__name__}: {ex} (rerun with --debug for details)")
        return 3


def _error(message: str) -> None:
    typer.echo(f"scenetag: error: {' '.join(message.split())}", err=True)


class _OneLine(logging.Formatter):
    """``scenetag: error: <message>`` — one line per record, no traceback
    unless the handler is in debug mode."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = f"scenetag: {record.levelname.lower()}: {' '.join(record.getMessage().split())}"
        if self.debug and record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


OWN_LOGGERS = ("scenetag", "pipeline")
# Libraries that log at INFO/DEBUG on every run (matplotlib alone: hundreds of
# findfont lines; PIL each PNG chunk): kept at WARNING under --debug, ERROR otherwise.
NOISY_LOGGERS = ("matplotlib", "PIL", "pydot", "urllib3", "httpx", "httpx2", "httpcore", "httpcore2",
                 "filelock", "fsspec", "huggingface_hub", "transformers", "libav", "asyncio", "numba")


class _OursOnlyBelowWarning(logging.Filter):
    """--debug is our own debug log: a library's records pass from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] in OWN_LOGGERS


class _StderrOfTheMoment(logging.StreamHandler):
    """Writes to sys.stderr as it is when a record arrives (as logging's own
    last-resort handler does): the CLI called in-process (an app, a test runner)
    sees sys.stderr swapped per call, and a handler bound to one call's stream
    would write into a closed file for every record after it."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _setup_logging(*, quiet: bool, debug: bool) -> None:
    handler = _StderrOfTheMoment()
    handler.setFormatter(_OneLine(debug))
    handler.addFilter(_OursOnlyBelowWarning())
    handler.set_name("scenetag-cli")
    root = logging.getLogger()
    # Replace only our own handler: tests and embedding apps keep theirs.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "scenetag-cli"] + [handler]
    root.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    for noisy in NOISY_LOGGERS:  # levels too, so they do not even format what nobody sees
        logging.getLogger(noisy).setLevel(logging.WARNING if debug else logging.ERROR)
    if not debug:
        _silence_libraries()


def _silence_libraries() -> None:
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # read when huggingface_hub is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("LANCEDB_LOG", "off")  # lance's Rust env_logger writes raw lines to stderr


def _mode_for(mode: str | None, config: str | None, labels: str | None) -> str | None:
    """--labels without a config scores each label on its own (a frame may
    show none of them); otherwise the config's mode applies unless --mode."""
    return mode or ("independent" if labels is not None and config is None else None)


def _config_path(config: str | None, labels: str | None) -> Path | None:
    """With neither a config nor --labels, the packaged default config applies."""
    if config is not None:
        return _find_config(config)
    if labels is not None:
        return None
    from pipeline.config import DEFAULT_CONFIG_PATH

    return DEFAULT_CONFIG_PATH


def _find_config(name: str, flag: str = "--config: ") -> Path:
    """A config file path, or the name of a shipped config.

    A name (``demo``, ``demo.yaml``) is looked up in the folders of
    :func:`_config_folders`. An existing file of that name always wins.
    """
    path = Path(name).expanduser()
    if path.exists() or "/" in name or os.sep in name:
        if path.is_dir():
            raise PipelineError(f"{flag}{path} is a folder, not a config file")
        return path
    file = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    for folder in _config_folders():
        if (folder / file).is_file():
            return folder / file
    raise PipelineError(f"{flag}no config file {name} and no shipped config named {name!r} "
                        f"(shipped: {', '.join(shipped_configs())})")


def shipped_configs() -> list[str]:
    """Names ``-c NAME`` finds from here."""
    return sorted({p.stem for folder in _config_folders() for p in folder.glob("*.yaml")})


def _config_folders() -> list[Path]:
    """Where ``-c NAME`` looks, in order: ``./configs``, the checkout's
    ``configs/``, then the package's own (``pipeline/configs/`` holds the
    Hub-model configs and ``pipeline/default.yaml`` the default, as package
    data, so names work for an installed package too)."""
    from pipeline.config import DEFAULT_CONFIG_PATH

    package = DEFAULT_CONFIG_PATH.parent
    folders = [Path("configs"), package.parent / "configs", package / "configs", package]
    return [f for f in folders if f.is_dir()]


def _label_list(labels: str | None) -> list[dict[str, Any]] | None:
    """``--labels a,b`` → label entries; an empty list (``--labels ""``) is an
    error later, blamed on the flag, never a silent fall-back to the config."""
    if labels is None:
        return None
    names = [name.strip() for name in labels.split(",") if name.strip()]
    if not names:
        raise PipelineError(f"--labels: give at least one label name (got {labels!r})")
    return [{"name": name} for name in names]


def _csv_list(text: str | None, flag: str, allowed: tuple[str, ...], *,
              check: bool = True) -> list[str] | None:
    """``a,b`` → ``["a", "b"]``; empty is an error, never "use the config's".
    ``check=False`` leaves unknown names to the command (it says more)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise PipelineError(f"{flag}: give at least one of {', '.join(allowed)}")
    unknown = [t for t in items if check and t not in allowed]
    if unknown:
        raise PipelineError(f"{flag}: must be one of {', '.join(allowed)}; got {unknown[0]!r}")
    return items


def _set_overrides(sets: list[str] | None) -> dict[str, Any]:
    """``--set key.path=VALUE`` pairs, VALUE parsed as YAML (``0.6``, ``[a, b]``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as ex:
            raise PipelineError(f"--set {key.strip()}: not a YAML value: {value!r}") from ex
    return out


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _sampling_overrides(every_seconds: float | None, every_n_frames: int | None,
                        fps: float | None) -> dict[str, Any]:
    """A sampling flag replaces the config's rule instead of adding a second one."""
    given = {"sampling.every_seconds": every_seconds, "sampling.every_n_frames": every_n_frames,
             "sampling.fps": fps}
    if all(v is None for v in given.values()):
        return {}
    from pipeline.config import UNSET

    return {key: value if value is not None else UNSET for key, value in given.items()}


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
        ([_plural(totals["images"], "image")] if totals["images"] else [])
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


def main() -> None:
    """Console-script entry point."""
    from pipeline.embed.cpu_share import sleeping_openmp

    sleeping_openmp()  # before anything imports torch: the decoder shares the cores
    app()


if __name__ == "__main__":
    main()
