"""Hostile and unusual inputs: one real CLI run over the whole corpus
(tests/corpus.py), then one check per kind.

The run is a subprocess, so what reaches the user's terminal is exactly what
is checked (one ``scenetag: error:`` line per failed input, no traceback, no
library noise) and an interpreter crash shows as an exit code other than 1.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from corpus import ERROR, KINDS, OK, Case, build_corpus, cli_inputs, make_corrupted, make_damaged_frame
from media import is_upright, make_clip
from tiny_model import tiny_config

from pipeline.decode import open_decoder, select_indices
from pipeline.types import Sampling

ROOT = Path(__file__).parent.parent
EVERY_S = 0.5


def write_config(folder: Path, model_dir: Path, extra: str = "") -> Path:
    return tiny_config(folder, model_dir,
                       f"sampling: {{every_seconds: {EVERY_S}}}\n"
                       "labels: [{name: cat}, {name: dog}, {name: car}]\n"
                       "smoothing: {method: median, window_s: 1.0}\n" + extra)


class HostileRun:
    def __init__(self, cases: dict[str, Case], out: Path, proc: subprocess.CompletedProcess):
        self.cases, self.out, self.proc = cases, out, proc
        index = pd.read_csv(out / "index.csv", keep_default_na=False)
        self.index = {row["input"]: row for row in index.to_dict("records")}

    def row(self, case: Case) -> dict:
        return self.index[case.path]

    def summary(self, case: Case) -> dict:
        return json.loads((self.out / self.row(case)["name"] / "summary.json").read_text("utf-8"))

    def frames(self, case: Case) -> pd.DataFrame:
        return pd.read_csv(self.out / self.row(case)["name"] / "frames.csv")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_model_dir) -> HostileRun:
    base = tmp_path_factory.mktemp("hostile")
    cases = build_corpus(base / "corpus")
    out = base / "reports"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", *cli_inputs(cases),
           "-c", str(write_config(base, tiny_model_dir)), "-o", str(out), "-q",
           "--every-seconds", str(EVERY_S), "--formats", "csv,json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert (out / "index.csv").is_file(), f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    return HostileRun(cases, out, proc)


def test_run_exit_code_and_stderr(hostile):
    proc = hostile.proc
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("scenetag: error: ") for ln in lines), lines
    failed = [c for c in hostile.cases.values() if c.skip is None and c.expect == ERROR]
    for case in failed:
        mentions = [ln for ln in lines if case.path in ln]
        assert len(mentions) == 1, (case.kind, mentions)
    assert len(lines) == len(failed), lines


def test_every_input_has_one_index_row(hostile):
    index = pd.read_csv(hostile.out / "index.csv")
    expected = cli_inputs(hostile.cases)
    assert sorted(index["input"]) == sorted(expected)
    assert index["name"].dropna().is_unique


@pytest.mark.parametrize("kind", list(KINDS))
def test_kind(hostile, kind):
    case = hostile.cases[kind]
    if case.skip:
        pytest.skip(case.skip)
    row = hostile.row(case)
    assert row["status"] == case.expect, (kind, row["error"])
    if case.expect == ERROR:
        _check_error(hostile, case, row)
    else:
        _check_ok(hostile, case)


def _check_error(hostile: HostileRun, case: Case, row: dict) -> None:
    error = row["error"]
    assert error and "\n" not in error and "Traceback" not in error
    if case.error_hint:
        assert case.error_hint in error.lower(), error
    if row["name"]:  # inputs that exist as files get a summary.json too
        summary = hostile.summary(case)
        assert summary["status"] == "error" and summary["error"] == error
        assert not (hostile.out / row["name"] / "frames.csv").exists()


def _check_ok(hostile: HostileRun, case: Case) -> None:
    summary = hostile.summary(case)
    assert summary["status"] == "ok" and summary["error"] is None
    name = hostile.row(case)["name"]
    folder = (hostile.out / name).resolve()
    assert folder.parent == hostile.out.resolve() and name not in (".", "..", "")
    frames = hostile.frames(case)
    times = frames["time_s"].to_numpy()  # sampled and edge refinement frames, in frame order
    assert len(frames[frames["refine"] == 0]) == summary["frames_scored"] > 0
    assert np.all(np.diff(times) > 0), times
    assert times[0] >= 0 and times[-1] <= case.duration_s + 1e-3, times
    if not case.damaged and case.pts_s is None:
        _check_cfr_times(times, summary["video"])
    if case.displayed:
        assert (summary["video"]["width"], summary["video"]["height"]) == case.displayed
    if case.rotation:
        assert summary["video"]["rotation"] == case.rotation
    if case.pts_s is not None:
        expected = [case.pts_s[i] for i in select_indices(Sampling(every_seconds=EVERY_S), case.pts_s)]
        assert list(times) == pytest.approx(expected, abs=1e-3)
    if case.damaged:
        decode = summary["decode"]
        assert decode["corrupt_packets"] > 0 or decode["notes"], decode
    check = EXTRA_CHECKS.get(case.kind)
    if check:
        check(hostile, case, summary, times)


def _check_cfr_times(times: np.ndarray, video: dict) -> None:
    """Every frame an exact decode would pick got a frame, starting at 0.

    The default (auto) strategy may skip non-reference frames, so a kept
    frame may come a little after the exact pick, never before it.
    """
    frame_times = np.arange(video["frame_count"]) / video["avg_fps"]
    exact = frame_times[select_indices(Sampling(every_seconds=EVERY_S), frame_times)]
    assert times[0] == pytest.approx(0, abs=1e-3)
    assert len(times) == len(exact), (times, exact)
    assert np.all(times >= exact - 1e-3) and np.all(times < exact + EVERY_S), (times, exact)


def _rotated_frames_upright(hostile, case, summary, times):
    with open_decoder(case.path, strategy="exact") as dec:
        frames = list(dec.frames(Sampling(every_seconds=EVERY_S)))
    assert frames and all(is_upright(f.image) for f in frames)
    assert frames[0].image.shape[:2] == (48, 64)


def _corrupted_keeps_both_sides(hostile, case, summary, times):
    assert times[0] == pytest.approx(0, abs=1e-3)
    assert times[-1] > 2.5, f"nothing decoded after the damage: {times}"
    assert any("corrupt" in n for n in summary["decode"]["notes"]), summary["decode"]


def _start_offset_relative(hostile, case, summary, times):
    assert summary["video"]["start_time_s"] > 0  # MPEG-TS clock starts at 1.4 s
    assert len(times) == 4 and times[0] == 0.0
    # true frame times (10 fps) relative to the stream start, not the TS clock
    assert np.allclose(times * 10, np.round(times * 10), atol=1e-2), times


def _huge_resized(hostile, case, summary, times):
    with open_decoder(case.path, short_side=32) as dec:
        frame = next(iter(dec.frames(Sampling(every_seconds=EVERY_S))))
    assert frame.image.shape == (32, 57, 3)


def _long_all_frames(hostile, case, summary, times):
    assert len(times) == 1200 and summary["decode"]["frames_decoded"] == 1200


def _duplicate_kept_apart(hostile, case, summary, times):
    first = hostile.index[case.also[0]]
    assert first["status"] == OK and first["name"] != hostile.row(case)["name"]
    assert hostile.summary(case)["input"] == case.path


EXTRA_CHECKS = {
    "rotated": _rotated_frames_upright,
    "corrupted": _corrupted_keeps_both_sides,
    "start_offset": _start_offset_relative,
    "huge_8k": _huge_resized,
    "long": _long_all_frames,
    "duplicate_name": _duplicate_kept_apart,
}


# --------------------------------------------------------------------------- damage on every decode

DECODES = 60


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Case]:
    folder = tmp_path_factory.mktemp("damaged")
    return {case.kind: case for case in (make_corrupted(folder), make_damaged_frame(folder))}


@pytest.mark.parametrize("kind, threads, strategy", [
    ("corrupted", "frame", "auto"), ("corrupted", "slice", "auto"),
    ("damaged_frame", "frame", "exact"),  # fast skips the non-reference B-frame the damage is in
])
def test_damage_is_reported_alike_on_every_decode(damaged, kind, threads, strategy):
    """FFmpeg's corrupt flag alone told 59 of 60 frame-threaded decodes of
    corrupted, none slice-threaded (its demuxer also loses 43 frames there),
    and 46 of 60 of damaged_frame. Every decode must report the damage with
    the same count and notes, keep the same frames (a concealed frame was
    dropped only when its racy flag was set: 99 or 100 decoded), and give
    the frames past the damage their true index."""
    reports = []
    for _ in range(DECODES):
        with open_decoder(damaged[kind].path, threads=threads, strategy=strategy) as dec:
            frames = list(dec.frames(Sampling(every_seconds=EVERY_S)))
        stats = dec.stats
        reports.append((stats.corrupt_packets, tuple(stats.notes), stats.frames_decoded,
                        tuple(f.index for f in frames)))
        assert [f.index for f in frames] == [round(f.pts_s * 25) for f in frames]  # both are 25 fps
    told = [count > 0 and any("corrupt" in n for n in notes) for count, notes, *_ in reports]
    assert sum(told) == DECODES
    assert len(set(reports)) == 1, Counter(report[:3] for report in reports)


def test_damage_leaves_no_ffmpeg_line_outside_debug(damaged, caplog, capfd):
    """FFmpeg's lines are heard only while a pass decodes, and then reach
    Python's logging at debug level alone (the CLI shows them only under
    --debug): nothing on stderr, PyAV's silence restored after the pass."""
    import av.logging

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="libav")  # PyAV sets WARNING on import
    for case in damaged.values():
        with open_decoder(case.path, strategy="exact") as dec:
            list(dec.frames(Sampling(every_seconds=EVERY_S)))
        assert dec.stats.corrupt_packets > 0
    ffmpeg = [r for r in caplog.records if r.name.startswith("libav")]
    assert ffmpeg and all(r.levelno == logging.DEBUG for r in ffmpeg), [(r.name, r.levelname) for r in ffmpeg]
    assert capfd.readouterr().err == ""
    assert av.logging.get_level() is None


