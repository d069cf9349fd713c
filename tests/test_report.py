"""pipeline.report and pipeline.atomic: file formats, strict JSON, the
timeline image, and atomic writes."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import atomic, report
from pipeline.report import plot, tables
from pipeline.types import (
    DecodeStats,
    LabelTotals,
    LabelTrack,
    Sampling,
    Segment,
    VideoInfo,
    VideoResult,
)

COMMA_LABEL = "cats, indoors"


def make_result(n: int = 40, *, nsfw: bool = True, duration: float = 20.0, name: str = "clip") -> VideoResult:
    times = np.arange(n) * 0.5 + 0.25
    rng = np.random.default_rng(1)
    cat = np.clip(np.where((times > 4) & (times < 12), 0.85, 0.1) + rng.normal(0, 0.03, n), 0, 1)
    beach = np.clip(np.where(times > 15, 0.7, 0.05) + rng.normal(0, 0.03, n), 0, 1)
    tracks = [LabelTrack(COMMA_LABEL, "tag", cat, cat * 0.99, 0.5, 0.4),
              LabelTrack("beach", "tag", beach, beach, 0.5, 0.4)]
    segments = [Segment(COMMA_LABEL, "tag", 4.0, 12.0, 0.9, 0.8123456789),
                Segment("beach", "tag", 15.0, duration, 0.75, 0.7)]
    totals = [LabelTotals(COMMA_LABEL, "tag", 8.0, 0.4, 16, 0.9),
              LabelTotals("beach", "tag", 5.0, float("nan"), 10, 0.75)]
    if nsfw:
        gore = np.where((times > 7) & (times < 9), 0.9, 0.05)
        tracks.append(LabelTrack("gore", "nsfw", gore, gore, 0.7, 0.6))
        segments.append(Segment("gore", "nsfw", 7.0, 9.0, 0.9, 0.9))
        totals.append(LabelTotals("gore", "nsfw", 2.0, 0.1, 4, 0.9))
    info = VideoInfo(path=f"/in/{name}.mp4", container="mov,mp4", codec="h264", width=96, height=64,
                     duration_s=duration, avg_fps=10.0, frame_count=int(duration * 10), pix_fmt="yuv420p")
    return VideoResult(input_path=f"/in/{name}.mp4", name=name, info=info,
                       sampling=Sampling(every_seconds=0.5),
                       frame_indices=np.arange(n) * 5 + 2, times_s=times, tracks=tracks,
                       segments=segments, totals=totals, tags=[COMMA_LABEL, "beach"],
                       nsfw_verdict="unsafe" if nsfw else "n/a", model_id="tiny/clip",
                       model_revision=None, precision="fp32", config_hash="abc123",
                       wall_time_s=1.5, decode=DecodeStats(frames_decoded=200, frames_sampled=n))


def error_result() -> VideoResult:
    return VideoResult(input_path="/in/broken.mp4", name="broken", status="error",
                       error="cannot open /in/broken.mp4: invalid data")


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def strict_json(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp-" in p.name]


# --------------------------------------------------------------------------- CSV


def test_frames_csv(tmp_path):
    result = make_result()
    path = tables.write_frames_csv(result, tmp_path / "new" / "dir")
    rows = read_csv(path)
    assert rows[0] == ["frame_index", "time_s", f"score:{COMMA_LABEL}", f"smoothed:{COMMA_LABEL}",
                       "score:beach", "smoothed:beach", "score:gore", "smoothed:gore", "refine"]
    assert len(rows) == 1 + len(result.times_s)
    assert {row[-1] for row in rows[1:]} == {"0"}  # sampled frames only: no refinement in make_result
    assert rows[1][:2] == ["2", "0.25"]
    for row in rows[1:]:
        assert len(row[1].split(".")[-1]) <= 3
        assert all(len(cell.split(".")[-1]) <= 6 for cell in row[2:])
    assert float(rows[5][2]) == pytest.approx(result.tracks[0].raw[4], abs=1e-6)


def test_segments_csv(tmp_path):
    rows = read_csv(tables.write_segments_csv(make_result(), tmp_path))
    assert rows[0] == ["label", "kind", "start_s", "end_s", "duration_s", "peak", "mean",
                       "start_frame", "end_frame", "refined"]
    assert rows[1] == [COMMA_LABEL, "tag", "4.0", "12.0", "8.0", "0.9", "0.812346", "", "", "none"]
    assert [r[1] for r in rows[1:]] == ["tag", "tag", "nsfw"]


def test_segments_csv_without_segments_has_the_header(tmp_path):
    rows = read_csv(tables.write_segments_csv(VideoResult(input_path="x", name="x"), tmp_path))
    assert rows == [["label", "kind", "start_s", "end_s", "duration_s", "peak", "mean",
                     "start_frame", "end_frame", "refined"]]


def test_index_csv_has_one_row_per_result_including_errors(tmp_path):
    results = [make_result(name="a"), error_result(), make_result(nsfw=False, name="b")]
    rows = read_csv(tables.write_index_csv(results, tmp_path))
    assert rows[0] == ["name", "input", "status", "error", "duration_s", "frames_scored", "tags",
                       "nsfw_verdict", "notes"]
    assert len(rows) == 4
    assert rows[1] == ["a", "/in/a.mp4", "ok", "", "20.0", "40", f"{COMMA_LABEL}; beach", "unsafe", ""]
    assert rows[2] == ["broken", "/in/broken.mp4", "error", "cannot open /in/broken.mp4: invalid data",
                       "", "0", "", "n/a", ""]
    assert rows[3][-2:] == ["n/a", ""]


@pytest.mark.parametrize("notes, said", [
    (["stream ended at 23.90 s of 48.00 s (truncated?)"],
     "partial: decoded 23.90 s of the 48.00 s the container claims (truncated?)"),
    (["stopped reading early: Invalid data found when processing input"],
     "partial: reading stopped early (Invalid data found when processing input)"),
    (["warning: the container claims a duration of 1e+11 s but its video ends at 2.00 s; "
      "the claimed duration is ignored"], ""),  # a lying header: all of the video was read
    (["skipped 3 corrupt packets/frames"], ""),
])
def test_index_notes_say_when_an_input_was_decoded_only_in_part(tmp_path, notes, said):
    result = make_result()
    result.decode = DecodeStats(frames_decoded=200, frames_sampled=40, notes=notes)
    rows = read_csv(tables.write_index_csv([result], tmp_path))
    assert rows[1][2] == "ok" and rows[1][-1] == said


def image(path, scores, tags=(), verdict="n/a", nsfw=()):
    from pipeline.analysis.analyse import ImageResult

    kinds = {k: "nsfw" if k in nsfw else "tag" for k in scores}
    return ImageResult(path, scores, kinds, list(tags), verdict)


def test_images_csv(tmp_path):
    rows = [image("/in/lot.jpg", {"park": 0.0013, "parking lot": 0.9987, "gore": 0.1}, ["parking lot"],
                  "safe", nsfw=("gore",)),
            image("/in/park.png", {"park": 0.75, "parking lot": 0.25, "gore": 0.9}, ["park"], "unsafe",
                  nsfw=("gore",))]
    out = read_csv(tables.write_images_csv(rows, tmp_path))
    assert out[0] == ["input", "top_label", "top_score", "tags", "nsfw_verdict", "park", "parking lot",
                      "gore", "summary"]
    assert out[1] == ["/in/lot.jpg", "parking lot", "0.9987", "parking lot: 0.9987", "safe", "0.0013",
                      "0.9987", "0.1", "parking lot: 0.9987, park: 0.0013"]
    assert out[2][4] == "unsafe" and out[2][-1] == "park: 0.7500, parking lot: 0.2500"


# --------------------------------------------------------------------------- JSON


SUMMARY_KEYS = {"input", "name", "status", "error", "video", "sampling", "decode", "frames_scored",
                "model", "config_hash", "segments", "totals", "tags", "nsfw_verdict", "wall_time_s",
                "scenetag_version"}


def test_summary_json_is_strict_and_complete(tmp_path):
    path = tables.write_summary_json(make_result(), tmp_path, extra={"note": float("inf")})
    summary = strict_json(path.read_text(encoding="utf-8"))
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["note"] is None
    assert summary["video"]["codec"] == "h264" and summary["video"]["rotation"] == 0
    assert set(summary["video"]) == set(tables.VIDEO_FIELDS)
    assert summary["sampling"]["rule"] == "every 0.5 s" and summary["sampling"]["interval_s"] == 0.5
    assert summary["decode"]["frames_decoded"] == 200
    assert summary["frames_scored"] == 40
    assert summary["model"] == {"id": "tiny/clip", "family": None, "revision": None, "precision": "fp32",
                                "runtime": None, "auto": None}
    assert summary["totals"]["beach"]["fraction"] is None  # NaN → null
    assert summary["totals"][COMMA_LABEL] == {"kind": "tag", "seconds_present": 8.0, "fraction": 0.4,
                                              "frames_over_threshold": 16, "max_score": 0.9}
    assert summary["segments"][2] == {"label": "gore", "kind": "nsfw", "start_s": 7.0, "end_s": 9.0,
                                      "duration_s": 2.0, "peak": 0.9, "mean": 0.9,
                                      "start_frame": None, "end_frame": None, "refined": "none"}
    assert summary["refine"] is None  # make_result was not refined
    assert summary["nsfw_verdict"] == "unsafe"
    assert isinstance(summary["scenetag_version"], str) and summary["scenetag_version"]


def test_summary_of_an_error(tmp_path):
    summary = strict_json(tables.write_summary_json(error_result(), tmp_path).read_text("utf-8"))
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["status"] == "error" and summary["error"].startswith("cannot open")
    assert summary["video"] is None and summary["decode"] is None and summary["segments"] == []


def test_summary_dict_keeps_config_summary():
    assert tables.summary_dict(make_result(), {"threshold": 0.5})["config"] == {"threshold": 0.5}


# --------------------------------------------------------------------------- plot


def png_stats(path: Path) -> tuple[tuple[int, int], float]:
    from PIL import Image

    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    return (grey.shape[1], grey.shape[0]), float(grey.var())


@pytest.mark.parametrize("n,nsfw", [(40, True), (40, False), (1, False), (0, True)])
def test_timeline_png(tmp_path, n, nsfw):
    result = make_result(n=n, nsfw=nsfw)
    if n < 40:
        result.segments, result.totals, result.tags = [], [], []
    path = plot.write_timeline_png(result, tmp_path)
    assert path == tmp_path / "timeline.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (width, height), variance = png_stats(path)
    assert width > 600 and height > 200
    assert variance > 100.0  # lines, text and shading, not a blank canvas
    assert no_temp_files(tmp_path)


def test_timeline_nsfw_row_makes_a_taller_image(tmp_path):
    plain = plot.write_timeline_png(make_result(nsfw=False), tmp_path / "plain")
    both = plot.write_timeline_png(make_result(nsfw=True), tmp_path / "both")
    assert png_stats(both)[0][1] > png_stats(plain)[0][1]


def line_colours(fig) -> dict[str, str]:
    """Each labelled line's colour in a timeline figure, by label."""
    from matplotlib.colors import to_hex

    return {line.get_label(): to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_timeline_draws_nsfw_labels_in_their_own_colour_as_the_html_does():
    result = make_result(nsfw=True)
    gore = result.tracks[2]
    result.tracks.append(LabelTrack("blood", "nsfw", gore.raw, gore.smoothed, 0.7, 0.6))
    drawn = line_colours(plot.timeline_figure(result))
    assert drawn["gore"] == plot.NSFW_COLOUR
    tag_colours = {drawn[COMMA_LABEL], drawn["beach"]}
    assert drawn["blood"] not in tag_colours | {plot.NSFW_COLOUR}
    assert drawn == {name: c for (name, _), c in plot.track_colours(result.tracks).items()}


def test_clock_format():
    assert plot.format_clock(75.4) == "01:15"
    assert plot.format_clock(3725.0) == "62:05"
    assert plot.format_clock(3725.0, hours=True) == "1:02:05"
    ends = (0.5, 20.0, 4000.0, 200000.0, 10**6)
    assert [plot.tick_step(e) for e in ends] == [1.0, 2.0, 600.0, 21600.0, 86400.0]


def test_importing_report_loads_neither_pandas_nor_matplotlib():
    code = ("import sys, pipeline.report; "
            "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- write_video_outputs


def test_write_video_outputs_writes_summary_last(tmp_path, monkeypatch):
    order: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (order.append(Path(b).name), real_replace(a, b)))
    written = report.write_video_outputs(make_result(), tmp_path / "clip", formats=["json", "plot", "csv"])
    assert sorted(p.name for p in written) == ["frames.csv", "segments.csv", "summary.json", "timeline.png"]
    assert order[-1] == "summary.json"
    assert sorted(p.name for p in (tmp_path / "clip").iterdir()) == sorted(order)


def test_write_video_outputs_for_an_error_writes_only_the_summary(tmp_path):
    written = report.write_video_outputs(error_result(), tmp_path / "broken")
    assert [p.name for p in written] == ["summary.json"]


def test_unavailable_formats_are_skipped_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        written = report.write_video_outputs(make_result(), tmp_path, formats=("json", "pdf"))
    assert [p.name for p in written] == ["summary.json"]
    assert "pdf" in caplog.text


def test_write_run_outputs(tmp_path):
    (path,) = report.write_run_outputs([make_result(), error_result()], tmp_path / "run")
    assert path.name == "index.csv" and len(read_csv(path)) == 3
    assert report.write_images_csv([image("/a.jpg", {"x": 1.0})], tmp_path / "run").name == "images.csv"


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic.atomic_write_text(target, "first\n")
    atomic.atomic_write_text(target, "second ✓\n")
    assert target.read_text(encoding="utf-8") == "second ✓\n"
    atomic.atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert no_temp_files(tmp_path)


def test_write_removes_leftovers_of_a_killed_writer(tmp_path):
    """SIGKILL mid-write leaves ``.name.tmp-*`` behind; the next write of that
    target removes the old ones, never a fresh one (a live writer's)."""
    import os
    import time

    target = tmp_path / "summary[1].json"  # glob characters in the name
    stale, live = tmp_path / ".summary[1].json.tmp-dead", tmp_path / ".summary[1].json.tmp-live"
    other = tmp_path / ".frames.csv.tmp-dead"
    for leftover in (stale, live, other):
        leftover.write_text("partial")
    old = time.time() - atomic.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic.atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert not stale.exists() and live.exists() and other.exists()


def test_atomic_path_failure_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    seen = []
    with pytest.raises(RuntimeError, match="disk on fire"), atomic.atomic_path(target) as tmp:
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.csv.tmp-")
        tmp.write_text("half a ro")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old\n"
    assert not seen[0].exists() and no_temp_files(tmp_path)


def test_failed_write_never_leaves_a_partial_target(tmp_path, monkeypatch):
    import pandas as pd

    def broken_to_csv(self, path, **kwargs):
        Path(path).write_text("name,input\npartial")
        raise OSError("no space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="no space"):
        tables.write_index_csv([make_result()], tmp_path)
    assert not (tmp_path / "index.csv").exists()
    assert no_temp_files(tmp_path)


def test_failed_plot_leaves_no_partial_png(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG partial")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="renderer"):
        plot.write_timeline_png(make_result(), tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- top frames


def test_top_frames_only_for_labels_that_appear(tmp_path):
    """A label that never reaches its threshold (best score 0.0048, no
    segment) gets no top frames; one with a segment, or one frame at its
    threshold, does."""
    import media

    from pipeline.report import stills

    video = media.make_clip(tmp_path / "clip.mp4", seconds=4, fps=10)
    times = np.arange(8) * 0.5
    low = np.full(8, 0.003)
    low[3] = 0.0048
    once = np.full(8, 0.1)
    once[5] = 0.6  # one frame over, too short for a segment
    seg = np.where(times >= 2, 0.9, 0.1)
    tracks = [LabelTrack("car", "tag", low, low, 0.5, 0.4), LabelTrack("dog", "tag", once, once, 0.5, 0.4),
              LabelTrack("cat", "tag", seg, seg, 0.5, 0.4)]
    result = VideoResult(input_path=video, name="clip", sampling=Sampling(every_seconds=0.5),
                         frame_indices=np.arange(8) * 5, times_s=times, tracks=tracks,
                         segments=[Segment("cat", "tag", 2.0, 4.0, 0.9, 0.9)])
    written = stills.write_top_frames(result, tmp_path / "out", 2)
    assert sorted(p.name.split("_")[0] for p in written) == ["cat", "cat", "dog", "dog"]
    assert all(p.is_file() for p in written)


# --------------------------------------------------------------------------- report.html


def _page_result(video: str, times: list[float], info: VideoInfo) -> VideoResult:
    t = np.asarray(times, np.float64)
    score = np.full(len(t), 0.8)
    return VideoResult(input_path=video, name="clip", info=info, sampling=Sampling(every_seconds=0.5),
                       frame_indices=np.arange(len(t)), times_s=t,
                       tracks=[LabelTrack("cat", "tag", score, score, 0.5, 0.4)],
                       segments=[Segment("cat", "tag", 0.0, float(t[-1]) + 0.25, 0.8, 0.8)])


def _write_page(tmp_path: Path, codec: str = "libx264", ext: str = "mp4", times=(0.0, 0.5, 1.0),
                size=(64, 48)) -> str:
    import media

    from pipeline.decode import probe
    from pipeline.report import html

    video = media.make_clip(tmp_path / f"clip.{ext}", seconds=1.2, fps=10, codec=codec, size=size)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return html.write_report_html(_page_result(video, list(times), probe(video)), out).read_text("utf-8")


def test_report_timeline_shows_a_one_sample_input(tmp_path):
    page = _write_page(tmp_path, times=(0.0,))
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert '<circle class="score"' in svg  # a lone point: a polyline of one point draws nothing


def test_report_player_height_is_capped_for_portrait_video(tmp_path):
    page = _write_page(tmp_path, size=(48, 96))
    video_css = next(rule for rule in page.split("\n") if rule.startswith("video{"))
    assert "max-height:45vh" in video_css  # letterboxed inside a box at most 45% of the window tall


def test_report_says_when_the_browser_cannot_play_the_video(tmp_path):
    page = _write_page(tmp_path, codec="mpeg4", ext="avi")
    note = page[page.index('<p id="player-note"'):]
    note = note[:note.index("</p>")]
    assert "hidden" not in note and "cannot play" in note and "mpeg4" in note and "avi" in note
    assert 'video.addEventListener("error"' in page  # and says so when loading fails anyway


def test_report_has_no_playback_note_for_h264_mp4(tmp_path):
    page = _write_page(tmp_path)
    assert '<p id="player-note" class="note" role="note" hidden></p>' in page


@pytest.mark.parametrize("end", [1.0, 4.0, 10.0, 59.0, 60.0, 600.0, 3600.0, 7300.0])
def test_report_axis_labels_stay_inside_the_svg(end):
    from pipeline.report import html

    char_w = 7.0  # 11px system-ui digits are ~6-7 px wide
    for tick in html._axis(end, 100.0):
        x, label = re.search(r'<text class="tick" x="([\d.]+)"[^>]*>([^<]+)</text>', tick).groups()
        width = char_w * len(label)
        right = float(x) if "text-anchor:end" in tick else float(x) + width / 2
        assert right <= html._SVG_W, (end, label, x)


ROUND_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@pytest.mark.parametrize("end", [0.6, 4.6, 9.0, 9.5, 47.0, 1200.0])
def test_report_axis_ticks_fall_on_round_steps(end):
    """Ticks every 1, 2, 5, 10, 15, 30 s, 1, 2, 5 min...: never 00:04.500."""
    from pipeline.report import html

    tick = re.compile(r'<text class="tick"[^>]*>([^<]+)</text>')
    labels = [tick.search(t).group(1) for t in html._axis(end, 100.0)]
    seconds = [int(m) * 60 + int(s) for m, s in (label.split(":") for label in labels)]
    assert seconds[0] == 0 and len(seconds) <= 11
    steps = set(np.diff(seconds)) or {1}
    assert len(steps) == 1 and steps <= set(ROUND_STEPS), labels


@given(st.floats(min_value=0.01, max_value=1e6, allow_nan=False))
def test_axis_ticks_are_round_evenly_spaced_and_few(end):
    ticks = plot.axis_ticks(end)
    times = [t for t, _ in ticks]
    assert times[0] == 0 and times[-1] <= end and 1 <= len(times) <= 11
    step = times[1] - times[0] if len(times) > 1 else plot.tick_step(end, 10)
    assert step in ROUND_STEPS or step % 3600 == 0
    assert np.allclose(np.diff(times), step)
    assert [label for _, label in ticks] == [plot.format_clock(t, end >= 3600) for t in times]


@pytest.mark.parametrize("ext,shown", [("mp4", "MP4"), ("mov", "QuickTime (MOV)"), ("mkv", "Matroska (MKV)"),
                                       ("webm", "WebM")])
def test_report_names_the_container_format_not_ffmpegs_demuxer_list(tmp_path, ext, shown):
    codec = "libvpx" if ext == "webm" else "libx264"
    page = _write_page(tmp_path, codec=codec, ext=ext)
    assert f"<tr><th>container</th><td>{shown}</td></tr>" in page
    assert "mov,mp4" not in page and "matroska,webm" not in page


# --------------------------------------------------------------------------- live gaps


def live_result_with_a_gap() -> VideoResult:
    """A live stream that lost its connection from 9.9 s to 13.6 s."""
    from pipeline.decode.gaps import gap_note

    result = make_result(nsfw=True)
    keep = (result.times_s < 9.9) | (result.times_s > 13.6)
    result.times_s, result.frame_indices = result.times_s[keep], result.frame_indices[keep]
    result.tracks = [LabelTrack(t.name, t.kind, t.raw[keep], t.smoothed[keep], t.threshold, t.exit_threshold)
                     for t in result.tracks]
    result.decode = DecodeStats(frames_decoded=300, frames_sampled=int(keep.sum()), strategy="live",
                                notes=[gap_note(9.9, 13.6, "connection closed")])
    return result


def test_timeline_png_breaks_each_line_at_a_gap_and_marks_it():
    fig = plot.timeline_figure(live_result_with_a_gap())
    lines = [line for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(lines) == 3
    for line in lines:
        x = np.asarray(line.get_xdata(), np.float64)
        drawn = [(a, b) for a, b in zip(x[:-1], x[1:]) if np.isfinite(a) and np.isfinite(b)]
        assert not [(a, b) for a, b in drawn if a < 9.9 and b > 13.6], line.get_label()
    marks = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "gap"]
    assert len(marks) == len(fig.axes)  # every row shows it
    assert all((m.get_x(), m.get_x() + m.get_width()) == pytest.approx((9.9, 13.6)) for m in marks)


def test_report_html_breaks_each_line_at_a_gap_and_marks_it(tmp_path):
    from pipeline.report import html

    page = html.write_report_html(live_result_with_a_gap(), tmp_path, thumbs=False).read_text("utf-8")
    svg = page[page.index("<svg"):page.index("</svg>")]
    x = lambda t: html._x(t, float(re.search(r'data-end="([\d.]+)"', svg).group(1)))  # noqa: E731
    for points in re.findall(r'<polyline class="score" points="([^"]*)"', svg):
        xs = [float(p.split(",")[0]) for p in points.split()]
        assert not [(a, b) for a, b in zip(xs[:-1], xs[1:]) if a < x(9.9) and b > x(13.6)]
    assert len(re.findall(r'<polyline class="score"', svg)) == 2 * 3  # each track in two pieces
    (gap,) = re.findall(r'<rect class="gap" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert float(gap[0]) == pytest.approx(x(9.9), abs=0.01)
    assert float(gap[0]) + float(gap[1]) == pytest.approx(x(13.6), abs=0.02)
    assert "connection closed" in svg
