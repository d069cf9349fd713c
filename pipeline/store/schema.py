"""The store's on-disk format: its version, its tables and their Arrow schemas,
and the check that a store's meta row is one this scenetag can read.

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
  scores need its bias too: :meth:`~pipeline.store.db.EmbeddingStore.text_calibration`).

* ``pictures`` (optional, created on first use) — the example-picture cache
  (``labels[].images``, ``negative_images``): ``model_id``, ``model_revision``,
  ``precision``, ``sha256`` (of the picture file's bytes), ``vector``. Keyed by
  model and content, so an edited picture is embedded again and a moved one is not.

* ``shots`` (optional, created on first use) — the shots a ``run --shots``
  found in a stored input, one row per shot: the identity columns of the
  input's ``videos`` row when they were written, ``config_hash`` (of the run
  that found them: shot tags follow its labels), ``created_at`` (one value
  per write), ``shot``, ``start_s``, ``end_s``, ``start_frame``,
  ``end_frame`` (exclusive) and ``tags`` (``; ``-separated), as in
  ``shots.csv``. An input's shots are the rows of its newest write; a later
  ``--shots`` run replaces them, re-embedding its frames keeps them, and
  removing the input removes them. Stores made before it have none: no
  format change (a reader without the table sees no shots).

``key`` is a hash of (content hash, model id, revision, sampling): the same
file, model and sampling is one stored input however often it is run
(:func:`~pipeline.store.keys.input_key`).

Schemas are built on first use: pyarrow is imported then, not when this
module is.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.store.lance import pyarrow
from pipeline.types import StoreError

# 2 added `generation`, 3 added `refine`, 4 added `refine_json`; older stores are read, and
# upgraded on first write
FORMAT_VERSION = 5
TABLES = ("meta", "videos", "frames")  # every store has these
TEXTS = "texts"  # optional: stores written before it simply have none
PICTURES = "pictures"  # optional, like texts
SHOTS = "shots"  # optional, like texts: written by `run --shots`


def check_meta(root: Path, rows: list[dict]) -> dict:
    """The store's one meta row, checked: a format newer than
    :data:`FORMAT_VERSION` is refused (older ones are read, and upgraded on
    first write).

    Raises:
        StoreError: not one row, or a format this scenetag cannot read.
    """
    if len(rows) != 1:
        raise StoreError(f"embedding store {root} is corrupt: its meta table has {len(rows)} rows")
    meta = rows[0]
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise StoreError(f"embedding store {root} has format version {version}; this scenetag "
                         f"reads up to {FORMAT_VERSION} (upgrade scenetag)")
    return meta


def _ident_fields(pa) -> list:
    """The identity columns ``frames`` and ``videos`` rows share."""
    return [pa.field("key", pa.string()), pa.field("input_path", pa.string()),
            pa.field("content_hash", pa.string()), pa.field("model_id", pa.string()),
            pa.field("model_revision", pa.string()), pa.field("sampling", pa.string()),
            pa.field("precision", pa.string()), pa.field("generation", pa.string())]


def frames_schema(dim: int):
    """The ``frames`` table: one row per embedded frame."""
    pa = pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("frame_index", pa.int64()), pa.field("time_s", pa.float64()),
        pa.field("vector", pa.list_(pa.float32(), dim)), pa.field("refine", pa.bool_())],
        metadata={"format_version": str(FORMAT_VERSION), "dim": str(dim)})


def videos_schema():
    """The ``videos`` table: one row per complete stored input."""
    pa = pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("sampling_json", pa.string()), pa.field("frames", pa.int64()),
        pa.field("info_json", pa.string()), pa.field("stats_json", pa.string()),
        pa.field("created_at", pa.float64()), pa.field("refine_json", pa.string())])


def shots_schema():
    """The optional ``shots`` table: one row per shot of a stored input."""
    pa = pyarrow()
    return pa.schema(_ident_fields(pa) + [
        pa.field("config_hash", pa.string()), pa.field("created_at", pa.float64()),
        pa.field("shot", pa.int64()), pa.field("start_s", pa.float64()), pa.field("end_s", pa.float64()),
        pa.field("start_frame", pa.int64()), pa.field("end_frame", pa.int64()),
        pa.field("tags", pa.string())])


def texts_schema(dim: int):
    """The optional ``texts`` table: the prompt-embedding cache."""
    pa = pyarrow()
    return pa.schema([pa.field("model_id", pa.string()), pa.field("model_revision", pa.string()),
                      pa.field("precision", pa.string()), pa.field("logit_scale", pa.float64()),
                      pa.field("text", pa.string()), pa.field("vector", pa.list_(pa.float32(), dim)),
                      *text_calibration_fields()])


def pictures_schema(dim: int):
    """The optional ``pictures`` table: the example-picture embedding cache."""
    pa = pyarrow()
    return pa.schema([pa.field("model_id", pa.string()), pa.field("model_revision", pa.string()),
                      pa.field("precision", pa.string()), pa.field("sha256", pa.string()),
                      pa.field("vector", pa.list_(pa.float32(), dim))])


def text_calibration_fields():
    """The ``texts`` columns added after the table first shipped (null in older
    rows): a sigmoid model's bias and the model family."""
    pa = pyarrow()
    return [pa.field("logit_bias", pa.float64()), pa.field("family", pa.string())]


def meta_schema():
    """The ``meta`` table: one row naming the format and the store's model."""
    pa = pyarrow()
    return pa.schema([pa.field("format_version", pa.int64()), pa.field("model_id", pa.string()),
                      pa.field("model_revision", pa.string()), pa.field("dim", pa.int64()),
                      pa.field("created_at", pa.float64()),
                      pa.field("scenetag_version", pa.string()), pa.field("model_family", pa.string())])
