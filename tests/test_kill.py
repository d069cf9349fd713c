"""SIGKILL in the middle of a run leaves no half-written report, and
``--resume`` then finishes the job without redoing or duplicating anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from media import make_clip
from tiny_model import tiny_config

ROOT = Path(__file__).parent.parent
N_CLIPS = 6
PNG_END = b"IEND\xaeB`\x82"


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp-" in path.name


def check_complete_file(path: Path) -> None:
    """Raise if ``path`` is not a whole, parseable report file."""
    if path.suffix == ".json":
        json.loads(path.read_text("utf-8"))
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
        assert len(frame.columns) > 1, path
    elif path.suffix == ".png":
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and data.endswith(PNG_END), path


def finished(out: Path) -> list[Path]:
    """The summary.json of every input folder swapped into place (a folder
    being written is a hidden ``.NAME.tmp-*`` sibling until it is complete)."""
    return [p for p in out.glob("*/summary.json") if not p.parent.name.startswith(".")]


def check_no_partial_files(out: Path) -> list[Path]:
    """Every non-temporary file parses; returns the temporary leftovers."""
    temps = []
    for path in sorted(out.rglob("*")):
        if path.is_file():
            if _is_temp(path):
                temps.append(path)
            else:
                check_complete_file(path)
    return temps


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("kill-clips")
    return [make_clip(folder / f"clip{i}.mp4", seconds=20, fps=10, size=(64, 48), pattern="solid")
            for i in range(N_CLIPS)]


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path, tiny_model_dir, clips):
    cfg = tiny_config(tmp_path, tiny_model_dir, "labels: [{name: cat}, {name: dog}]\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", *clips, "-c", str(cfg), "-o", str(out),
           "-q", "--every-seconds", "0.5", "--batch-size", "8"]

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while not finished(out):
            assert proc.poll() is None, f"run ended before any output: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no summary.json after 120 s"
            time.sleep(0.01)
        still_running = proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        proc.stderr.close()
    assert still_running, "the run finished before it could be killed; make it longer"
    assert proc.returncode == -signal.SIGKILL

    check_no_partial_files(out)
    done = {p.parent.name: p.stat().st_mtime_ns for p in finished(out)}
    assert 1 <= len(done) < N_CLIPS

    resumed = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    check_no_partial_files(out)  # temporary leftovers of the killed run may remain
    index = pd.read_csv(out / "index.csv")
    assert len(index) == N_CLIPS and index["input"].is_unique and index["name"].is_unique
    assert sorted(index["input"]) == sorted(clips) and set(index["status"]) == {"ok"}
    for name in index["name"]:
        summary = json.loads((out / name / "summary.json").read_text("utf-8"))
        assert summary["status"] == "ok" and summary["frames_scored"] == 40
        frames = pd.read_csv(out / name / "frames.csv")
        assert frames["time_s"].is_unique
        assert len(frames[frames["refine"] == 0]) == 40  # the sampled ones (refinement adds edge frames)
    for name, mtime in done.items():  # finished before the kill: skipped, not redone
        assert (out / name / "summary.json").stat().st_mtime_ns == mtime, name
