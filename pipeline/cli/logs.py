"""Logging for the CLI, the only place in scenetag that sets it up.

One ``scenetag: <level>: <message>`` line per record on the stderr of the
moment; ``--debug`` is our own debug log (libraries stay at WARNING),
``--quiet`` only errors. Handlers other than ours are left alone.
"""

from __future__ import annotations

import logging
import sys


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


def setup_logging(*, quiet: bool, debug: bool) -> None:
    """Route every record through one CLI handler: WARNING and up (``quiet``:
    ERROR; ``debug``: our DEBUG too, and libraries' warnings left on)."""
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
