"""Similarity search over the store's frames: the nearest frames to a vector
(current rows only, one per frame), and the IVF-PQ index that keeps a large
store's search fast.

Below :data:`INDEX_MIN_ROWS` search is exact (brute force is fast enough);
above it LanceDB's IVF-PQ index is probed and its candidates re-ranked with
exact distances. Damaged vectors are refused, not ranked: LanceDB reads
overwritten bytes as numbers, and drops a NaN distance silently.

:class:`NearestMixin` is part of :class:`~pipeline.store.db.EmbeddingStore`
(kept apart because search is an idea of its own). It relies on the store for
``root``, ``meta``, ``dim``, :meth:`videos`, :meth:`frames`, :meth:`writing`
and its table handles (``_table``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pipeline.store.lance import guard, sql
from pipeline.store.rows import StoredVideo, check_vectors, frame_rows, one_per_frame, visible_rows
from pipeline.types import StoreError

log = logging.getLogger(__name__)

INDEX_MIN_ROWS = 100_000  # below this, exact (brute-force) search is fast enough
# IVF partitions probed per query, and how many times top_k candidates are
# re-ranked with exact distances (PQ codes alone lose the fine order).
SEARCH_NPROBES = 32
SEARCH_REFINE_FACTOR = 50  # 5 gave recall@10 0.57 at 1M vectors; 50 gives 0.99 (+4 ms)
# search checks every vector of a store up to this size (~20 MB at 512-d, tens of ms),
# and the vectors it returns beyond it: a full read at 50k x 512 cost 0.2-0.8 s vs 0.1 s a query
VERIFY_MAX_ROWS = 10_000


class NearestMixin:
    """Frame similarity search and its index (a part of
    :class:`~pipeline.store.db.EmbeddingStore`)."""

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
            keep = visible_rows(rows, current)
            keep = keep[one_per_frame(rows.take(keep))]
            if len(keep) >= top_k or len(rows) < want:
                keep = keep[:top_k]
                return rows.take(keep), scores[keep]
            want *= 4

    def _nearest_rows(self, vector: np.ndarray, k: int, keys: Sequence[str] | None):
        """The ``k`` nearest rows of any generation (and their similarities),
        their vectors checked; all of a small store's vectors checked too."""
        where = None if keys is None else f"key IN ({', '.join(sql(k) for k in keys) or sql('')})"
        with guard(self.root, "search"):
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
                check_vectors(self.root, frame_rows(scan.select(["key", "frame_index", "time_s", "vector"])
                                                    .limit(None).to_arrow(), self.dim).vectors)
        # exact search returns min(k, rows) rows; LanceDB silently drops a row
        # whose distance is NaN (a damaged vector), so count them
        expected = min(k, n)
        rows = frame_rows(result, self.dim)
        scores = 1.0 - result["_distance"].to_numpy().astype(np.float64)
        check_vectors(self.root, rows.vectors, scores)
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
        with guard(self.root, "index"):
            table = self._table("frames")
            n, indexed = table.count_rows(), bool(table.list_indices())
        if n < min_rows:
            return False
        if indexed and not refresh:
            return True
        with self.writing("index", wait_s), guard(self.root, "index"):
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


def _sub_vectors(dim: int) -> int:
    """PQ sub-vectors: 8 dimensions each where it divides evenly."""
    for width in (8, 4, 2, 1):
        if dim % width == 0:
            return dim // width
    return 1
