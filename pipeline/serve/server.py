"""Run the app under uvicorn on a socket bound here, so a taken port is a
one-line error before anything starts, and port 0 (any free port) reports
the port it got."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.types import PipelineError

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str]:
    """``Host`` header values to accept when bound to ``host``: loopback
    names, plus the bound name itself; any when bound to every interface."""
    from pipeline.serve.app import LOOPBACK_HOSTS

    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return LOOPBACK_HOSTS + ([host] if host not in LOOPBACK_HOSTS else [])


def limit_model_threads(threads: int) -> None:
    """Run the model on ``threads`` CPU threads (set before torch is imported).

    A query is one short text: on 2 busy shared cores a ViT-B/32 text pass
    took 20-45 ms (p50) on one thread and 570-820 ms on two, whose spinning
    workers wait on each other (docs/PERFORMANCE.md, serve).
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        log.debug("torch already imported: --threads %d has no effect", threads)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``.

    Raises:
        PipelineError: the address is taken, not this machine's, or not allowed.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as ex:
        raise PipelineError(f"--host {host}: {ex.strerror or ex}") from ex
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as ex:
        sock.close()
        raise PipelineError(f"cannot listen on {host}:{port}: {ex.strerror or ex}") from ex
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def token_url(url: str, token: str | None) -> str:
    """``url`` opening the page with ``token`` (percent-encoded, so ``&``,
    ``+``, ``#`` or any non-ASCII character in it survive)."""
    if not token:
        return url
    return f"{url}?token={urllib.parse.quote(token.encode('utf-8', 'surrogateescape'), safe='')}"


def _server(app: Any, on_ready: Callable[[], None] | None = None):
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if on_ready is not None and not self.should_exit:  # listening, Ctrl-C handled
                on_ready()

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2)
    return Server(config)


def run_forever(app: Any, sock: socket.socket, on_ready: Callable[[], None] | None = None) -> None:
    """Serve on ``sock`` until interrupted. uvicorn stops gracefully on
    Ctrl-C or SIGTERM, then raises the signal again: Ctrl-C arrives as
    KeyboardInterrupt after the server has stopped."""
    _server(app, on_ready).run(sockets=[sock])


@dataclass
class Running:
    """A server started by :func:`start_in_thread`."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                    timeout_s: float = 30.0) -> Running:
    """Start a real server in a background thread (tests, benchmarks) and
    wait until it accepts connections."""
    sock = bind(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="scenetag-serve")
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise PipelineError("the server did not start")
        time.sleep(0.02)
    return Running(url=url_of(sock), server=server, thread=thread)
