"""``scenetag`` command line: argv → config → run → exit code.

This package is the only place that sets up logging (:mod:`.logs`) and
turns errors into one-line messages and exit codes (:mod:`.messages`):
0 every input ok; 1 some input failed (the others are still written); 2
usage, config or model error (nothing was processed). Tracebacks appear
only with ``--debug``.

Here: :data:`app` (with its ``config`` group), every command registered on
it in the order ``--help`` lists them, and :func:`main`, the console
script. The commands live by what they work on: :mod:`.commands_run` (run
folders), :mod:`.commands_store` (an embedding store), :mod:`.commands_measure`
(truth), :mod:`.commands_clips` (clips cut from a run), :mod:`.commands_doctor`
(this machine's runtimes), :mod:`.commands_config`;
their shared flags are in :mod:`.options`, config lookup in :mod:`.configs`.
Command bodies import the heavy modules themselves, so importing this
package (and ``--help``) stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.commands_clips import clips_cmd
from pipeline.cli.commands_config import config_init, config_show, config_validate
from pipeline.cli.commands_doctor import doctor
from pipeline.cli.commands_measure import calibrate, eval_cmd
from pipeline.cli.commands_run import download_model, report_cmd, rescore, run
from pipeline.cli.commands_store import cluster, search, serve
from pipeline.cli.messages import EXIT_OK, Group
from pipeline.cli.options import Command

__all__ = ["app", "main"]

app = typer.Typer(
    name="scenetag",
    help="Tag scenes in videos with CLIP: sampled frames → zero-shot scores → timestamped tags.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=Group,
)
config_app = typer.Typer(help="Show, check or start a config file.", no_args_is_help=True,
                         add_completion=False, rich_markup_mode=None, cls=Group)
app.add_typer(config_app, name="config")


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


# The order here is the order of `scenetag --help`.
app.command(cls=Command)(run)
app.command("download-model", cls=Command)(download_model)
app.command("report", cls=Command)(report_cmd)
app.command("clips", cls=Command)(clips_cmd)
app.command(cls=Command)(rescore)
app.command("eval", cls=Command)(eval_cmd)
app.command(cls=Command)(calibrate)
app.command(cls=Command)(search)
app.command(cls=Command)(cluster)
app.command(cls=Command)(serve)
app.command(cls=Command)(doctor)
config_app.command("show", cls=Command)(config_show)
config_app.command("validate", cls=Command)(config_validate)
config_app.command("init", cls=Command)(config_init)


def main() -> None:
    """Console-script entry point."""
    from pipeline.embed.cpu_share import sleeping_openmp

    sleeping_openmp()  # before anything imports torch: the decoder shares the cores
    app()
