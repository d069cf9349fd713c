"""The JSON API the page uses (documented at ``/openapi.json`` and ``/docs``).

Every handler is a plain ``def``: FastAPI runs them on its worker threads,
so a slow one (a cold prompt through the text tower, a thumbnail being made)
never blocks the others. Inputs are named by id (:mod:`pipeline.serve.library`),
never by path. Nothing here writes but the thumbnail cache: the store's
prompt cache is read, not extended, and the store's index is not built.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response

from pipeline.decode.images import PictureTooLarge, open_picture
from pipeline.explore.moments import Moment
from pipeline.explore.search import Hit, embed_query, find_moments, search, select_videos
from pipeline.report.text import clock
from pipeline.serve.file_response import FileRangeResponse
from pipeline.serve.library import Input, Library
from pipeline.serve.thumb_cache import ThumbCache
from pipeline.store.db import EmbeddingStore
from pipeline.types import PipelineError

log = logging.getLogger(__name__)

MAX_TOP = 500
MAX_UPLOAD_BYTES = 20 << 20
QUERY_MEMORY = 256  # query vectors kept in memory (text → vector)
PREFETCH_HITS = 60  # thumbnails made ahead after a search (the page's first screen and more)
_THUMB_NAME = re.compile(r"(\d{1,12})\.jpg")
_UPLOAD_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
                ".webm": "video/webm", ".mkv": "video/x-matroska", ".ogv": "video/ogg"}


@dataclass
class State:
    """What the API serves: built once at start by :func:`pipeline.serve.app.create_app`."""

    store: EmbeddingStore
    library: Library
    thumbs: ThumbCache
    queries: QueryVectors


class QueryVectors:
    """Query embeddings: the store's prompt cache first (read only), then the
    model loaded at start. One query at a time runs through the model."""

    def __init__(self, store: EmbeddingStore, embedder: Any, *, prompt_cache: bool = True) -> None:
        self.store, self.embedder, self.prompt_cache = store, embedder, prompt_cache
        self._model_lock = threading.Lock()
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()

    def text(self, text: str) -> np.ndarray:
        with self._lock:
            if text in self._memory:
                self._memory.move_to_end(text)
                return self._memory[text]
        vector = None
        if self.prompt_cache:
            found, _ = self.store.text_vectors(self.store.model_id, self.store.model_revision, [text])
            vector = found.get(text)
        if vector is None:
            with self._model_lock:
                vector = embed_query(self.embedder, text=text)
        with self._lock:
            self._memory[text] = vector
            while len(self._memory) > QUERY_MEMORY:
                self._memory.popitem(last=False)
        return vector

    def image(self, path: Path) -> np.ndarray:
        """The picture decoded (capped: :func:`pipeline.decode.images.open_picture`)
        and resized as ``scenetag search --image`` does, outside the model
        lock; only the image tower's pass holds it."""
        from pipeline.decode import open_decoder
        from pipeline.types import Sampling

        with open_decoder(str(path), short_side=self.embedder.input_size,
                          still_resize=self.embedder.still_resize) as decoder:
            frame = next(iter(decoder.frames(Sampling())))
        with self._model_lock:
            return self.embedder.embed_images(np.array(frame.image[None]))[0]  # a writable copy


