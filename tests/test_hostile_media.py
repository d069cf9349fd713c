"""Media that lies or is built to make the tool work hard: nothing sized from
claimed metadata, and thumbnail work bounded on a video with one keyframe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import media
import numpy as np
import pytest
from tiny_model import tiny_config

import pipeline.decode.pyav as pyav
from pipeline.decode import read_frames_at
from pipeline.report import html, plot
from pipeline.types import LabelTrack, Sampling, Segment, VideoInfo, VideoResult

ROOT = Path(__file__).resolve().parents[1]
CLAIMED_MS = 1e14  # 1e11 s, about 3,170 years
MAX_RSS_BYTES = 1.5 * 2**30

# Runs the CLI and reports its own peak memory. VmHWM, not ru_maxrss: ru_maxrss
# survives exec, so a child forked from a big pytest process reports the
# parent's size; VmHWM belongs to the new address space only.
_MEASURED_CLI = """
import re, sys
from pipeline.cli import main
try:
    main()
finally:
    status = open("/proc/self/status").read()
    print("MAXRSS_KIB", re.search(r"VmHWM:\\s*(\\d+)", status).group(1), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def liar(tmp_path_factory) -> str:
    return media.make_lying_duration_mkv(tmp_path_factory.mktemp("liar") / "liar.mkv", claimed_ms=CLAIMED_MS)


def test_lying_duration_is_what_probe_reports(liar):
    assert pyav.probe(liar).duration_s == pytest.approx(CLAIMED_MS / 1000)


def test_run_on_a_lying_duration_is_small_and_warns(liar, tmp_path, tiny_model_dir):
    cfg = tiny_config(tmp_path, tiny_model_dir, "labels: [{name: cat}, {name: dog}]\n"
                      "segments: {threshold: 0.3, min_duration_s: 0, merge_gap_s: 0}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", _MEASURED_CLI, "run", liar, "-c", str(cfg), "-o", str(out), "-q",
           "--no-store", "--every-seconds", "0.5", "--formats", "csv,plot,json,html,vtt,edl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rss_kib = int(proc.stderr.rsplit("MAXRSS_KIB", 1)[1].split()[0])
    assert rss_kib * 1024 < MAX_RSS_BYTES, f"peak memory {rss_kib / 2**20:.2f} GiB"
    page = out / "liar" / "report.html"
    assert page.stat().st_size < 200_000, page.stat().st_size
    assert page.read_text("utf-8").count('class="tick"') <= 2 * 12  # a line and a label per tick
    summary = json.loads((out / "liar" / "summary.json").read_text("utf-8"))
    notes = summary["decode"]["notes"]
    assert any("claims a duration" in n and "ignored" in n for n in notes), notes
    assert not any("truncated" in n for n in notes), notes


def _result(times: list[float], duration_s: float | None) -> VideoResult:
    t = np.asarray(times, np.float64)
    score = np.linspace(0.1, 0.9, len(t))
    info = VideoInfo(path="x.mp4", container="matroska", codec="h264", width=64, height=48,
                     duration_s=duration_s, avg_fps=25.0, frame_count=None)
    return VideoResult(input_path="x.mp4", name="x", info=info, sampling=Sampling(every_seconds=0.5),
                       frame_indices=np.arange(len(t)), times_s=t,
                       tracks=[LabelTrack("cat", "tag", score, score, 0.5, 0.5)],
                       segments=[Segment("cat", "tag", 1.0, 2.0, 0.9, 0.8)])


@pytest.mark.parametrize("claimed", [1e11, 1e300, float("inf"), float("nan"), -5.0])
def test_time_axes_come_from_the_decoded_frames(claimed, tmp_path):
    result = _result([0.0, 0.5, 1.0, 1.5, 2.0], claimed)
    end = html._end_time(result, np.asarray(result.times_s))
    assert 2.0 <= end <= 3.0
    assert len(html._axis(end, 100.0)) <= 12
    assert 2.0 <= plot._x_end(result, np.asarray(result.times_s)) <= 3.0
    plot.write_timeline_png(result, tmp_path)  # draws, quickly, without a giant axis


def test_a_true_duration_a_little_past_the_last_sample_is_kept():
    result = _result([0.0, 0.5, 1.0, 1.5, 2.0], 2.4)
    assert html._end_time(result, np.asarray(result.times_s)) == pytest.approx(2.4)
    assert plot._x_end(result, np.asarray(result.times_s)) == pytest.approx(2.4)


def test_axis_ticks_are_capped_whatever_the_extent():
    for end in (0.3, 7.0, 100.0, 5000.0, 1e7, 1e11):
        ticks = html._axis(end, 100.0)
        assert 1 <= len(ticks) <= 12, (end, len(ticks))


# --------------------------------------------------------------------------- thumbnail work


def test_thumbnails_on_a_single_keyframe_video_decode_it_about_once(tmp_path, monkeypatch):
    """Before: each time sought back to the only keyframe and decoded from the
    start (50 times x ~500 frames on average here)."""
    fps, seconds = 25, 40
    path = media.make_clip(tmp_path / "onekey.mkv", seconds=seconds, fps=fps, gop=100_000)
    decoded = []
    real = pyav._decoded_frames

    def counting(*args, **kw):
        for vf in real(*args, **kw):
            decoded.append(vf.pts)
            yield vf

    monkeypatch.setattr(pyav, "_decoded_frames", counting)
    times = [0.37 + 0.78 * k for k in range(50)][::-1]  # any order
    frames = read_frames_at(path, times, short_side=24)
    assert len(decoded) <= 1.1 * fps * seconds, len(decoded)
    for t, f in zip(times, frames, strict=True):
        assert f.pts_s >= t - 1e-6 and f.pts_s < t + 1 / fps + 1e-6  # the frame at (or just after) t
        assert media.read_index(f.image) == f.index == round(f.pts_s * fps)
