"""markers.edl read by OpenTimelineIO's CMX 3600 adapter (the reader editors'
pipelines use): at every stream rate, VFR included, with labels that overlap
in time, every segment's locator survives and lands within one frame of
segments.csv; the Resolve marker lines agree. Also WebVTT with hostile
labels, read by webvtt-py. `read_edl` is the helper other EDL tests use."""

from __future__ import annotations

import dataclasses
import json
import re
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import webvtt
from reference_readers import SMPTE, assert_edl_matches, read_edl
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.report import exports
from pipeline.types import LabelTrack, Sampling, Segment, VideoInfo, VideoResult

runner = CliRunner()


def result_at(fps: float | None, segments: list[Segment], name: str = "clip") -> VideoResult:
    labels = dict.fromkeys((s.label, s.kind) for s in segments)
    tracks = [LabelTrack(lab, kind, np.full(4, 0.6), np.full(4, 0.6), 0.5, 0.45) for lab, kind in labels]
    info = VideoInfo(path=f"/in/{name}.mp4", container="mov,mp4", codec="h264", width=64, height=48,
                     duration_s=4000.0, avg_fps=fps, frame_count=None)
    return VideoResult(input_path=f"/in/{name}.mp4", name=name, info=info, sampling=Sampling(every_seconds=1),
                       frame_indices=np.arange(4), times_s=np.arange(4.0), tracks=tracks,
                       segments=segments, tags=sorted({s.label for s in segments if s.kind == "tag"}))


OVERLAPPING = [
    Segment("cup", "tag", 0.0, 9.97, 0.93, 0.8),
    Segment("ball", "tag", 0.0, 3.0, 0.71, 0.6),  # same record-in as "cup"
    Segment("cup", "tag", 12.04, 12.05, 0.6, 0.55),  # shorter than a frame
    Segment("tree", "tag", 12.06, 20.0, 0.6, 0.55),  # same frame as the above at low rates
    Segment("gore", "nsfw", 5.533, 7.25, 0.99, 0.9),
    Segment("a|b\u2028c\x00d\u202e", "tag", 61.5, 70.0, 0.5, 0.5),
    Segment("late", "tag", 3725.4, 3730.0, 0.8, 0.8),  # an hour in: drift would show
]


@pytest.mark.parametrize("fps", [16.05, 5881 / 300, 15.0, 10.0, 100 / 7, 23.976, 25.0, 29.97, 30.0, 59.94,
                                 None])
def test_edl_parses_in_otio_at_any_stream_rate(fps):
    text = exports.edl_text(result_at(fps, OVERLAPPING))
    edl = assert_edl_matches(text, OVERLAPPING)
    assert edl.rate == exports.edl_rate(fps)
    if fps is not None and exports.exact_fps(fps) not in SMPTE:
        assert "nearest SMPTE rate" in edl.title and exports.rate_name(fps) in edl.title
    assert "\u2028" not in text and "\x00" not in text and "\u202e" not in text
    assert "* LOC: 00:00:00:00" in text and ";" not in text  # readable locators, non-drop


@pytest.mark.parametrize(("fps", "expected"), [
    (16.05, Fraction(24000, 1001)), (15.0, Fraction(24000, 1001)), (100 / 7, Fraction(24000, 1001)),
    (29.97, Fraction(30000, 1001)), (25.0, Fraction(25)), (48.0, Fraction(50)), (120.0, Fraction(60)),
    (None, Fraction(25))])
def test_edl_rate_is_a_smpte_rate(fps, expected):
    assert exports.edl_rate(fps) == expected


def test_drop_frame_rates_write_readable_locators():
    # 29.97 at one hour: drop-frame labels written with ":" would read 108 frames late
    segs = [Segment("cup", "tag", 3600.0, 3601.0, 0.9, 0.8), Segment("mug", "tag", 60.0, 61.0, 0.9, 0.8)]
    for fps in (29.97, 59.94):
        edl = assert_edl_matches(exports.edl_text(result_at(fps, segs)), segs)
        assert len(edl.markers) == 2


def test_vtt_with_hostile_labels_parses(tmp_path):
    segs = [Segment("a\x00b", "tag", 0.0, 1.0, 0.9, 0.8),
            Segment("x\u2028y\u202ez", "tag", 1.0, 2.0, 0.9, 0.8)]
    path = exports.write_vtt(result_at(25.0, segs, name="n\x00me\u2029"), tmp_path)
    text = path.read_text(encoding="utf-8")
    assert not re.search("[\x00\u2028\u2029\u202e]", text)
    assert [c.text for c in webvtt.read(str(path)).captions] == ["ab (0.90)", "x yz (0.90)"]


