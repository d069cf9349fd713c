"""``scenetag doctor``: this machine's runtime × precision table for a model,
and which one ``runtime: auto`` picks and why (:mod:`pipeline.embed.doctor`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline.cli.messages import EXIT_OK, guarded
from pipeline.cli.options import DebugOpt, QuietOpt


def doctor(
    model: Annotated[str, typer.Option(
        "--model", "-m", metavar="ID|DIR", help="Hub id or local model folder.")]
    = "openai/clip-vit-base-patch32",
    prepare: Annotated[bool, typer.Option(
        "--prepare", help="Also make and measure what first runs defer (OpenVINO's accuracy-controlled "
                          "int8: minutes for a ViT-B/32); later runs pick from everything.")] = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Measure again, ignoring the cached decision.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """This CPU's runtime × precision table (img/s, agreement with torch fp32) and what auto picks."""

    def job() -> int:
        from pipeline.embed import doctor as core

        report = core.doctor(model, prepare=prepare, fresh=fresh)
        typer.echo(json.dumps(report, indent=2) if as_json else core.table(report))
        return EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))
