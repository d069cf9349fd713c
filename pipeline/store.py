"""The embedding store: frame embeddings kept in LanceDB (embedded, no server)
so that re-runs, re-scoring, search and clustering need no decoding.

Layout of a store folder (a LanceDB database):

* ``meta`` — one row: ``format_version``, ``model_id``, ``model_revision``,
  ``dim``, ``created_at``, ``scenetag_version``. A store holds embeddings of
  exactly one model: vectors of two models are not comparable.
* ``frames`` — one row per embedded frame: ``key`` (the stored input, see
  below), ``input_path``, ``content_hash``, ``model_id``, ``model_revision``,
  ``sampling``, ``precision``, ``frame_index``, ``time_s``, ``vector``
  (float32, L2-normalised, ``dim`` wide).
* ``videos`` — one row per stored input: the same identity columns plus
  ``sampling_json``, ``frames`` (row count in ``frames``), ``info_json``
  (:class:`~pipeline.types.VideoInfo`), ``stats_json``
  (:class:`~pipeline.types.DecodeStats`) and ``created_at``. Written *after*
  the input's frames, so a row here marks a complete input.

* ``texts`` (optional, created on first use) — the text-embedding cache:
  ``model_id``, ``model_revision``, ``precision``, ``logit_scale``, ``text``,
  ``vector``. Prompts embedded once are looked up afterwards, so re-scoring
  with prompts seen before needs no text tower and no model load at all.

``key`` is a hash of (content hash, model id, revision, sampling): the same
file, model and sampling is one stored input however often it is run.

lancedb is imported on first use; every library failure is turned into a
one-line :class:`~pipeline.types.StoreError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.engine.base import EmbeddedInput
from pipeline.types import DecodeStats, Sampling, StoreError, VideoInfo

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_MIN_ROWS = 100_000  # below this, exact (brute-force) search is fast enough
# IVF partitions probed per query, and how many times top_k candidates are
# re-ranked with exact distances (PQ codes alone lose the fine order).
SEARCH_NPROBES = 32
SEARCH_REFINE_FACTOR = 50  # 5 gave recall@10 0.57 at 1M vectors; 50 gives 0.99 (+4 ms)
_HASH_BLOCK = 1 << 20
HASH_WORKERS = 8  # parallel file reads when fingerprinting a run's inputs
_TABLES = ("meta", "videos", "frames")
_TEXTS = "texts"  # optional: stores written before it simply have none
READ_BATCH = 64  # stored inputs whose frames are read in one query
COMPACT_MIN_FRAGMENTS = 32  # a table with more fragments is compacted after a run


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


@dataclass(frozen=True)
class FrameRows:
    """Frames read back from the store, aligned arrays."""

    input_path: np.ndarray  # object (str)
    key: np.ndarray  # object (str)
    frame_index: np.ndarray
    time_s: np.ndarray
    vectors: np.ndarray  # N x dim float32

    def __len__(self) -> int:
        return len(self.frame_index)


# --------------------------------------------------------------------------- store


class EmbeddingStore:
    """A LanceDB database of frame embeddings of one model.

    Open with :meth:`open`. All writes come from one thread (the run's main
    thread); readers may be other processes.
    """

    def __init__(self, root: Path, db, meta: dict | None, names: set[str] | None = None) -> None:
        self.root = root
        self._db = db
        self.meta = meta
        self._tables: dict = {}
        self._names = names  # table names, listed once (None: list on first need)

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, root: str | os.PathLike, *, create: bool = False) -> EmbeddingStore:
        """Open (or, with ``create``, start) the store at ``root``.

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
            names = set(db.list_tables().tables)
        present = [t for t in _TABLES if t in names]
        if not present:
            if root.exists() and any(root.iterdir()) and not create:
                raise StoreError(f"{root} is not a scenetag embedding store")
            if not create:
                raise StoreError(f"embedding store {root} is empty (run `scenetag run` first)")
            return cls(root, db, None)
        if len(present) != len(_TABLES):
            missing = ", ".join(t for t in _TABLES if t not in names)
            raise StoreError(f"embedding store {root} is partial or corrupt: missing table(s) {missing}")
        return cls(root, db, _read_meta(root, db), names)

    @property
    def model_id(self) -> str | None:
        return self.meta["model_id"] if self.meta else None

    @property
    def model_revision(self) -> str | None:
        return self.meta["model_revision"] if self.meta else None

    @property
    def dim(self) -> int | None:
        return int(self.meta["dim"]) if self.meta else None

    def describe_model(self) -> str:
        rev = f"@{self.model_revision}" if self.model_revision else ""
        return f"{self.model_id}{rev} (dim {self.dim})"

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
        if same_model and (model_id != self.model_id or
                           (revision and self.model_revision and revision != self.model_revision)):
            raise StoreError(f"embedding store {self.root} was built with {self.describe_model()}, "
                             f"not {model_id}; use another --store for this model")

    # ------------------------------------------------------------------ write

    def put(self, embedded: EmbeddedInput, *, chash: str, sampling: Sampling, sampling_desc: str,
            model_id: str, revision: str | None, precision: str) -> str:
        """Store one embedded input, replacing any earlier copy of it.

        Returns:
            the input's key.
        """
        vectors = np.ascontiguousarray(embedded.embeddings, np.float32)
        dim = int(vectors.shape[1])
        self._ensure_created(model_id, revision, dim)
        self.check_model(model_id, revision, dim)
        key = input_key(chash, model_id, revision, sampling_desc)
        ident = {"key": key, "input_path": str(embedded.path), "content_hash": chash,
                 "model_id": model_id, "model_revision": revision, "sampling": sampling_desc,
                 "precision": precision}
        n = len(vectors)
        frames = {**{k: [v] * n for k, v in ident.items()},
                  "frame_index": np.asarray(embedded.indices, np.int64),
                  "time_s": np.asarray(embedded.times_s, np.float64), "vector": _vector_array(vectors)}
        video = {**{k: [v] for k, v in ident.items()},
                 "sampling_json": [json.dumps(dataclasses.asdict(sampling))], "frames": [n],
                 "info_json": [_to_json(embedded.info)], "stats_json": [_to_json(embedded.stats)],
                 "created_at": [time.time()]}
        self.delete(key)
        with _guard(self.root, "write"):
            pa = _pyarrow()
            self._table("frames").add(pa.table(frames, schema=_frames_schema(dim)))
            self._table("videos").add(pa.table(video, schema=_videos_schema()))
        return key

    def delete(self, key: str) -> None:
        """Remove an input's rows (its ``videos`` row first, so it is never
        seen as complete while its frames go)."""
        if self.meta is None:
            return
        where = f"key = {_sql(key)}"
        with _guard(self.root, "delete"):
            for name in ("videos", "frames"):
                table = self._table(name)
                if table.count_rows(where):  # an empty delete would still commit a version
                    table.delete(where)

    def set_path(self, key: str, path: str) -> None:
        """Record that a stored input now lives at ``path`` (file moved)."""
        with _guard(self.root, "update"):
            for name in ("videos", "frames"):
                self._table(name).update(where=f"key = {_sql(key)}", values={"input_path": path})

    def _ensure_created(self, model_id: str, revision: str | None, dim: int) -> None:
        if self.meta is not None:
            return
        pa = _pyarrow()
        meta = {"format_version": FORMAT_VERSION, "model_id": model_id, "model_revision": revision,
                "dim": dim, "created_at": time.time(), "scenetag_version": _version()}
        with _guard(self.root, "create"):
            self._db.create_table("frames", schema=_frames_schema(dim))
            self._db.create_table("videos", schema=_videos_schema())
            # meta last: a store with a meta row has all its tables
            self._db.create_table("meta", pa.Table.from_pylist([meta], schema=_meta_schema()))
        self.meta = meta
        log.info("created embedding store %s for %s", self.root, self.describe_model())

    # ------------------------------------------------------------------ read

    def videos(self) -> list[StoredVideo]:
        """Every complete stored input, oldest first."""
        if self.meta is None:
            return []
        with _guard(self.root, "read videos"):
            rows = self._table("videos").to_arrow().to_pylist()
        return sorted((_stored_video(r) for r in rows), key=lambda v: v.created_at)

    def find(self, keys: Sequence[str]) -> dict[str, StoredVideo]:
        """Stored inputs among ``keys``."""
        if self.meta is None or not keys:
            return {}
        where = f"key IN ({', '.join(_sql(k) for k in keys)})"
        with _guard(self.root, "read videos"):
            rows = self._table("videos").search().where(where).limit(None).to_arrow().to_pylist()
        return {r["key"]: _stored_video(r) for r in rows}

    def frames(self, keys: Sequence[str] | None = None, *, vectors: bool = True) -> FrameRows:
        """Frames of the given inputs (all when ``keys`` is None), ordered by
        input then time."""
        dim = self.dim or 0
        if self.meta is None:
            return FrameRows(*(np.zeros(0, object),) * 2, np.zeros(0, np.int64),
                             np.zeros(0), np.zeros((0, dim), np.float32))
        cols = ["key", "input_path", "frame_index", "time_s"] + (["vector"] if vectors else [])
        with _guard(self.root, "read frames"):
            query = self._table("frames").search()
            if keys is not None:
                query = query.where(f"key IN ({', '.join(_sql(k) for k in keys) or _sql('')})")
            table = query.select(cols).limit(None).to_arrow()
            return _frame_rows(table, dim)

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
            chunk = videos[start:start + READ_BATCH]
            rows = self.frames([v.key for v in chunk])
            for video, path in zip(chunk, paths[start:start + READ_BATCH]):
                yield self._embedded_from(rows, video, path)

    def _embedded_from(self, rows: FrameRows, video: StoredVideo, path: str) -> EmbeddedInput:
        mine = rows.key == video.key
        if int(mine.sum()) != video.frames:
            raise StoreError(f"embedding store {self.root} is inconsistent: {video.input_path} has "
                             f"{int(mine.sum())} of its {video.frames} frames; rerun with --no-cache")
        info = dataclasses.replace(video.info, path=path) if video.info else None
        vectors = rows.vectors[mine] if len(rows.vectors) else rows.vectors
        return EmbeddedInput(path=path, info=info, indices=rows.frame_index[mine],
                             times_s=rows.time_s[mine], embeddings=vectors, stats=video.stats)

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
        with _guard(self.root, "compact"):
            for name in ("frames", "videos", _TEXTS):
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
        revision_sql = "model_revision IS NULL" if revision is None \
            else f"model_revision = {_sql(revision)}"
        where = (f"model_id = {_sql(model_id)} AND {revision_sql} AND "
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

    def put_texts(self, texts: Sequence[str], vectors: np.ndarray, *, model_id: str,
                  revision: str | None, precision: str, logit_scale: float) -> None:
        """Cache text embeddings (the caller passes only texts not cached yet)."""
        if not len(texts):
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        self._ensure_created(model_id, revision, int(vectors.shape[1]))
        self.check_model(model_id, revision, int(vectors.shape[1]))
        n = len(texts)
        rows = {"model_id": [model_id] * n, "model_revision": [revision] * n,
                "precision": [precision] * n, "logit_scale": [float(logit_scale)] * n,
                "text": list(texts), "vector": _vector_array(vectors)}
        with _guard(self.root, "write texts"):
            pa = _pyarrow()
            data = pa.table(rows, schema=_texts_schema(self.dim))
            if _TEXTS not in self._table_names():  # exist_ok: another writer may race us
                self._tables[_TEXTS] = self._db.create_table(_TEXTS, schema=data.schema, exist_ok=True)
                self._names = None
            self._table(_TEXTS).add(data)

    # ------------------------------------------------------------------ search

    def nearest(self, vector: np.ndarray, top_k: int, keys: Sequence[str] | None = None):
        """The ``top_k`` frames closest to ``vector`` by cosine similarity.

        Returns:
            (FrameRows, similarities), best first.
        """
        if self.meta is None:
            return self.frames([]), np.zeros(0)
        with _guard(self.root, "search"):
            table = self._table("frames")
            query = table.search(np.asarray(vector, np.float32).ravel()).distance_type("cosine")
            if keys is not None:
                query = query.where(f"key IN ({', '.join(_sql(k) for k in keys) or _sql('')})",
                                    prefilter=True)
            if table.list_indices():
                query = query.nprobes(SEARCH_NPROBES).refine_factor(SEARCH_REFINE_FACTOR)
            result = query.limit(top_k).to_arrow()
            rows = _frame_rows(result, self.dim)
        return rows, 1.0 - result["_distance"].to_numpy().astype(np.float64)

    def ensure_index(self, min_rows: int = INDEX_MIN_ROWS, *, refresh: bool = True) -> bool:
        """Build the IVF-PQ index once the table is large.

        Args:
            refresh: when an index exists, fold rows added since into it
                (the writer does this after a run; readers only build).

        Returns:
            True when an index exists afterwards.
        """
        if self.meta is None:
            return False
        with _guard(self.root, "index"):
            table = self._table("frames")
            n = table.count_rows()
            if n < min_rows:
                return False
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
    if store.model_id is not None and store.model_id != model_id:
        return {}, hashes  # a different model can only miss; put() will refuse clearly
    keys = {path: input_key(h, model_id, revision, sampling_desc) for path, h in hashes.items()}
    found = store.find(list(set(keys.values())))
    stored = {path: found[key] for path, key in keys.items() if key in found}
    for path, video in stored.items():
        if video.input_path != path and not os.path.exists(video.input_path):
            store.set_path(video.key, path)
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
        """Keep a freshly embedded input (failed and cached ones are not stored)."""
        chash = self.hashes.get(embedded.path)
        if embedded.path in self.hits or embedded.error is not None or chash is None \
                or not len(embedded.embeddings):
            return
        e = self.embedder
        self.store.put(embedded, chash=chash, sampling=self.sampling,
                       sampling_desc=self.sampling_desc, model_id=e.model_id,
                       revision=e.revision, precision=e.precision)
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
                   required: bool = True) -> RunCache | None:
    """The run's view of the store at ``store_dir``, checked against the model.

    Args:
        required: False for the default store: without lancedb installed the
            run goes on without a store (with a warning) instead of failing.

    Raises:
        StoreError: the store is corrupt, newer, or holds another model's vectors.
    """
    if not required:
        try:
            import lancedb  # noqa: F401
        except ImportError:
            log.warning("lancedb is not installed: embeddings are not stored "
                        "(pip install 'scenetag[store]', or pass --no-store)")
            return None
    store = EmbeddingStore.open(store_dir, create=True)
    store.check_model(embedder.model_id, embedder.revision, embedder.dim)
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
                        precision=embedder.precision, logit_scale=embedder.logit_scale)
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
        raise StoreError(f"embedding store {root} is unreadable or corrupt ({action} failed: "
                         f"{first[:300]})") from ex