# --------------------------------------------------------------------------- memory


def test_long_video_memory_is_flat(tmp_path):
    """20 minutes at 1 fps, every frame kept at 224 px: holding them would
    take 180 MB; streaming keeps the peak of Python/numpy memory tiny."""
    import tracemalloc

    from pipeline.engine.base import decode_input

    path = make_clip(tmp_path / "long.mp4", seconds=1200, fps=1, size=(32, 32), pattern="solid")
    seen = []
    opener = lambda p: open_decoder(p, short_side=224, strategy="exact")  # noqa: E731
    tracemalloc.start()
    try:
        result = decode_input(path, opener, Sampling(every_seconds=1.0), 8,
                              lambda batch: seen.append(len(batch)) or True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error is None and sum(seen) == 1200
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB"


# --------------------------------------------------------------------------- stall timeout


class _StallingDecoder:
    """Wraps a real decoder; for inputs named ``stall*`` frames() hangs."""

    release = threading.Event()

    def __init__(self, real):
        self.real = real

    def __enter__(self):
        self.real.__enter__()
        return self

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)

    @property
    def info(self):
        return self.real.info

    @property
    def stats(self):
        return self.real.stats

    def frames(self, sampling):
        if Path(self.real.path).name.startswith("stall"):
            self.release.wait(60)  # a decoder stuck inside the library
        yield from self.real.frames(sampling)


