"""Live input end to end, on loopback only: a generated clip served over
HTTP (whole, and as an unending chunked stream) and TCP, a server that drops
and comes back, one that stalls, a slow model, several streams at once
(pipeline.live, through run_job as the CLI calls it)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_servers import (
    HttpStream,
    StaticFiles,
    TcpStream,
    UdpSender,
    alternating_config,
    alternating_picture,
    free_udp_port,
    write_hls,
    write_ts,
)

from pipeline.live.frames import Backoff
from pipeline.live.session import LiveOptions
from pipeline.run.job import RunOptions, run_job

STEP = 0.5


def _config(model_dir, formats=("csv", "plot", "json"), **extra):
    return alternating_config(model_dir, formats, STEP, **extra)


def _run(inputs, config, out, embedder, *, store=False, **live):
    options = RunOptions(progress=False, use_store=store,
                         live=LiveOptions(flush_every_s=0.5, handle_signals=False, **live))
    return run_job(inputs, config, out, options, embedder=embedder)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text("utf-8"))


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _spans(segments) -> list[tuple[str, float, float]]:
    return [(s.label, s.start_s, s.end_s) for s in segments]


def test_a_served_clip_gives_the_file_runs_segments(tmp_path, ts_clip, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir)
    file_run = _run([str(ts_clip)], config, tmp_path / "file", tiny_embedder)
    with HttpStream(ts_clip.read_bytes()) as server:
        live_run = _run([server.base + "/clip.ts"], config, tmp_path / "live", tiny_embedder,
                        events=str(tmp_path / "events.jsonl"))
    (want,), (got,) = file_run.results, live_run.results
    assert got.status == "ok" and got.name == f"127.0.0.1-{server.port}-clip"
    assert len(want.segments) >= 2  # the content really changes
    assert len(got.segments) == len(want.segments)
    for a, b in zip(got.segments, want.segments):
        assert a.label == b.label and abs(a.start_s - b.start_s) <= STEP and abs(a.end_s - b.end_s) <= STEP
    closes = [e for e in _events(tmp_path / "events.jsonl") if e["event"] == "close"]
    in_close_order = sorted(got.segments, key=lambda s: s.end_s)
    assert [(e["label"], e["start_s"], e["end_s"]) for e in closes] == \
        [(s.label, round(s.start_s, 3), round(s.end_s, 3)) for s in in_close_order]
    folder = tmp_path / "live" / got.name
    frames = pd.read_csv(folder / "frames.csv")
    np.testing.assert_allclose(frames["time_s"], want.times_s)  # PTS from the first frame
    file_frames = pd.read_csv(tmp_path / "file" / "alt" / "frames.csv")
    sampled = file_frames[file_frames["refine"] == 0]  # a file run also scores its edge frames
    np.testing.assert_allclose(frames["score:red"], sampled["score:red"], atol=1e-6)
    walls = pd.to_datetime(frames["wall_time"], format="ISO8601")
    summary = _summary(folder)
    live = summary["live"]
    assert live["state"] == "ended" and live["ended_by"] == "eof" and live["dropped_frames"] == 0
    assert walls[0] == pd.Timestamp(live["first_frame_wall_time"])
    assert pd.read_csv(folder / "segments.csv")["label"].tolist() == [s.label for s in in_close_order]
    assert (folder / "timeline.png").stat().st_size > 0
    assert pd.read_csv(tmp_path / "live" / "index.csv")["status"].tolist() == ["ok"]


def test_a_live_run_ends_with_the_reports_a_file_run_writes(tmp_path, ts_clip, tiny_model_dir, tiny_embedder):
    from PIL import Image

    from pipeline.decode import read_frames_at
    from pipeline.report import exports

    config = _config(tiny_model_dir, formats=("csv", "plot", "json", "html", "vtt", "edl", "thumbs"))
    _run([str(ts_clip)], config, tmp_path / "file", tiny_embedder)
    with HttpStream(ts_clip.read_bytes()) as server:
        (got,) = _run([server.base + "/clip.ts"], config, tmp_path / "live", tiny_embedder).results
    folder = tmp_path / "live" / got.name
    assert sorted(p.name for p in folder.iterdir()) == \
        sorted([p.name for p in (tmp_path / "file" / "alt").iterdir()] + ["events.jsonl"])
    assert len(got.segments) >= 2
    # written by the file run's own report functions, from the stream's final result
    assert (folder / "tags.vtt").read_text("utf-8") == exports.vtt_text(got)
    assert (folder / "markers.edl").read_text("utf-8") == exports.edl_text(got)
    assert len(json.loads((folder / "segments.json").read_text("utf-8"))["segments"]) == len(got.segments)
    page = (folder / "report.html").read_text("utf-8")
    thumbs = sorted((folder / "thumbs").glob("*.jpg"))
    assert len(thumbs) == len(got.segments)
    for thumb in thumbs:  # each shows its segment's peak frame, kept from the stream
        assert f"thumbs/{thumb.name}" in page
        minutes, seconds = thumb.stem.rsplit("_", 1)[1].split("-")
        (frame,) = read_frames_at(str(ts_clip), [int(minutes) * 60 + float(seconds)],
                                  short_side=tiny_embedder.input_size)
        shown = np.asarray(Image.open(thumb).convert("RGB"), np.float64)
        assert shown.shape == frame.image.shape and np.abs(shown - frame.image).mean() < 12
    assert _summary(folder)["live"]["state"] == "ended"


def test_a_file_forced_live_loses_nothing_to_a_slow_model(tmp_path, ts_clip, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir)
    file_run = _run([str(ts_clip)], config, tmp_path / "file", tiny_embedder)
    live_run = _run([str(ts_clip)], config, tmp_path / "live", tiny_embedder, force=True, queue_frames=1)
    (want,), (got,) = file_run.results, live_run.results
    live = _summary(tmp_path / "live" / got.name)["live"]
    assert live["dropped_frames"] == 0 and live["ended_by"] == "eof"  # read faster than real time: it waited
    assert list(got.times_s) == list(want.times_s) and list(got.frame_indices) == list(want.frame_indices)


def test_an_unending_chunked_stream_stops_after_duration(tmp_path, tiny_model_dir, tiny_embedder):
    with HttpStream(live_frames=300, fps=10) as server:
        started = time.monotonic()
        run = _run([server.base + "/live.ts"], _config(tiny_model_dir), tmp_path, tiny_embedder,
                   duration_s=1.2)
    (result,) = run.results
    assert result.status == "ok" and time.monotonic() - started < 10
    live = _summary(tmp_path / result.name)["live"]
    assert live["ended_by"] == "duration" and live["stream_time_s"] < 1.2
    assert list(result.times_s) == [0.0, 0.5, 1.0]


def test_max_frames_ends_a_live_stream(tmp_path, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir, sampling={"every_seconds": STEP, "max_frames": 3})
    with HttpStream(live_frames=300, fps=10) as server:
        run = _run([server.base + "/live.ts"], config, tmp_path, tiny_embedder)
    (result,) = run.results
    assert list(result.times_s) == [0.0, 0.5, 1.0]
    assert _summary(tmp_path / result.name)["live"]["ended_by"] == "max_frames"


def test_a_dropped_connection_reconnects_and_the_gap_is_never_tagged(tmp_path, tiny_model_dir, tiny_embedder):
    # every connection serves 1.5 s, then hangs up; --duration ends it
    with TcpStream(lambda out, n: write_ts(out, 15, 10, start=15 * n)) as server:
        run = _run([server.url], _config(tiny_model_dir, formats=("csv", "json", "html")), tmp_path,
                   tiny_embedder, reconnect=True, backoff=Backoff(initial_s=0.3, max_s=0.3, attempts=3),
                   duration_s=4.0, events=str(tmp_path / "events.jsonl"))
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert result.status == "ok" and live["reconnects"] >= 1 and server.connections >= 2
    assert live["ended_by"] == "duration"
    gaps = live["gaps"]
    assert gaps and all(g["reason"] == "connection closed" and g["end_s"] > g["start_s"] for g in gaps)
    for gap in gaps:
        assert not any(gap["start_s"] + 1e-3 < t < gap["end_s"] - 1e-3 for t in result.times_s)
        for seg in result.segments:  # a segment never reaches into a gap
            assert seg.end_s <= gap["start_s"] + 1e-3 or seg.start_s >= gap["end_s"] - 1e-3
    page = (tmp_path / result.name / "report.html").read_text("utf-8")
    marked = re.findall(r'<rect class="gap" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', page)
    assert len(marked) == len(gaps)  # the timeline marks each gap, and no score line crosses one
    for points in re.findall(r'<polyline class="score" points="([^"]*)"', page):
        xs = [float(p.split(",")[0]) for p in points.split()]
        for x0, x1 in ((float(x), float(x) + float(w)) for x, w in marked):
            assert not [a for a, b in zip(xs[:-1], xs[1:]) if a <= x0 and b >= x1]
    kinds = [e["event"] for e in _events(tmp_path / "events.jsonl")]
    assert kinds.count("gap") == len(gaps) and "reconnect" in kinds and kinds[-1] == "end"


def test_a_stall_past_the_timeout_reconnects_when_the_server_comes_back(tmp_path, tiny_model_dir,
                                                                        tiny_embedder):
    # the first connection stalls after 1.2 s (past --timeout); the next ones play
    def serve(out, n):
        write_ts(out, 20, 10, start=20 * n, stall_after=12 if n == 0 else None, stall_s=3.0)

    config = _config(tiny_model_dir, decoder={"timeout_s": 0.5})
    with TcpStream(serve) as server:
        run = _run([server.url], config, tmp_path, tiny_embedder, reconnect=True, duration_s=3.5,
                   backoff=Backoff(initial_s=0.2, max_s=0.2, attempts=3),
                   events=str(tmp_path / "events.jsonl"))
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert result.status == "ok" and live["ended_by"] == "duration" and live["reconnects"] >= 1
    first = live["gaps"][0]
    assert first["reason"] == "no data for 0.5 s (timeout)" and 1.0 - 1e-6 <= first["start_s"] <= 1.1 + 1e-6
    assert first["end_s"] - first["start_s"] >= 0.5  # the stall's time is a gap: never tagged
    after = [t for t in result.times_s if t >= first["end_s"] - 1e-3]
    assert after and not any(first["start_s"] + 1e-3 < t < first["end_s"] - 1e-3 for t in result.times_s)
    kinds = [e["event"] for e in _events(tmp_path / "events.jsonl")]
    assert {"gap", "reconnect"} <= set(kinds) and kinds[-1] == "end"


def test_an_hls_playlist_over_http(tmp_path, tiny_model_dir, tiny_embedder):
    (tmp_path / "hls").mkdir()
    write_hls(tmp_path / "hls", 30)
    with StaticFiles(tmp_path / "hls") as server:
        run = _run([server.base + "/live.m3u8"], _config(tiny_model_dir), tmp_path / "out", tiny_embedder)
    (result,) = run.results
    assert result.status == "ok" and list(result.times_s) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert _summary(tmp_path / "out" / result.name)["video"]["container"] == "hls"


def test_mpeg_ts_over_udp(tmp_path, tiny_model_dir, tiny_embedder):
    port = free_udp_port()

    def send():  # datagrams sent before the reader listens are lost: send 6 s, use 2
        time.sleep(0.5)
        write_ts(UdpSender(port), 60, 10)

    threading.Thread(target=send, daemon=True).start()
    config = _config(tiny_model_dir, decoder={"timeout_s": 3.0})
    run = _run([f"udp://127.0.0.1:{port}"], config, tmp_path, tiny_embedder, duration_s=2.0)
    (result,) = run.results
    assert result.status == "ok" and list(result.times_s) == [0.0, 0.5, 1.0, 1.5]
    assert _summary(tmp_path / result.name)["live"]["ended_by"] == "duration"


@pytest.mark.expect_errors
def test_a_stall_past_the_timeout_is_a_drop(tmp_path, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir, decoder={"timeout_s": 0.5})
    with TcpStream(lambda out, n: write_ts(out, 30, 10, stall_after=12, stall_s=4.0)) as server:
        run = _run([server.url], config, tmp_path, tiny_embedder, events=str(tmp_path / "events.jsonl"))
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert result.status == "ok" and live["ended_by"] == "error" and "timeout" in live["error"]
    assert list(result.times_s) == [0.0, 0.5, 1.0]
    last_frame = pd.to_datetime(pd.read_csv(tmp_path / result.name / "frames.csv")["wall_time"].iloc[-1])
    ended = pd.to_datetime(_events(tmp_path / "events.jsonl")[-1]["emitted_at"])
    assert (ended - last_frame).total_seconds() < 3.0  # it did not wait for the server to wake up


def test_a_slow_model_drops_to_the_newest_frames_in_bounded_memory(tmp_path, tiny_model_dir, tiny_embedder):
    class Slow:  # the tiny model, half a second per call (at most 6 frames/s through a queue of 3)
        def __getattr__(self, name):
            return getattr(tiny_embedder, name)

        def embed_images(self, images):
            time.sleep(0.5)
            return tiny_embedder.embed_images(images)

    config = _config(tiny_model_dir, sampling={"fps": 10})
    with TcpStream(frames=40, fps=10) as server:
        run = _run([server.url], config, tmp_path, Slow(), queue_frames=3)
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert live["dropped_frames"] > 5 and live["queue_high_water"] <= 3
    assert live["frames_scored"] + live["dropped_frames"] == live["frames_seen"]
    assert np.all(np.diff(result.times_s) > 0)  # newest first never means out of order
    assert any("dropped" in note for note in _summary(tmp_path / result.name)["decode"]["notes"])


@pytest.mark.expect_errors
def test_one_failing_stream_never_stops_the_others(tmp_path, tiny_model_dir, tiny_embedder):
    closed = socket.create_server(("127.0.0.1", 0))
    dead = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    with TcpStream(frames=20) as one, TcpStream(frames=20) as two:
        run = _run([one.url, dead, two.url], _config(tiny_model_dir), tmp_path, tiny_embedder)
    by_input = {r.input_path: r for r in run.results}
    assert by_input[one.url].status == by_input[two.url].status == "ok"
    assert by_input[dead].status == "error" and "cannot open" in by_input[dead].error
    assert "Connection refused" in by_input[dead].error
    assert run.exit_code == 1
    assert set(pd.read_csv(tmp_path / "index.csv")["status"]) == {"ok", "error"}
    failed = tmp_path / by_input[dead].name
    assert sorted(p.name for p in failed.iterdir()) == ["events.jsonl", "summary.json"]
    assert _summary(failed)["status"] == "error"


@pytest.mark.expect_errors
def test_credentials_never_reach_outputs_or_logs(tmp_path, ts_clip, tiny_model_dir, tiny_embedder, caplog):
    with HttpStream(ts_clip.read_bytes()) as server:
        url = f"http://viewer:hunter22secret@127.0.0.1:{server.port}/clip.ts?token=tok987654"
        gone = "http://viewer:hunter22secret@127.0.0.1:1/x.ts"
        run = _run([url, gone], _config(tiny_model_dir), tmp_path, tiny_embedder,
                   events=str(tmp_path / "events.jsonl"))
    assert sorted(r.status for r in run.results) == ["error", "ok"]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".jsonl"):
            text = path.read_text("utf-8")
            assert "hunter22secret" not in text and "tok987654" not in text, path
    assert "***@127.0.0.1" in (tmp_path / "events.jsonl").read_text("utf-8")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "hunter22secret" not in logged and "cannot open" in logged


def test_events_are_posted_and_a_dead_endpoint_is_only_a_warning(tmp_path, ts_clip, tiny_model_dir,
                                                                   tiny_embedder, caplog):
    import http.server

    got: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        with HttpStream(ts_clip.read_bytes()) as server:
            url = server.base + "/clip.ts"
            run = _run([url], _config(tiny_model_dir), tmp_path / "a", tiny_embedder,
                       events_url=f"http://127.0.0.1:{receiver.server_address[1]}/hook")
            dead = _run([url], _config(tiny_model_dir), tmp_path / "b", tiny_embedder,
                        events_url="http://127.0.0.1:1/hook")
    finally:
        receiver.shutdown()
    assert run.exit_code == dead.exit_code == 0
    assert [e["event"] for e in got] == [e["event"] for e in _events(tmp_path / "a" / run.results[0].name
                                                                     / "events.jsonl")]
    assert {e["event"] for e in got} >= {"start", "open", "close", "end"}
    assert any("not delivered" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_nsfw_fires_early_with_its_latency(tmp_path, ts_clip, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir, nsfw={"labels": [{"name": "explicit"}], "threshold": 0.0,
                                           "min_duration_s": 1.0})
    with HttpStream(ts_clip.read_bytes()) as server:
        run = _run([server.base + "/clip.ts"], config, tmp_path, tiny_embedder,
                   events=str(tmp_path / "events.jsonl"))
    events = [e for e in _events(tmp_path / "events.jsonl") if e.get("kind") == "nsfw"]
    assert [e["event"] for e in events][:2] == ["nsfw", "confirm"] and events[-1]["event"] == "close"
    assert events[0]["start_s"] == 0.0 and 0 <= events[0]["latency_s"] < 5
    assert events[0]["time_s"] < events[1]["time_s"]  # fired before the minimum duration had passed
    assert run.results[0].nsfw_verdict == "unsafe"
    assert _summary(tmp_path / run.results[0].name)["live"]["nsfw_event_latency_s"]["count"] == 1


def test_embeddings_reach_the_store_in_chunks_as_one_input(tmp_path, ts_clip, tiny_model_dir, tiny_embedder):
    from pipeline.store.db import EmbeddingStore

    with HttpStream(ts_clip.read_bytes()) as server:
        url = server.base + "/clip.ts"
        _run([url], _config(tiny_model_dir), tmp_path, tiny_embedder, store=True, store_chunk=4)
    store = EmbeddingStore.open(tmp_path / "store")
    (video,) = store.videos()  # 16 frames, 4 a chunk: one input
    assert video.input_path == url and video.frames == 16
    stored = store.embedded(video)
    assert list(stored.times_s) == list(np.arange(16) * STEP)
    rows, _ = store.nearest(stored.embeddings[-1], 1)  # search finds the stream's latest frames
    assert list(rows.input_path) == [url] and rows.time_s[0] == stored.times_s[-1]


def test_a_running_stream_is_searchable_as_it_grows(tmp_path, tiny_model_dir, tiny_embedder):
    from pipeline.store.db import EmbeddingStore
    from pipeline.types import StoreError

    seen: list[list[float]] = []
    with HttpStream(live_frames=300, fps=10) as server:
        url = server.base + "/live.ts"
        runner = threading.Thread(target=_run, args=([url], _config(tiny_model_dir), tmp_path, tiny_embedder),
                                  kwargs={"store": True, "store_chunk": 2, "duration_s": 4.0})
        runner.start()
        while runner.is_alive():
            try:
                store = EmbeddingStore.open(tmp_path / "store")  # a reader beside the writer
            except StoreError:  # not made yet
                store = None
            for video in store.videos() if store else []:
                stored = store.embedded(video)
                rows, _ = store.nearest(stored.embeddings[-1], 1)
                assert rows.time_s[0] == stored.times_s[-1]  # its newest frame is found
                seen.append(list(stored.times_s))
            time.sleep(0.2)
        runner.join()
    grown = sorted({len(times) for times in seen})
    assert len(grown) >= 2 and grown[-1] <= 8  # seen growing while it ran (8 frames in all)
    for times in seen:
        assert times == list(np.arange(len(times)) * STEP)  # a whole prefix, never half a chunk


def test_rescore_of_a_live_run_covers_the_whole_stream(tmp_path, tiny_model_dir, tiny_embedder):
    from pipeline.run.rescore import rescore_job

    # connections of 1.5 s each, with gaps between; the picture changes every 2 s of frames
    with TcpStream(lambda out, n: write_ts(out, 15, 10, start=15 * n, picture=alternating_picture)) as server:
        live_run = _run([server.url], _config(tiny_model_dir), tmp_path / "live", tiny_embedder, store=True,
                        store_chunk=4, reconnect=True, backoff=Backoff(initial_s=0.3, max_s=0.3, attempts=3),
                        duration_s=6.0)
    (live,) = live_run.results
    gaps = _summary(tmp_path / "live" / live.name)["live"]["gaps"]
    assert len(gaps) >= 2 and len(live.segments) >= 2
    rescored = rescore_job(_config(tiny_model_dir), tmp_path / "live" / "store", tmp_path / "rescore",
                           embedder=tiny_embedder)
    (again,) = rescored.results
    assert again.status == "ok" and again.input_path == server.url and again.name == live.name
    assert list(again.times_s) == list(live.times_s)  # every frame of the stream, not the last chunk
    assert [(s.label, s.kind) for s in again.segments] == [(s.label, s.kind) for s in live.segments]
    for a, b in zip(again.segments, live.segments):
        assert abs(a.start_s - b.start_s) < 2e-3 and abs(a.end_s - b.end_s) < 2e-3
        assert a.peak == pytest.approx(b.peak, abs=1e-5) and a.mean == pytest.approx(b.mean, abs=1e-5)
        for gap in gaps:  # a gap is never tagged
            assert a.end_s <= gap["start_s"] + 1e-3 or a.start_s >= gap["end_s"] - 1e-3
    assert again.tags == live.tags


@pytest.mark.expect_errors
def test_a_protocol_this_ffmpeg_lacks_is_one_line_and_never_retried(tmp_path, tiny_model_dir, tiny_embedder):
    started = time.monotonic()
    run = _run(["srt://127.0.0.1:9000"], _config(tiny_model_dir), tmp_path, tiny_embedder, reconnect=True)
    (result,) = run.results
    assert result.status == "error" and "no srt protocol" in result.error
    assert time.monotonic() - started < 5  # no backoff: retrying cannot help


def test_history_in_memory_is_bounded_and_frames_csv_keeps_every_row(tmp_path, ts_clip, tiny_model_dir,
                                                                     tiny_embedder, monkeypatch):
    from pipeline.live import stream

    monkeypatch.setattr(stream, "HISTORY_MAX", 6)
    with HttpStream(ts_clip.read_bytes()) as server:
        run = _run([server.base + "/clip.ts"], _config(tiny_model_dir), tmp_path, tiny_embedder)
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert live["frames_scored"] == 16 and 6 <= len(result.times_s) < 16
    assert live["history_from_s"] == result.times_s[0] > 0
    frames = pd.read_csv(tmp_path / result.name / "frames.csv")
    assert list(frames["time_s"]) == list(np.arange(16) * STEP)


def test_urls_in_a_list_file_are_live(tmp_path, ts_clip, tiny_model_dir, tiny_embedder):
    with HttpStream(ts_clip.read_bytes()) as server:
        listing = tmp_path / "inputs.txt"
        listing.write_text(f"{server.base}/clip.ts\n{ts_clip}\n", encoding="utf-8")
        run = _run([str(listing)], _config(tiny_model_dir), tmp_path / "out", tiny_embedder)
    assert sorted((r.input_path, r.status) for r in run.results) == \
        sorted([(f"{server.base}/clip.ts", "ok"), (str(ts_clip), "ok")])
    assert "live" in _summary(tmp_path / "out" / f"127.0.0.1-{server.port}-clip")
    assert "live" not in _summary(tmp_path / "out" / "alt")


def test_ctrl_c_escalates_from_a_clean_end_to_no_waiting_to_quitting(caplog):
    from pipeline.live.session import _Run, _signals

    run, caught = _Run(*[None] * 8), []
    before = signal.getsignal(signal.SIGINT)
    with _signals(run, caught, True):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert run.stop.is_set() and not run.hurry.is_set()  # the first: end cleanly
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert run.hurry.is_set()  # the second: the same outputs, no more waiting
        with pytest.raises(KeyboardInterrupt):  # the third: quit
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) is before and caught == [signal.SIGINT] * 2
    assert "again: finishing the outputs without waiting" in caplog.text
