"""RTSP and RTMP end to end, on loopback only.

RTSP: a small RTSP/1.0 server of our own (``live_protocol_servers``:
MPEG-TS in RTP, payload type 33, interleaved over TCP or over UDP) read by
FFmpeg's RTSP demuxer through the pipeline: the file run's segments, Basic
authentication with credentials that never reach outputs, a dropped
session that comes back, a stall. RTMP: a real server (nginx with Debian's
RTMP module, which ``.ci/run`` installs) with a clip published to it by
PyAV. And the inputs this machine cannot serve (SRT, a v4l2 camera) fail
in one line through the CLI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_protocol_servers import NginxRtmp, RtpMp2t, RtspServer, publish_rtmp, rtmp_module
from live_servers import alternating_picture as _picture
from live_servers import free_udp_port, write_ts
from test_live import STEP, _config, _events, _run, _summary

from pipeline.live.frames import Backoff

ROOT = Path(__file__).parent.parent
FRAMES = 80  # 8 s at 10 fps: dark, bands, dark, bands (2 s each)


@pytest.fixture(scope="module")
def alt_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("protocols") / "alt.ts"
    with path.open("wb") as out:
        write_ts(out, FRAMES, 10, realtime=False, picture=_picture)
    return path


def _same_segments(got, want) -> None:
    """The live run found the file run's segments, within one sampling step."""
    assert len(want.segments) >= 2  # the content really changes
    assert len(got.segments) == len(want.segments)
    for a, b in zip(got.segments, want.segments):
        assert a.label == b.label and abs(a.start_s - b.start_s) <= STEP and abs(a.end_s - b.end_s) <= STEP


def _no_frames_in_gaps(result, gaps) -> None:
    for gap in gaps:
        assert gap["end_s"] > gap["start_s"]
        assert not any(gap["start_s"] + 1e-3 < t < gap["end_s"] - 1e-3 for t in result.times_s)
        for seg in result.segments:  # a segment never reaches into a gap
            assert seg.end_s <= gap["start_s"] + 1e-3 or seg.start_s >= gap["end_s"] - 1e-3


# ---------------------------------------------------------------------- RTSP

