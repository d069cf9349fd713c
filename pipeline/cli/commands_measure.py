"""The commands that measure against truth: ``eval`` (a run's segments and
scores) and ``calibrate`` (thresholds and segment rules tuned on stored
embeddings). Neither loads a model nor decodes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.configs import config_path
from pipeline.cli.messages import EXIT_OK, guarded, plural
from pipeline.cli.options import ConfigOpt, DebugOpt, QuietOpt, StoreOpt, above_zero
from pipeline.types import PipelineError

TruthOpt = Annotated[Path, typer.Option(
    "--truth", metavar="FILE", exists=True, dir_okay=False,
    help="Truth: CSV input,label,start_s,end_s; scenetag's segments.csv/segments.json; "
         "or JSON {clips: {NAME: {intervals: [...]}}}.")]


def eval_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", exists=True, file_okay=False,
                                            help="A `scenetag run` output folder, or one input's folder.")],
    truth: TruthOpt,
    iou: Annotated[float, typer.Option("--iou", metavar="X", max=1.0, callback=above_zero,
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
            typer.echo(f"scenetag: {plural(len(result.inputs), 'input')} evaluated: segment F1 "
                       f"{total.f1:.3f} (precision {total.precision:.3f}, recall {total.recall:.3f}, "
                       f"IoU >= {iou:g}); eval.csv, eval.json, eval.png in {output or run_dir}/", err=True)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def calibrate(
    truth: TruthOpt,
    config: ConfigOpt = None,
    store: StoreOpt = Path("reports/store"),
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE",
                                         help="The tuned config to write.", dir_okay=False)]
    = Path("tuned.yaml"),
    iou: Annotated[float, typer.Option("--iou", metavar="X", max=1.0, callback=above_zero,
                                       help="IoU a segment needs to match a true one.")] = 0.5,
    shared_unseen: Annotated[bool, typer.Option(
        "--shared-unseen", help="Give labels without positive truth the values tuned on the others "
                                "(default: refuse).")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="ID|DIR",
        help="Tune for the store's model when the config names another (the tuned config names it).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Write the tuned config even over the config or truth file it reads.")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Tune thresholds and segment rules on labelled clips from stored embeddings; never decodes."""

    def job() -> int:
        import numpy as np

        from pipeline.atomic import atomic_path
        from pipeline.config import load_config
        from pipeline.measure.calibrate import calibrate as run_calibration
        from pipeline.measure.calibrate import tuned_yaml
        from pipeline.measure.truth import load_truth

        path = config_path(config, None)
        if path is None:
            raise PipelineError("--config: calibrate needs the config file to tune")
        if not force:
            refuse_overwriting_inputs(output, {"-c": path, "--truth": truth})
        cfg = load_config(path)
        if model is not None:
            folder = Path(model).expanduser()
            chosen = str(folder.resolve()) if folder.is_dir() else model
            tuned_for = cfg.model.model_copy(update={"id": chosen, "revision": None})
            cfg = cfg.model_copy(update={"model": tuned_for})
        result = run_calibration(cfg, store, load_truth(truth), min_iou=iou, allow_unseen=shared_unseen)
        text = tuned_yaml(path, cfg, result, output, truth, store, model_id=model)
        with atomic_path(output) as tmp:
            tmp.write_text(text, encoding="utf-8")
            load_config(tmp)  # what we write must load
        if not quiet:
            before = np.mean([b for b, _ in result.per_label().values()])
            after = np.mean([a for _, a in result.per_label().values()])
            cv = f"; cross-validated {np.mean([f[2] for f in result.folds]):.3f}" if result.folds else ""
            typer.echo(f"scenetag: mean segment F1 {before:.3f} -> {after:.3f}{cv} "
                       f"({plural(len(result.problem.clips), 'input')}, {result.seconds:.1f} s); "
                       f"wrote {output}{' (unchanged: nothing beat the config)' if result.unchanged else ''}",
                       err=True)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def refuse_overwriting_inputs(output: Path, inputs: dict[str, Path]) -> None:
    """One line instead of a tuned config written over the config it tunes
    (its comments lost) or over the truth file (turned into YAML)."""
    for flag, given in inputs.items():
        same = output.exists() and given.exists() and os.path.samefile(output, given)
        if same or output.resolve() == given.resolve():
            raise PipelineError(f"-o: {output} is the {flag} file calibrate reads; write the tuned config "
                                "elsewhere, or pass --force to replace it")
