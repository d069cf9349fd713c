"""The embedding store: frame embeddings kept in LanceDB (embedded, no server)
so that re-runs, re-scoring, search and clustering need no decoding.

Layout of a store folder (a LanceDB database):

* ``meta`` — one row: ``format_version``, ``model_id``, ``model_revision``,
  ``dim``, ``created_at``, ``scenetag_version``, ``model_family`` (``clip``,
  ``siglip``, ``siglip2``; absent in stores made before it). A store holds embeddings of
  exactly one model: vectors of two models are not comparable.
* ``frames`` — one row per embedded frame: ``key`` (the stored input, see
  below), ``input_path`` (absolute), ``content_hash``, ``model_id``,
  ``model_revision``, ``sampling``, ``precision``, ``generation``,
  ``frame_index``, ``time_s``, ``vector`` (float32, L2-normalised, ``dim``
  wide), ``refine`` (true for a frame edge refinement decoded between the
  sampled ones; null in stores made before it: false).
* ``videos`` — one row per stored input: the same identity columns plus
  ``sampling_json``, ``frames`` (row count in ``frames``), ``info_json``
  (:class:`~pipeline.types.VideoInfo`), ``stats_json``
  (:class:`~pipeline.types.DecodeStats`), ``created_at`` and ``refine_json``
  (edge refinement's cut evidence, the
  :class:`~pipeline.types.GapEvidence` of each gap it decoded whole: ``[lo,
  hi, cuts, clear, still, times]``, ``times`` (the PTS of the frames either
  side of each cut, ``[[frame, pts_s], ...]``) since format 5; null in
  stores made before format 4). Written *after*
  the input's frames, so a row here marks a complete input; its
  ``generation`` names which of the input's frame rows are current.

* ``texts`` (optional, created on first use) — the text-embedding cache:
  ``model_id``, ``model_revision``, ``precision``, ``logit_scale``, ``text``,
  ``vector``, ``logit_bias`` and ``family`` (null in rows cached before them).
  Prompts embedded once are looked up afterwards, so re-scoring with prompts
  seen before needs no text tower and no model load at all (a sigmoid model's
  scores need its bias too: :meth:`EmbeddingStore.text_calibration`).

* ``pictures`` (optional, created on first use) — the example-picture cache
  (``labels[].images``, ``negative_images``): ``model_id``, ``model_revision``,
  ``precision``, ``sha256`` (of the picture file's bytes), ``vector``. Keyed by
  model and content, so an edited picture is embedded again and a moved one is not.

``key`` is a hash of (content hash, model id, revision, sampling): the same
file, model and sampling is one stored input however often it is run.

Concurrency: every write holds the store's lock file (one writer at a time,
across processes; :mod:`pipeline.store.lock`); readers take no lock. Replacing
an input adds its new rows under a new ``generation``, then its ``videos``
row, then deletes the old rows, and readers keep only the rows of each key's
newest ``videos`` row: never a duplicate, never half an input. Creation makes
``meta`` last; tables without a meta row and without data (a creation that
failed: disk full, killed) are rebuilt, with a warning, by the next writer.

lancedb is imported on first use; every library failure is turned into a
one-line :class:`~pipeline.types.StoreError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.about import version
from pipeline.engine.base import EmbeddedInput, RefineFrames
from pipeline.store.lock import LOCK_FILE, STORE_WAIT_S, WriteLock
from pipeline.types import DecodeStats, GapEvidence, Sampling, StoreError, VideoInfo

log = logging.getLogger(__name__)

# 2 added `generation`, 3 added `refine`, 4 added `refine_json`; older stores are read, and
# upgraded on first write
FORMAT_VERSION = 5
INDEX_MIN_ROWS = 100_000  # below this, exact (brute-force) search is fast enough
# IVF partitions probed per query, and how many times top_k candidates are
# re-ranked with exact distances (PQ codes alone lose the fine order).
SEARCH_NPROBES = 32
SEARCH_REFINE_FACTOR = 50  # 5 gave recall@10 0.57 at 1M vectors; 50 gives 0.99 (+4 ms)
_HASH_BLOCK = 1 << 20
HASH_WORKERS = 8  # parallel file reads when fingerprinting a run's inputs
_TABLES = ("meta", "videos", "frames")
_TEXTS = "texts"  # optional: stores written before it simply have none
_PICTURES = "pictures"  # optional, like texts
READ_BATCH = 64  # stored inputs whose frames are read in one query
COMPACT_MIN_FRAGMENTS = 32  # a table with more fragments is compacted after a run
READ_RETRIES = 4  # re-reads of an input a concurrent writer replaced mid-read
# search checks every vector of a store up to this size (~20 MB at 512-d, tens of ms),
# and the vectors it returns beyond it: a full read at 50k x 512 cost 0.2-0.8 s vs 0.1 s a query
VERIFY_MAX_ROWS = 10_000
UNIT_TOLERANCE = 1e-2  # |norm - 1| beyond this is damage: embed normalises in float32 (~1e-7)


# --------------------------------------------------------------------------- identity


def content_hash(path: str | os.PathLike) -> str:
    """A fast content fingerprint of a file.

    sha256 over the size, the modification time (ns) and the first and last
    1 MB. Cheap on multi-GB videos; editing or touching the file changes it,
    so a stale cache entry is never reused (a touched file is merely decoded
    again).
    """
    st = os.stat(path)
    digest = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:".encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_HASH_BLOCK))
        if st.st_size > _HASH_BLOCK:
            fh.seek(max(_HASH_BLOCK, st.st_size - _HASH_BLOCK))
            digest.update(fh.read(_HASH_BLOCK))
    return digest.hexdigest()[:32]


def content_hashes(paths: Sequence[str], workers: int = HASH_WORKERS) -> dict[str, str]:
    """:func:`content_hash` of every readable path (unreadable ones are left
    out, for the decoder to report). Threads: hashing is file reads, and a run
    over a library on network storage otherwise waits for them one by one
    before its first decode."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: str) -> str | None:
        try:
            return content_hash(path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths)))) as pool:
        digests = list(pool.map(one, paths))
    return {p: d for p, d in zip(paths, digests) if d is not None}


