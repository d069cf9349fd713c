"""A full disk during a live run (issue 27, item 6): the stream whose writes
find no room ends as ``error: disk full``, its tables keep their whole rows
(never half a row), its summary.json says so, the run's index is written,
the other streams go on, the exit code is "some inputs failed" (1), and the
space reserve that made room for the last writes is gone.

The disk fills two ways: ``os.write`` of the outputs module made to run out
of room after so many bytes (a short write, then ENOSPC, as a kernel does),
and, where this machine lets a test mount one (root), a real tmpfs of a few
pages beyond the reserve."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from live_servers import TcpStream, alternating_config

from pipeline.live import outputs
from pipeline.live.session import LiveOptions
from pipeline.run.job import RunOptions, run_job

STEP = 0.5
RESERVE_GLOB = ".scenetag-reserve-*"


def _config(model_dir, formats=("csv", "plot", "json")):
    return alternating_config(model_dir, formats, STEP)


def _run(inputs, config, out, embedder):
    options = RunOptions(progress=False, use_store=False,
                         live=LiveOptions(force=True, flush_every_s=0.5, handle_signals=False))
    return run_job(inputs, config, out, options, embedder=embedder)


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class _FillingDisk:
    """``os`` as the outputs module sees it, with a disk that takes
    ``room`` more bytes of appends to files under ``under`` (every file:
    None): the write that crosses the line writes what fits and returns
    short; the next one raises ENOSPC."""

    def __init__(self, room: int, under: Path | None = None):
        self.room, self.under = room, under
        self.refused = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd: int, data) -> int:
        if self.under is not None and not _path_of(fd).startswith(str(self.under)):
            return os.write(fd, data)
        if self.room <= 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fits = bytes(data[:self.room])
        self.room -= len(fits)
        return os.write(fd, fits)


def _assert_whole_rows(folder: Path) -> pd.DataFrame:
    """frames.csv and events.jsonl as a full disk leaves them: whole rows only."""
    raw = (folder / "frames.csv").read_bytes()
    assert raw.endswith(b"\r\n")
    frames = pd.read_csv(folder / "frames.csv")
    assert not frames.isna().any().any()  # no row cut short
    assert list(frames["frame_index"]) == sorted(frames["frame_index"])
    assert len(frames.columns) == 3 + 2 * 2
    lines = (folder / "events.jsonl").read_text("utf-8")
    assert lines == "" or lines.endswith("\n")
    for line in lines.splitlines():
        json.loads(line)
    segments = folder / "segments.csv"
    if segments.is_file():
        assert not pd.read_csv(segments).isna().drop(columns=["start_frame", "end_frame"],
                                                     errors="ignore").any().any()
    return frames


def _assert_disk_full_end(out: Path, name: str) -> dict:
    summary = json.loads((out / name / "summary.json").read_text("utf-8"))
    assert summary["status"] == "error" and summary["error"].startswith(f"disk full ({name}/")
    live = summary["live"]
    assert live["state"] == "ended" and live["ended_by"] == "error"
    assert live["error"] == summary["error"]
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    row = index[index["name"] == name]
    assert list(row["status"]) == ["error"] and row["error"].iloc[0] == summary["error"]
    assert not list(out.glob(RESERVE_GLOB))  # the reserve is gone
    return summary


@pytest.mark.expect_errors
def test_a_full_disk_ends_the_stream_as_disk_full_with_whole_rows(tmp_path, ts_clip, tiny_model_dir,
                                                                  tiny_embedder, monkeypatch, caplog):
    disk = _FillingDisk(room=900)  # the headers, the first events and a few rows, then half a row
    monkeypatch.setattr(outputs, "os", disk, raising=False)
    run = _run([str(ts_clip)], _config(tiny_model_dir), tmp_path, tiny_embedder)
    (result,) = run.results
    assert disk.refused >= 1  # the disk did fill
    assert run.exit_code == 1  # some input failed: not a usage error
    assert result.status == "error" and result.error.startswith("disk full (alt/")
    _assert_disk_full_end(tmp_path, "alt")
    frames = _assert_whole_rows(tmp_path / "alt")
    assert 1 <= len(frames) < 16  # the rows written before the disk filled are kept
    said = [r for r in caplog.records if "disk full" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.ERROR and str(ts_clip) in said[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.INFO)


@pytest.mark.expect_errors
def test_the_other_streams_of_the_run_go_on(tmp_path, ts_clip, tiny_model_dir, tiny_embedder, monkeypatch):
    other = tmp_path / "other.ts"
    shutil.copy(ts_clip, other)
    out = tmp_path / "out"
    disk = _FillingDisk(room=700, under=out / "alt")  # only alt's folder is out of room
    monkeypatch.setattr(outputs, "os", disk, raising=False)
    run = _run([str(ts_clip), str(other)], _config(tiny_model_dir), out, tiny_embedder)
    by_name = {r.name: r for r in run.results}
    assert by_name["alt"].status == "error" and by_name["other"].status == "ok"
    assert run.exit_code == 1
    _assert_disk_full_end(out, "alt")
    _assert_whole_rows(out / "alt")
    assert len(pd.read_csv(out / "other" / "frames.csv")) == 16  # every row of the one with room
    summary = json.loads((out / "other" / "summary.json").read_text("utf-8"))
    assert summary["status"] == "ok" and summary["live"]["ended_by"] == "eof"


def test_no_reserve_is_left_after_a_normal_end_or_a_killed_run(tmp_path, ts_clip, tiny_model_dir,
                                                               tiny_embedder):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / f".scenetag-reserve-{dead}").write_bytes(b"\0" * 4096)  # a killed run's
    run = _run([str(ts_clip)], _config(tiny_model_dir), tmp_path, tiny_embedder)
    assert run.exit_code == 0
    assert not list(tmp_path.glob(RESERVE_GLOB))
    assert sorted(p.name for p in (tmp_path / "alt").iterdir()) == \
        ["events.jsonl", "frames.csv", "segments.csv", "summary.json", "timeline.png"]


def test_the_reserve_really_holds_its_room_and_gives_it_back(tmp_path):
    from pipeline.live.reserve import INDEX_SHARE, STREAM_SHARE, SpaceReserve

    reserve = SpaceReserve(tmp_path)
    reserve.add("a")
    reserve.add("b")
    held = reserve.path.stat()
    assert held.st_size == INDEX_SHARE + 2 * STREAM_SHARE
    assert held.st_blocks * 512 >= held.st_size  # allocated, not a sparse file
    reserve.need("a", STREAM_SHARE)  # a summary half the share grows it to twice its size
    assert reserve.path.stat().st_size == INDEX_SHARE + 3 * STREAM_SHARE
    reserve.release("a")
    assert reserve.path.stat().st_size == INDEX_SHARE + STREAM_SHARE
    (tmp_path / f".scenetag-reserve-{os.getppid()}").write_bytes(b"")  # a running process's: kept
    reserve.close()
    assert [p.name for p in tmp_path.glob(RESERVE_GLOB)] == [f".scenetag-reserve-{os.getppid()}"]


@pytest.mark.expect_errors
def test_the_cli_says_disk_full_in_one_line_and_exits_1(tmp_path, ts_clip, tiny_model_dir, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setattr(outputs, "os", _FillingDisk(room=900), raising=False)
    result = CliRunner().invoke(app, ["run", str(ts_clip), "--live", "-m", str(tiny_model_dir),
                                      "--labels", "red,blue", "--device", "cpu", "--precision", "fp32",
                                      "--every-seconds", "0.5", "--formats", "csv,json", "--no-store",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if "disk full" in line]
    assert len(said) == 1 and str(ts_clip) in said[0] and "alt/" in said[0], result.stderr
    _assert_disk_full_end(tmp_path, "alt")
    _assert_whole_rows(tmp_path / "alt")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real tmpfs (skipped where a mount is not allowed: not root, a CI
    container without CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill_when_rows(disk: Path, table: Path, rows: int, done: threading.Event) -> None:
    """Once ``table`` has ``rows`` rows, take every free byte of ``disk``."""
    while not done.is_set():
        if table.is_file() and len(table.read_bytes().splitlines()) > rows:
            break
        time.sleep(0.02)
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for _ in range(50):  # until nothing is free (tmpfs counts in pages)
            st = os.statvfs(disk)
            free = st.f_bavail * st.f_frsize
            if free == 0:
                break
            with contextlib.suppress(OSError):
                os.posix_fallocate(fd, os.fstat(fd).st_size, free)
    finally:
        os.close(fd)
        done.set()


@pytest.mark.expect_errors
def test_a_real_full_disk(tiny_disk, tiny_model_dir, tiny_embedder, caplog):
    out = tiny_disk / "out"
    done = threading.Event()
    with TcpStream(frames=60, fps=10) as server:  # 6 s, in real time
        name = f"127.0.0.1-{server.port}"
        filler = threading.Thread(target=_fill_when_rows,
                                  args=(tiny_disk, out / name / "frames.csv", 2, done))
        filler.start()
        try:
            run = _run([server.url], _config(tiny_model_dir, formats=("csv", "json")), out, tiny_embedder)
        finally:
            done.set()
            filler.join()
    (result,) = run.results
    assert run.exit_code == 1 and result.status == "error", result.error
    _assert_disk_full_end(out, name)
    frames = _assert_whole_rows(out / name)
    assert 2 <= len(frames) < 12
    said = [r for r in caplog.records if "disk full" in r.getMessage()]
    assert len(said) == 1 and server.url in said[0].getMessage()
