"""Loopback servers for live-input tests: an MPEG-TS stream muxed by PyAV
as it is served (paced like a camera, or as fast as it goes), over TCP and
HTTP, on 127.0.0.1 only. Frames show :func:`media.index_image`, so a
decoded frame tells which one it was."""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import threading
import time
from collections.abc import Callable

import av
from media import index_image

SIZE = (64, 48)


def alternating_picture(i: int):
    """Dark for 2 s, index bands for 2 s, and so on (at 10 fps)."""
    import numpy as np

    return index_image(i, SIZE) if (i // 20) % 2 else np.full((SIZE[1], SIZE[0], 3), 30, np.uint8)


def alternating_config(model_dir, formats=("csv", "plot", "json"), step: float = 0.5, **extra):
    """The tiny model's config for :func:`alternating_picture` clips: its
    thresholds lie between the random tiny model's scores for the two pictures."""
    from pipeline.config import parse_config

    return parse_config({"model": {"id": str(model_dir), "device": "cpu", "precision": "fp32"},
                         "sampling": {"every_seconds": step},
                         "labels": [{"name": "red", "threshold": 0.66, "exit_threshold": 0.655},
                                    {"name": "blue"}],
                         "segments": {"min_duration_s": 0.5, "merge_gap_s": 0.5},
                         "smoothing": {"method": "median", "window_s": 1.0},
                         "output": {"formats": list(formats)}, **extra})


def write_ts(out, frames: int, fps: int = 10, *, realtime: bool = True, picture: Callable | None = None,
             start: int = 0, stall_after: int | None = None, stall_s: float = 0.0) -> None:
    """Mux ``frames`` frames of H.264 in MPEG-TS into the binary file ``out``.

    ``picture(i)`` gives frame ``i``'s RGB image (default: its index drawn);
    ``realtime`` paces frames at ``fps``; ``stall_after`` frames in, the
    writer goes quiet for ``stall_s`` seconds. A reader hanging up ends it quietly.
    """
    picture = picture or (lambda i: index_image(i, SIZE))
    height, width = picture(start).shape[:2]
    container = av.open(out, "w", format="mpegts")
    stream = container.add_stream("libx264", rate=fps, options={
        "preset": "ultrafast", "tune": "zerolatency", "x264-params": "bframes=0:threads=1:keyint=10"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    t0 = time.monotonic()
    try:
        for i in range(start, start + frames):
            vf = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
            out.flush()
            if stall_after is not None and i - start + 1 == stall_after:
                time.sleep(stall_s)
                t0 += stall_s
            if realtime:
                wait = t0 + (i - start + 1) / fps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass  # the reader went away


class Closing:
    """A test server used as ``with Server(...) as server:``; leaving it calls ``close``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TcpStream(Closing):
    """Serves one MPEG-TS stream per connection on ``tcp://127.0.0.1:PORT``.

    ``serve(conn_file, n)`` writes connection ``n``'s stream (default:
    :func:`write_ts` with ``frames``/``fps``); each connection is served once,
    then the server closes it (a drop, as far as the reader can tell).
    """

    def __init__(self, serve: Callable | None = None, *, frames: int = 40, fps: int = 10):
        self.serve = serve or (lambda out, n: write_ts(out, frames, fps))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            n, self.connections = self.connections, self.connections + 1
            threading.Thread(target=self._one, args=(conn, n), daemon=True).start()

    def _one(self, conn: socket.socket, n: int) -> None:
        with conn:
            out = conn.makefile("wb")
            self.serve(out, n)
            with contextlib.suppress(OSError):  # the reader hung up first
                out.close()

    def close(self) -> None:
        self.sock.close()


class HttpStream(Closing):
    """``http://127.0.0.1:PORT/<path>``: ``/clip.ts`` sends ``data`` with a
    Content-Length; ``/live.ts`` sends an unending chunked MPEG-TS stream,
    muxed as it goes by ``write_ts`` with ``live_frames`` frames."""

    def __init__(self, data: bytes = b"", *, live_frames: int = 100, fps: int = 10):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (the http.server name)
                if self.path.startswith("/clip.ts"):
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp2t")
                    self.send_header("Content-Length", str(len(owner.data)))
                    self.end_headers()
                    self.wfile.write(owner.data)
                elif self.path.startswith("/live.ts"):
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp2t")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    write_ts(_Chunked(self.wfile), owner.live_frames, owner.fps)
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.data, self.live_frames, self.fps = data, live_frames, fps
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Chunked:
    """A binary file that writes HTTP/1.1 chunks."""

    def __init__(self, raw):
        self.raw = raw

    def write(self, data: bytes) -> int:
        if data:
            self.raw.write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def write_hls(folder, frames: int, fps: int = 10) -> str:
    """An HLS playlist ``live.m3u8`` of 1 s MPEG-TS segments in ``folder``."""
    playlist = f"{folder}/live.m3u8"
    container = av.open(playlist, "w", format="hls", options={"hls_time": "1", "hls_playlist_type": "event"})
    stream = container.add_stream("libx264", rate=fps, options={
        "preset": "ultrafast", "x264-params": f"bframes=0:threads=1:keyint={fps}"})
    stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
    for i in range(frames):
        vf = av.VideoFrame.from_ndarray(index_image(i, SIZE), format="rgb24")
        vf.pts = i
        for packet in stream.encode(vf):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return playlist


class StaticFiles(Closing):
    """``http://127.0.0.1:PORT/`` serving the files of ``folder``."""

    def __init__(self, folder):
        def handler(*args, **kwargs):
            return _QuietFiles(*args, directory=str(folder), **kwargs)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class UdpSender:
    """A binary file that sends what is written as 1316-byte datagrams
    (7 MPEG-TS packets, as FFmpeg does) to ``127.0.0.1:port``."""

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.buffer = b""

    def write(self, data: bytes) -> int:
        self.buffer += bytes(data)
        while len(self.buffer) >= 1316:
            self.sock.sendto(self.buffer[:1316], ("127.0.0.1", self.port))
            self.buffer = self.buffer[1316:]
        return len(data)

    def flush(self) -> None:
        pass


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