def test_run_on_vfr_clip_writes_an_edl_otio_reads(tmp_path, tiny_model_dir):
    """A real VFR clip (24000/1001 timing for 3 s, then 8 fps): the EDL is at
    a SMPTE rate and its markers sit on segments.csv's starts."""
    from media import make_vfr_clip

    times = [round(i * 1001 / 24000, 3) for i in range(72)] + [3.1 + 0.125 * i for i in range(56)]
    clip = make_vfr_clip(tmp_path / "vfr.mp4", [round(t, 3) for t in times])
    cfg = tiny_config(tmp_path, tiny_model_dir,
                      "sampling: {every_seconds: 0.25}\nlabels: [{name: cat}, {name: dog}, {name: car}]\n"
                      "smoothing: {method: none}\nsegments: {threshold: 0.3, min_duration_s: 0}\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", clip, "-c", str(cfg), "-o", str(out), "-q", "--no-store",
                                 "--formats", "csv,edl,vtt"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "vfr" / "segments.csv", keep_default_na=False)
    segments = [Segment(r.label, r.kind, r.start_s, r.end_s, r.peak, r.mean) for r in table.itertuples()]
    assert segments
    edl = assert_edl_matches((out / "vfr" / "markers.edl").read_text(encoding="utf-8"), segments)
    assert edl.rate in SMPTE
    assert len(webvtt.read(str(out / "vfr" / "tags.vtt")).captions) == len(segments)


def test_segment_starting_before_zero_lands_on_the_first_frame():
    segs = [Segment("early", "tag", -0.1, 1.0, 0.9, 0.8), Segment("cup", "tag", 0.0, 2.0, 0.8, 0.7)]
    edl = read_edl(exports.edl_text(result_at(25.0, segs)))
    assert sorted(edl.markers) == [("cup 0.80", 0.0), ("early 0.90", 0.0)]
    assert edl.resolve == [("early + cup", 0.0, 50)]


@pytest.mark.parametrize(("nominal", "average", "expected"), [
    (24000 / 1001, 16.05, Fraction(24000, 1001)),  # a VFR film: its nominal rate, not the average's nearest
    (30.0, 18.3, Fraction(30)),
    (120.0, 27.0, Fraction(25)),  # a nominal rate no editor takes: the average's nearest SMPTE rate
    (None, 29.97, Fraction(30000, 1001)),
])
def test_edl_takes_the_streams_nominal_rate_when_it_is_smpte(nominal, average, expected):
    result = result_at(average, OVERLAPPING)
    result.info = dataclasses.replace(result.info, nominal_fps=nominal)
    edl = assert_edl_matches(exports.edl_text(result), OVERLAPPING)
    assert edl.rate == expected


def test_vfr_clip_on_a_30_fps_grid_gets_a_30_fps_edl(tmp_path, tiny_model_dir):
    """Frames on a 1/30 s grid with gaps average 18.3 fps; FFmpeg's base rate
    (the nominal one) is 30, and the EDL is written at it."""
    from media import make_vfr_clip

    times = [round(i / 30, 3) for i in range(300) if (i // 15) % 2 == 0 or i % 5 == 0]
    clip = make_vfr_clip(tmp_path / "grid.mp4", times)
    cfg = tiny_config(tmp_path, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\nlabels: [{name: cat}, {name: dog}]\n"
                      "segments: {threshold: 0.3, min_duration_s: 0}\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", clip, "-c", str(cfg), "-o", str(out), "-q", "--no-store",
                                 "--formats", "json,edl"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    video = json.loads((out / "grid" / "summary.json").read_text("utf-8"))["video"]
    assert video["nominal_fps"] == 30.0 and video["avg_fps"] < 20
    edl = read_edl((out / "grid" / "markers.edl").read_text(encoding="utf-8"))
    assert edl.rate == Fraction(30) and "nearest" not in edl.title


def test_the_suites_export_check_rejects_what_otio_rejects(tmp_path_factory):
    """The net conftest casts over every test's tmp_path catches an EDL OTIO
    cannot read (here: two events with the same record-in)."""
    from reference_readers import check_exports_in

    folder = tmp_path_factory.mktemp("bad")
    event = "{n:03d}  AX       V     C        00:00:00:00 00:00:00:01 00:00:00:00 00:00:00:01\n"
    (folder / "markers.edl").write_text("TITLE: x (25 fps NDF)\nFCM: NON-DROP FRAME\n\n"
                                        + event.format(n=1) + "\n" + event.format(n=2), encoding="utf-8")
    with pytest.raises(Exception, match="(?i)overlapping"):
        check_exports_in(folder)
