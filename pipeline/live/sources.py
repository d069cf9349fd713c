"""Which inputs are live, how each is opened, and how it is shown.

A live input is a URL (``http(s)``, ``rtsp(s)``, ``rtmp(s)``, ``srt``,
``udp``, ``tcp``, ``rtp``), an HLS playlist (``.m3u8``), ``-`` (a pipe on
stdin) or a v4l2 camera (``/dev/video*``). Its real address is used only to
open it: everything shown (output folder, ``summary.json``, logs, events,
the store) gets :func:`redact`, which hides the user name, password, every
query value, path parameters and path segments that look like keys.
"""

from __future__ import annotations

import os
import re
import select
import sys
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pipeline.types import VideoOpenError

SCHEMES = frozenset({"http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "rtp"})
STDIN = "-"
# Query keys whose values are secrets (signed URLs, camera tokens).
HIDDEN = "***"
# Probing a live stream must not wait for FFmpeg's default 5 s of data.
ANALYZE_US = 1_000_000
FPS_PROBE_FRAMES = 5  # FFmpeg waits for 20 frames to guess a frame rate: 2 s at 10 fps
OPEN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class LiveSource:
    """One live input.

    Attributes:
        arg: the input as given (may hold credentials: open with it, never show it).
        kind: ``"url"``, ``"hls"``, ``"stdin"``, ``"camera"`` or ``"file"`` (a
            file forced live with ``--live``).
        shown: :func:`redact` of ``arg``: what outputs and logs name.
    """

    arg: str
    kind: str

    @property
    def shown(self) -> str:
        return redact(self.arg)

    @property
    def can_reconnect(self) -> bool:
        """A pipe or a file cannot be opened again for more of the stream."""
        return self.kind in ("url", "hls", "camera")

    def scrub(self, text: str) -> str:
        """``text`` (an FFmpeg message, say) with this input's secrets hidden."""
        text = text.replace(self.arg, self.shown)
        for secret in _secrets(self.arg):
            text = text.replace(secret, HIDDEN)
        return text


def live_kind(arg: str) -> str | None:
    """The kind of a live input (see :class:`LiveSource`), None for a file or folder."""
    if arg == STDIN:
        return "stdin"
    scheme = urlsplit(arg).scheme.lower() if "://" in arg else ""
    if arg.lower().split("?")[0].endswith(".m3u8"):
        return "hls"
    if scheme in SCHEMES:
        return "url"
    if re.fullmatch(r"/dev/video\d+", arg):
        return "camera"
    return None


def split_live(inputs: list[str], force: bool = False) -> tuple[list[LiveSource], list[str]]:
    """``(live sources, other inputs)``; ``force`` (``--live``) makes every
    single-file input live too (folders, globs and lists stay files)."""
    live, files = [], []
    for arg in inputs:
        kind = live_kind(arg) or ("file" if force and os.path.isfile(arg) else None)
        if kind is None:
            files.append(arg)
        else:
            live.append(LiveSource(arg, kind))
    return list(dict.fromkeys(live)), files


def redact(arg: str) -> str:
    """``arg`` without anything that may be a credential, by rule rather than
    by a list of names (``pw=``, ``jwt=``, Akamai's ``hdnts=...~hmac=`` all
    slipped past one): ``user:password@`` becomes ``***@``, every query
    value and every path parameter (``;jsessionid=...``) becomes ``***``, and
    so does every path segment that looks like a key (:func:`looks_like_key`:
    RTMP stream keys, tokens in the path); the fragment is dropped. Not a
    URL: unchanged."""
    if "://" not in arg:
        return arg
    try:
        parts = urlsplit(arg)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # an unparsable port or netloc: show only the scheme
        return arg.split("://", 1)[0] + "://" + HIDDEN
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    if parts.username or parts.password:
        netloc = f"{HIDDEN}@{netloc}"
    path = "/".join(_hide_segment(seg) for seg in parts.path.split("/"))
    query = "&".join(_hide_value(item) for item in parts.query.split("&") if item)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def looks_like_key(text: str) -> bool:
    """Whether a path segment looks like a secret rather than a name: long
    and mixing letters with many digits (``live_123456789_AbCdEf...``,
    ``abcd-1234-efgh-5678``), a long hex or base64-like run, or very long.
    ``cam1``, ``front-door-camera-2`` and ``index.m3u8`` are names."""
    stem = text.rsplit(".", 1)[0] if "." in text[-6:] else text
    digits, letters = sum(c.isdigit() for c in stem), sum(c.isalpha() for c in stem)
    if len(stem) >= 32:
        return True
    if len(stem) >= 16 and (digits >= 4 and letters >= 4 or re.fullmatch(r"[0-9a-fA-F]+", stem)):
        return True
    return len(stem) >= 20 and re.fullmatch(r"[A-Za-z0-9+/_=-]+", stem) is not None \
        and any(c.isupper() for c in stem) and any(c.islower() for c in stem) and digits >= 2


def _hide_segment(segment: str) -> str:
    name, sep, _ = segment.partition(";")  # path parameters: ;jsessionid=..., ;token=...
    shown = HIDDEN if looks_like_key(name) else name
    if sep:
        params = [p.partition("=")[0] + "=" + HIDDEN for p in segment.split(";")[1:] if p]
        shown = ";".join([shown, *params])
    return shown


def _hide_value(item: str) -> str:
    key, sep, value = item.partition("=")
    return f"{key}={HIDDEN}" if sep else (HIDDEN if looks_like_key(key) else key)


def _secrets(arg: str) -> list[str]:
    """The secret strings inside ``arg`` (longest first, so none hides part of
    another): what :func:`redact` hides, to scrub from messages that quote
    pieces of the address."""
    if "://" not in arg:
        return []
    try:
        parts = urlsplit(arg)
        found = [parts.password, parts.username, parts.fragment]
    except ValueError:
        return [arg.split("://", 1)[1]]
    found += [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    found += [item for item in parts.query.split("&") if "=" not in item and looks_like_key(item)]
    for segment in parts.path.split("/"):
        name, *params = segment.split(";")
        found += [name] if looks_like_key(name) else []
        found += [p.partition("=")[2] or p for p in params]
    return sorted({s for s in found if s and len(s) >= 3}, key=len, reverse=True)


def display_name(source: LiveSource) -> str:
    """A folder name stem for ``source``, from its redacted address:
    ``rtsp://u:p@cam1:554/live/ch1`` → ``cam1-554-live-ch1``; stdin → ``stdin``;
    ``/dev/video0`` → ``video0``."""
    if source.kind == "stdin":
        return "stdin"
    if source.kind in ("camera", "file") or "://" not in source.arg:
        return os.path.splitext(os.path.basename(source.arg))[0] or "live"
    parts = urlsplit(redact(source.arg))
    try:
        port = parts.port
    except ValueError:
        port = None
    words = [parts.hostname or "", str(port or ""), *os.path.splitext(parts.path)[0].split("/")]
    return "-".join(w for w in words if w) or parts.scheme


def open_args(source: LiveSource, read_timeout_s: float) -> tuple[object, dict]:
    """What :func:`av.open` gets for ``source``: the file (a URL, a device,
    or a stdin reader that gives up after ``read_timeout_s`` without data)
    and its keyword arguments."""
    options = {"analyzeduration": str(ANALYZE_US), "fpsprobesize": str(FPS_PROBE_FRAMES)}
    kwargs: dict = {"metadata_errors": "ignore", "container_options": options,
                    "timeout": (OPEN_TIMEOUT_S, read_timeout_s)}
    if source.kind == "stdin":
        return StallingReader(sys.stdin.buffer.fileno(), read_timeout_s), kwargs
    if source.kind == "camera":
        return source.arg, {**kwargs, "format": "v4l2"}
    # av.open's read timeout does not cut a blocked socket read; FFmpeg's own I/O timeout does
    options["rw_timeout"] = str(int(read_timeout_s * 1e6))
    scheme = urlsplit(source.arg).scheme.lower()
    if scheme in ("rtsp", "rtsps", "tcp", "http", "https", "udp"):
        # the protocol's own socket timeout: it also bounds connecting, and UDP ignores rw_timeout
        options["timeout"] = options["rw_timeout"]
    if scheme in ("rtsp", "rtsps"):
        # RTP interleaved on the RTSP connection first (UDP loses packets behind NAT and
        # firewalls), then RTP over UDP for a server that refuses TCP (461 Unsupported Transport)
        options["rtsp_flags"] = "prefer_tcp"
    elif scheme == "udp":  # a late reader drops, not dies
        options.update(overrun_nonfatal="1", fifo_size="50000")
    return source.arg, kwargs


class StallingReader:
    """A pipe read for PyAV that raises :class:`TimeoutError` when no byte
    arrives for ``timeout_s`` (FFmpeg's own timeout cannot interrupt a
    blocked ``read`` on a pipe)."""

    def __init__(self, fd: int, timeout_s: float):
        self.fd, self.timeout_s = fd, timeout_s

    def read(self, size: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.timeout_s)
        if not ready:
            raise TimeoutError(f"no data on stdin for {self.timeout_s:g} s")
        return os.read(self.fd, size)


def check_openable(source: LiveSource) -> None:
    """Refuse, with one line, what cannot be a live stream before any work."""
    if source.kind == "stdin" and sys.stdin is not None and sys.stdin.isatty():
        raise VideoOpenError("-: stdin is a terminal, not a pipe (pipe a stream in: ... | scenetag run -)")
    if source.kind == "camera" and not os.path.exists(source.arg):
        raise VideoOpenError(f"no such camera: {source.arg}")
