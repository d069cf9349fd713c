"""pipeline.report.exports, html (without a browser) and thumbs: WebVTT,
frame-accurate EDL timecode, escaping, top frames, and `scenetag report`
rebuilding pages from a run's files without a model."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import webvtt
from reference_readers import assert_edl_matches, otio_check_folder
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline import report
from pipeline.cli import app
from pipeline.report import exports, html, readback
from pipeline.report.exports import edl_text, exact_fps, frame_number, timecode
from pipeline.types import LabelTrack, Sampling, Segment, VideoInfo, VideoResult

NTSC30, NTSC24 = Fraction(30000, 1001), Fraction(24000, 1001)
HOSTILE = '<script>alert(1)</script> & "q" \'s\' </script><!--'


def make_result(segments: list[Segment], *, fps: float = 29.97, name: str = "clip",
                input_path: str = "/nowhere/clip.mp4") -> VideoResult:
    times = np.arange(20) * 0.5
    labels = dict.fromkeys((s.label, s.kind) for s in segments)
    tracks = [LabelTrack(label, kind, np.full(20, 0.6), np.full(20, 0.6), 0.5, 0.45)
              for label, kind in labels]
    info = VideoInfo(path=input_path, container="mov,mp4", codec="h264", width=64, height=48,
                     duration_s=10.0, avg_fps=fps, frame_count=int(10 * fps))
    return VideoResult(input_path=input_path, name=name, info=info, sampling=Sampling(every_seconds=0.5),
                       frame_indices=np.arange(20) * 15, times_s=times, tracks=tracks,
                       segments=segments, tags=sorted({s.label for s in segments if s.kind == "tag"}))


def ms(stamp: str) -> int:
    h, m, rest = stamp.split(":")
    s, milli = rest.split(".")
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(milli)


# --------------------------------------------------------------------------- WebVTT


def test_vtt_parses_and_round_trips_times(tmp_path):
    segs = [Segment("cup", "tag", 1.234, 5.678, 0.9, 0.8),
            Segment(HOSTILE, "tag", 61.5, 3725.001, 0.7, 0.6),
            Segment("gore", "nsfw", 0.0, 0.25, 0.95, 0.9)]
    path = exports.write_vtt(make_result(segs), tmp_path)
    cues = webvtt.read(str(path)).captions
    assert [(ms(c.start), ms(c.end)) for c in cues] == [(0, 250), (1234, 5678), (61500, 3725001)]
    assert cues[0].text.startswith("NSFW: gore") and cues[1].text.startswith("cup")
    assert "<script>" not in path.read_text() and "&lt;script&gt;alert(1)" in cues[2].text


def test_vtt_labels_cannot_break_cues(tmp_path):
    segs = [Segment("two\n\nlines --> 00:00:09.000", "tag", 1.0, 2.0, 0.9, 0.8)]
    cues = webvtt.read(str(exports.write_vtt(make_result(segs), tmp_path))).captions
    assert len(cues) == 1 and (ms(cues[0].start), ms(cues[0].end)) == (1000, 2000)


# --------------------------------------------------------------------------- timecode


@pytest.mark.parametrize(("frame", "expected"), [
    (0, "00:00:00;00"), (29, "00:00:00;29"), (30, "00:00:01;00"), (1799, "00:00:59;29"),
    (1800, "00:01:00;02"), (1801, "00:01:00;03"), (3598, "00:02:00;02"), (17981, "00:09:59;29"),
    (17982, "00:10:00;00"), (17983, "00:10:00;01"), (107892, "01:00:00;00")])
def test_drop_frame_timecode_2997(frame, expected):
    assert timecode(frame, NTSC30) == expected


def test_drop_frame_labels_skip_only_the_dropped_numbers():
    previous = -1
    for frame in range(0, 17982 * 2):
        hh, mm, rest = timecode(frame, NTSC30).split(":")
        ss, ff = rest.split(";")
        assert not (ss == "00" and ff in ("00", "01") and int(mm) % 10), frame
        count = (int(hh) * 3600 + int(mm) * 60 + int(ss)) * 30 + int(ff)
        assert count > previous
        previous = count


@pytest.mark.parametrize(("frame", "fps", "expected"), [
    (0, Fraction(25), "00:00:00:00"), (24, Fraction(25), "00:00:00:24"),
    (25, Fraction(25), "00:00:01:00"), (1800, Fraction(25), "00:01:12:00"),
    (90000, Fraction(25), "01:00:00:00"), (24, NTSC24, "00:00:01:00"),
    (1440, NTSC24, "00:01:00:00"), (86400, NTSC24, "01:00:00:00"),
    (3600, Fraction(60000, 1001), "00:01:00;04")])
def test_non_drop_and_other_timecode(frame, fps, expected):
    assert timecode(frame, fps) == expected


def test_exact_fps_snaps_container_rates():
    assert exact_fps(29.97002997) == NTSC30 and exact_fps(29.97) == NTSC30
    assert exact_fps(23.976) == NTSC24 and exact_fps(23.976023976) == NTSC24
    assert exact_fps(25.0) == 25 and exact_fps(59.94) == Fraction(60000, 1001)
    assert exact_fps(None) == 25 and exact_fps(0.0) == 25


@pytest.mark.parametrize("fps", [NTSC30, NTSC24, Fraction(25)])
def test_frame_numbers_from_float_times_do_not_drift(fps):
    # the PTS of frame n, as a float, maps back to n over two hours
    for n in list(range(0, 500)) + list(range(200_000, 216_000, 7)):
        assert frame_number(float(n / fps), fps) == n


def test_wall_clock_hour_is_drop_frame_hour():
    assert timecode(frame_number(3600.0, NTSC30), NTSC30) == "01:00:00;00"
    # non-drop 23.976 runs slow against the wall clock, by design
    assert timecode(frame_number(3600.0, NTSC24), NTSC24) == "00:59:56:10"


def test_edl_events_at_2997_are_non_drop_and_otio_reads_them(tmp_path):
    segs = [Segment("cup", "tag", 1800 * 1001 / 30000, 17982 * 1001 / 30000, 0.9, 0.8),
            Segment("gore", "nsfw", 0.5, 1.0, 0.95, 0.9)]
    path = exports.write_edl(make_result(segs, fps=29.97), tmp_path)
    text = path.read_text()
    assert "FCM: NON-DROP FRAME" in text and "TITLE: clip (29.97 fps NDF)" in text
    events = re.findall(r"^(\d{3})  AX +V +C +(\S+) (\S+) (\S+) (\S+)$", text, re.M)
    assert [e[0] for e in events] == ["001", "002"]
    assert events[0][1:] == ("00:00:00:15", "00:00:00:16", "00:00:00:15", "00:00:00:16")
    assert events[1][1:] == ("00:01:00:00", "00:01:00:01", "00:01:00:00", "00:01:00:01")
    assert "|C:ResolveColorRed |M:NSFW gore |D:15" in text and "* LOC: 00:00:00:15 RED     NSFW gore" in text
    assert f"|D:{17982 - 1800}" in text and "* FROM CLIP NAME: clip.mp4" in text
    assert_edl_matches(text, segs)


def test_edl_non_drop_rates():
    seg = [Segment("cup", "tag", 3600.0, 3601.0, 0.9, 0.8)]
    assert "FCM: NON-DROP FRAME" in (text := edl_text(make_result(seg, fps=23.976)))
    assert " 00:59:56:10 00:59:56:11 " in text
    assert_edl_matches(text, seg)
    assert " 01:00:00:00 01:00:00:01 " in (text := edl_text(make_result(seg, fps=25.0)))
    assert_edl_matches(text, seg)


def test_edl_label_cannot_break_lines():
    segs = [Segment("a|b\nc\u2028d", "tag", 1.0, 2.0, 0.9, 0.8)]
    text = edl_text(make_result(segs, fps=25.0))
    assert "|M:a b c d |D:25" in text and len([ln for ln in text.splitlines() if ln.startswith("00")]) == 1
    assert_edl_matches(text, segs)


def test_edl_overlapping_labels_share_an_event():
    segs = [Segment("cup", "tag", 0.0, 5.0, 0.9, 0.8), Segment("ball", "tag", 0.0, 2.0, 0.7, 0.6),
            Segment("cat", "tag", 1.0, 3.0, 0.8, 0.7)]
    text = edl_text(make_result(segs, fps=30.0))
    assert "|M:ball + cup |D:150" in text and text.count("* LOC:") == 3
    assert len(assert_edl_matches(text, segs).resolve) == 2


def test_segments_json(tmp_path):
    segs = [Segment("cup", "tag", 1800 * 1001 / 30000, 2.5, 0.9, 0.8)]
    data = json.loads(exports.write_segments_json(make_result(segs), tmp_path).read_text())
    assert data["fps"] == "30000/1001" and data["drop_frame"] is True
    (seg,) = data["segments"]
    assert seg["start_frame"] == 1800 and seg["start_tc"] == "00:01:00;02"
    assert data["labels"] == [{"name": "cup", "kind": "tag", "threshold": 0.5, "exit_threshold": 0.45}]


# --------------------------------------------------------------------------- HTML escaping


def test_html_escapes_every_label_path_and_string(tmp_path):
    segs = [Segment(HOSTILE, "tag", 1.0, 3.0, 0.9, 0.8), Segment("a & b", "nsfw", 4.0, 5.0, 0.9, 0.9)]
    result = make_result(segs, name="x", input_path=f"/in/{HOSTILE}.mp4")
    result.error = HOSTILE
    page = html.write_report_html(result, tmp_path / "x").read_text()
    failed = VideoResult(input_path=HOSTILE, name="bad", status="error", error=HOSTILE)
    index = html.write_index_html([result, failed], tmp_path).read_text()
    for text in (page, index):
        assert "<script>alert" not in text and "<!--" not in text
        assert text.count("</script>") == text.count("<script")  # only our own blocks close
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot; &#x27;s&#x27;" in page
    blob = re.search(r'<script id="scenetag-data" type="application/json">(.*?)</script>', page, re.S)
    data = json.loads(blob.group(1))
    assert [s["label"] for s in data["segments"]] == [HOSTILE, "a & b"]
    assert '<tr class="segment' in page and 'class="segment nsfw-row"' in page


def test_html_isolates_labels_and_strips_controls(tmp_path):
    """A U+202E label cannot reverse the rest of a row; NUL, U+2028 never
    reach a page."""
    segs = [Segment("\u202eevil\x00", "tag", 1.0, 3.0, 0.9, 0.8),
            Segment("ok\u2028x", "tag", 4.0, 5.0, 0.9, 0.9)]
    result = make_result(segs, name="n\u202ee", input_path="/in/a\x00\u2066b.mp4")
    page = html.write_report_html(result, tmp_path / "x").read_text(encoding="utf-8")
    index = html.write_index_html([result], tmp_path).read_text(encoding="utf-8")
    for text in (page, index):
        assert not re.search("[\x00\u2028\u2029\u202a-\u202e\u2066-\u2069]", text)
    assert '<td class="label"><bdi>evil</bdi></td>' in page and "<bdi>ok x</bdi>" in page
    assert "<td><bdi>ok x</bdi>, <bdi>evil</bdi></td>" in index


def test_script_json_escapes_closing_tags():
    text = html.script_json({"x": "</script><!-- <b>"})
    assert "<" not in text and json.loads(text) == {"x": "</script><!-- <b>"}


# --------------------------------------------------------------------------- CLI: run, top frames, report


runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir, clip_dir) -> Path:
    out = tmp_path_factory.mktemp("exports")
    cfg = tiny_config(out, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\ndecoder: {strategy: exact}\n"
                      "labels: [{name: cat}, {name: 'dog & <b>'}, {name: car}]\n"
                      "smoothing: {method: none}\n"
                      "segments: {threshold: 0.2, min_duration_s: 0, merge_gap_s: 0}\n")
    result = runner.invoke(app, ["run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out / "r"),
                                 "-q", "--no-store", "--top-frames", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / "r"


def test_run_writes_html_and_exports_by_default(run_dir):
    for file in ("report.html", "tags.vtt", "markers.edl", "segments.json", "summary.json"):
        assert (run_dir / "ten" / file).is_file(), file
    assert (run_dir / "index.html").is_file()
    n_segments = len(pd.read_csv(run_dir / "ten" / "segments.csv"))
    assert n_segments >= 1  # 3 softmax labels, threshold 0.2: some label is always present
    assert len(list((run_dir / "ten" / "thumbs").glob("*.jpg"))) == n_segments
    assert len(webvtt.read(str(run_dir / "ten" / "tags.vtt")).captions) == n_segments
    assert otio_check_folder(run_dir) == 1


def test_top_frames_are_named_by_label_rank_and_time(run_dir):
    names = sorted(p.name for p in (run_dir / "ten" / "top_frames").iterdir())
    # 2 per label that appears (a segment: threshold 0.2, no minimum duration)
    assert len(names) == 2 * pd.read_csv(run_dir / "ten" / "segments.csv")["label"].nunique()
    for name in names:
        assert re.fullmatch(r"(cat|dog_b|car)_[12]_\d{2}-\d{2}\.\d{3}\.jpg", name), name
    from PIL import Image

    with Image.open(run_dir / "ten" / "top_frames" / names[0]) as im:
        assert im.size == (96, 64)  # full size, re-read from the video


def test_report_command_regenerates_without_a_model(run_dir, monkeypatch):
    import pipeline.embed

    def no_model(*args, **kwargs):
        raise AssertionError("scenetag report must not load a model")

    monkeypatch.setattr(pipeline.embed, "load_embedder", no_model)
    page = run_dir / "ten" / "report.html"
    before = page.read_text()
    page.unlink()
    (run_dir / "index.html").unlink()
    (run_dir / "ten" / "markers.edl").unlink()
    result = runner.invoke(app, ["report", str(run_dir), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    after = page.read_text()
    assert (run_dir / "index.html").is_file() and (run_dir / "ten" / "markers.edl").is_file()
    assert otio_check_folder(run_dir) == 1
    # the rebuilt page shows the same table, timeline and data as the original
    table = re.compile(r'<table id="segments-table">.*?</table>', re.S)
    assert table.search(after).group(0) == table.search(before).group(0)
    assert "dog &amp; &lt;b&gt;" in after and "<b>" not in after
    # scores come back from frames.csv (6 decimals): same segments, same number of points
    seg_rects = re.compile(r'<rect class="seg".*?</rect>', re.S)
    assert seg_rects.findall(after) == seg_rects.findall(before)
    points = re.compile(r'<polyline class="score" points="([^"]*)"')
    assert [len(p.split()) for p in points.findall(after)] == \
        [len(p.split()) for p in points.findall(before)] == [8, 8, 8]


def test_load_result_round_trips_a_run(run_dir):
    result = readback.load_result(run_dir / "ten")
    assert result.status == "ok" and result.name == "ten" and len(result.times_s) == 8
    assert [t.name for t in result.tracks] == ["cat", "dog & <b>", "car"]
    assert all(t.threshold == pytest.approx(0.2) for t in result.tracks)
    segments = pd.read_csv(run_dir / "ten" / "segments.csv")
    assert [s.label for s in result.segments] == list(segments["label"])


def test_report_command_on_a_folder_without_outputs(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no summary.json" in result.output


def test_report_rejects_formats_it_cannot_rebuild(run_dir):
    result = runner.invoke(app, ["report", str(run_dir), "--formats", "csv"])
    assert result.exit_code == 2 and "not csv" in result.output


def test_exports_skip_failed_inputs(tmp_path):
    failed = VideoResult(input_path="/x.mp4", name="x", status="error", error="boom")
    written = report.write_video_outputs(failed, tmp_path / "x", formats=("html", "vtt", "edl", "json"))
    assert [p.name for p in written] == ["summary.json"]


# --------------------------------------------------------------------------- one end_frame convention


def test_end_frame_is_the_frame_at_end_s_in_every_output(tmp_path):
    """A segment pinned to frames 30..89 at 15 fps: every output says
    ``end_frame`` 90, the first frame after it (shown at ``end_s``), as
    ``start_frame`` is the frame shown at ``start_s``; reading the folder
    back (``scenetag report``) keeps it."""
    seg = Segment("cup", "tag", 2.0, 6.0, 0.9, 0.8, start_frame=30, end_frame=89, refined="both")
    result = make_result([seg], fps=15.0)
    folder = tmp_path / "clip"
    report.write_video_outputs(result, folder, formats=("csv", "json", "edl"))
    csv_row = pd.read_csv(folder / "segments.csv").iloc[0]
    exported = json.loads((folder / "segments.json").read_text())["segments"][0]
    summary = json.loads((folder / "summary.json").read_text())["segments"][0]
    assert (csv_row["start_frame"], csv_row["end_frame"]) == (30, 90)
    assert (exported["start_frame"], exported["end_frame"]) == (30, 90)
    assert (summary["start_frame"], summary["end_frame"]) == (30, 90)
    assert frame_number(seg.end_s, Fraction(15)) == 90 and frame_number(seg.start_s, Fraction(15)) == 30
    reread = readback.load_result(folder)
    assert (reread.segments[0].start_frame, reread.segments[0].end_frame) == (30, 89)
    assert exports.segments_dict(reread)["segments"][0]["end_frame"] == 90


def test_edl_colour_of_a_label_is_the_same_in_every_file_of_a_run():
    """Colours follow the label's place in the config (the tracks' order),
    not which labels a file happens to have segments for."""
    labels = [("coffee cup", "tag"), ("car", "tag"), ("ball", "tag"), ("gore", "nsfw")]

    def edl_of(segments):
        result = make_result(segments, fps=25.0)
        result.tracks = [LabelTrack(label, kind, np.full(20, 0.6), np.full(20, 0.6), 0.5, 0.45)
                         for label, kind in labels]
        return edl_text(result)

    only_car = edl_of([Segment("car", "tag", 1.0, 2.0, 0.9, 0.8)])
    both = edl_of([Segment("coffee cup", "tag", 1.0, 2.0, 0.9, 0.8),
                   Segment("car", "tag", 3.0, 4.0, 0.9, 0.8), Segment("gore", "nsfw", 5.0, 6.0, 0.9, 0.9)])
    car = re.compile(r"\* LOC: \S+ (\w+) +car ")
    assert car.search(only_car).group(1) == car.search(both).group(1) == "CYAN"
    assert re.search(r"\* LOC: \S+ (\w+) +coffee cup ", both).group(1) == "BLUE"
    assert "|C:ResolveColorCyan |M:car " in only_car and "|C:ResolveColorCyan |M:car " in both
    assert "|C:ResolveColorRed |M:NSFW gore " in both
