"""The store's optional ``shots`` table: the shots ``run --shots`` found in a
stored input (its ``shots.csv`` rows), kept so that search and serve users
can read an input's shots without its report folder.

An input's shots are keyed as its frames are (its ``key``); each write
replaces the input's earlier shots: the new rows are added with a newer
``created_at``, then the old ones deleted, and readers keep each key's
newest write only (:func:`~pipeline.store.rows.current_shots`), and only
for inputs with a current ``videos`` row. Re-embedding an input's frames
keeps its shots (they describe its content); removing it removes them
(:meth:`~pipeline.store.db.EmbeddingStore.delete`).

:class:`ShotsMixin` is part of :class:`~pipeline.store.db.EmbeddingStore`
(kept apart as :mod:`~pipeline.store.label_cache` is). It relies on the
store for ``root``, ``meta``, ``model_id``, ``model_revision``,
:meth:`writing`, :meth:`find`, :meth:`videos` and its table handles.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pipeline.store.lance import guard, pyarrow, sql
from pipeline.store.rows import StoredShot, StoredVideo, current_shots
from pipeline.store.schema import SHOTS, shots_schema


class ShotsMixin:
    """An input's shots beside its frames (a part of
    :class:`~pipeline.store.db.EmbeddingStore`)."""

    def put_shots(self, key: str, shots: Sequence, *, config_hash: str = "") -> int:
        """Keep ``shots`` (objects with ``shot``, ``start_s``, ``end_s``,
        ``start_frame``, ``end_frame``, ``tags``: ``shots.csv``'s rows) as the
        shots of the stored input ``key``, replacing any it had.

        Returns:
            the rows written: 0 when ``key`` is not a stored input.
        """
        with self.writing("write shots"):
            video = self.find([key]).get(key)
            if video is None:
                return 0
            created = time.time()
            n = len(shots)
            ident = {"key": key, "input_path": video.input_path, "content_hash": video.content_hash,
                     "model_id": self.model_id, "model_revision": self.model_revision,
                     "sampling": video.sampling, "precision": video.precision,
                     "generation": video.generation, "config_hash": config_hash, "created_at": created}
            rows = {**{k: [v] * n for k, v in ident.items()},
                    "shot": [int(s.shot) for s in shots], "start_s": [float(s.start_s) for s in shots],
                    "end_s": [float(s.end_s) for s in shots],
                    "start_frame": [int(s.start_frame) for s in shots],
                    "end_frame": [int(s.end_frame) for s in shots],
                    "tags": [str(s.tags or "") for s in shots]}
            with guard(self.root, "write shots"):
                self._ensure_table(SHOTS, shots_schema())
                table = self._table(SHOTS)
                if n:
                    table.add(pyarrow().table(rows, schema=shots_schema()))
                old = f"key = {sql(key)} AND created_at != {created!r}"
                if table.count_rows(old):  # an empty delete would still commit a version
                    table.delete(old)
        return n

    def shots(self, videos: Sequence[StoredVideo] | None = None) -> dict[str, list[StoredShot]]:
        """The shots of the given stored inputs (all when None), by key, in
        shot order; an input without any (never run with ``--shots``, or a
        store made before the table) is absent.

        Raises:
            StoreError: the table is unreadable.
        """
        if self.meta is None or SHOTS not in self._table_names():
            return {}
        current = self.videos() if videos is None else list(videos)
        if not current:
            return {}
        where = f"key IN ({', '.join(sql(v.key) for v in current)})"
        with guard(self.root, "read shots"):
            rows = self._table(SHOTS).search().where(where).limit(None).to_arrow().to_pylist()
        return current_shots(rows)