def _read_meta(root: Path, db) -> dict:
    with _guard(root, "read meta"):
        rows = db.open_table("meta").to_arrow().to_pylist()
    if len(rows) != 1:
        raise StoreError(f"embedding store {root} is corrupt: its meta table has {len(rows)} rows")
    meta = rows[0]
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise StoreError(f"embedding store {root} has format version {version}; this scenetag "
                         f"reads up to {FORMAT_VERSION} (upgrade scenetag)")
    return meta


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
                       created_at=float(row["created_at"]))


def _frame_rows(table, dim: int) -> FrameRows:
    flat = table["vector"].combine_chunks().flatten().to_numpy() if "vector" in table.column_names \
        else np.zeros(0, np.float32)
    vectors = flat.astype(np.float32).reshape(-1, dim) if dim else np.zeros((0, 0), np.float32)
    order = np.lexsort((table["time_s"].to_numpy(), np.array(table["key"].to_pylist(), object))) \
        if "_distance" not in table.column_names else np.arange(table.num_rows)
    return FrameRows(input_path=np.array(table["input_path"].to_pylist(), object)[order],
                     key=np.array(table["key"].to_pylist(), object)[order],
                     frame_index=table["frame_index"].to_numpy().astype(np.int64)[order],
                     time_s=table["time_s"].to_numpy().astype(np.float64)[order],
                     vectors=vectors[order] if len(vectors) else vectors)


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
            pa.field("precision", pa.string())]


