"""Rows of the store as Python values, and which rows a reader sees.

:class:`StoredVideo` is one ``videos`` row, :class:`StoredShot` one ``shots``
row, :class:`FrameRows` frames read back as aligned arrays; the functions
convert table rows to them (and edge refinement's cut evidence to and from
its ``refine_json`` text). The
visibility rules live here too: readers take no lock, so while an input is
replaced or grows its old and new rows both exist for a moment, and only the
rows of each key's newest ``videos`` row (its generation, its frame count)
are the input.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.engine.base import RefineFrames
from pipeline.types import DecodeStats, GapEvidence, Sampling, StoreError, VideoInfo

UNIT_TOLERANCE = 1e-2  # |norm - 1| beyond this is damage: embed normalises in float32 (~1e-7)


@dataclass(frozen=True)
class StoredVideo:
    """One row of the ``videos`` table."""

    key: str
    input_path: str
    content_hash: str
    sampling: str
    sampling_obj: Sampling | None
    precision: str
    frames: int
    info: VideoInfo | None
    stats: DecodeStats | None
    created_at: float
    generation: str | None = None  # which copy of the input's frames is current (None: format 1)
    gaps: tuple[GapEvidence, ...] = ()  # edge refinement's cut evidence (none before format 4)


@dataclass(frozen=True)
class StoredShot:
    """One row of the ``shots`` table: a shot of a stored input, as ``shots.csv``
    has it (``end_frame`` exclusive, ``tags`` ``; ``-separated)."""

    key: str
    shot: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    tags: str = ""
    config_hash: str = ""


@dataclass(frozen=True)
class FrameRows:
    """Frames read back from the store, aligned arrays."""

    input_path: np.ndarray  # object (str)
    key: np.ndarray  # object (str)
    frame_index: np.ndarray
    time_s: np.ndarray
    vectors: np.ndarray  # N x dim float32
    content_hash: np.ndarray | None = None  # object (str)
    generation: np.ndarray | None = None  # object (str or None)
    refine: np.ndarray | None = None  # bool: a refinement frame (None: a store made before them)

    def __len__(self) -> int:
        return len(self.frame_index)

    def refine_mask(self) -> np.ndarray:
        """Which rows are refinement frames (none in a store made before them)."""
        if self.refine is None or not len(self.refine):
            return np.zeros(len(self), bool)
        return np.array([bool(r) for r in self.refine], bool)  # null: an older row, not refined

    def take(self, rows: np.ndarray) -> FrameRows:
        """The rows at positions ``rows``, in that order."""
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows] if len(a) else a

        return FrameRows(*(pick(getattr(self, f.name)) for f in dataclasses.fields(self)))


# --------------------------------------------------------------------------- rows -> values


def stored_video(row: dict) -> StoredVideo:
    """A ``videos`` table row (a dict of its columns) as a :class:`StoredVideo`."""
    sampling = json.loads(row["sampling_json"]) if row.get("sampling_json") else None
    info = json.loads(row["info_json"]) if row.get("info_json") else None
    stats = json.loads(row["stats_json"]) if row.get("stats_json") else None
    return StoredVideo(key=row["key"], input_path=row["input_path"],
                       content_hash=row["content_hash"], sampling=row["sampling"],
                       sampling_obj=Sampling(**sampling) if sampling else None,
                       precision=row["precision"] or "", frames=int(row["frames"]),
                       info=VideoInfo(**info) if info else None,
                       stats=DecodeStats(**stats) if stats else None,
                       created_at=float(row["created_at"]), generation=row.get("generation"),
                       gaps=_gaps_of(row.get("refine_json")))


def gaps_json(extra: RefineFrames | None) -> str | None:
    """Edge refinement's cut evidence as the ``refine_json`` column keeps it
    (``[lo, hi, cuts, clear, still, times]`` a gap); None without any."""
    if extra is None or not extra.gaps:
        return None
    return json.dumps([[g.lo, g.hi, list(g.cuts), g.clear, list(g.still), [list(t) for t in g.times]]
                       for g in extra.gaps])


def _gaps_of(text: str | None) -> tuple[GapEvidence, ...]:
    """Cut evidence back from ``refine_json`` (format 4 rows have no times)."""
    if not text:
        return ()
    out = []
    for lo, hi, cuts, clear, still, *times in json.loads(text):
        out.append(GapEvidence(int(lo), int(hi), tuple(int(c) for c in cuts), bool(clear),
                               (bool(still[0]), bool(still[1])),
                               tuple((int(i), float(t)) for i, t in (times[0] if times else ()))))
    return tuple(out)


def frame_rows(table, dim: int) -> FrameRows:
    """An Arrow table of ``frames`` rows as :class:`FrameRows`, ordered by key
    then time (a search result keeps its order: best first)."""
    flat = table["vector"].combine_chunks().flatten().to_numpy() if "vector" in table.column_names \
        else np.zeros(0, np.float32)
    vectors = flat.astype(np.float32).reshape(-1, dim) if dim else np.zeros((0, 0), np.float32)
    order = np.lexsort((table["time_s"].to_numpy(), np.array(table["key"].to_pylist(), object))) \
        if "_distance" not in table.column_names else np.arange(table.num_rows)
    def strings(name: str) -> np.ndarray | None:
        return np.array(table[name].to_pylist(), object)[order] if name in table.column_names else None

    return FrameRows(input_path=strings("input_path"), key=strings("key"),
                     frame_index=table["frame_index"].to_numpy().astype(np.int64)[order],
                     time_s=table["time_s"].to_numpy().astype(np.float64)[order],
                     vectors=vectors[order] if len(vectors) else vectors,
                     content_hash=strings("content_hash"), generation=strings("generation"),
                     refine=strings("refine"))


def no_rows(dim: int) -> FrameRows:
    """No frames (``dim``-wide vectors)."""
    empty = np.zeros(0, object)
    return FrameRows(empty, empty, np.zeros(0, np.int64), np.zeros(0), np.zeros((0, dim), np.float32),
                     empty, empty)


# --------------------------------------------------------------------------- what a reader sees


def current_shots(rows: list[dict]) -> dict[str, list[StoredShot]]:
    """Each key's shots of its newest write (while a write replaces them, the
    old and new rows both exist for a moment), in shot order."""
    newest: dict[str, float] = {}
    for row in rows:
        newest[row["key"]] = max(newest.get(row["key"], row["created_at"]), row["created_at"])
    out: dict[str, list[StoredShot]] = {}
    for row in sorted(rows, key=lambda r: (r["key"], r["shot"])):
        if row["created_at"] == newest[row["key"]]:
            out.setdefault(row["key"], []).append(StoredShot(
                key=row["key"], shot=int(row["shot"]), start_s=float(row["start_s"]),
                end_s=float(row["end_s"]), start_frame=int(row["start_frame"]),
                end_frame=int(row["end_frame"]), tags=row["tags"] or "",
                config_hash=row["config_hash"] or ""))
    return out


def current_videos(rows: list[dict]) -> dict[str, StoredVideo]:
    """One ``videos`` row per key, the newest: while an input is replaced its
    old and new rows both exist for a moment."""
    out: dict[str, StoredVideo] = {}
    for row in rows:
        video = stored_video(row)
        if video.key not in out or video.created_at > out[video.key].created_at:
            out[video.key] = video
    return out


def visible_rows(rows: FrameRows, videos: Sequence[StoredVideo]) -> np.ndarray:
    """Positions of the rows that belong to a current ``videos`` row (its key
    and generation): not an old copy being replaced, nor an unfinished new one."""
    if not len(rows):
        return np.zeros(0, np.int64)
    current = {v.key: v.generation for v in videos}
    gens = rows.generation if rows.generation is not None else [None] * len(rows)
    missing = object()
    return np.array([i for i, (k, g) in enumerate(zip(rows.key, gens))
                     if current.get(k, missing) == g], np.int64)


def is_growing(video: StoredVideo) -> bool:
    """A live stream's input, which :meth:`~pipeline.store.db.EmbeddingStore.append` grows."""
    return video.stats is not None and video.stats.strategy == "live"


