"""What a report folder is called, and what an output folder holds at run level.

An output folder holds one report folder per input (file or live stream)
beside the files a run, rescore, search or cluster writes for the whole
folder (:data:`RUN_LEVEL_NAMES`), the embedding store, and
:data:`OUTPUT_MARKER`. Guarantees: no input's folder takes a run-level
name (compared case-insensitively), two inputs never share a folder, and
an input never takes a folder another input's ``summary.json`` claims.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.atomic import atomic_write_text, bounded_name

# Files and folders a run (or search/cluster/rescore into the same folder)
# writes next to the per-input folders: no input's folder may take these names.
RUN_LEVEL_NAMES = frozenset({
    "index", "images", "store", "rescore", "index.csv", "index.html", "images.csv",
    "search.csv", "search.png", "clusters.csv", "clusters.png", "clusters.html", "outliers.csv"})
# Written into every output folder a run or rescore fills: input folders and
# globs of later runs skip that folder's reports, store and run-level files
# (an earlier run's thumbnails and plots are not videos to tag).
OUTPUT_MARKER = ".scenetag-output"
_MARKER_TEXT = "This folder holds scenetag reports; scenetag runs do not read them as inputs.\n"


def is_run_level_name(name: str) -> bool:
    """A file name a run, rescore, search or cluster writes into an output
    folder itself (``search-<query>.png`` included)."""
    lower = name.lower()
    return lower in RUN_LEVEL_NAMES or (lower.startswith(("search-", "search_", "clusters-", "clusters_"))
                                        and lower.endswith((".csv", ".png", ".jpg", ".html")))


def is_store_folder(folder: Path) -> bool:
    """Whether ``folder`` is an embedding store (a LanceDB database holding
    scenetag's ``meta`` table), wherever it lies."""
    return (folder / "meta.lance").is_dir()


def mark_output_folder(out_dir: Path) -> None:
    """Leave :data:`OUTPUT_MARKER` in ``out_dir`` (once)."""
    marker = out_dir / OUTPUT_MARKER
    if not marker.is_file():
        atomic_write_text(marker, _MARKER_TEXT)


def safe_name(text: str, max_len: int = 80) -> str:
    """``text`` as a folder name: see :func:`pipeline.atomic.bounded_name`
    (``max_len`` counts UTF-8 bytes)."""
    return bounded_name(text, max_len, dots=True)


def claim_name(base: str, owner: str, used: set[str], owners: dict[str, str | None],
               first: str | None = None) -> str:
    """The first free folder name for the input ``owner``: ``first`` (when
    given), else ``base``, then ``base-2``, ``base-3`` …

    A name is free when no input of this run has it (``used``, lower case),
    it is not a run-level name, and the folder of that name in the output
    folder (``owners``: lower-case name → the input its ``summary.json``
    names, ``None`` for anything else) is absent or already ``owner``'s.
    The name returned is added to ``used``.
    """
    name, n = base if first is None else first, 1
    while name.lower() in used or name.lower() in RUN_LEVEL_NAMES or \
            owners.get(name.lower(), owner) != owner:
        n += 1
        name = f"{base}-{n}"
    used.add(name.lower())
    return name
