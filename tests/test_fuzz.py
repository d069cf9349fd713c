"""Bounded fuzzing: byte-mutated copies of small clips, all in ONE CLI
subprocess run, so a crash in FFmpeg (segfault, abort) shows as an exit code
other than 0/1 and a hang as a subprocess timeout.

``SCENETAG_FUZZ_COUNT`` sets how many mutants (default 20; ``make fuzz``
uses 300); ``SCENETAG_FUZZ_SEED`` the seed (default 1234).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media import make_clip
from tiny_model import tiny_config

ROOT = Path(__file__).parent.parent
COUNT = int(os.environ.get("SCENETAG_FUZZ_COUNT", "20"))
SEED = int(os.environ.get("SCENETAG_FUZZ_SEED", "1234"))


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random mutations: bit flips, random overwrites, a
    truncation, a deleted or duplicated span, or zeroed bytes."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        n = len(buf)
        if n < 16:
            break
        kind = rng.integers(6)
        pos = int(rng.integers(n))
        span = int(rng.integers(1, max(2, n // 20)))
        if kind == 0:  # flip a few bits
            for p in rng.integers(0, n, int(rng.integers(1, 16))):
                buf[p] ^= 1 << int(rng.integers(8))
        elif kind == 1:  # overwrite a span with noise
            buf[pos:pos + span] = rng.integers(0, 256, len(buf[pos:pos + span]), dtype=np.uint8).tobytes()
        elif kind == 2:  # truncate
            del buf[max(1, pos):]
        elif kind == 3:  # delete a span
            del buf[pos:pos + span]
        elif kind == 4:  # duplicate a span in place
            buf[pos:pos] = buf[pos:pos + span]
        else:  # zero a span
            buf[pos:pos + span] = bytes(len(buf[pos:pos + span]))
    return bytes(buf)


@pytest.fixture(scope="module")
def mutants(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    sources = [
        make_clip(folder / "src.mp4", seconds=2, fps=10, size=(64, 48), gop=5),
        make_clip(folder / "src.mkv", seconds=2, fps=10, size=(64, 48), gop=5),
        make_clip(folder / "src.avi", seconds=2, fps=10, size=(64, 48), codec="mpeg4"),
    ]
    rng = np.random.default_rng(SEED)
    out = folder / "mutants"
    out.mkdir()
    paths = []
    for i in range(COUNT):
        src = Path(sources[i % len(sources)])
        path = out / f"mutant-{i:04d}{src.suffix}"
        path.write_bytes(mutate(src.read_bytes(), rng))
        paths.append(path)
    return paths


@pytest.mark.expect_errors
def test_mutants_end_ok_or_clean_error(mutants, tmp_path, tiny_model_dir):
    cfg = tiny_config(tmp_path, tiny_model_dir, "labels: [{name: cat}, {name: dog}]\n")
    out = tmp_path / "out"
    listing = tmp_path / "inputs.txt"  # keeps argv short at 300 mutants
    listing.write_text("\n".join(map(str, mutants)) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(listing), "-c", str(cfg), "-o", str(out),
           "-q", "--every-seconds", "0.5", "--formats", "csv,json", "--timeout", "20"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              timeout=120 + 2 * COUNT)
    except subprocess.TimeoutExpired as ex:
        pytest.fail(f"the run hung on fuzzed inputs (seed {SEED}): {ex}")
    assert proc.returncode in (0, 1), \
        f"crash, exit {proc.returncode} (seed {SEED}): {proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert sorted(index["input"]) == sorted(map(str, mutants))
    assert set(index["status"]) <= {"ok", "error"}
    for row in index.to_dict("records"):
        summary = json.loads((out / row["name"] / "summary.json").read_text("utf-8"))
        assert summary["status"] == row["status"]
        if row["status"] == "error":
            assert row["error"] and "\n" not in row["error"]
            continue
        frames = pd.read_csv(out / row["name"] / "frames.csv")
        times = frames["time_s"].to_numpy()  # sampled and edge refinement frames, in frame order
        assert len(frames[frames["refine"] == 0]) == summary["frames_scored"] > 0, row
        assert np.all(np.diff(times) > 0) and times[0] >= 0, (row["input"], times)
    errors = index[index["status"] == "error"]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("scenetag: error:")]
    assert len(lines) == len(errors)