def counted_rows(rows: FrameRows, video: StoredVideo) -> np.ndarray:
    """Which of ``rows`` are ``video``'s: its key's rows, but of a growing
    input only the first ``video.frames`` (by time; later ones are a chunk
    appended after its ``videos`` row was read)."""
    mine = rows.key == video.key
    if is_growing(video) and int(mine.sum()) > video.frames:
        mine[np.flatnonzero(mine)[video.frames:]] = False
    return mine


def one_per_frame(rows: FrameRows) -> np.ndarray:
    """Positions of the first row of each frame, ``(content hash, frame
    index)``, in row order."""
    if not len(rows):
        return np.zeros(0, np.int64)
    _, content = np.unique(rows.content_hash.astype(str), return_inverse=True)
    pairs = content.astype(np.int64) * (int(rows.frame_index.max()) + 1) + rows.frame_index
    _, first = np.unique(pairs, return_index=True)
    return np.sort(first)


def check_vectors(root: Path, vectors: np.ndarray, scores: np.ndarray | None = None) -> None:
    """Stored vectors are unit length: anything else was damaged on disk
    (LanceDB reads a few overwritten bytes as numbers without complaint).

    Raises:
        StoreError: a vector (or one of ``scores``) that is not.
    """
    if not len(vectors):
        return
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    bad = ~np.isfinite(norms) | (np.abs(norms - 1.0) > UNIT_TOLERANCE)
    if scores is not None:
        bad |= ~np.isfinite(scores)
    if bad.any():
        raise StoreError(f"embedding store {root} is corrupt: {int(bad.sum())} of {len(vectors)} "
                         f"vectors read are not unit length (damaged data); rebuild it "
                         f"(scenetag run --no-cache into a new --store)")
