"""Ground truth for ``scenetag eval`` and ``scenetag calibrate``: which label
is on screen, in which input, from when to when.

Three shapes are read, all validated with errors that name the file and the
line (CSV) or the entry (JSON):

* a CSV with the columns ``input,label,start_s,end_s`` (more columns are
  ignored); ``input`` is matched like ``--video``: the input's path, file
  name or file stem;
* scenetag's own ``segments.csv`` (no ``input`` column: the input is the one
  named by the ``summary.json`` beside it, else the folder's name) or
  ``segments.json``, so an edited output can be the truth;
* the demo's ``{"clips": {NAME: {"intervals": [{label, start_s, end_s}]}}}``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.report.text import uncsv_cell
from pipeline.types import PipelineError

COLUMNS = ("input", "label", "start_s", "end_s")


class TruthError(PipelineError):
    """A truth file that cannot be read or does not validate (one line)."""


@dataclass(frozen=True)
class TruthInterval:
    """One true interval: ``label`` is present in ``input`` over ``[start_s, end_s]``.

    Attributes:
        where: ``FILE:LINE`` (CSV) or ``FILE: ENTRY`` (JSON), for messages.
    """

    input: str
    label: str
    start_s: float
    end_s: float
    where: str


@dataclass(frozen=True)
class Truth:
    """Every interval of one truth file, in file order."""

    path: Path
    intervals: tuple[TruthInterval, ...]

    @property
    def labels(self) -> list[str]:
        """The labels the file names, first-seen order."""
        return list(dict.fromkeys(iv.label for iv in self.intervals))

    def resolve(self, inputs: Sequence[str]) -> dict[str, list[TruthInterval]]:
        """The intervals of each of ``inputs`` (run or store input paths).

        Every input of ``inputs`` is a key (with no intervals when the file
        has none for it).

        Raises:
            TruthError: an interval's input matches none of ``inputs``, or
                more than one.
        """
        found: dict[str, list[TruthInterval]] = {path: [] for path in inputs}
        for iv in self.intervals:
            hits = [path for path in inputs if matches(path, iv.input)]
            if not hits:
                raise TruthError(f"{iv.where}: unknown input {iv.input!r}; "
                                 f"known: {', '.join(Path(p).name for p in inputs) or 'none'}")
            if len(hits) > 1:
                raise TruthError(f"{iv.where}: input {iv.input!r} matches {len(hits)} inputs "
                                 f"({', '.join(hits)}); give its path")
            found[hits[0]].append(iv)
        return found


def matches(input_path: str, name: str) -> bool:
    """True when ``name`` is the input's path, file name or file stem: how a
    user names an input, in truth files and in ``--video`` alike
    (:func:`pipeline.explore.search.matches` applies it to stored inputs)."""
    path = Path(input_path)
    return name in (input_path, path.name, path.stem) or \
        os.path.abspath(name) == os.path.abspath(input_path)


def load_truth(path: str | os.PathLike) -> Truth:
    """Read and validate a truth file (see the module docstring).

    Raises:
        TruthError: unreadable, or a row or entry is invalid; the message names
            the file and line (or entry) and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as ex:
        raise TruthError(f"{path}: cannot read the truth file: {ex}") from ex
    if path.suffix.lower() == ".json":
        rows = _json_rows(path, text)
    else:
        rows = _csv_rows(path, text)
    intervals = tuple(_interval(where, row) for where, row in rows)
    if not intervals:
        raise TruthError(f"{path}: no truth intervals")
    return Truth(path, intervals)


def _csv_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [str(uncsv_cell(c.strip())) for c in next(reader)]
    except StopIteration:
        raise TruthError(f"{path}: empty; expected the columns {','.join(COLUMNS)}") from None
    except csv.Error as ex:
        raise TruthError(f"{path}:1: {ex}") from ex
    default_input = None if "input" in header else _segments_input(path, header)
    missing = [c for c in COLUMNS if c not in header and not (c == "input" and default_input)]
    if missing:
        raise TruthError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                         f" (a truth CSV has {','.join(COLUMNS)})")
    rows, line = [], 1
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise TruthError(f"{path}:{start}: {len(cells)} cells, the header has {len(header)}")
            row = {name: uncsv_cell(cell) for name, cell in zip(header, cells)}
            row.setdefault("input", default_input)
            rows.append((f"{path}:{start}", row))
    except csv.Error as ex:
        raise TruthError(f"{path}:{reader.line_num}: {ex}") from ex
    return rows


def _segments_input(path: Path, header: list[str]) -> str | None:
    """The input of a scenetag ``segments.csv`` (it has no input column):
    the one its ``summary.json`` names, else its folder's name."""
    if not {"kind", "duration_s"} <= set(header):
        return None  # not a segments.csv: the input column is simply missing
    try:
        named = json.loads((path.parent / "summary.json").read_text(encoding="utf-8")).get("input")
    except (OSError, ValueError, AttributeError):
        named = None
    return str(named) if named else path.resolve().parent.name


def _json_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except ValueError as ex:
        raise TruthError(f"{path}: not JSON: {ex}") from ex
    except RecursionError:
        raise TruthError(f"{path}: nested too deeply to be a truth file") from None
    if isinstance(data, dict) and isinstance(data.get("clips"), dict):
        return [(f"{path}: clips.{name}.intervals[{i}]", {"input": name, **iv})
                for name, clip in data["clips"].items()
                for i, iv in enumerate(_list(path, f"clips.{name}.intervals",
                                             clip.get("intervals") if isinstance(clip, dict) else None))]
    if isinstance(data, dict) and "segments" in data:
        name = data.get("input") or data.get("name") or path.resolve().parent.name
        return [(f"{path}: segments[{i}]", {"input": str(name), **seg})
                for i, seg in enumerate(_list(path, "segments", data["segments"]))]
    raise TruthError(f"{path}: not a truth file: expected scenetag's segments.json "
                     "or {\"clips\": {NAME: {\"intervals\": [...]}}}")


def _list(path: Path, key: str, value: Any) -> Iterable[Any]:
    if not isinstance(value, list):
        raise TruthError(f"{path}: {key}: must be a list")
    return value


def _interval(where: str, row: Any) -> TruthInterval:
    if not isinstance(row, dict):
        raise TruthError(f"{where}: must be an object with label, start_s, end_s")
    missing = [c for c in COLUMNS if row.get(c) in (None, "")]
    if missing:
        raise TruthError(f"{where}: empty {', '.join(missing)}")
    start, end = _seconds(where, "start_s", row["start_s"]), _seconds(where, "end_s", row["end_s"])
    if end <= start:
        raise TruthError(f"{where}: end_s {end:g} is not after start_s {start:g}")
    return TruthInterval(str(row["input"]).strip(), str(row["label"]).strip(), start, end, where)


def _seconds(where: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TruthError(f"{where}: {key} must be a number of seconds; got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise TruthError(f"{where}: {key} must be a finite number of seconds >= 0; got {value!r}")
    return number