def sampling_key(sampling: Sampling, *, strategy: str = "auto", backend: str = "pyav") -> str:
    """What decides which frames an input yields, as one readable string."""
    cap = f"; max {sampling.max_frames}" if sampling.max_frames else ""
    return f"{sampling.describe()}{cap}; {strategy}; {backend}"


# Stills have been resized exactly as the model's image processor resizes them
# since this marker: a still stored before it (resized as video frames are)
# is a different input, embedded again rather than reused with old pixels.
STILL_PIXELS = "stills as the processor resizes them"


def input_sampling(path: str, sampling_desc: str) -> str:
    """The sampling an input is stored under: a still's also names how its
    pixels were prepared."""
    from pipeline.decode import is_image

    return f"{sampling_desc}; {STILL_PIXELS}" if is_image(path) else sampling_desc


def input_key(chash: str, model_id: str, revision: str | None, sampling: str) -> str:
    blob = json.dumps([chash, model_id, revision or "", sampling]).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


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


# --------------------------------------------------------------------------- store


class EmbeddingStore:
    """A LanceDB database of frame embeddings of one model.

    Open with :meth:`open`. Every write holds the store's write lock
    (:mod:`pipeline.store.lock`): one writer at a time, across processes.
    Readers take no lock and see complete inputs only: an input's frames are
    those of the generation its current ``videos`` row names, so a replace in
    progress (new rows written, old ones not yet deleted) is never seen twice
    or half.
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
        root = Path(root)
        if not root.exists() and not create:
            raise StoreError(f"no embedding store at {root} (run `scenetag run` first)")
        lancedb = _lancedb()
        with _guard(root, "open"):
            db = lancedb.connect(str(root))
        store = cls(root, db, None, wait_s=STORE_WAIT_S if wait_s is None else wait_s)
        store._load(create=create)
        return store

    def _load(self, *, create: bool) -> None:
        """List the tables and read the meta row (again after taking the write
        lock: another writer may have created the store meanwhile)."""
        self._tables, self._names = {}, None
        with _guard(self.root, "open"):
            names = self._table_names()
        present = [t for t in _TABLES if t in names]
        if not present:
            ours = {LOCK_FILE, *(f"{t}.lance" for t in (*_TABLES, _TEXTS, _PICTURES))}  # mid-creation
            if not create and any(p.name not in ours for p in self.root.iterdir()):
                raise StoreError(f"{self.root} is not a scenetag embedding store")
            if not create:
                raise StoreError(f"embedding store {self.root} is empty (run `scenetag run` first)")
            return
        meta = self._meta_or_none(names)
        if meta is None:
            self._half_made_or_raise(names, create=create)
            return
        if len(present) != len(_TABLES):
            missing = ", ".join(t for t in _TABLES if t not in names)
            raise StoreError(f"embedding store {self.root} is partial or corrupt: missing table(s) "
                             f"{missing}")
        self.meta, self._half_made = meta, False

    def _meta_or_none(self, names: set[str]) -> dict | None:
        """The meta row; None when it is missing or unreadable (creation is
        the one write that can leave it so: meta is created last)."""
        if "meta" not in names:
            return None
        try:
            with _guard(self.root, "read meta"):
                rows = self._db.open_table("meta").to_arrow().to_pylist()
        except StoreError:
            return None
        return _check_meta(self.root, rows)

    def _half_made_or_raise(self, names: set[str], *, create: bool) -> None:
        """Tables but no meta row: a creation that failed (disk full, killed).
        Without data it is rebuilt by the next writer; with data it is damage."""
        if self._holds_data(names):
            missing = [t for t in _TABLES if t not in names]
            what = f"missing table(s) {', '.join(missing)}" if missing else "its meta table is unreadable"
            raise StoreError(f"embedding store {self.root} is partial or corrupt: {what}")
        if not create:
            raise StoreError(f"embedding store {self.root} is empty: its creation did not finish "
                             "(the next `scenetag run` rebuilds it)")
        self._half_made = True

    def _holds_data(self, names: set[str]) -> bool:
        for name in ("frames", "videos", _TEXTS, _PICTURES):
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
        if _model_ref(model_id) == _model_ref(self.model_id):
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
        return _model_ref(model_id)

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
            self._ensure_created(_model_ref(model_id), revision, dim, family)
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
                      "vector": _vector_array(vectors),
                      "refine": np.arange(n) >= coarse}
            video = {**{k: [v] for k, v in ident.items()},
                     "sampling_json": [json.dumps(dataclasses.asdict(sampling))], "frames": [n],
                     "info_json": [_to_json(embedded.info)], "stats_json": [_to_json(embedded.stats)],
                     "created_at": [time.time()], "refine_json": [_gaps_json(extra)]}
            with _guard(self.root, "write"):
                pa = _pyarrow()
                self._table("frames").add(pa.table(frames, schema=_frames_schema(dim)))
                self._table("videos").add(pa.table(video, schema=_videos_schema()))
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
        one, which readers then pass over, see :func:`_current`), then the old
        row is deleted. A reader that took the old row sees rows beyond its
        count and leaves them out (:func:`_counted`).

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
                      "vector": _vector_array(vectors), "refine": np.zeros(n, bool)}
            total = stored.frames + n
            video = {**{k: [v] for k, v in ident.items()},
                     "sampling_json": [json.dumps(dataclasses.asdict(sampling))], "frames": [total],
                     "info_json": [_to_json(embedded.info)], "stats_json": [_to_json(embedded.stats)],
                     "created_at": [max(time.time(), stored.created_at + 1e-6)],
                     "refine_json": [None]}  # a live stream's edges are not refined: no gap evidence
            with _guard(self.root, "write"):
                pa = _pyarrow()
                self._table("frames").add(pa.table(frames, schema=_frames_schema(self.dim)))
                self._table("videos").add(pa.table(video, schema=_videos_schema()))
                self._table("videos").delete(f"key = {_sql(key)} AND frames < {int(total)}")
        return key

    def delete(self, key: str) -> None:
        """Remove an input's rows (its ``videos`` row first, so it is never
        seen as complete while its frames go)."""
        if self.meta is None:
            return
        with self.writing("delete"):
            self._drop(key)

    def _drop(self, key: str, keep: str | None = None) -> None:
        """Delete ``key``'s rows, except those of generation ``keep``."""
        where = f"key = {_sql(key)}"
        if keep is not None:
            where += f" AND (generation IS NULL OR generation != {_sql(keep)})"
        with _guard(self.root, "delete"):
            for name in ("videos", "frames"):
                table = self._table(name)
                if table.count_rows(where):  # an empty delete would still commit a version
                    table.delete(where)

    def set_path(self, key: str, path: str) -> None:
        """Record that a stored input now lives at ``path`` (file moved)."""
        with self.writing("update"), _guard(self.root, "update"):
            for name in ("videos", "frames"):
                self._table(name).update(where=f"key = {_sql(key)}",
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
                for name in (*_TABLES, _TEXTS, _PICTURES):
                    shutil.rmtree(self.root / f"{name}.lance", ignore_errors=True)
                self._names, self._half_made = None, False
            pa = _pyarrow()
            meta = {"format_version": FORMAT_VERSION, "model_id": model_id,
                    "model_revision": revision, "dim": dim, "created_at": time.time(),
                    "scenetag_version": version(), "model_family": family}
            with _guard(self.root, "create"):
                self._db.create_table("frames", schema=_frames_schema(dim))
                self._db.create_table("videos", schema=_videos_schema())
                # meta last: a store with a meta row has all its tables
                self._db.create_table("meta", pa.Table.from_pylist([meta], schema=_meta_schema()))
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
        pa = _pyarrow()
        with _guard(self.root, "upgrade"):
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
        with _guard(self.root, "read videos"):
            rows = self._table("videos").to_arrow().to_pylist()
        return sorted(_current(rows).values(), key=lambda v: v.created_at)

    def find(self, keys: Sequence[str]) -> dict[str, StoredVideo]:
        """Stored inputs among ``keys``."""
        if self.meta is None or not keys:
            return {}
        where = f"key IN ({', '.join(_sql(k) for k in keys)})"
        with _guard(self.root, "read videos"):
            rows = self._table("videos").search().where(where).limit(None).to_arrow().to_pylist()
        return _current(rows)

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
            return _no_rows(self.dim or 0)
        _, rows = self._read_whole(videos, vectors=vectors)
        return rows.take(_one_per_frame(rows)) if unique else rows

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
            if all(have.get(v.key, 0) == v.frames or (_growing(v) and have.get(v.key, 0) > v.frames)
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
        with _guard(self.root, "read frames"):
            query = self._table("frames").search()
            if keyed:
                query = query.where(f"key IN ({', '.join(_sql(v.key) for v in current) or _sql('')})")
            rows = _frame_rows(query.select(cols).limit(None).to_arrow(), self.dim or 0)
        rows = rows.take(_visible(rows, current))
        if vectors:
            _check_vectors(self.root, rows.vectors)
        return rows

    def _embedded_from(self, rows: FrameRows, video: StoredVideo, path: str) -> EmbeddedInput:
        mine = _counted(rows, video)
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
        with self.writing("compact"), _guard(self.root, "compact"):
            for name in ("frames", "videos", _TEXTS, _PICTURES):
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
        with _guard(self.root, "count"):
            return int(self._table("frames").count_rows())

    # ------------------------------------------------------------------ texts

    def text_vectors(self, model_id: str, revision: str | None,
                     texts: Sequence[str]) -> tuple[dict[str, np.ndarray], float | None]:
        """Cached embeddings of ``texts`` by this model.

        Returns:
            ``(found, logit_scale)``: text → vector for the texts cached, and
            the model's logit scale (None when nothing was found). A damaged
            cache is a miss, with a warning: the texts get embedded again.
        """
        if self.meta is None or not texts or _TEXTS not in self._table_names():
            return {}, None
        where = (f"{self._texts_of(model_id, revision)} AND "
                 f"text IN ({', '.join(_sql(t) for t in dict.fromkeys(texts))})")
        try:
            with _guard(self.root, "read texts"):
                table = self._table(_TEXTS).search().where(where).select(
                    ["text", "logit_scale", "vector"]).limit(None).to_arrow()
        except StoreError as ex:
            log.warning("prompt cache not used: %s", ex)
            return {}, None
        if not table.num_rows:
            return {}, None
        flat = table["vector"].combine_chunks().flatten().to_numpy()
        vectors = flat.astype(np.float32).reshape(table.num_rows, -1)
        found = dict(zip(table["text"].to_pylist(), vectors))
        return found, float(table["logit_scale"][0].as_py())

    def _texts_of(self, model_id: str, revision: str | None) -> str:
        """The SQL filter for the prompt-cache rows of this model."""
        model_id = self.stored_model_id(model_id, revision)
        revision_sql = "model_revision IS NULL" if revision is None \
            else f"model_revision = {_sql(revision)}"
        return f"model_id = {_sql(model_id)} AND {revision_sql}"

    def text_calibration(self, model_id: str, revision: str | None) -> dict | None:
        """The scoring constants kept with this model's cached prompts.

        Returns:
            ``{"logit_scale", "logit_bias", "family"}``, or None when no cached
            prompt has them (none cached, or all cached before the bias was
            kept: a sigmoid rescore must then load the model for its bias).
        """
        if self.meta is None or _TEXTS not in self._table_names():
            return None
        try:
            with _guard(self.root, "read texts"):
                table = self._table(_TEXTS)
                if "logit_bias" not in table.schema.names:
                    return None
                where = f"{self._texts_of(model_id, revision)} AND logit_bias IS NOT NULL"
                rows = table.search().where(where).select(["logit_scale", "logit_bias", "family"]) \
                    .limit(1).to_arrow().to_pylist()
        except StoreError as ex:
            log.warning("prompt cache not used: %s", ex)
            return None
        return rows[0] if rows else None

    def put_texts(self, texts: Sequence[str], vectors: np.ndarray, *, model_id: str,
                  revision: str | None, precision: str, logit_scale: float, logit_bias: float = 0.0,
                  family: str | None = None) -> None:
        """Cache text embeddings with the model's scoring constants (texts
        another writer cached meanwhile are skipped)."""
        if not len(texts):
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        with self.writing("write texts"):
            self._ensure_created(_model_ref(model_id), revision, int(vectors.shape[1]), family)
            self.check_model(model_id, revision, int(vectors.shape[1]))
            model_id = self.model_id
            cached, _ = self.text_vectors(model_id, revision, texts)
            keep = [i for i, t in enumerate(texts) if t not in cached]
            if not keep:
                return
            n = len(keep)
            rows = {"model_id": [model_id] * n, "model_revision": [revision] * n,
                    "precision": [precision] * n, "logit_scale": [float(logit_scale)] * n,
                    "text": [texts[i] for i in keep], "vector": _vector_array(vectors[keep]),
                    "logit_bias": [float(logit_bias)] * n, "family": [family] * n}
            with _guard(self.root, "write texts"):
                pa = _pyarrow()
                data = pa.table(rows, schema=_texts_schema(self.dim))
                if _TEXTS not in self._table_names():
                    self._tables[_TEXTS] = self._db.create_table(_TEXTS, schema=data.schema,
                                                                 exist_ok=True)
                    self._names = None
                self._add_text_calibration()
                self._table(_TEXTS).add(data)

    def _add_text_calibration(self) -> None:
        """A cache made before ``logit_bias`` and ``family`` were kept gains
        them (null in its old rows, which :meth:`text_calibration` skips)."""
        table = self._table(_TEXTS)
        for column in _text_calibration_fields():
            if column.name not in table.schema.names:
                table.add_columns(column)

    # ------------------------------------------------------------------ pictures

    def picture_vectors(self, model_id: str, revision: str | None,
                        hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings of example pictures by this model, by sha256 of
        the picture's bytes (a damaged cache is a miss, with a warning)."""
        if self.meta is None or not hashes or _PICTURES not in self._table_names():
            return {}
        where = (f"{self._texts_of(model_id, revision)} AND "
                 f"sha256 IN ({', '.join(_sql(h) for h in dict.fromkeys(hashes))})")
        try:
            with _guard(self.root, "read pictures"):
                table = self._table(_PICTURES).search().where(where).select(
                    ["sha256", "vector"]).limit(None).to_arrow()
        except StoreError as ex:
            log.warning("example-picture cache not used: %s", ex)
            return {}
        if not table.num_rows:
            return {}
        flat = table["vector"].combine_chunks().flatten().to_numpy()
        return dict(zip(table["sha256"].to_pylist(), flat.astype(np.float32).reshape(table.num_rows, -1)))

    def put_pictures(self, hashes: Sequence[str], vectors: np.ndarray, *, model_id: str,
                     revision: str | None, precision: str, family: str | None = None) -> None:
        """Cache example-picture embeddings by content hash (ones another
        writer cached meanwhile are skipped)."""
        if not len(hashes):
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        with self.writing("write pictures"):
            self._ensure_created(_model_ref(model_id), revision, int(vectors.shape[1]), family)
            self.check_model(model_id, revision, int(vectors.shape[1]))
            cached = self.picture_vectors(self.model_id, revision, hashes)
            keep = [i for i, h in enumerate(hashes) if h not in cached]
            if not keep:
                return
            n = len(keep)
            rows = {"model_id": [self.model_id] * n, "model_revision": [revision] * n,
                    "precision": [precision] * n, "sha256": [hashes[i] for i in keep],
                    "vector": _vector_array(vectors[keep])}
            with _guard(self.root, "write pictures"):
                data = _pyarrow().table(rows, schema=_pictures_schema(self.dim))
                if _PICTURES not in self._table_names():
                    self._tables[_PICTURES] = self._db.create_table(_PICTURES, schema=data.schema,
                                                                    exist_ok=True)
                    self._names = None
                self._table(_PICTURES).add(data)

    # ------------------------------------------------------------------ search

    def nearest(self, vector: np.ndarray, top_k: int, videos: Sequence[StoredVideo] | None = None):
        """The ``top_k`` frames closest to ``vector`` by cosine similarity,
        one row per frame (:meth:`frames` with ``unique``), current rows only.

        Args:
            videos: search only these stored inputs (default: all).

        Returns:
            (FrameRows, similarities), best first.

        Raises:
            StoreError: unreadable, or damaged vectors among those compared.
        """
        if self.meta is None:
            return self.frames([]), np.zeros(0)
        current = self.videos() if videos is None else list(videos)
        keys = None if videos is None else [v.key for v in current]
        want = top_k
        while True:  # rows of old copies and repeated frames are skipped: ask for more
            rows, scores = self._nearest_rows(vector, want, keys)
            keep = _visible(rows, current)
            keep = keep[_one_per_frame(rows.take(keep))]
            if len(keep) >= top_k or len(rows) < want:
                keep = keep[:top_k]
                return rows.take(keep), scores[keep]
            want *= 4

    def _nearest_rows(self, vector: np.ndarray, k: int, keys: Sequence[str] | None):
        where = None if keys is None else f"key IN ({', '.join(_sql(k) for k in keys) or _sql('')})"
        with _guard(self.root, "search"):
            table = self._table("frames")
            query = table.search(np.asarray(vector, np.float32).ravel()).distance_type("cosine")
            if where is not None:
                query = query.where(where, prefilter=True)
            indexed = bool(table.list_indices())
            if indexed:
                query = query.nprobes(SEARCH_NPROBES).refine_factor(SEARCH_REFINE_FACTOR)
            result = query.limit(k).to_arrow()
            n = 0 if indexed else table.count_rows(where)
            if 0 < n <= VERIFY_MAX_ROWS:  # a damaged row outside the hits would go unseen
                scan = table.search()
                scan = scan.where(where) if where is not None else scan
                _check_vectors(self.root, _frame_rows(scan.select(["key", "frame_index", "time_s", "vector"])
                                                      .limit(None).to_arrow(), self.dim).vectors)
        # exact search returns min(k, rows) rows; LanceDB silently drops a row
        # whose distance is NaN (a damaged vector), so count them
        expected = min(k, n)
        rows = _frame_rows(result, self.dim)
        scores = 1.0 - result["_distance"].to_numpy().astype(np.float64)
        _check_vectors(self.root, rows.vectors, scores)
        if result.num_rows < expected:
            raise StoreError(f"embedding store {self.root} is corrupt: {expected - result.num_rows} "
                             f"stored vectors cannot be compared (damaged data); rebuild it "
                             f"(scenetag run --no-cache into a new --store)")
        return rows, scores

    def ensure_index(self, min_rows: int = INDEX_MIN_ROWS, *, refresh: bool = True,
                     wait_s: float | None = None) -> bool:
        """Build the IVF-PQ index once the table is large.

        Args:
            refresh: when an index exists, fold rows added since into it
                (the writer does this after a run; readers only build).
            wait_s: how long to wait for another writer's lock.

        Returns:
            True when an index exists afterwards.
        """
        if self.meta is None:
            return False
        with _guard(self.root, "index"):
            table = self._table("frames")
            n, indexed = table.count_rows(), bool(table.list_indices())
        if n < min_rows:
            return False
        if indexed and not refresh:
            return True
        with self.writing("index", wait_s), _guard(self.root, "index"):
            table = self._table("frames")
            if not table.list_indices():
                log.info("building IVF-PQ index over %d vectors", n)
                # ~4k vectors a partition: k-means training cost grows with the
                # square of the partition count, and 32 probes still cover ~10%
                table.create_index(metric="cosine", vector_column_name="vector",
                                   index_type="IVF_PQ", num_partitions=max(16, n // 4096),
                                   num_sub_vectors=_sub_vectors(self.dim), max_iterations=25)
            elif refresh:
                table.optimize()  # folds newly added rows into the index
        return True

    def _table_names(self) -> set[str]:
        if self._names is None:
            self._names = set(self._db.list_tables().tables)
        return self._names

    def _table(self, name: str):
        if name not in self._tables:  # opening costs a manifest read; queries reuse handles
            self._tables[name] = self._db.open_table(name)
        return self._tables[name]


# --------------------------------------------------------------------------- run cache


def lookup(store: EmbeddingStore, paths: Sequence[str], *, model_id: str, revision: str | None,
           sampling_desc: str) -> tuple[dict[str, EmbeddedInput], dict[str, str]]:
    """Split ``paths`` into stored inputs and the content hashes of all.

    Returns:
        ``(hits, hashes)``: ``hits`` maps a path to its stored
        :class:`EmbeddedInput`; ``hashes`` maps every readable path to its
        content hash (unreadable ones are left to the decoder to report).
    """
    hashes = content_hashes(paths)
    if not store.same_model(model_id, revision):
        return {}, hashes  # a different model can only miss; put() will refuse clearly
    ident = store.stored_model_id(model_id, revision)
    keys = {path: input_key(h, ident, revision, input_sampling(path, sampling_desc))
            for path, h in hashes.items()}
    found = store.find(list(set(keys.values())))
    stored = {path: found[key] for path, key in keys.items() if key in found}
    for path, video in stored.items():
        here = os.path.abspath(path)
        # a moved file, or a path kept relative by an older scenetag: keep the absolute one
        if video.input_path != here and (not os.path.isabs(video.input_path)
                                         or not os.path.exists(video.input_path)):
            store.set_path(video.key, here)
    embedded = store.embedded_many(list(stored.values()), list(stored))
    return dict(zip(stored, embedded)), hashes


class RunCache:
    """What ``run`` needs from the store: which inputs are already embedded,
    and a place to keep the new ones. Used from the run's main thread only."""

    def __init__(self, store: EmbeddingStore, embedder, sampling: Sampling, sampling_desc: str,
                 *, use_cache: bool = True) -> None:
        self.store = store
        self.embedder = embedder
        self.sampling = sampling
        self.sampling_desc = sampling_desc
        self.use_cache = use_cache
        self.hashes: dict[str, str] = {}
        self.hits: set[str] = set()
        self.added = 0

    def split(self, paths: Sequence[str]) -> tuple[list[EmbeddedInput], list[str]]:
        """``(stored inputs, paths still to decode)``, each in input order."""
        e = self.embedder
        hits, self.hashes = lookup(self.store, paths, model_id=e.model_id, revision=e.revision,
                                   sampling_desc=self.sampling_desc)
        if not self.use_cache:
            hits = {}
        self.hits = set(hits)
        if hits:
            log.info("%d of %d inputs taken from the embedding store", len(hits), len(paths))
        return [hits[p] for p in paths if p in hits], [p for p in paths if p not in hits]

    def save(self, embedded: EmbeddedInput) -> None:
        """Keep a freshly embedded input (failed ones are not stored, nor
        cached ones unless edge refinement embedded new frames of them, or
        decoded new gaps of them for cut evidence)."""
        chash = self.hashes.get(embedded.path)
        grew = embedded.refine is not None and (embedded.refine.embedded > 0 or embedded.refine.scanned > 0)
        if (embedded.path in self.hits and not grew) or embedded.error is not None or chash is None \
                or not len(embedded.embeddings):
            return
        e = self.embedder
        self.store.put(embedded, chash=chash, sampling=self.sampling,
                       sampling_desc=input_sampling(embedded.path, self.sampling_desc), model_id=e.model_id,
                       revision=e.revision, precision=_precision_label(e), family=getattr(e, "family", None))
        self.added += 1
        if self.added % COMPACT_MIN_FRAGMENTS == 0:  # else each put slows the next (PERFORMANCE.md)
            self._maintain(self.store.compact)

    def finish(self) -> None:
        if self.added:
            self._maintain(self.store.ensure_index)
            self._maintain(self.store.compact)

    def _maintain(self, step: Callable[[], object]) -> None:
        """Index and compaction only speed the store up: a failure is a
        warning, not a reason to lose the run (a later run retries)."""
        try:
            step()
        except StoreError as ex:
            log.warning("embedding store maintenance skipped: %s", ex)


def open_run_cache(store_dir: str | os.PathLike, embedder, sampling: Sampling, *,
                   strategy: str, backend: str, use_cache: bool = True,
                   required: bool = True, wait_s: float | None = None) -> RunCache | None:
    """The run's view of the store at ``store_dir``, checked against the model.

    Args:
        required: False for the default store: without lancedb installed the
            run goes on without a store (with a warning) instead of failing.
        wait_s: how long each write waits for another writer (``--store-wait``).

    Raises:
        StoreError: the store is corrupt, newer, read-only, busy past
            ``wait_s``, or holds another model's vectors.
    """
    if not required:
        try:
            import lancedb  # noqa: F401
        except ImportError:
            log.warning("lancedb is not installed: embeddings are not stored "
                        "(pip install 'scenetag[store]', or pass --no-store)")
            return None
    store = EmbeddingStore.open(store_dir, create=True, wait_s=wait_s)
    store.check_model(embedder.model_id, embedder.revision, embedder.dim)
    store.check_writable()
    return RunCache(store, embedder, sampling,
                    sampling_key(sampling, strategy=strategy, backend=backend), use_cache=use_cache)


def embed_and_keep(store: EmbeddingStore, embedder, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Embed ``texts`` (ones the prompt cache lacks) and keep them there.

    The cache is an optimisation only: a store that cannot be written
    (read-only media) costs a warning, and the vectors are returned anyway.
    """
    vectors = embedder.embed_texts(list(texts))
    try:
        store.put_texts(texts, vectors, model_id=embedder.model_id, revision=embedder.revision,
                        precision=_precision_label(embedder), logit_scale=embedder.logit_scale,
                        logit_bias=getattr(embedder, "logit_bias", 0.0),
                        family=getattr(embedder, "family", None))
    except StoreError as ex:
        log.warning("prompt embeddings not cached: %s", ex)
    return dict(zip(texts, vectors))


def cached_text_embedder(store: EmbeddingStore, embedder) -> Callable[[list[str]], np.ndarray]:
    """``embedder.embed_texts`` behind the store's prompt cache: texts embedded
    before are looked up, new ones are embedded and kept (:func:`embed_and_keep`)."""

    def embed_texts(texts: list[str]) -> np.ndarray:
        found, _ = store.text_vectors(embedder.model_id, embedder.revision, texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(embed_and_keep(store, embedder, missing))
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, embedder.dim), np.float32)

    return embed_texts


def cached_picture_embedder(store: EmbeddingStore, embedder, hashes: dict[str, str],
                            embed_pictures: Callable[[list[str]], np.ndarray]
                            ) -> Callable[[list[str]], np.ndarray]:
    """``embed_pictures`` (paths → vectors) behind the store's picture cache,
    looked up by ``hashes`` (path → sha256 of its bytes, from the config):
    pictures embedded before by this model need no decode and no image tower.
    The cache is an optimisation only: a store that cannot be written costs a
    warning."""

    def embed(paths: list[str]) -> np.ndarray:
        found = store.picture_vectors(embedder.model_id, embedder.revision, [hashes[p] for p in paths])
        missing = list({hashes[p]: p for p in reversed(paths) if hashes[p] not in found}.values())
        if missing:
            vectors = embed_pictures(missing)
            found.update(zip((hashes[p] for p in missing), vectors))
            try:
                store.put_pictures([hashes[p] for p in missing], vectors, model_id=embedder.model_id,
                                   revision=embedder.revision, precision=_precision_label(embedder),
                                   family=getattr(embedder, "family", None))
            except StoreError as ex:
                log.warning("example-picture embeddings not cached: %s", ex)
        return np.stack([found[hashes[p]] for p in paths])

    return embed


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _guard(root: Path, action: str) -> Iterator[None]:
    """Library failures become one StoreError line naming the store."""
    try:
        yield
    except StoreError:
        raise
    except Exception as ex:
        first = (str(ex).strip().splitlines() or [type(ex).__name__])[0]
        state = "read-only (permission denied)" if _is_permission(ex) else "unreadable or corrupt"
        raise StoreError(f"embedding store {root} is {state} ({action} failed: {first[:300]})") from ex


_PERMISSION_WORDS = ("permission denied", "read-only file system", "os error 13", "os error 30")


def _is_permission(ex: BaseException) -> bool:
    """A refused write (file mode, read-only mount), however LanceDB wraps it:
    its Rust errors arrive as text, not as PermissionError."""
    if isinstance(ex, PermissionError) or getattr(ex, "errno", None) in (errno.EACCES, errno.EROFS):
        return True
    return any(word in str(ex).lower() for word in _PERMISSION_WORDS)


def _check_meta(root: Path, rows: list[dict]) -> dict:
    if len(rows) != 1:
        raise StoreError(f"embedding store {root} is corrupt: its meta table has {len(rows)} rows")
    meta = rows[0]
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise StoreError(f"embedding store {root} has format version {version}; this scenetag "
                         f"reads up to {FORMAT_VERSION} (upgrade scenetag)")
    return meta


def _input_ref(path: str) -> str:
    """How an input is kept: a file by its absolute path; a live stream's
    (redacted) URL or ``-`` as it is (an absolute path would mangle it)."""
    return path if "://" in path or path == "-" else os.path.abspath(path)


def _current(rows: list[dict]) -> dict[str, StoredVideo]:
    """One ``videos`` row per key, the newest: while an input is replaced its
    old and new rows both exist for a moment."""
    out: dict[str, StoredVideo] = {}
    for row in rows:
        video = _stored_video(row)
        if video.key not in out or video.created_at > out[video.key].created_at:
            out[video.key] = video
    return out


def _visible(rows: FrameRows, videos: Sequence[StoredVideo]) -> np.ndarray:
    """Positions of the rows that belong to a current ``videos`` row (its key
    and generation): not an old copy being replaced, nor an unfinished new one."""
    if not len(rows):
        return np.zeros(0, np.int64)
    current = {v.key: v.generation for v in videos}
    gens = rows.generation if rows.generation is not None else [None] * len(rows)
    missing = object()
    return np.array([i for i, (k, g) in enumerate(zip(rows.key, gens))
                     if current.get(k, missing) == g], np.int64)


def _growing(video: StoredVideo) -> bool:
    """A live stream's input, which :meth:`EmbeddingStore.append` grows."""
    return video.stats is not None and video.stats.strategy == "live"


def _counted(rows: FrameRows, video: StoredVideo) -> np.ndarray:
    """Which of ``rows`` are ``video``'s: its key's rows, but of a growing
    input only the first ``video.frames`` (by time; later ones are a chunk
    appended after its ``videos`` row was read)."""
    mine = rows.key == video.key
    if _growing(video) and int(mine.sum()) > video.frames:
        mine[np.flatnonzero(mine)[video.frames:]] = False
    return mine


def _one_per_frame(rows: FrameRows) -> np.ndarray:
    """Positions of the first row of each frame, ``(content hash, frame
    index)``, in row order."""
    if not len(rows):
        return np.zeros(0, np.int64)
    _, content = np.unique(rows.content_hash.astype(str), return_inverse=True)
    pairs = content.astype(np.int64) * (int(rows.frame_index.max()) + 1) + rows.frame_index
    _, first = np.unique(pairs, return_index=True)
    return np.sort(first)


def _check_vectors(root: Path, vectors: np.ndarray, scores: np.ndarray | None = None) -> None:
    """Stored vectors are unit length: anything else was damaged on disk
    (LanceDB reads a few overwritten bytes as numbers without complaint)."""
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


def _no_rows(dim: int) -> FrameRows:
    empty = np.zeros(0, object)
    return FrameRows(empty, empty, np.zeros(0, np.int64), np.zeros(0), np.zeros((0, dim), np.float32),
                     empty, empty)


def _model_ref(model_id: str | None) -> str | None:
    """A local model folder as an absolute path (so a store opened from any
    working directory finds it); a Hub id as given."""
    if model_id and os.path.isdir(os.path.expanduser(model_id)):
        return os.path.abspath(os.path.expanduser(model_id))
    return model_id


def _stored_video(row: dict) -> StoredVideo:
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


def _gaps_json(extra: RefineFrames | None) -> str | None:
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


def _frame_rows(table, dim: int) -> FrameRows:
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


def _refine_part(extra: RefineFrames | None, name: str, dtype) -> np.ndarray:
    return np.asarray(getattr(extra, name), dtype) if extra is not None and len(extra) else np.zeros(0, dtype)


def _to_json(value) -> str | None:
    return json.dumps(dataclasses.asdict(value)) if value is not None else None


def _sql(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _sub_vectors(dim: int) -> int:
    """PQ sub-vectors: 8 dimensions each where it divides evenly."""
    for width in (8, 4, 2, 1):
        if dim % width == 0:
            return dim // width
    return 1


def _vector_array(vectors: np.ndarray):
    pa = _pyarrow()
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1])


def _ident_fields(pa) -> list:
    return [pa.field("key", pa.string()), pa.field("input_path", pa.string()),
            pa.field("content_hash", pa.string()), pa.field("model_id", pa.string()),
            pa.field("model_revision", pa.string()), pa.field("sampling", pa.string()),
            pa.field("precision", pa.string()), pa.field("generation", pa.string())]


def _frames_schema(dim: int):
    pa = _pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("frame_index", pa.int64()), pa.field("time_s", pa.float64()),
        pa.field("vector", pa.list_(pa.float32(), dim)), pa.field("refine", pa.bool_())],
        metadata={"format_version": str(FORMAT_VERSION), "dim": str(dim)})


def _videos_schema():
    pa = _pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("sampling_json", pa.string()), pa.field("frames", pa.int64()),
        pa.field("info_json", pa.string()), pa.field("stats_json", pa.string()),
        pa.field("created_at", pa.float64()), pa.field("refine_json", pa.string())])


