"""The ``config`` commands: ``show`` (the effective config as YAML),
``validate`` (every error with its key path) and ``init`` (a starter file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.configs import (
    FLAGS,
    config_path,
    csv_list,
    find_config,
    label_list,
    mode_for,
    sampling_overrides,
    set_overrides,
)
from pipeline.cli.messages import EXIT_OK, EXIT_USAGE, error, guarded
from pipeline.cli.options import (
    FORMATS,
    ConfigOpt,
    DebugOpt,
    EveryNOpt,
    EverySecondsOpt,
    FormatsOpt,
    FpsOpt,
    LabelsOpt,
    ModelOpt,
    ModeOpt,
    QuietOpt,
)
from pipeline.types import PipelineError


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

        overrides = {"model.id": model, "scoring.mode": mode_for(mode, config, labels),
                     "labels": label_list(labels),
                     "output.formats": csv_list(formats, "--formats", FORMATS),
                     **sampling_overrides(every_seconds, every_n_frames, fps), **set_overrides(sets)}
        flags = {**FLAGS, **{key: f"--set {key}" for key in set_overrides(sets)}}
        cfg = load_config(config_path(config, labels), overrides, flags=flags)
        typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
                   nl=False)
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=False, debug=debug))


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
                path = find_config(name, flag="")
                load_config(path)
            except PipelineError as ex:
                bad += 1
                error(str(ex))
                continue
            if not quiet:
                typer.echo(f"{path}: ok")
        return EXIT_USAGE if bad else EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


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

    raise typer.Exit(guarded(job, quiet=False, debug=debug))
