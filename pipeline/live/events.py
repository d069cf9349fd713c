"""Where live events go: JSON lines (a file or stdout) and an HTTP endpoint.

Every event is one JSON object; :class:`EventBus` adds the stream, the
input (redacted) and the wall-clock time. A sink that fails never stops a
stream: the file sink raises only on open, the URL sink retries in its own
thread and warns.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from pipeline.live.sources import redact
from pipeline.types import PipelineError

log = logging.getLogger(__name__)

POST_TIMEOUT_S = 5.0
POST_RETRIES = 3  # tries per event before it is given up
POST_QUEUE = 1000  # events waiting to be posted; beyond it the oldest are dropped
WARN_EVERY = 50  # undelivered events between two warnings


def iso(wall_s: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds: ``2026-12-02T08:00:00.123Z``."""
    stamp = datetime.fromtimestamp(wall_s, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class JsonLinesSink:
    """One JSON object per line, flushed per event; ``-`` is stdout."""

    def __init__(self, target: str):
        self.target = target
        self._lock = threading.Lock()
        if target == "-":
            self._file: IO[str] = sys.stdout
        else:
            try:
                path = Path(target)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("a", encoding="utf-8")
            except OSError as ex:
                raise PipelineError(f"--events: cannot write {target}: {ex.strerror or ex}") from ex

    def send(self, event: dict) -> None:
        line = json.dumps(event, ensure_ascii=False, allow_nan=False)
        with self._lock:
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except (OSError, ValueError) as ex:  # a closed stdout, a full disk: the run goes on
                log.warning("--events: cannot write %s: %s", self.target, ex)

    def close(self, hurry: threading.Event | None = None) -> None:
        if self._file is not sys.stdout:
            self._file.close()


class UrlSink:
    """POSTs each event as JSON to ``url`` from a background thread, with
    retries and a bounded queue; failures are warnings."""

    def __init__(self, url: str, *, retries: int = POST_RETRIES, timeout_s: float = POST_TIMEOUT_S,
                 backoff_s: float = 0.5, maxsize: int = POST_QUEUE):
        if not url.lower().startswith(("http://", "https://")):
            raise PipelineError(f"--events-url: must be an http:// or https:// URL, got {redact(url)}")
        self.url, self.shown = url, redact(url)
        self.retries, self.timeout_s, self.backoff_s = retries, timeout_s, backoff_s
        self.sent = self.failed = self.dropped = 0
        self._queue: collections.deque = collections.deque(maxlen=maxsize)
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="events-url", daemon=True)
        self._thread.start()

    def send(self, event: dict) -> None:
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("--events-url %s is behind: dropping the oldest events", self.shown)
            self._queue.append(event)
            self._cond.notify()

    def close(self, hurry: threading.Event | None = None, wait_s: float = 10.0) -> None:
        """Post what is queued (up to ``wait_s``, without retry pauses, and
        not once ``hurry`` is set: a second Ctrl-C), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        deadline = time.monotonic() + wait_s
        while self._thread.is_alive() and time.monotonic() < deadline and not (hurry and hurry.is_set()):
            self._thread.join(0.1)
        lost = self.failed + self.dropped + len(self._queue)
        if lost:
            log.warning("--events-url %s: %d of %d events not delivered", self.shown, lost,
                        lost + self.sent)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                event = self._queue.popleft()
            self._post(event)

    def _post(self, event: dict) -> None:
        body = json.dumps(event, ensure_ascii=False, allow_nan=False).encode("utf-8")
        why = ""
        for attempt in range(self.retries):
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    reply.read()
                self.sent += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as ex:
                why = str(getattr(ex, "reason", None) or ex)
            if attempt + 1 < self.retries and not self._closing:
                time.sleep(self.backoff_s * 2 ** attempt)
        self.failed += 1
        if self.failed == 1 or self.failed % WARN_EVERY == 0:  # a dead endpoint: a warning now and then
            log.warning("--events-url %s: %d event(s) not delivered after %d tries each (last: %s): %s",
                        self.shown, self.failed, self.retries, event.get("event"),
                        " ".join(why.split())[:200])


class EventBus:
    """Fans events out to the sinks, adding where and when they happened."""

    def __init__(self, sinks: list):
        self.sinks = sinks
        self.count = 0

    def emit(self, event: dict, *, stream: str, source: str) -> dict:
        full = {**event, "stream": stream, "input": source, "emitted_at": iso(time.time())}
        self.count += 1
        for sink in self.sinks:
            sink.send(full)
        return full

    def close(self, hurry: threading.Event | None = None) -> None:
        for sink in self.sinks:
            sink.close(hurry)


def open_bus(events: str | None, events_url: str | None) -> EventBus:
    """The sinks ``--events`` and ``--events-url`` ask for (none: events
    still reach each stream's folder as ``events.jsonl``)."""
    sinks: list = []
    if events:
        sinks.append(JsonLinesSink(events))
    if events_url:
        sinks.append(UrlSink(events_url))
    return EventBus(sinks)