def build_router(state: State) -> APIRouter:
    """The API routes over ``state``."""
    router = APIRouter(prefix="/api")

    @router.get("/search", summary="Search stored frames by text")
    def search_text(q: Annotated[str, Query(max_length=1000, description="Text query")],
                    top: Annotated[int, Query(ge=1, le=MAX_TOP, description="Number of hits")] = 20,
                    video: Annotated[str | None, Query(description="Only this input (path, name or stem)")]
                    = None,
                    min_score: Annotated[float | None, Query(ge=-1, le=1, description="Minimum cosine")]
                    = None,
                    sampling: Annotated[str | None, Query(description="Only inputs stored with this "
                                                          "sampling, e.g. 'every 0.5 s'")] = None
                    ) -> dict:
        """The ``top`` frames most similar to ``q``, and the moments they lie in."""
        if not q.strip():
            raise HTTPException(400, "q: give words to search for (the query is empty or blank)")
        vector = _answer(lambda: state.queries.text(q))
        return _results(state, vector, top, video, min_score, sampling)

    @router.post("/search/image", summary="Search stored frames by a picture")
    def search_image(file: Annotated[UploadFile, File(description="JPEG, PNG, WebP, BMP or TIFF")],
                     top: Annotated[int, Form(ge=1, le=MAX_TOP)] = 20,
                     video: Annotated[str | None, Form()] = None,
                     min_score: Annotated[float | None, Form(ge=-1, le=1)] = None,
                     sampling: Annotated[str | None, Form()] = None) -> dict:
        """As ``/api/search``, with an uploaded picture as the query."""
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"picture larger than {MAX_UPLOAD_BYTES >> 20} MB")
        suffix = _picture_suffix(data)
        with tempfile.TemporaryDirectory(prefix="scenetag-query-") as tmp:  # gone when answered
            path = Path(tmp) / f"query{suffix}"
            path.write_bytes(data)
            vector = _answer(lambda: state.queries.image(path))
        return _results(state, vector, top, video, min_score, sampling)

    @router.get("/inputs", summary="Every stored input")
    def inputs() -> dict:
        """Each stored input with its duration, frames, and (from its report) tags and NSFW verdict."""
        return {"model": state.store.describe_model(),
                "inputs": [_input_json(e) for e in state.library.inputs()]}

    @router.get("/inputs/{ident}", summary="One input, with its report's timeline and segments")
    def one_input(ident: str) -> dict:
        entry = _entry(state, ident)
        return {**_input_json(entry), **_report_detail(entry)}

    @router.get("/thumb/{ident}/{name}", summary="A stored frame's thumbnail (JPEG)",
                response_class=Response)
    def thumb(ident: str, name: str) -> Response:
        entry, match = _entry(state, ident), _THUMB_NAME.fullmatch(name)
        data = state.thumbs.get(entry, int(match.group(1))) if match else None
        if data is None:
            raise HTTPException(404, "Not Found")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @router.get("/video/{ident}", summary="An input's file (HTTP range requests)",
                response_class=Response)
    def video(ident: str) -> Response:
        entry = _entry(state, ident)
        opened = state.library.open_file(entry.id)  # checked and served on one descriptor
        if opened is None:
            raise HTTPException(404, "Not Found")
        kind = _VIDEO_TYPES.get(Path(entry.path).suffix.lower(), "application/octet-stream")
        return FileRangeResponse(opened, media_type=kind, headers={"Cache-Control": "private, no-cache"})

    return router


# --------------------------------------------------------------------------- helpers


def _answer(compute):
    """Run a query step; a pipeline error (bad store, unreadable picture) is a 400."""
    try:
        return compute()
    except PipelineError as ex:
        raise HTTPException(400, str(ex)) from ex


def _results(state: State, vector: np.ndarray, top: int, video: str | None,
             min_score: float | None, sampling: str | None) -> dict:
    videos = _answer(lambda: select_videos(state.store, video=video, sampling=sampling))
    hits = _answer(lambda: search(state.store, vector, top_k=top, video=video, sampling=sampling,
                                  index=False))
    if min_score is not None:
        hits = [h for h in hits if h.score >= min_score]
    moments = _answer(lambda: find_moments(state.store, vector, hits, videos))
    _prefetch(state, hits[:PREFETCH_HITS])
    library = state.library
    return {"hits": [_hit_json(h, library.by_path(h.input_path)) for h in hits],
            "moments": [_moment_json(m, library.by_path(m.input_path)) for m in moments]}


def _prefetch(state: State, hits: list[Hit]) -> None:
    by_input: dict[str, list[int]] = {}
    for hit in hits:
        by_input.setdefault(hit.input_path, []).append(hit.frame_index)
    for path, indices in by_input.items():
        entry = state.library.by_path(path)
        if entry is not None:
            state.thumbs.prefetch(entry, indices)


