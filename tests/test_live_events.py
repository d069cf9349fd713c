"""Event sinks: JSON lines, and POSTs that retry, queue boundedly and only
ever warn (pipeline.live.events)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from pipeline.live.events import EventBus, JsonLinesSink, UrlSink, iso
from pipeline.types import PipelineError


class _Receiver:
    """A loopback endpoint that answers 503 to the first ``fail`` POSTs."""

    def __init__(self, fail: int = 0):
        owner = self
        self.got: list[dict] = []
        self.fail = fail

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if owner.fail > 0:
                    owner.fail -= 1
                    self.send_response(503)
                else:
                    owner.got.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_post_is_retried_until_it_lands():
    receiver = _Receiver(fail=2)
    try:
        sink = UrlSink(receiver.url, retries=3, backoff_s=0.01)
        sink.send({"event": "open", "label": "cat"})
        sink.close()
    finally:
        receiver.close()
    assert receiver.got == [{"event": "open", "label": "cat"}] and sink.sent == 1 and sink.failed == 0


def test_a_full_queue_drops_the_oldest_with_one_warning(caplog):
    receiver = _Receiver()
    arrived, release = threading.Event(), threading.Event()
    handler = receiver.server.RequestHandlerClass
    plain = handler.do_POST

    def slow_post(self):  # the endpoint hangs on the first event
        arrived.set()
        release.wait(10)
        plain(self)

    handler.do_POST = slow_post
    try:
        sink = UrlSink(receiver.url, retries=1, maxsize=3)
        sink.send({"n": 0})
        assert arrived.wait(10)  # the sender is stuck posting event 0
        for i in range(1, 10):
            sink.send({"n": i})
        release.set()
        sink.close()
    finally:
        receiver.close()
    assert sink.dropped == 6 and [e["n"] for e in receiver.got] == [0, 7, 8, 9]
    behind = [r for r in caplog.records if "is behind" in r.getMessage()]
    assert len(behind) == 1 and behind[0].levelname == "WARNING"


def test_bad_sinks_are_one_line_errors(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(PipelineError, match="--events: cannot write"):
        JsonLinesSink(str(tmp_path / "dir"))
    with pytest.raises(PipelineError, match="--events-url: must be an http"):
        UrlSink("ftp://user:secret@host/x")
    try:
        UrlSink("ftp://user:secret@host/x")
    except PipelineError as ex:
        assert "secret" not in str(ex)


def test_the_bus_adds_where_and_when(tmp_path):
    path = tmp_path / "events.jsonl"
    bus = EventBus([JsonLinesSink(str(path))])
    bus.emit({"event": "open", "label": "=cmd"}, stream="cam", source="rtsp://***@cam/s")
    bus.close()
    (line,) = path.read_text("utf-8").splitlines()
    event = json.loads(line)
    assert event["stream"] == "cam" and event["input"] == "rtsp://***@cam/s" and event["label"] == "=cmd"
    assert event["emitted_at"].endswith("Z") and iso(0.0) == "1970-01-01T00:00:00.000Z"
