"""An input file as an HTTP response: the whole file (200) or one byte
range (206, RFC 9110), read from the descriptor the library checked
(:class:`pipeline.serve.files.OpenedFile`). The size it announces is the
descriptor's, and it always sends exactly that many bytes.
"""

from __future__ import annotations

import logging
from email.utils import formatdate

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pipeline.serve.files import OpenedFile

log = logging.getLogger(__name__)

CHUNK = 256 << 10


class FileRangeResponse(Response):
    """An :class:`OpenedFile`, whole or one byte range, closed once sent.

    ``Range: bytes=A-B``, ``A-`` and ``-N`` give a 206 with
    ``Content-Range``; a range past the end is a 416; a range header of
    several ranges, or one this does not parse, is ignored (RFC 9110 lets a
    server send the whole file), as is a ``Range`` whose ``If-Range`` no
    longer matches. A file cut short while sent is padded with zero bytes
    to the announced length, so the connection stays well-formed.
    """

    def __init__(self, opened: OpenedFile, *, media_type: str, headers: dict[str, str] | None = None):
        self.opened = opened
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        st = opened.stat
        self.headers["accept-ranges"] = "bytes"
        self.headers["last-modified"] = formatdate(st.st_mtime, usegmt=True)
        self.headers["etag"] = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send(scope, receive, send)
        finally:
            self.opened.close()

    async def _send(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = self.opened.size
        span = self._range(scope, size)
        headers = self.headers
        if span == "unsatisfiable":
            await Response(status_code=416, headers={"content-range": f"bytes */{size}"})(scope, receive,
                                                                                            send)
            return
        start, end = span or (0, size)
        status = 206 if span else 200
        if span:
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": status, "headers": self.raw_headers})
        if scope.get("method", "GET").upper() == "HEAD" or start == end:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        async with anyio.create_task_group() as group:

            async def stop_when_gone() -> None:  # a client gone: stop reading the file for it
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stop_when_gone)
            await self._stream(send, start, end)
            group.cancel_scope.cancel()

    async def _stream(self, send: Send, start: int, end: int) -> None:
        position, short = start, False
        while position < end:
            want = min(CHUNK, end - position)
            chunk = await anyio.to_thread.run_sync(self.opened.read_at, position, want)
            if not chunk:  # cut short since it was opened: keep the length announced
                if not short:
                    log.warning("an input got shorter while it was sent; padding the response")
                short, chunk = True, bytes(want)
            position += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": position < end})

    def _range(self, scope: Scope, size: int) -> tuple[int, int] | str | None:
        """(start, end) of the one range asked for, "unsatisfiable", or None (the whole file)."""
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        spec = headers.get(b"range", b"").decode("latin-1").strip()
        if_range = headers.get(b"if-range", b"").decode("latin-1").strip()
        if not spec or (if_range and if_range not in (self.headers["etag"], self.headers["last-modified"])):
            return None
        unit, _, ranges = spec.partition("=")
        if unit.strip().lower() != "bytes" or "," in ranges:
            return None
        first, dash, last = (part.strip() for part in ranges.partition("-"))
        if not dash or not (first + last).isdigit() or not (first.isdigit() or last.isdigit()):
            return None
        if not first:  # the last N bytes
            n = int(last)
            return (max(0, size - n), size) if n > 0 and size > 0 else "unsatisfiable"
        begin = int(first)
        stop = min(size, int(last) + 1) if last else size
        if last and int(last) < begin:
            return None
        return (begin, stop) if begin < size else "unsatisfiable"