def _frames_schema(dim: int):
    pa = _pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("frame_index", pa.int64()), pa.field("time_s", pa.float64()),
        pa.field("vector", pa.list_(pa.float32(), dim))],
        metadata={"format_version": str(FORMAT_VERSION), "dim": str(dim)})


def _videos_schema():
    pa = _pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("sampling_json", pa.string()), pa.field("frames", pa.int64()),
        pa.field("info_json", pa.string()), pa.field("stats_json", pa.string()),
        pa.field("created_at", pa.float64())])


def _texts_schema(dim: int):
    pa = _pyarrow()
    return pa.schema([pa.field("model_id", pa.string()), pa.field("model_revision", pa.string()),
                      pa.field("precision", pa.string()), pa.field("logit_scale", pa.float64()),
                      pa.field("text", pa.string()), pa.field("vector", pa.list_(pa.float32(), dim))])


def _meta_schema():
    pa = _pyarrow()
    return pa.schema([pa.field("format_version", pa.int64()), pa.field("model_id", pa.string()),
                      pa.field("model_revision", pa.string()), pa.field("dim", pa.int64()),
                      pa.field("created_at", pa.float64()),
                      pa.field("scenetag_version", pa.string())])


def _lancedb():
    try:
        import lancedb
    except ImportError as ex:
        raise StoreError("the embedding store needs lancedb: pip install 'scenetag[store]'") from ex
    return lancedb


def _pyarrow():
    import pyarrow

    return pyarrow


def _version() -> str:
    from pipeline.report.tables import scenetag_version

    return scenetag_version()