def _hit_json(hit: Hit, entry: Input | None) -> dict:
    return {"input": hit.input_path, "time_s": round(hit.time_s, 6), "frame_index": hit.frame_index,
            "score": round(hit.score, 6), "rank": hit.rank, "clock": clock(hit.time_s),
            **_where(entry, hit.time_s, hit.frame_index)}


def _moment_json(moment: Moment, entry: Input | None) -> dict:
    return {"input": moment.input_path, "start_s": round(moment.start_s, 6),
            "end_s": round(moment.end_s, 6), "best_score": round(moment.best_score, 6),
            "best_time_s": round(moment.best_time_s, 6), "hits": moment.hits,
            "start_clock": clock(moment.start_s), "end_clock": clock(moment.end_s),
            **_where(entry, moment.best_time_s, moment.best_frame_index)}


def _where(entry: Input | None, time_s: float, frame_index: int | None) -> dict:
    """The hit's input id, file name, thumbnail address and NSFW flag."""
    if entry is None:  # stored after the server started: listed, not shown
        return {"id": None, "name": None, "thumb": None, "nsfw": False}
    thumb = f"/api/thumb/{entry.id}/{frame_index}.jpg" if frame_index is not None else None
    return {"id": entry.id, "name": entry.name, "thumb": thumb, "nsfw": entry.nsfw_at(time_s)}


def _input_json(entry: Input) -> dict:
    report = entry.report
    poster = entry.poster
    return {"id": entry.id, "input": entry.path, "name": entry.name, "duration_s": entry.duration_s,
            "frames": entry.sampled_frames, "stored_frames": len(entry.times),
            "step_s": entry.step_s, "has_report": report is not None,
            "tags": report.tags if report else [],
            "nsfw_verdict": report.nsfw_verdict if report else "n/a",
            "video": f"/api/video/{entry.id}",
            "thumb": f"/api/thumb/{entry.id}/{poster}.jpg" if poster is not None else None}


def _report_detail(entry: Input) -> dict:
    """The input's label timeline and segments, from its report folder; a
    report that cannot be shown (a file missing, malformed, not a regular
    file) gives none, and ``report_error`` says why in one line."""
    if entry.report is None:
        return {"timeline": None, "segments": [], "report_error": None}
    from pipeline.report.readback import load_result

    try:
        result = load_result(entry.report.folder, within=entry.report.root)
    except PipelineError as ex:
        root = entry.report.root  # paths shown from --reports, not from /
        message = str(ex).replace(str(root) + os.sep, "") if root else str(ex)
        why = " ".join(message.split())[:400]
        log.warning("report of %s not shown: %s", entry.path, why)
        return {"timeline": None, "segments": [], "report_error": why}
    tracks = [{"name": t.name, "kind": t.kind, "threshold": t.threshold,
               "scores": [round(float(v), 4) for v in t.smoothed]} for t in result.tracks]
    segments = [{"label": s.label, "kind": s.kind, "start_s": s.start_s, "end_s": s.end_s,
                 "peak": s.peak, "start_clock": clock(s.start_s), "end_clock": clock(s.end_s)}
                for s in result.segments]
    return {"timeline": {"times": [round(float(t), 4) for t in result.times_s], "tracks": tracks},
            "segments": segments, "report_error": None}


def _entry(state: State, ident: str) -> Input:
    entry = state.library.get(ident)
    if entry is None:
        raise HTTPException(404, "Not Found")
    return entry


def _picture_suffix(data: bytes) -> str:
    """The uploaded picture's file suffix; a 400 unless it is a picture we
    read, of a size we decode (its header says, before any decoding)."""
    try:
        with open_picture(data, name="the upload") as picture:
            fmt = picture.image.format
    except PictureTooLarge as ex:
        raise HTTPException(400, str(ex)) from ex
    except PipelineError as ex:
        raise HTTPException(400, "the upload is not a picture (JPEG, PNG, WebP, BMP or TIFF)") from ex
    if fmt not in _UPLOAD_FORMATS:
        raise HTTPException(400, f"{fmt} pictures are not read; use JPEG, PNG, WebP, BMP or TIFF")
    return _UPLOAD_FORMATS[fmt]