def test_rtsp_interleaved_gives_the_file_runs_segments(tmp_path, alt_clip, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir)
    file_run = _run([str(alt_clip)], config, tmp_path / "file", tiny_embedder)
    # sent as fast as it goes: a source ahead of real time is waited for, never dropped
    with RtspServer(lambda out, n: write_ts(out, FRAMES, 10, realtime=False, picture=_picture)) as server:
        live_run = _run([server.url], config, tmp_path / "live", tiny_embedder,
                        events=str(tmp_path / "events.jsonl"))
    (want,), (got,) = file_run.results, live_run.results
    assert got.status == "ok" and got.name == f"127.0.0.1-{server.port}-live"
    assert server.transports_used == ["TCP"]  # RTP interleaved on the RTSP connection by default
    assert [m for m, _ in server.requests][:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
    _same_segments(got, want)
    frames = pd.read_csv(tmp_path / "live" / got.name / "frames.csv")
    file_frames = pd.read_csv(tmp_path / "file" / "alt" / "frames.csv")
    sampled = file_frames[file_frames["refine"] == 0]
    np.testing.assert_allclose(frames["time_s"], sampled["time_s"])  # PTS from the first frame
    np.testing.assert_allclose(frames["score:red"], sampled["score:red"], atol=1e-6)
    live = _summary(tmp_path / "live" / got.name)["live"]
    assert live["ended_by"] == "eof" and live["dropped_frames"] == 0  # RTCP BYE, then the server hung up
    kinds = [e["event"] for e in _events(tmp_path / "events.jsonl")]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("close") == len(got.segments)


def test_rtsp_falls_back_to_udp_when_the_server_refuses_tcp(tmp_path, tiny_model_dir, tiny_embedder):
    # a camera that only does RTP over UDP answers SETUP over TCP with 461 Unsupported Transport,
    # and ends a session that hears nothing for its timeout (the RTSP connection is idle with UDP)
    with RtspServer(frames=25, fps=10, transports=("UDP",), session_timeout=2) as server:
        run = _run([server.url], _config(tiny_model_dir), tmp_path, tiny_embedder)
    (result,) = run.results
    assert result.status == "ok", result.error
    assert server.transports_used == ["UDP"]
    assert list(result.times_s) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert server.expired == 0 and "GET_PARAMETER" in [m for m, _ in server.requests]  # kept alive


def test_rtsp_credentials_are_used_and_never_shown(tmp_path, tiny_model_dir):
    """Through the CLI, with --debug: the server gets the password (Basic
    authentication after its 401 challenge); no output, event or log line has it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with RtspServer(frames=15, credentials=("viewer", "hunter22secret")) as server:
        good = f"rtsp://viewer:hunter22secret@127.0.0.1:{server.port}/cam?token=tok987654"
        wrong = f"rtsp://viewer:wrongpass77@127.0.0.1:{server.port}/other"
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", good, wrong, "-m", str(tiny_model_dir),
             "--labels", "red,blue", "--device", "cpu", "--precision", "fp32", "--every-seconds", "0.5",
             "--formats", "csv,plot,json", "--no-store", "-o", str(tmp_path / "out"), "--events", "-",
             "--timeout", "5", "--debug"],
            capture_output=True, env=env, timeout=120)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 1, stderr  # one stream failed
    authorized = [h for m, h in server.requests if m == "PLAY"]
    assert len(authorized) == 1 and authorized[0]["authorization"].startswith("Basic ")
    for secret in ("hunter22secret", "tok987654", "wrongpass77"):
        assert secret not in stdout and secret not in stderr
        for path in (tmp_path / "out").rglob("*"):
            if path.is_file() and path.suffix in (".csv", ".json", ".jsonl"):
                assert secret not in path.read_text("utf-8"), path
    events = [json.loads(line) for line in stdout.splitlines()]
    ok_stream = f"127.0.0.1-{server.port}-cam"
    assert {e["input"] for e in events if e["stream"] == ok_stream} == \
        {f"rtsp://***@127.0.0.1:{server.port}/cam?token=***"}
    summary = _summary(tmp_path / "out" / ok_stream)
    assert summary["status"] == "ok" and summary["live"]["ended_by"] == "eof"
    failed = _summary(tmp_path / "out" / f"127.0.0.1-{server.port}-other")
    assert failed["status"] == "error" and "401" in failed["error"]


@pytest.mark.expect_errors
def test_rtsp_digest_authentication(tmp_path, tiny_model_dir, tiny_embedder, caplog):
    # a password with URL delimiters in it is percent-encoded in the URL, and FFmpeg decodes it
    with RtspServer(frames=15, credentials=("viewer", "hunter22@sec:ret"), auth="digest") as server:
        good = f"rtsp://viewer:hunter22%40sec%3Aret@127.0.0.1:{server.port}/cam"
        wrong = f"rtsp://viewer:wrongpass77@127.0.0.1:{server.port}/other"
        run = _run([good, wrong], _config(tiny_model_dir), tmp_path, tiny_embedder)
    by_input = {r.input_path: r for r in run.results}
    assert by_input[f"rtsp://***@127.0.0.1:{server.port}/cam"].status == "ok"
    failed = by_input[f"rtsp://***@127.0.0.1:{server.port}/other"]
    assert failed.status == "error" and "401" in failed.error
    digests = [h["authorization"] for m, h in server.requests if m == "PLAY"]
    assert len(digests) == 1 and digests[0].startswith("Digest ") and "hunter22" not in digests[0]
    logged = " ".join(r.getMessage() for r in caplog.records)
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".csv", ".json", ".jsonl")]:
        text = path.read_text("utf-8")
        assert "hunter22" not in text and "wrongpass77" not in text, path
    assert "hunter22" not in logged and "wrongpass77" not in logged and "401" in logged


def test_rtsps_runs_rtsp_and_its_rtp_over_tls(tmp_path, tiny_model_dir, tiny_embedder):
    # a self-signed certificate is accepted: FFmpeg verifies none unless told to (tls_verify)
    with RtspServer(frames=25, credentials=("viewer", "hunter22secret"), tls=True) as server:
        url = f"rtsps://viewer:hunter22secret@127.0.0.1:{server.port}/live"
        run = _run([url], _config(tiny_model_dir), tmp_path, tiny_embedder)
    (result,) = run.results
    assert result.status == "ok", result.error
    assert server.transports_used == ["TCP"] and list(result.times_s) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert _summary(tmp_path / result.name)["live"]["ended_by"] == "eof"  # TLS close_notify, then EOF
    assert "hunter22secret" not in (tmp_path / result.name / "summary.json").read_text("utf-8")


def test_rtsp_session_dropped_mid_stream_reconnects_with_the_gap_recorded(tmp_path, tiny_model_dir,
                                                                          tiny_embedder):
    # every session serves 1.5 s, then the server ends it (RTCP BYE, connection closed)
    with RtspServer(lambda out, n: write_ts(out, 15, 10, start=15 * n)) as server:
        run = _run([server.url], _config(tiny_model_dir), tmp_path, tiny_embedder, reconnect=True,
                   backoff=Backoff(initial_s=0.3, max_s=0.3, attempts=3), duration_s=4.0,
                   events=str(tmp_path / "events.jsonl"))
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert result.status == "ok" and live["ended_by"] == "duration"
    assert live["reconnects"] >= 1 and server.sessions >= 2
    assert [m for m, _ in server.requests].count("PLAY") == server.sessions  # each comeback is a new session
    assert live["gaps"] and all(g["reason"] == "connection closed" for g in live["gaps"])
    _no_frames_in_gaps(result, live["gaps"])
    kinds = [e["event"] for e in _events(tmp_path / "events.jsonl")]
    assert kinds.count("gap") == len(live["gaps"]) and "reconnect" in kinds and kinds[-1] == "end"


@pytest.mark.expect_errors
@pytest.mark.parametrize("transport", ["TCP", "UDP"])
def test_an_rtsp_stall_past_the_timeout_is_a_drop(tmp_path, tiny_model_dir, tiny_embedder, transport):
    config = _config(tiny_model_dir, decoder={"timeout_s": 0.5})
    with RtspServer(lambda out, n: write_ts(out, 30, 10, stall_after=12, stall_s=4.0),
                    transports=(transport,)) as server:
        started = time.monotonic()
        run = _run([server.url], config, tmp_path, tiny_embedder)
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert live["ended_by"] == "error" and "timeout" in live["error"]
    assert list(result.times_s) == [0.0, 0.5, 1.0] and server.transports_used == [transport]
    assert time.monotonic() - started < 3.5  # it did not wait for the server to wake up


def test_an_rtsp_stall_with_reconnect_resumes_after_a_gap(tmp_path, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir, decoder={"timeout_s": 0.5})

    def serve(out, n):  # the first session stalls 1.2 s in; the next one plays on
        write_ts(out, 30, 10, start=30 * n, stall_after=12 if n == 0 else None, stall_s=6.0)

    with RtspServer(serve) as server:
        run = _run([server.url], config, tmp_path, tiny_embedder, reconnect=True,
                   backoff=Backoff(initial_s=0.2, max_s=0.2, attempts=3), duration_s=3.5)
    (result,) = run.results
    live = _summary(tmp_path / result.name)["live"]
    assert result.status == "ok" and live["ended_by"] == "duration" and live["reconnects"] >= 1
    (gap,) = live["gaps"][:1]
    # the last frame before the stall is 1.1 s; MPEG-TS over RTP hands a frame on once the next
    # one starts, so the last one a reader sees may be 1.0 s
    assert "timeout" in gap["reason"] and 1.0 - 1e-6 <= gap["start_s"] <= 1.1 + 1e-6
    _no_frames_in_gaps(result, live["gaps"])
    assert max(result.times_s) > gap["end_s"]  # frames of the second session were tagged


def test_plain_rtp_of_mpeg_ts_over_udp(tmp_path, tiny_model_dir, tiny_embedder):
    """``rtp://`` with no RTSP: the static payload type says MPEG-TS."""
    port = free_udp_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stop = threading.Event()

    def send():  # datagrams sent before the reader listens are lost: the reader joins mid-stream
        time.sleep(0.3)
        write_ts(RtpMp2t(lambda channel, packet: sock.sendto(packet, ("127.0.0.1", port + channel)), stop),
                 80, 10)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        config = _config(tiny_model_dir, decoder={"timeout_s": 3.0})
        run = _run([f"rtp://127.0.0.1:{port}"], config, tmp_path, tiny_embedder, duration_s=1.5)
    finally:
        stop.set()
        sender.join(5)
        sock.close()
    (result,) = run.results
    assert result.status == "ok" and list(result.times_s) == [0.0, 0.5, 1.0]
    assert _summary(tmp_path / result.name)["live"]["ended_by"] == "duration"


# ---------------------------------------------------------------------- RTMP

needs_rtmp = pytest.mark.skipif(rtmp_module() is None, reason="nginx with its RTMP module is not installed "
                                "(apt-get install nginx-light libnginx-mod-rtmp; .ci/run does)")


@needs_rtmp
def test_rtmp_from_nginx_gives_the_file_runs_segments(tmp_path, alt_clip, tiny_model_dir, tiny_embedder):
    config = _config(tiny_model_dir)
    file_run = _run([str(alt_clip)], config, tmp_path / "file", tiny_embedder)
    with NginxRtmp(tmp_path / "nginx") as server:
        url = f"{server.base}/test?token=tok987654"  # nginx-rtmp hands play arguments to its on_play hook
        # published once the reader waits for it, so it gets the first frame on; 1 s more than
        # the file, and --duration stops at the file's length (a play never ends by itself)
        publish_rtmp(url, FRAMES + 10, 10, picture=_picture, start_when=lambda: server.played("test"))
        live_run = _run([url], config, tmp_path / "live", tiny_embedder, duration_s=FRAMES / 10)
    (want,), (got,) = file_run.results, live_run.results
    assert got.status == "ok" and got.name == f"127.0.0.1-{server.port}-live-test"
    live = _summary(tmp_path / "live" / got.name)["live"]
    assert live["ended_by"] == "duration" and live["dropped_frames"] == 0
    assert list(got.times_s) == list(want.times_s)
    _same_segments(got, want)
    assert got.input_path == f"{server.base}/test?token=***"
    for path in (tmp_path / "live").rglob("*"):
        if path.suffix in (".csv", ".json", ".jsonl"):
            assert "tok987654" not in path.read_text("utf-8"), path


@needs_rtmp
@pytest.mark.expect_errors
def test_an_rtmp_stream_whose_publisher_stops_ends_after_the_timeout(tmp_path, tiny_model_dir, tiny_embedder):
    # nginx keeps a player waiting for the next publisher: only --timeout ends the stream.
    # 3 s, not 1: the publisher is a thread of this process; on a loaded 2-core CI machine
    # a pause of it over 1 s (the likeliest reading of one CI run that lost the last
    # sample, its log showing only the timeout) rightly ends the stream early.
    timeout_s = 3.0
    config = _config(tiny_model_dir, decoder={"timeout_s": timeout_s})
    with NginxRtmp(tmp_path / "nginx") as server:
        url = f"{server.base}/cam"
        publisher = publish_rtmp(url, 20, 10, start_when=lambda: server.played("cam"))
        run = _run([url], config, tmp_path / "out", tiny_embedder, events=str(tmp_path / "events.jsonl"))
        publisher.join(5)
    (result,) = run.results
    live = _summary(tmp_path / "out" / result.name)["live"]
    assert live["ended_by"] == "error" and "timeout" in live["error"]
    assert list(result.times_s) == [0.0, 0.5, 1.0, 1.5]
    frames = pd.read_csv(tmp_path / "out" / result.name / "frames.csv")
    last_frame = pd.to_datetime(frames["wall_time"].iloc[-1])
    ended = pd.to_datetime(_events(tmp_path / "events.jsonl")[-1]["emitted_at"])
    assert (ended - last_frame).total_seconds() < timeout_s + 3.0


# ---------------------------------------------------------------------- not here

@pytest.mark.expect_errors
def test_srt_and_a_missing_camera_fail_in_one_line_each(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["run", "srt://127.0.0.1:9000", "/dev/video9", "-m", str(tiny_model_dir),
                                      "--labels", "red,blue", "--device", "cpu", "--no-store",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    srt = [line for line in lines if "srt://" in line]
    camera = [line for line in lines if "/dev/video9" in line]
    assert srt and camera, result.stderr
    assert all(line.startswith("scenetag: error: ") for line in srt + camera)
    assert "no srt protocol" in srt[0] and "no such camera: /dev/video9" in camera[0]
