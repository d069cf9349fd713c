"""The embedding store: frame embeddings kept in LanceDB (embedded, no server)
so that re-runs, re-scoring, search and clustering need no decoding.

The store's layout (its tables and columns) is described with its schemas in
:mod:`pipeline.store.schema`.

Concurrency: every write holds the store's lock file (one writer at a time,
across processes; :mod:`pipeline.store.lock`); readers take no lock. Replacing
an input adds its new rows under a new ``generation``, then its ``videos``
row, then deletes the old rows, and readers keep only the rows of each key's
newest ``videos`` row: never a duplicate, never half an input. Creation makes
``meta`` last; tables without a meta row and without data (a creation that
failed: disk full, killed) are rebuilt, with a warning, by the next writer.

lancedb is imported on first use; every library failure is turned into a
one-line :class:`~pipeline.types.StoreError` (:mod:`pipeline.store.lance`).

The package's rooms: :mod:`~pipeline.store.keys` (content hashes, sampling and
input keys), :mod:`~pipeline.store.schema` (format version, table schemas),
:mod:`~pipeline.store.rows` (rows as values, and which rows a reader sees),
this module (:class:`EmbeddingStore`: opening, writing, reading, upkeep), its
parts :mod:`~pipeline.store.label_cache` (the texts and pictures tables),
:mod:`~pipeline.store.shots` (the shots table) and
:mod:`~pipeline.store.nearest` (similarity search and its index),
:mod:`~pipeline.store.cache` (the run-side cache policy and cached
embedders) and :mod:`~pipeline.store.lock` (the writer lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from pipeline.about import version
from pipeline.engine.base import EmbeddedInput, RefineFrames
from pipeline.store.keys import input_key, model_ref
from pipeline.store.label_cache import LabelCacheMixin
from pipeline.store.lance import guard, lancedb, pyarrow, sql, vector_array
from pipeline.store.lock import LOCK_FILE, STORE_WAIT_S, WriteLock
from pipeline.store.nearest import NearestMixin
from pipeline.store.rows import (
    FrameRows,
    StoredVideo,
    check_vectors,
    counted_rows,
    current_videos,
    frame_rows,
    gaps_json,
    is_growing,
    no_rows,
    one_per_frame,
    visible_rows,
)
from pipeline.store.schema import (
    FORMAT_VERSION,
    PICTURES,
    SHOTS,
    TABLES,
    TEXTS,
    check_meta,
    frames_schema,
    meta_schema,
    videos_schema,
)
from pipeline.store.shots import ShotsMixin
from pipeline.types import Sampling, StoreError

log = logging.getLogger(__name__)

READ_BATCH = 64  # stored inputs whose frames are read in one query
# A URI scheme (two letters or more: "C:/" is a Windows drive). The store's
# writer lock, manifest checks and picture cache are files next to its tables.
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
COMPACT_MIN_FRAGMENTS = 32  # a table with more fragments is compacted after a run
READ_RETRIES = 4  # re-reads of an input a concurrent writer replaced mid-read


class EmbeddingStore(LabelCacheMixin, NearestMixin, ShotsMixin):
    """A LanceDB database of frame embeddings of one model.

    Open with :meth:`open`. Every write holds the store's write lock
    (:mod:`pipeline.store.lock`): one writer at a time, across processes.
    Readers take no lock and see complete inputs only: an input's frames are
    those of the generation its current ``videos`` row names, so a replace in
    progress (new rows written, old ones not yet deleted) is never seen twice
    or half.

    Its prompt and picture caches are :class:`~pipeline.store.label_cache.LabelCacheMixin`,
    its similarity search :class:`~pipeline.store.nearest.NearestMixin`, the inputs' shots
    :class:`~pipeline.store.shots.ShotsMixin`.
    """

    def __init__(self, root: Path, db, meta: dict | None, names: set[str] | None = None, *,
                 wait_s: float = STORE_WAIT_S) -> None:
        self.root = root
        self._db = db
        self.meta = meta
        self._tables: dict = {}
        self._names = names  # table names, listed once (None: list on first need)
        self._lock = WriteLock(root, wait_s)
        self._half_made = False  # tables without a meta row and no data: rebuilt on first write

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, root: str | os.PathLike, *, create: bool = False,
             wait_s: float | None = None) -> EmbeddingStore:
        """Open (or, with ``create``, start) the store at ``root``.

        Args:
            wait_s: how long a write waits for another writer's lock
                (default ``STORE_WAIT_S``).

        Raises:
            StoreError: missing (without ``create``), written by a newer
                format, partial or corrupt.
        """
        if URI.match(str(root)):  # s3://b/x, or s3:/b/x once a Path has folded its slashes
            raise StoreError(f"{root}: the embedding store must be a folder on a local or network "
                             "file system, not an object-store URI (docs/SCALING.md)")
        root = Path(root)
        if not root.exists() and not create:
            raise StoreError(f"no embedding store at {root} (run `scenetag run` first)")
        library = lancedb()
        with guard(root, "open"):
            db = library.connect(str(root))
        store = cls(root, db, None, wait_s=STORE_WAIT_S if wait_s is None else wait_s)
        store._load(create=create)
        return store

    def _load(self, *, create: bool) -> None:
        """List the tables and read the meta row (again after taking the write
        lock: another writer may have created the store meanwhile)."""
        self._tables, self._names = {}, None
        with guard(self.root, "open"):
            names = self._table_names()
        present = [t for t in TABLES if t in names]
        if not present:
            ours = {LOCK_FILE, *(f"{t}.lance" for t in (*TABLES, TEXTS, PICTURES, SHOTS))}  # mid-creation
            if not create and any(p.name not in ours for p in self.root.iterdir()):
                raise StoreError(f"{self.root} is not a scenetag embedding store")
            if not create:
                raise StoreError(f"embedding store {self.root} is empty (run `scenetag run` first)")
            return
        meta = self._meta_or_none(names)
        if meta is None:
            self._half_made_or_raise(names, create=create)
            return
        if len(present) != len(TABLES):
            missing = ", ".join(t for t in TABLES if t not in names)
            raise StoreError(f"embedding store {self.root} is partial or corrupt: missing table(s) "
                             f"{missing}")
        self.meta, self._half_made = meta, False

    def _meta_or_none(self, names: set[str]) -> dict | None:
        """The meta row; None when it is missing or unreadable (creation is
        the one write that can leave it so: meta is created last)."""
        if "meta" not in names:
            return None
        try:
            with guard(self.root, "read meta"):
                rows = self._db.open_table("meta").to_arrow().to_pylist()
        except StoreError:
            return None
        return check_meta(self.root, rows)

    def _half_made_or_raise(self, names: set[str], *, create: bool) -> None:
        """Tables but no meta row: a creation that failed (disk full, killed).
        Without data it is rebuilt by the next writer; with data it is damage."""
        if self._holds_data(names):
            missing = [t for t in TABLES if t not in names]
            what = f"missing table(s) {', '.join(missing)}" if missing else "its meta table is unreadable"
            raise StoreError(f"embedding store {self.root} is partial or corrupt: {what}")
        if not create:
            raise StoreError(f"embedding store {self.root} is empty: its creation did not finish "
                             "(the next `scenetag run` rebuilds it)")
        self._half_made = True

    def _holds_data(self, names: set[str]) -> bool:
        for name in ("frames", "videos", TEXTS, PICTURES, SHOTS):
            if name not in names:
                continue
            try:
                if self._db.open_table(name).count_rows():
                    return True
            except Exception:  # noqa: BLE001 - unreadable and no meta: nothing readable to keep
                continue
        return False

    @property
    def model_id(self) -> str | None:
        return self.meta["model_id"] if self.meta else None

    @property
    def model_revision(self) -> str | None:
        return self.meta["model_revision"] if self.meta else None

    @property
    def dim(self) -> int | None:
        return int(self.meta["dim"]) if self.meta else None

    @property
    def model_family(self) -> str | None:
        """The model's family (``clip``, ``siglip``, ...); None for stores made before it was kept."""
        return self.meta.get("model_family") if self.meta else None

    def describe_model(self) -> str:
        rev = f"@{self.model_revision}" if self.model_revision else ""
        return f"{self.model_id}{rev} (dim {self.dim})"

    def same_model(self, model_id: str, revision: str | None) -> bool:
        """True when ``model_id`` names the store's model: the same id (a local
        folder compared as an absolute path), or the same local weights (equal
        ``sha256:`` content revisions) wherever the folder now is."""
        if self.meta is None:
            return True
        stored = self.model_revision
        if revision and stored and revision != stored:
            return False
        if model_ref(model_id) == model_ref(self.model_id):
            return True
        from pipeline.embed.load import is_content_revision

        return is_content_revision(revision) and revision == stored

    def check_model(self, model_id: str, revision: str | None, dim: int, *,
                    same_model: bool = True) -> None:
        """Raise unless embeddings of this model may be mixed with the store's.

        Args:
            same_model: require the same id and revision (writes, cache); when
                False only the dimension must match (queries with ``--model``).
        """
        if self.meta is None:
            return
        if dim != self.dim:
            raise StoreError(f"embedding store {self.root} holds {self.describe_model()} vectors; "
                             f"model {model_id} makes {dim}-d vectors")
        if same_model and not self.same_model(model_id, revision):
            raise StoreError(f"embedding store {self.root} was built with {self.describe_model()}, "
                             f"not {model_id}; use another --store for this model")

    def stored_model_id(self, model_id: str, revision: str | None) -> str:
        """How the store spells ``model_id`` (its own id when it is the same
        model, so keys and cache rows stay one per model however it is named)."""
        if self.meta is not None and self.same_model(model_id, revision):
            return self.model_id
        return model_ref(model_id)

    # ------------------------------------------------------------------ write

    @contextlib.contextmanager
    def writing(self, action: str, wait_s: float | None = None) -> Iterator[None]:
        """Hold the store's write lock for the block (re-entrant).

        Taking it drops the cached table handles: rows another writer
        committed meanwhile must be seen (a delete on a stale handle would
        miss them).

        Raises:
            StoreBusyError: another process kept the lock for ``wait_s``.
            StoreError: the store is read-only.
        """
        with self._lock.held(action, wait_s) as took:
            if took:
                self._tables, self._names = {}, None
                if self.meta is None:
                    self._load(create=True)
            yield

    def put(self, embedded: EmbeddedInput, *, chash: str, sampling: Sampling, sampling_desc: str,
            model_id: str, revision: str | None, precision: str, family: str | None = None) -> str:
        """Store one embedded input, replacing any earlier copy of it.

        Atomic for readers: the new rows are added under a new generation, then
        the ``videos`` row naming it, and only then are the old rows deleted.

        Returns:
            the input's key.
        """
        vectors = np.ascontiguousarray(embedded.embeddings, np.float32)
        dim = int(vectors.shape[1])
        with self.writing("write"):
            self._ensure_created(model_ref(model_id), revision, dim, family)
            self.check_model(model_id, revision, dim)
            self._upgrade()
            key = input_key(chash, self.model_id, revision, sampling_desc)
            generation = uuid.uuid4().hex[:16]
            ident = {"key": key, "input_path": _input_ref(embedded.path), "content_hash": chash,
                     "model_id": self.model_id, "model_revision": revision,
                     "sampling": sampling_desc, "precision": precision, "generation": generation}
            extra = embedded.refine
            if extra is not None and len(extra):
                vectors = np.concatenate([vectors, np.ascontiguousarray(extra.embeddings, np.float32)])
            n, coarse = len(vectors), len(embedded.indices)
            frames = {**{k: [v] * n for k, v in ident.items()},
                      "frame_index": np.concatenate([np.asarray(embedded.indices, np.int64),
                                                     _refine_part(extra, "indices", np.int64)]),
                      "time_s": np.concatenate([np.asarray(embedded.times_s, np.float64),
                                                _refine_part(extra, "times_s", np.float64)]),
                      "vector": vector_array(vectors),
                      "refine": np.arange(n) >= coarse}
            video = {**{k: [v] for k, v in ident.items()},
                     "sampling_json": [json.dumps(dataclasses.asdict(sampling))], "frames": [n],
                     "info_json": [_to_json(embedded.info)], "stats_json": [_to_json(embedded.stats)],
                     "created_at": [time.time()], "refine_json": [gaps_json(extra)]}
            with guard(self.root, "write"):
                pa = pyarrow()
                self._table("frames").add(pa.table(frames, schema=frames_schema(dim)))
                self._table("videos").add(pa.table(video, schema=videos_schema()))
            self._drop(key, keep=generation)
        return key

    def append(self, embedded: EmbeddedInput, *, chash: str, sampling: Sampling, sampling_desc: str,
               model_id: str, revision: str | None, precision: str, family: str | None = None,
               wait_s: float | None = None) -> str:
        """Add frames to the end of a stored input (a live stream, a chunk at
        a time), making it one input of all its frames; the first chunk is a
        :meth:`put`. ``embedded`` holds the new frames (later than every
        stored one) and the input's info and stats as they stand now.

        Atomic for readers: the new rows are added under the input's current
        generation, then a ``videos`` row counting them (newer than the old
        one, which readers then pass over, see :func:`~pipeline.store.rows.current_videos`), then the old
        row is deleted. A reader that took the old row sees rows beyond its
        count and leaves them out (:func:`~pipeline.store.rows.counted_rows`).

        Args:
            wait_s: how long to wait for another writer's lock (default: the store's wait).

        Returns:
            the input's key.
        """
        vectors = np.ascontiguousarray(embedded.embeddings, np.float32)
        with self.writing("write", wait_s):
            stored = None
            if self.meta is not None:
                self.check_model(model_id, revision, int(vectors.shape[1]))
                key = input_key(chash, self.model_id, revision, sampling_desc)
                stored = self.find([key]).get(key)
            if stored is None:
                return self.put(embedded, chash=chash, sampling=sampling, sampling_desc=sampling_desc,
                                model_id=model_id, revision=revision, precision=precision, family=family)
            self._upgrade()
            n = len(vectors)
            ident = {"key": key, "input_path": _input_ref(embedded.path), "content_hash": chash,
                     "model_id": self.model_id, "model_revision": revision, "sampling": sampling_desc,
                     "precision": precision, "generation": stored.generation}
            frames = {**{k: [v] * n for k, v in ident.items()},
                      "frame_index": np.asarray(embedded.indices, np.int64),
                      "time_s": np.asarray(embedded.times_s, np.float64),
                      "vector": vector_array(vectors), "refine": np.zeros(n, bool)}
            total = stored.frames + n
            video = {**{k: [v] for k, v in ident.items()},
                     "sampling_json": [json.dumps(dataclasses.asdict(sampling))], "frames": [total],
                     "info_json": [_to_json(embedded.info)], "stats_json": [_to_json(embedded.stats)],
                     "created_at": [max(time.time(), stored.created_at + 1e-6)],
                     "refine_json": [None]}  # a live stream's edges are not refined: no gap evidence
            with guard(self.root, "write"):
                pa = pyarrow()
                self._table("frames").add(pa.table(frames, schema=frames_schema(self.dim)))
                self._table("videos").add(pa.table(video, schema=videos_schema()))
                self._table("videos").delete(f"key = {sql(key)} AND frames < {int(total)}")
        return key

    def delete(self, key: str) -> None:
        """Remove an input's rows (its ``videos`` row first, so it is never
        seen as complete while its frames go; then its frames and shots)."""
        if self.meta is None:
            return
        with self.writing("delete"):
            self._drop(key)

    def _drop(self, key: str, keep: str | None = None) -> None:
        """Delete ``key``'s rows, except those of generation ``keep``; its
        shots too when it goes whole (a replaced input keeps them)."""
        where = f"key = {sql(key)}"
        if keep is not None:
            where += f" AND (generation IS NULL OR generation != {sql(keep)})"
        names = ("videos", "frames") if keep is not None or SHOTS not in self._table_names() \
            else ("videos", "frames", SHOTS)
        with guard(self.root, "delete"):
            for name in names:
                table = self._table(name)
                if table.count_rows(where):  # an empty delete would still commit a version
                    table.delete(where)

    def set_path(self, key: str, path: str) -> None:
        """Record that a stored input now lives at ``path`` (file moved)."""
        with self.writing("update"), guard(self.root, "update"):
            for name in ("videos", "frames", *([SHOTS] if SHOTS in self._table_names() else [])):
                self._table(name).update(where=f"key = {sql(key)}",
                                         values={"input_path": os.path.abspath(path)})

    def check_writable(self) -> None:
        """Take and release the write lock once: a read-only or busy store
        fails before a run decodes anything, not at its first stored input."""
        with self.writing("open for writing"):
            pass

    def _ensure_created(self, model_id: str, revision: str | None, dim: int,
                        family: str | None = None) -> None:
        if self.meta is not None:
            return
        with self.writing("create"):
            if self.meta is not None:  # another writer created it while we waited
                return
            if self._half_made:
                log.warning("embedding store %s was left half-made (an earlier creation did not "
                            "finish); rebuilding it", self.root)
                for name in (*TABLES, TEXTS, PICTURES, SHOTS):
                    shutil.rmtree(self.root / f"{name}.lance", ignore_errors=True)
                self._names, self._half_made = None, False
            pa = pyarrow()
            meta = {"format_version": FORMAT_VERSION, "model_id": model_id,
                    "model_revision": revision, "dim": dim, "created_at": time.time(),
                    "scenetag_version": version(), "model_family": family}
            with guard(self.root, "create"):
                self._db.create_table("frames", schema=frames_schema(dim))
                self._db.create_table("videos", schema=videos_schema())
                # meta last: a store with a meta row has all its tables
                self._db.create_table("meta", pa.Table.from_pylist([meta], schema=meta_schema()))
            self.meta, self._names = meta, None
        log.info("created embedding store %s for %s", self.root, self.describe_model())

    def _has_generation(self) -> bool:
        return "generation" in self._table("frames").schema.names

    def _has_refine(self) -> bool:
        return "refine" in self._table("frames").schema.names

    def _has_refine_json(self) -> bool:
        return "refine_json" in self._table("videos").schema.names

    def _upgrade(self) -> None:
        """Format 1 → 2: add the ``generation`` column; 2 → 3: add ``refine``;
        3 → 4: add ``refine_json`` (null for old rows); 4 → 5: cut evidence
        with frame times (old rows keep theirs without: no column changes)."""
        if self._has_generation() and self._has_refine() and self._has_refine_json() \
                and self.meta.get("format_version") == FORMAT_VERSION:
            return
        pa = pyarrow()
        with guard(self.root, "upgrade"):
            for name in ("frames", "videos"):
                table = self._table(name)
                if "generation" not in table.schema.names:
                    table.add_columns(pa.field("generation", pa.string()))
            if not self._has_refine():
                self._table("frames").add_columns(pa.field("refine", pa.bool_()))
            if not self._has_refine_json():
                self._table("videos").add_columns(pa.field("refine_json", pa.string()))
            self._table("meta").update(values={"format_version": FORMAT_VERSION})
        self.meta["format_version"] = FORMAT_VERSION
        log.info("embedding store %s upgraded to format version %d", self.root, FORMAT_VERSION)

    # ------------------------------------------------------------------ read

    def videos(self) -> list[StoredVideo]:
        """Every complete stored input, oldest first."""
        if self.meta is None:
            return []
        with guard(self.root, "read videos"):
            rows = self._table("videos").to_arrow().to_pylist()
        return sorted(current_videos(rows).values(), key=lambda v: v.created_at)

    def find(self, keys: Sequence[str]) -> dict[str, StoredVideo]:
        """Stored inputs among ``keys``."""
        if self.meta is None or not keys:
            return {}
        where = f"key IN ({', '.join(sql(k) for k in keys)})"
        with guard(self.root, "read videos"):
            rows = self._table("videos").search().where(where).limit(None).to_arrow().to_pylist()
        return current_videos(rows)

    def frames(self, videos: Sequence[StoredVideo] | None = None, *, vectors: bool = True,
               unique: bool = False) -> FrameRows:
        """Frames of the given stored inputs (all when ``videos`` is None),
        ordered by input then time: only rows of each input's current
        generation, so a replace in progress is never seen twice or half.

        Args:
            unique: keep one row per frame, ``(content hash, frame index)``:
                runs with different sampling, or copies of one file, store
                some frames more than once.

        Raises:
            StoreError: unreadable, or vectors that are not unit length.
        """
        if self.meta is None:
            return no_rows(self.dim or 0)
        _, rows = self._read_whole(videos, vectors=vectors)
        return rows.take(one_per_frame(rows)) if unique else rows

    def embedded(self, video: StoredVideo, path: str | None = None) -> EmbeddedInput:
        """A stored input as the engine would have produced it.

        Raises:
            StoreError: the input's frames are missing or incomplete.
        """
        return next(self.embedded_many([video], [path or video.input_path]))

    def embedded_many(self, videos: Sequence[StoredVideo],
                      paths: Sequence[str] | None = None) -> Iterator[EmbeddedInput]:
        """:meth:`embedded` for each of ``videos``, in order, reading the
        frames of ``READ_BATCH`` inputs per query: every query costs a pass
        over the table's fragments, so one per input made re-scoring a large
        store quadratic."""
        paths = list(paths) if paths is not None else [v.input_path for v in videos]
        for start in range(0, len(videos), READ_BATCH):
            chunk, rows = self._read_whole(list(videos[start:start + READ_BATCH]))
            for video, path in zip(chunk, paths[start:start + READ_BATCH]):
                yield self._embedded_from(rows, video, path)

    def _read_whole(self, videos: Sequence[StoredVideo] | None, *,
                    vectors: bool = True) -> tuple[list[StoredVideo], FrameRows]:
        """The current ``videos`` rows (all when None) and their frames. When a
        writer replaced an input after its ``videos`` row was read, that
        input's frames are gone: the rows are read again, on fresh table
        handles, a few times, so a reader never silently loses an input."""
        current = self.videos() if videos is None else list(videos)
        rows = self._read_rows(current, vectors=vectors, keyed=videos is not None)
        for attempt in range(1, READ_RETRIES):
            have = dict(zip(*np.unique(rows.key.astype(str), return_counts=True))) if len(rows) else {}
            if all(have.get(v.key, 0) == v.frames or (is_growing(v) and have.get(v.key, 0) > v.frames)
                   for v in current):
                break
            time.sleep(0.05 * attempt)
            self._tables = {}
            if videos is None:
                current = self.videos()
            else:
                fresh = self.find([v.key for v in current])
                current = [fresh.get(v.key, v) for v in current]
            rows = self._read_rows(current, vectors=vectors, keyed=videos is not None)
        return current, rows

    def _read_rows(self, current: list[StoredVideo], *, vectors: bool, keyed: bool) -> FrameRows:
        cols = ["key", "input_path", "content_hash", "frame_index", "time_s"] + \
            (["generation"] if self._has_generation() else []) + \
            (["refine"] if self._has_refine() else []) + (["vector"] if vectors else [])
        with guard(self.root, "read frames"):
            query = self._table("frames").search()
            if keyed:
                query = query.where(f"key IN ({', '.join(sql(v.key) for v in current) or sql('')})")
            rows = frame_rows(query.select(cols).limit(None).to_arrow(), self.dim or 0)
        rows = rows.take(visible_rows(rows, current))
        if vectors:
            check_vectors(self.root, rows.vectors)
        return rows

    def _embedded_from(self, rows: FrameRows, video: StoredVideo, path: str) -> EmbeddedInput:
        mine = counted_rows(rows, video)
        if int(mine.sum()) != video.frames:
            raise StoreError(f"embedding store {self.root} is inconsistent: {video.input_path} has "
                             f"{int(mine.sum())} of its {video.frames} frames; rerun with --no-cache")
        info = dataclasses.replace(video.info, path=path) if video.info else None
        extra = mine & rows.refine_mask()
        mine &= ~extra
        vectors = rows.vectors[mine] if len(rows.vectors) else rows.vectors
        refine = RefineFrames(indices=rows.frame_index[extra], times_s=rows.time_s[extra],
                              embeddings=rows.vectors[extra] if len(rows.vectors) else rows.vectors,
                              gaps=video.gaps) \
            if extra.any() or video.gaps else None
        return EmbeddedInput(path=path, info=info, indices=rows.frame_index[mine],
                             times_s=rows.time_s[mine], embeddings=vectors, stats=video.stats,
                             refine=refine)

    def compact(self, min_fragments: int | None = None) -> list[str]:
        """Merge a table's small fragments once it has more than
        ``min_fragments`` (default ``COMPACT_MIN_FRAGMENTS``). Every stored
        input adds one, and a query visits them all: with 1,000 inputs a keyed
        lookup took 50-90 ms instead of 6 (docs/PERFORMANCE.md). Also drops
        table versions older than a week.

        Returns:
            the tables compacted.
        """
        limit = COMPACT_MIN_FRAGMENTS if min_fragments is None else min_fragments
        done: list[str] = []
        if self.meta is None:
            return done
        with self.writing("compact"), guard(self.root, "compact"):
            for name in ("frames", "videos", TEXTS, PICTURES, SHOTS):
                if name not in self._table_names():
                    continue
                table = self._table(name)
                if table.stats()["fragment_stats"]["num_fragments"] > limit:
                    table.optimize()
                    done.append(name)
        if done:
            log.info("compacted embedding store tables: %s", ", ".join(done))
        return done

    def count(self) -> int:
        """Rows in the frames table (a replace in progress counts twice)."""
        if self.meta is None:
            return 0
        with guard(self.root, "count"):
            return int(self._table("frames").count_rows())

    # ------------------------------------------------------------------ tables

    def _table_names(self) -> set[str]:
        """The store's table names, listed once (until a write drops the list)."""
        if self._names is None:
            self._names = set(self._db.list_tables().tables)
        return self._names

    def _table(self, name: str):
        """The table ``name``, its handle opened once and reused."""
        if name not in self._tables:  # opening costs a manifest read; queries reuse handles
            self._tables[name] = self._db.open_table(name)
        return self._tables[name]

    def _ensure_table(self, name: str, schema) -> None:
        """Create the optional table ``name`` (texts, pictures) unless it exists
        (another writer may have created it meanwhile)."""
        if name not in self._table_names():
            self._tables[name] = self._db.create_table(name, schema=schema, exist_ok=True)
            self._names = None


# --------------------------------------------------------------------------- row values


def _input_ref(path: str) -> str:
    """How an input is kept: a file by its absolute path; a live stream's
    (redacted) URL or ``-`` as it is (an absolute path would mangle it)."""
    return path if "://" in path or path == "-" else os.path.abspath(path)


def _refine_part(extra: RefineFrames | None, name: str, dtype) -> np.ndarray:
    return np.asarray(getattr(extra, name), dtype) if extra is not None and len(extra) else np.zeros(0, dtype)


def _to_json(value) -> str | None:
    return json.dumps(dataclasses.asdict(value)) if value is not None else None
