"""Helpers for serve tests that need no demo model: a server over a
hand-made :class:`~pipeline.serve.library.Library` (no store, no model),
raw HTTP requests, and a watch on uvicorn's own error log (it does not
propagate to the root logger, so the suite's ERROR guard cannot see it)."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np


class NoStore:
    """What the API asks of a store when only inputs and files are served."""

    root = Path("/nonexistent/store")
    model_id = "none"
    model_revision = None

    def describe_model(self) -> dict:
        return {"id": self.model_id}


class StubEmbedder:
    """Records every picture handed to the image tower."""

    input_size = 32
    dim = 4
    still_resize = None

    def __init__(self) -> None:
        self.images: list[tuple[int, ...]] = []

    def embed_images(self, images) -> np.ndarray:
        self.images.append(tuple(np.asarray(images).shape))
        return np.ones((len(images), self.dim), np.float32) / 2

    def embed_texts(self, texts) -> np.ndarray:
        return np.ones((len(texts), self.dim), np.float32) / 2


@contextlib.contextmanager
def serving(library, tmp_path: Path, *, embedder=None, **kw):
    """A real server (uvicorn, a free loopback port) over ``library``."""
    from pipeline.serve.app import create_app
    from pipeline.serve.server import start_in_thread

    app = create_app(NoStore(), embedder, library=library, thumbs=tmp_path / "thumbs", **kw)
    running = start_in_thread(app)
    try:
        yield running
    finally:
        running.stop()


def request(running, path: str, *, method: str = "GET", headers: dict | None = None,
            body: bytes | None = None, timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """A raw HTTP request, the path sent exactly as written."""
    netloc = urllib.parse.urlsplit(running.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def upload(running, data: bytes, name: str = "q.png", fields: dict | None = None,
           timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """POST ``data`` to the picture search as a multipart upload."""
    boundary = "scenetagtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return request(running, "/api/search/image", method="POST", body=body, timeout=timeout,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


class ErrorLog(logging.Handler):
    """Collects ERROR records (tracebacks included) of uvicorn's logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else
                f"{r.name}: {r.getMessage()}" for r in self.records]


@contextlib.contextmanager
def uvicorn_errors():
    """Watch ``uvicorn.error`` (attach after the server started: uvicorn's
    logging config replaces the handlers of its loggers)."""
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.asgi", "uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def release_fifo(path: Path, seconds: float = 2.0) -> None:
    """Open ``path`` (a FIFO) for writing now and then for ``seconds``, so any
    thread stuck opening it for reading gets EOF and goes on."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader waiting (ENXIO), or gone
            time.sleep(0.05)
            continue
        os.close(fd)
        time.sleep(0.05)


def finishes(fn, timeout: float):
    """``(done, result)``: ``fn()`` run on a daemon thread, waited for ``timeout`` s."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(_outcome(fn)), daemon=True)
    thread.start()
    thread.join(timeout)
    if not out:
        return False, None
    kind, value = out[0]
    if kind == "error":
        raise value
    return True, value


def _outcome(fn):
    try:
        return "ok", fn()
    except BaseException as ex:  # noqa: BLE001 - handed back to the test's thread
        return "error", ex


def png_of_size(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` (all black), made without
    holding the picture: small on disk, huge when decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    block = row * max(1, (1 << 20) // len(row))
    rows_per_block = len(block) // len(row)
    parts, left = [], height
    while left > 0:
        n = min(left, rows_per_block)
        parts.append(packer.compress(block if n == rows_per_block else row * n))
        left -= n
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + \
        chunk(b"IEND", b"")
