"""A run's inputs: command-line arguments expanded into media paths, and
each input's report folder name.

Guarantees: expansion never picks up a run's own outputs (the store, the
output folder's reports and run-level files, an earlier run's marked
output folder); an argument that matches nothing is an error result, not
the end of the run; and folder names are safe, unique, and stable across
runs into the same output folder (see :mod:`pipeline.report.folders`).
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from pipeline.report.folders import (
    OUTPUT_MARKER,
    RUN_LEVEL_NAMES,
    claim_name,
    is_run_level_name,
    is_store_folder,
    safe_name,
)
from pipeline.run.index import read_summary
from pipeline.types import VideoResult

MEDIA_EXTENSIONS = frozenset(IMAGE_EXTENSIONS) | frozenset(VIDEO_EXTENSIONS)


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
        kept = next((f for f in had.get(path, []) if f.lower() not in used), None)
        names[path] = claim_name(base, path, used, taken, first=kept)
    return names


def existing_outputs(out_dir: Path) -> dict[str, str | None]:
    """Entries of an output folder that input folders must respect: folder
    name → the input its ``summary.json`` names (``None``: not a report
    folder, or not one of ours). Hidden entries (temporaries) are left out."""
    found: dict[str, str | None] = {}
    with contextlib.suppress(OSError):
        for entry in out_dir.iterdir():
            if not entry.name.startswith("."):
                summary = read_summary(entry) if entry.is_dir() and not entry.is_symlink() else None
                owner = summary.get("input") if isinstance(summary, dict) else None
                found[entry.name] = owner if isinstance(owner, str) else None
    return found
