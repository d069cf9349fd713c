"""Loopback servers for the live protocols FFmpeg cannot serve itself.

:class:`RtspServer` is a small RTSP/1.0 server (RFC 2326): OPTIONS,
DESCRIBE (an SDP with one ``m=video`` of static payload type 33, MPEG-TS),
SETUP (``RTP/AVP/TCP`` interleaved on the RTSP connection, or ``RTP/AVP``
over UDP), PLAY, GET_PARAMETER and TEARDOWN, with optional Basic
authentication. PLAY starts a session: :func:`live_servers.write_ts` muxes
the clip into MPEG-TS as it is sent, 7 TS packets of 188 bytes to an RTP
packet (RFC 2250), with 90 kHz timestamps of the sending clock. When the
session's stream ends the server sends RTCP BYE and closes the connection:
a drop, as far as a reader can tell.

:class:`NginxRtmp` runs nginx with the RTMP module (Debian's
``libnginx-mod-rtmp``) as this user, on 127.0.0.1, and
:func:`publish_rtmp` publishes a clip to it with PyAV's FLV muxer.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
from live_servers import SIZE, Closing, write_ts
from media import index_image

TS_PACKET = 188
TS_PER_RTP = 7  # 1316 bytes: fits any Ethernet MTU with the IP, UDP and RTP headers
PT_MP2T = 33
RTCP_BYE = 203
REALM = "scenetag-test"
# A self-signed certificate for 127.0.0.1 (valid to 2126), for ``rtsps://``: test use only.
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBjzCCATagAwIBAgIUOxvvL/CZkj+zBz7ddeazAdrR1yQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwMjE0MzMzN1oYDzIxMjYxMTA4
MTQzMzM3WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARbITTxvIQ3aTzIPPyKG2Vy5SPSTe14Uq4Y0ANDVKo1gORr+eCfAtUA
gzGdi70zcQwG9XE5oEDtPWzdNTenildHo2QwYjAdBgNVHQ4EFgQUOorts4AIfORs
amUVHfigGJdwm+wwHwYDVR0jBBgwFoAUOorts4AIfORsamUVHfigGJdwm+wwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0cAMEQC
ICULu0gBr+hahSfP7hYxioFdPusFfovjvlPUQxkTOCXbAiAqVyNlN9cFeRzsU4pm
oyn1dfvYwTVsUNOkiauMJlCpzw==
-----END CERTIFICATE-----
"""
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgh0IJR1sDRQSmaUNr
1d6htC+5cFF/ZbdJAowGdr2OPVqhRANCAARbITTxvIQ3aTzIPPyKG2Vy5SPSTe14
Uq4Y0ANDVKo1gORr+eCfAtUAgzGdi70zcQwG9XE5oEDtPWzdNTenildH
-----END PRIVATE KEY-----
"""


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class RtpMp2t:
    """A binary file (for :func:`write_ts`) that sends what is written as
    RTP packets of payload type 33, each whole TS packets (7, or fewer at a
    flush), through ``send(channel, packet)`` (channel 0: RTP, 1: RTCP).
    Raises BrokenPipeError once ``stop`` is set, which ends the writer."""

    def __init__(self, send: Callable[[int, bytes], None], stop: threading.Event):
        self.send, self.stop = send, stop
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.t0 = time.monotonic()
        self.buffer = bytearray()
        self.packets = 0

    def write(self, data) -> int:
        self.buffer += bytes(data)
        while len(self.buffer) >= TS_PACKET * TS_PER_RTP:
            self._packet(TS_PACKET * TS_PER_RTP)
        return len(data)

    def flush(self) -> None:
        whole = len(self.buffer) // TS_PACKET * TS_PACKET
        if whole:
            self._packet(whole)

    def bye(self) -> None:
        """RTCP BYE: this source has ended (FFmpeg ends the stream on it)."""
        with contextlib.suppress(OSError):
            self.send(1, struct.pack("!BBHI", 0x81, RTCP_BYE, 1, self.ssrc))

    def _packet(self, size: int) -> None:
        if self.stop.is_set():
            raise BrokenPipeError("session ended")
        stamp = int((time.monotonic() - self.t0) * 90_000) & 0xFFFFFFFF
        header = struct.pack("!BBHII", 0x80, PT_MP2T, self.seq, stamp, self.ssrc)
        self.send(0, header + bytes(self.buffer[:size]))
        del self.buffer[:size]
        self.seq = (self.seq + 1) & 0xFFFF
        self.packets += 1


def _tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:  # the ssl module loads a chain from files only
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_text(TEST_CERT, encoding="ascii")
        key.write_text(TEST_KEY, encoding="ascii")
        context.load_cert_chain(cert, key)
    return context


class RtspServer(Closing):
    """``rtsp://127.0.0.1:PORT/<any path>`` serving one MPEG-TS stream per session.

    Args:
        serve: ``serve(out, n)`` writes session ``n``'s stream into the
            binary file ``out`` (default: :func:`write_ts` of ``frames`` at
            ``fps``); when it returns the session ends and the connection is closed.
        credentials: ``(user, password)``: every request but OPTIONS needs
            authentication (401 with a challenge otherwise), ``auth``
            ``"basic"`` or ``"digest"`` (RFC 2617, MD5, no qop).
        transports: what SETUP accepts: ``"TCP"`` (interleaved) and/or
            ``"UDP"``; any other gets 461 Unsupported Transport.
        tls: ``rtsps://``: the RTSP connection, and the RTP interleaved in
            it, run over TLS with :data:`TEST_CERT`. An SSL connection is
            not safe to read and write at once, so requests are not read
            while a TLS session streams (no keep-alives, no TEARDOWN).
        session_timeout: seconds, announced in ``Session:``; a session
            with no request for longer ends, as a camera ends one (a
            client keeps it alive with GET_PARAMETER or OPTIONS).

    Attributes:
        requests: ``(method, headers)`` of every request received, in order.
        sessions: how many PLAYs started a stream.
        transports_used: the lower transport of each SETUP accepted.
    """

    def __init__(self, serve: Callable | None = None, *, frames: int = 40, fps: int = 10,
                 credentials: tuple[str, str] | None = None, auth: str = "basic",
                 transports: tuple[str, ...] = ("TCP", "UDP"), session_timeout: int = 60,
                 tls: bool = False):
        self.serve = serve or (lambda out, n: write_ts(out, frames, fps))
        self.credentials, self.auth, self.transports = credentials, auth, transports
        self.session_timeout = session_timeout
        self.expired = 0  # sessions ended for want of a keep-alive
        self.nonce = f"{random.getrandbits(64):016x}"
        self.requests: list[tuple[str, dict]] = []
        self.sessions = 0
        self.transports_used: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"{'rtsps' if tls else 'rtsp'}://127.0.0.1:{self.port}/live"
        self.tls = _tls_context() if tls else None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
            except OSError:  # ssl.SSLError is one
                conn.close()
                return
        _Connection(self, conn).run()

    def close(self) -> None:
        self.sock.close()


class _Connection:
    """One RTSP connection: requests are read here; PLAY starts the stream
    in a thread of its own (interleaved data and replies share the socket)."""

    def __init__(self, server: RtspServer, conn: socket.socket):
        self.server, self.conn = server, conn
        self.reader = conn.makefile("rb")
        self.write_lock = threading.Lock()
        self.stop = threading.Event()
        self.session = f"{random.getrandbits(32):08X}"
        self.transport: dict | None = None
        self.udp: socket.socket | None = None
        self.streamer: threading.Thread | None = None
        self.last_request = time.monotonic()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                first = self.reader.read(1)
                if not first:
                    break
                if first == b"$":  # the client's RTCP receiver reports, interleaved
                    _, length = struct.unpack("!BH", self.reader.read(3))
                    self.reader.read(length)
                    continue
                request = self._request(first)
                if request is None:
                    break
                self._answer(*request)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            self.stop.set()
            self._close()

    def _request(self, first: bytes) -> tuple[str, str, dict] | None:
        line = (first + self.reader.readline()).decode("latin-1").strip()
        headers: dict[str, str] = {}
        while True:
            raw = self.reader.readline()
            if not raw:
                return None
            text = raw.decode("latin-1").strip()
            if not text:
                break
            key, _, value = text.partition(":")
            headers[key.strip().lower()] = value.strip()
        if int(headers.get("content-length", 0)):
            self.reader.read(int(headers["content-length"]))
        method, url, _ = (line.split(" ") + ["", ""])[:3]
        self.server.requests.append((method, headers))
        self.last_request = time.monotonic()
        return method, url, headers

    def _reply(self, headers: dict, status: str = "200 OK", extra: dict | None = None,
               body: bytes = b"") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {headers.get('cseq', '0')}", "Server: scenetag-test"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        with self.write_lock:
            self.conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _authorized(self, method: str, headers: dict) -> bool:
        server = self.server
        if server.credentials is None:
            return True
        given = headers.get("authorization", "")
        if server.auth == "basic":
            return given == "Basic " + base64.b64encode(":".join(server.credentials).encode()).decode()
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', given.removeprefix("Digest ")))
        user, password = server.credentials
        ha1, ha2 = _md5(f"{user}:{REALM}:{password}"), _md5(f"{method}:{fields.get('uri', '')}")
        return (given.startswith("Digest ") and fields.get("username") == user
                and fields.get("response") == _md5(f"{ha1}:{server.nonce}:{ha2}"))

    def _challenge(self) -> str:
        if self.server.auth == "basic":
            return f'Basic realm="{REALM}"'
        return f'Digest realm="{REALM}", nonce="{self.server.nonce}", algorithm=MD5'

    def _answer(self, method: str, url: str, headers: dict) -> None:
        if method != "OPTIONS" and not self._authorized(method, headers):
            self._reply(headers, "401 Unauthorized", {"WWW-Authenticate": self._challenge()})
            return
        session = {"Session": f"{self.session};timeout={self.server.session_timeout}"}
        if method == "OPTIONS":
            self._reply(headers, extra={"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"})
        elif method == "DESCRIBE":
            sdp = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=scenetag test\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                   f"a=range:npt=0-\r\nm=video 0 RTP/AVP {PT_MP2T}\r\na=rtpmap:{PT_MP2T} MP2T/90000\r\n")
            self._reply(headers, extra={"Content-Base": url.rstrip("/") + "/",
                                        "Content-Type": "application/sdp"}, body=sdp.encode())
        elif method == "SETUP":
            self._setup(headers, session)
        elif method == "PLAY":
            if self.transport is None:
                self._reply(headers, "455 Method Not Valid in This State")
                return
            self._reply(headers, extra={**session, "Range": "npt=0.000-"})
            if self.streamer is None:
                n, self.server.sessions = self.server.sessions, self.server.sessions + 1
                self.streamer = threading.Thread(target=self._stream, args=(n,), daemon=True)
                self.streamer.start()
                if self.server.tls is not None:  # see ``tls``
                    self.streamer.join()
        elif method == "GET_PARAMETER":
            self._reply(headers, extra=session)
        elif method == "TEARDOWN":
            self._reply(headers, extra=session)
            self.stop.set()
        else:
            self._reply(headers, "501 Not Implemented")

    def _setup(self, headers: dict, session: dict) -> None:
        spec = headers.get("transport", "").split(",")[0]
        lower = "TCP" if spec.startswith("RTP/AVP/TCP") else "UDP" if spec.startswith("RTP/AVP") else ""
        if lower not in self.server.transports:
            self._reply(headers, "461 Unsupported Transport")
            return
        if lower == "TCP":
            found = re.search(r"interleaved=(\d+)(?:-(\d+))?", spec)
            rtp = int(found.group(1)) if found else 0
            self.transport = {"lower": "TCP", "channels": (rtp, rtp + 1)}
            reply = f"RTP/AVP/TCP;unicast;interleaved={rtp}-{rtp + 1}"
        else:
            found = re.search(r"client_port=(\d+)(?:-(\d+))?", spec)
            if not found:
                self._reply(headers, "461 Unsupported Transport")
                return
            client = int(found.group(1))
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            mine = self.udp.getsockname()[1]
            self.transport = {"lower": "UDP", "ports": (client, int(found.group(2) or client + 1))}
            reply = f"RTP/AVP;unicast;client_port={client}-{self.transport['ports'][1]};" \
                    f"server_port={mine}-{mine + 1}"
        self.server.transports_used.append(lower)
        self._reply(headers, extra={**session, "Transport": reply})

    def _send(self, channel: int, packet: bytes) -> None:
        if channel == 0 and time.monotonic() - self.last_request > self.server.session_timeout:
            self.server.expired += 1
            self.stop.set()
            raise BrokenPipeError("session expired: no keep-alive")
        if self.transport["lower"] == "TCP":
            frame = b"$" + bytes([self.transport["channels"][channel]]) + struct.pack("!H", len(packet))
            with self.write_lock:
                self.conn.sendall(frame + packet)
        else:
            self.udp.sendto(packet, ("127.0.0.1", self.transport["ports"][channel]))

    def _stream(self, n: int) -> None:
        out = RtpMp2t(self._send, self.stop)
        try:
            self.server.serve(out, n)
            out.flush()
        except OSError:
            pass
        out.bye()
        self.stop.set()  # the session is over: drop the connection
        if isinstance(self.conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):  # TLS close_notify: a clean end, not a cut
                self.conn.unwrap()
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        if self.udp is not None:
            self.udp.close()


# ---------------------------------------------------------------------- RTMP

RTMP_MODULES = ("/usr/lib/nginx/modules/ngx_rtmp_module.so", "/usr/share/nginx/modules/ngx_rtmp_module.so")


def rtmp_module() -> str | None:
    """Where nginx's RTMP module is, None if nginx or the module is absent."""
    if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
        return None
    return next((m for m in RTMP_MODULES if os.path.exists(m)), None)


