"""The store's caches of label embeddings: the optional ``texts`` table
(prompts, with the model's scoring constants) and ``pictures`` table
(example pictures, by the sha256 of their bytes).

Prompts and pictures embedded once are looked up afterwards, so re-scoring
with prompts seen before needs no text tower and no model load at all. Both
are optimisations only: a damaged cache is a miss, with a warning.

:class:`LabelCacheMixin` is part of :class:`~pipeline.store.db.EmbeddingStore`
(kept apart because the two tables are an idea of their own). It relies on
the store for ``root``, ``meta``, ``dim``, ``model_id``, :meth:`writing`,
:meth:`check_model`, :meth:`stored_model_id` and its table handles
(``_table``, ``_table_names``, ``_ensure_table``, ``_ensure_created``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pipeline.store.keys import model_ref
from pipeline.store.lance import guard, pyarrow, sql, vector_array
from pipeline.store.schema import PICTURES, TEXTS, pictures_schema, text_calibration_fields, texts_schema
from pipeline.types import StoreError

log = logging.getLogger(__name__)


class LabelCacheMixin:
    """Prompt and example-picture embeddings cached by model (a part of
    :class:`~pipeline.store.db.EmbeddingStore`)."""

    # ------------------------------------------------------------------ texts

    def text_vectors(self, model_id: str, revision: str | None,
                     texts: Sequence[str]) -> tuple[dict[str, np.ndarray], float | None]:
        """Cached embeddings of ``texts`` by this model.

        Returns:
            ``(found, logit_scale)``: text → vector for the texts cached, and
            the model's logit scale (None when nothing was found). A damaged
            cache is a miss, with a warning: the texts get embedded again.
        """
        if self.meta is None or not texts or TEXTS not in self._table_names():
            return {}, None
        where = (f"{self._texts_of(model_id, revision)} AND "
                 f"text IN ({', '.join(sql(t) for t in dict.fromkeys(texts))})")
        try:
            with guard(self.root, "read texts"):
                table = self._table(TEXTS).search().where(where).select(
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
        """The SQL filter for the cache rows (prompts, pictures) of this model."""
        model_id = self.stored_model_id(model_id, revision)
        revision_sql = "model_revision IS NULL" if revision is None \
            else f"model_revision = {sql(revision)}"
        return f"model_id = {sql(model_id)} AND {revision_sql}"

    def text_calibration(self, model_id: str, revision: str | None) -> dict | None:
        """The scoring constants kept with this model's cached prompts.

        Returns:
            ``{"logit_scale", "logit_bias", "family"}``, or None when no cached
            prompt has them (none cached, or all cached before the bias was
            kept: a sigmoid rescore must then load the model for its bias).
        """
        if self.meta is None or TEXTS not in self._table_names():
            return None
        try:
            with guard(self.root, "read texts"):
                table = self._table(TEXTS)
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
            self._ensure_created(model_ref(model_id), revision, int(vectors.shape[1]), family)
            self.check_model(model_id, revision, int(vectors.shape[1]))
            model_id = self.model_id
            cached, _ = self.text_vectors(model_id, revision, texts)
            keep = [i for i, t in enumerate(texts) if t not in cached]
            if not keep:
                return
            n = len(keep)
            rows = {"model_id": [model_id] * n, "model_revision": [revision] * n,
                    "precision": [precision] * n, "logit_scale": [float(logit_scale)] * n,
                    "text": [texts[i] for i in keep], "vector": vector_array(vectors[keep]),
                    "logit_bias": [float(logit_bias)] * n, "family": [family] * n}
            with guard(self.root, "write texts"):
                data = pyarrow().table(rows, schema=texts_schema(self.dim))
                self._ensure_table(TEXTS, data.schema)
                self._add_text_calibration()
                self._table(TEXTS).add(data)

    def _add_text_calibration(self) -> None:
        """A cache made before ``logit_bias`` and ``family`` were kept gains
        them (null in its old rows, which :meth:`text_calibration` skips)."""
        table = self._table(TEXTS)
        for column in text_calibration_fields():
            if column.name not in table.schema.names:
                table.add_columns(column)

    # ------------------------------------------------------------------ pictures

    def picture_vectors(self, model_id: str, revision: str | None,
                        hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings of example pictures by this model, by sha256 of
        the picture's bytes (a damaged cache is a miss, with a warning)."""
        if self.meta is None or not hashes or PICTURES not in self._table_names():
            return {}
        where = (f"{self._texts_of(model_id, revision)} AND "
                 f"sha256 IN ({', '.join(sql(h) for h in dict.fromkeys(hashes))})")
        try:
            with guard(self.root, "read pictures"):
                table = self._table(PICTURES).search().where(where).select(
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
            self._ensure_created(model_ref(model_id), revision, int(vectors.shape[1]), family)
            self.check_model(model_id, revision, int(vectors.shape[1]))
            cached = self.picture_vectors(self.model_id, revision, hashes)
            keep = [i for i, h in enumerate(hashes) if h not in cached]
            if not keep:
                return
            n = len(keep)
            rows = {"model_id": [self.model_id] * n, "model_revision": [revision] * n,
                    "precision": [precision] * n, "sha256": [hashes[i] for i in keep],
                    "vector": vector_array(vectors[keep])}
            with guard(self.root, "write pictures"):
                data = pyarrow().table(rows, schema=pictures_schema(self.dim))
                self._ensure_table(PICTURES, data.schema)
                self._table(PICTURES).add(data)