@pytest.mark.expect_errors
def test_stalled_decode_is_cut_off_and_next_inputs_run(tmp_path, tiny_model_dir, tiny_embedder,
                                                       monkeypatch):
    import pipeline.run.job as run_mod
    from pipeline.config import load_config

    real_open = run_mod.open_decoder
    monkeypatch.setattr(run_mod, "open_decoder",
                        lambda path, **kw: _StallingDecoder(real_open(path, **kw)))
    paths = [make_clip(tmp_path / n, seconds=1, fps=10) for n in ("a.mp4", "stall.mp4", "b.mp4")]
    cfg = load_config(write_config(tmp_path, tiny_model_dir, "decoder: {timeout_s: 1.0}\n"))
    started = time.monotonic()
    try:
        report = run_mod.run_job(paths, cfg, tmp_path / "out",
                                 run_mod.RunOptions(progress=False), embedder=tiny_embedder)
    finally:
        _StallingDecoder.release.set()
    assert time.monotonic() - started < 30
    by_name = {r.name: r for r in report.results}
    assert by_name["a"].status == "ok" and by_name["b"].status == "ok"
    assert by_name["stall"].status == "error" and "timeout" in by_name["stall"].error
    assert report.exit_code == 1
    summary = json.loads((tmp_path / "out" / "stall" / "summary.json").read_text())
    assert summary["status"] == "error" and "stalled" in summary["error"]


# --------------------------------------------------------------------------- hostile names


def test_names_that_collide_or_overflow_never_cost_the_run(tmp_path, tiny_model_dir):
    """Inputs named like run-level files and a 60-character label of 4-byte
    characters (240 bytes) run through the real CLI: every input is ok, the
    index is a file, no file name is over 255 bytes, stderr is clean."""
    names = ["index.csv.mp4", "index.html.mp4", "Images.CSV.mp4", "ok.mp4"]
    clips = [make_clip(tmp_path / n, seconds=1, fps=10) for n in names]
    out = tmp_path / "out"
    label = "\U0001d49c" * 60
    cmd = [sys.executable, "-m", "pipeline.cli", "run", *clips, "-c",
           str(write_config(tmp_path, tiny_model_dir)), "-o", str(out), "-q", "--labels", f"{label},ok",
           "--formats", "csv,json,html,vtt,edl", "--top-frames", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip() == ""
    assert (out / "index.csv").is_file() and (out / "index.html").is_file()
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert sorted(index["input"]) == sorted(clips) and set(index["status"]) == {"ok"}
    assert all(len(p.name.encode()) <= 255 for p in out.rglob("*"))
    assert list(out.glob("*/top_frames/*.jpg"))