class NginxRtmp(Closing):
    """nginx with ``rtmp { ... application live { live on; } }`` on
    ``rtmp://127.0.0.1:PORT/live/<name>``, run as this user from ``folder``.
    ``played(name)`` says whether a player has asked for ``name`` (from nginx's log)."""

    def __init__(self, folder: Path):
        module = rtmp_module()
        assert module, "nginx or its RTMP module is missing"
        self.folder = Path(folder)
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:  # a free port (nginx needs it named)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = self.folder / "error.log"
        # access_log off: its compiled-in /var/log/nginx path is not writable by a plain user
        (self.folder / "nginx.conf").write_text(
            f"load_module {module};\nworker_processes 1;\nevents {{ worker_connections 64; }}\n"
            f"rtmp {{ access_log off; server {{ listen 127.0.0.1:{self.port}; chunk_size 4096;\n"
            "  application live { live on; record off; } } }\n", encoding="utf-8")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [nginx, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"), "-g",
             f"daemon off; master_process off; pid {self.folder}/nginx.pid; error_log {self.log} info;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.process.stderr.read().decode()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                break
            time.sleep(0.05)
        self.base = f"rtmp://127.0.0.1:{self.port}/live"

    def played(self, name: str) -> bool:
        return self.log.is_file() and f"play: name='{name}'" in self.log.read_text("utf-8", "replace")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()


def publish_rtmp(url: str, frames: int, fps: int = 10, *, picture: Callable | None = None,
                 start_when: Callable[[], bool] | None = None, wait_s: float = 10.0) -> threading.Thread:
    """Publish ``frames`` frames of H.264 in FLV to ``url`` in real time, in
    a thread (returned, started). ``start_when()`` true (polled up to
    ``wait_s``) starts it: a player that is already waiting gets the stream
    from its first frame."""
    picture = picture or (lambda i: index_image(i, SIZE))

    def run() -> None:
        deadline = time.monotonic() + wait_s
        while start_when is not None and not start_when() and time.monotonic() < deadline:
            time.sleep(0.02)
        height, width = picture(0).shape[:2]
        container = av.open(url, "w", format="flv")
        stream = container.add_stream("libx264", rate=fps, options={
            "preset": "ultrafast", "tune": "zerolatency", "x264-params": f"bframes=0:threads=1:keyint={fps}"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        t0 = time.monotonic()
        try:
            for i in range(frames):
                vf = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
                vf.pts = i
                for packet in stream.encode(vf):
                    container.mux(packet)
                wait = t0 + (i + 1) / fps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            for packet in stream.encode():
                container.mux(packet)
            container.close()
        except (OSError, av.FFmpegError):  # the server went away first
            with contextlib.suppress(OSError, av.FFmpegError):
                container.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
