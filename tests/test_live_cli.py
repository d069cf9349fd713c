"""``scenetag run`` on live input as a user runs it (a subprocess): a pipe
on stdin with events on stdout, and SIGINT / SIGTERM mid-stream leaving
complete, parseable outputs (exit 130 / 0)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from live_servers import TcpStream, write_ts

ROOT = Path(__file__).parent.parent


def _command(model_dir: Path, out: Path, *inputs: str, extra: tuple[str, ...] = (),
             formats: str = "csv,plot,json") -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "run", *inputs, "-m", str(model_dir),
            "--labels", "red,blue", "--device", "cpu", "--precision", "fp32", "--every-seconds", "0.5",
            "--formats", formats, "--no-store", "-o", str(out), *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def test_a_pipe_on_stdin_with_events_on_stdout(tmp_path, tiny_model_dir):
    clip = tmp_path / "clip.ts"
    with clip.open("wb") as out:
        write_ts(out, 30, 10, realtime=False)
    done = subprocess.run(_command(tiny_model_dir, tmp_path / "out", "-", extra=("--events", "-", "-q")),
                          input=clip.read_bytes(), capture_output=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert {e["stream"] for e in events} == {"stdin"} and {e["input"] for e in events} == {"-"}
    summary = json.loads((tmp_path / "out" / "stdin" / "summary.json").read_text("utf-8"))
    assert summary["status"] == "ok" and summary["live"]["ended_by"] == "eof"
    assert summary["frames_scored"] == 6 and summary["live"]["dropped_frames"] == 0


def _wait_for_rows(process: subprocess.Popen, *tables: Path, rows: int = 4) -> None:
    """Until every table has ``rows`` lines (header included), or the process ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if all(t.is_file() and len(t.read_text("utf-8").splitlines()) >= rows for t in tables):
            return
        time.sleep(0.1)


def _assert_complete(folder: Path) -> dict:
    """A stream's folder as a clean end leaves it: every file whole and
    parseable, every scored frame in frames.csv, every segment closed."""
    summary = json.loads((folder / "summary.json").read_text("utf-8"))
    assert summary["status"] == "ok" and summary["live"]["state"] == "ended"
    assert summary["live"]["ended_by"] == "stopped" and summary["live"]["open_segments"] == []
    table = pd.read_csv(folder / "frames.csv")
    assert len(table) == summary["frames_scored"] >= 3  # every scored frame has its row
    segments = pd.read_csv(folder / "segments.csv")
    assert len(segments) == len(summary["segments"])  # open segments were closed at the end
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text("utf-8").splitlines()]
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "stopped"
    return summary


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_signal_mid_stream_leaves_complete_outputs(tmp_path, tiny_model_dir, sig, code):
    out = tmp_path / "out"
    with TcpStream(lambda stream, n: write_ts(stream, 600, 10)) as server:
        name = f"127.0.0.1-{server.port}"
        process = subprocess.Popen(_command(tiny_model_dir, out, server.url,
                                            extra=("--flush-every", "0.5")),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        _wait_for_rows(process, out / name / "frames.csv")
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == code, stderr.decode()
    _assert_complete(out / name)
    assert pd.read_csv(out / "index.csv")["status"].tolist() == ["ok"]
    assert b"Traceback" not in stderr


def test_sigint_ends_every_stream_of_a_run_cleanly(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    endless = lambda stream, n: write_ts(stream, 600, 10)  # noqa: E731
    with TcpStream(endless) as one, TcpStream(endless) as two, TcpStream(endless) as three:
        servers = (one, two, three)
        names = [f"127.0.0.1-{s.port}" for s in servers]
        process = subprocess.Popen(_command(tiny_model_dir, out, *(s.url for s in servers),
                                            extra=("--flush-every", "0.5"),
                                            formats="csv,plot,json,html,vtt,edl"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        _wait_for_rows(process, *(out / n / "frames.csv" for n in names))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    for name in names:
        summary = _assert_complete(out / name)
        exported = json.loads((out / name / "segments.json").read_text("utf-8"))
        assert len(exported["segments"]) == len(summary["segments"])
        assert (out / name / "tags.vtt").read_text("utf-8").startswith("WEBVTT")
        assert "TITLE:" in (out / name / "markers.edl").read_text("utf-8")
        assert (out / name / "report.html").stat().st_size > 0
    index = pd.read_csv(out / "index.csv")
    assert index["status"].tolist() == ["ok"] * 3 and (out / "index.html").is_file()
    assert b"Traceback" not in stderr


def test_a_second_ctrl_c_finishes_the_outputs_without_waiting(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    # an --events-url endpoint that takes connections and never answers: the
    # first Ctrl-C's shutdown waits for it (up to 10 s); the second must not
    with socket.create_server(("127.0.0.1", 0)) as hook, \
            TcpStream(lambda stream, n: write_ts(stream, 600, 10)) as server:
        name = f"127.0.0.1-{server.port}"
        process = subprocess.Popen(_command(tiny_model_dir, out, server.url, extra=(
            "--flush-every", "0.5", "--events-url", f"http://127.0.0.1:{hook.getsockname()[1]}/hook")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        _wait_for_rows(process, out / name / "frames.csv")
        process.send_signal(signal.SIGINT)
        time.sleep(1.5)
        assert process.poll() is None  # still waiting for the endpoint
        process.send_signal(signal.SIGINT)
        second = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - second
    assert process.returncode == 130, stderr.decode()
    assert took < 6, f"{took:.1f} s after the second Ctrl-C"  # the first alone waits ~10 s
    _assert_complete(out / name)
    assert pd.read_csv(out / "index.csv")["status"].tolist() == ["ok"]
    assert b"SIGINT again: finishing the outputs without waiting" in stderr
    assert b"Traceback" not in stderr


def test_events_on_stdout_cannot_share_it_with_json(tmp_path, tiny_model_dir):
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["run", "tcp://127.0.0.1:1", "-m", str(tiny_model_dir), "--labels",
                                      "a,b", "-o", str(tmp_path), "--events", "-", "--json"])
    assert result.exit_code == 2
    assert result.output.strip() == \
        "scenetag: error: --events -: stdout already carries --json; give --events a file"
