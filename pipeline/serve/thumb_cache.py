"""Thumbnails of stored frames, made once and cached on disk beside the store
(``<store>.thumbs/``), the one thing the server writes.

Decoding runs on a small pool of its own, never on the threads that answer
searches, so the server stays responsive while a page of 50 thumbnails is
made. After a search the hits' thumbnails are made per input in one pass
(:meth:`ThumbCache.prefetch`: one open and one forward walk per file, not
one per thumbnail); a thumbnail request waits for the job that makes it.
The decoder reads the descriptor the library checked
(:meth:`pipeline.serve.library.Library.open_file`), never the path again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pipeline.atomic import atomic_path
from pipeline.serve.files import OpenedFile
from pipeline.serve.library import Input

log = logging.getLogger(__name__)

THUMB_SIDE = 180  # short side, pixels
JPEG_QUALITY = 80
DECODE_WORKERS = 2  # decodes at once: the rest of the machine keeps answering
MEMORY_ITEMS = 512  # thumbnails kept in memory when the cache folder cannot be written
_HEX = re.compile(r"[0-9a-f]{8,64}")


def cache_folder(store: Path) -> Path:
    """Where a store's thumbnails live: ``<store>.thumbs`` beside it."""
    store = Path(store)
    return store.with_name(store.name + ".thumbs")


class ThumbCache:
    """JPEG thumbnails of stored frames, keyed by content and frame index.

    Args:
        folder: the cache folder (created on first use; when it cannot be
            written, thumbnails are kept in memory instead, with a warning).
        resolve: an input's file, open, when it may be read (see
            :meth:`pipeline.serve.library.Library.open_file`), else None.
    """

    def __init__(self, folder: Path, resolve: Callable[[str], OpenedFile | None], *,
                 side: int = THUMB_SIDE, workers: int = DECODE_WORKERS) -> None:
        self.folder = Path(folder)
        self.side = side
        self._resolve = resolve
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbs")
        self._pending: dict[str, Future] = {}
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._on_disk = True
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def get(self, entry: Input, frame_index: int, timeout_s: float = 60.0) -> bytes | None:
        """The JPEG of a stored frame (made now if need be); None when the
        frame is not stored or its file cannot be read."""
        if frame_index not in entry.times:
            return None
        key = self._key(entry, frame_index)
        cached = self._read(key)
        if cached is not None:
            return cached
        self.prefetch(entry, [frame_index])
        with self._lock:
            job = self._pending.get(key)
        if job is not None:
            try:
                job.result(timeout=timeout_s)
            except Exception as ex:  # noqa: BLE001 - logged by the job; a missing tile is all it costs
                log.debug("thumbnail job failed: %s", ex)
        return self._read(key)

    def prefetch(self, entry: Input, frame_indices: Iterable[int]) -> None:
        """Queue the missing thumbnails of ``entry``'s frames as one decode job."""
        wanted = sorted({i for i in frame_indices if i in entry.times})
        with self._lock:
            todo = [i for i in wanted if self._key(entry, i) not in self._pending
                    and not self._exists(self._key(entry, i))]
            if not todo:
                return
            job = self._pool.submit(self._make, entry, todo)
            for i in todo:
                self._pending[self._key(entry, i)] = job

    # ------------------------------------------------------------------ making

    def _make(self, entry: Input, frame_indices: list[int]) -> None:
        keys = [self._key(entry, i) for i in frame_indices]
        try:
            opened = self._resolve(entry.id)
            if opened is None:
                return
            with opened:
                frames = _frames(opened, entry, [entry.times[i] for i in frame_indices], self.side)
            for key, frame in zip(keys, frames):  # a short read leaves the rest unmade
                self._write(key, _jpeg(frame.image))
        except Exception as ex:  # noqa: BLE001 - a damaged file costs its thumbnails, not the server
            log.warning("cannot make thumbnails of %s: %s", entry.path, " ".join(str(ex).split())[:300])
        finally:
            with self._lock:
                for key in keys:
                    self._pending.pop(key, None)

    def _key(self, entry: Input, frame_index: int) -> str:
        # content hashes come from the store: used in a file name only when plain hex
        ident = min(entry.hashes) if entry.hashes else ""
        if not _HEX.fullmatch(ident):
            ident = hashlib.sha256(f"{ident}\0{entry.path}".encode()).hexdigest()[:32]
        return f"{ident}-{int(frame_index)}-{self.side}"

    def _exists(self, key: str) -> bool:
        return key in self._memory if not self._on_disk else (self.folder / f"{key}.jpg").is_file()

    def _read(self, key: str) -> bytes | None:
        if not self._on_disk:
            with self._lock:
                return self._memory.get(key)
        try:
            return (self.folder / f"{key}.jpg").read_bytes()
        except OSError:
            return None

    def _write(self, key: str, data: bytes) -> None:
        if self._on_disk:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(self.folder / f"{key}.jpg") as tmp:
                    Path(tmp).write_bytes(data)
                return
            except OSError as ex:
                log.warning("thumbnail cache %s cannot be written (%s): keeping thumbnails in memory",
                            self.folder, ex.strerror or ex)
                self._on_disk = False
        with self._lock:
            self._memory[key] = data
            while len(self._memory) > MEMORY_ITEMS:
                self._memory.popitem(last=False)


def _frames(opened: OpenedFile, entry: Input, times: list[float], side: int) -> list:
    """The frames at ``times`` of the open file (by its descriptor's name,
    which has no extension: the stored path says whether it is a picture)."""
    from pipeline.decode import is_image, read_frames_at

    if is_image(entry.path):
        from pipeline.decode.images import ImageDecoder
        from pipeline.types import Sampling

        with ImageDecoder(opened.path, short_side=side) as decoder:
            frame = next(decoder.frames(Sampling()))
        return [frame for _ in times]
    return read_frames_at(opened.path, times, short_side=side)


def _jpeg(image) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