def _texts_schema(dim: int):
    pa = _pyarrow()
    return pa.schema([pa.field("model_id", pa.string()), pa.field("model_revision", pa.string()),
                      pa.field("precision", pa.string()), pa.field("logit_scale", pa.float64()),
                      pa.field("text", pa.string()), pa.field("vector", pa.list_(pa.float32(), dim)),
                      *_text_calibration_fields()])


def _pictures_schema(dim: int):
    pa = _pyarrow()
    return pa.schema([pa.field("model_id", pa.string()), pa.field("model_revision", pa.string()),
                      pa.field("precision", pa.string()), pa.field("sha256", pa.string()),
                      pa.field("vector", pa.list_(pa.float32(), dim))])


def _text_calibration_fields():
    pa = _pyarrow()
    return [pa.field("logit_bias", pa.float64()), pa.field("family", pa.string())]


def _meta_schema():
    pa = _pyarrow()
    return pa.schema([pa.field("format_version", pa.int64()), pa.field("model_id", pa.string()),
                      pa.field("model_revision", pa.string()), pa.field("dim", pa.int64()),
                      pa.field("created_at", pa.float64()),
                      pa.field("scenetag_version", pa.string()), pa.field("model_family", pa.string())])


def _lancedb():
    try:
        import lancedb
    except ImportError as ex:
        raise StoreError("the embedding store needs lancedb: pip install 'scenetag[store]'") from ex
    return lancedb


def _pyarrow():
    import pyarrow

    return pyarrow


def _precision_label(embedder: object) -> str:
    """What the ``precision`` columns keep: the precision, and the runtime when it is an
    exported one (``openvino-int8``); embedders without the label give their precision."""
    return getattr(embedder, "precision_label", embedder.precision)
