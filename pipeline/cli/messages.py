"""What the CLI says, and the exit code it says it with.

Exit codes: 0 every input ok; 1 some input failed (the others are still
written); 2 usage, config or model error (nothing was processed); 3 an
internal error; 130 interrupted. Every error is one ``scenetag: error: ...``
line: :class:`Group` words click's usage mistakes (``--flag: what is wrong``,
with did-you-mean), :func:`guarded` runs a command body and turns what it
raises into that line; a traceback appears only with ``--debug``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from pipeline.cli.logs import setup_logging
from pipeline.types import PipelineError

log = logging.getLogger("scenetag")

EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE = 0, 1, 2


class Group(TyperGroup):
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
            error(_usage_line(ex))
            code = EXIT_USAGE
        except ClickException as ex:
            error(ex.format_message())
            code = ex.exit_code
        except Abort:
            error("aborted")
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


def guarded(job: Callable[[], int], *, quiet: bool, debug: bool) -> int:
    """Run a command body: set up logging, map errors to one line + exit code."""
    setup_logging(quiet=quiet, debug=debug)
    try:
        return job()
    except PipelineError as ex:
        log.debug("failed", exc_info=True)
        error(str(ex))
        return EXIT_USAGE
    except KeyboardInterrupt:
        error("interrupted; finished inputs are complete, rerun with --resume to continue")
        return 130
    except OSError as ex:  # the machine said no (read-only, full, permissions), not a bug of ours
        if debug:
            raise
        where = f" ({ex.filename})" if ex.filename else ""
        error(f"{ex.strerror or ex}{where}")
        return EXIT_USAGE
    except Exception as ex:  # the last line of defence: no traceback without --debug
        if debug:
            raise
        error(f"internal error: {type(ex).__name__}: {ex} (rerun with --debug for details)")
        return 3


def error(message: str) -> None:
    """Print ``message`` as one ``scenetag: error: ...`` line on stderr."""
    typer.echo(f"scenetag: error: {' '.join(message.split())}", err=True)


def plural(count: int, word: str) -> str:
    """``1 input``, ``2 inputs``: the counts of the summary lines."""
    return f"{count} {word}" + ("" if count == 1 else "s")
