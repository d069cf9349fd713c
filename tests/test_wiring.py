"""Issue 30's cores wired into the commands: the timeline formats of
``run`` and ``report`` on the demo kitchen clip, read back with
OpenTimelineIO within one frame of ``segments.csv``."""

from __future__ import annotations

import shutil

import av
import opentimelineio as otio
import pandas as pd
import pytest
from demo_assets import CONFIG, MODEL, ROOT, needs_demo
from test_timelines import _assert_ranges, _by_name
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.report.exports import edl_rate

KITCHEN = ROOT / "sample_videos" / "demo_kitchen.mp4"
TIMELINES = "csv,json,otio,fcpxml,chapters,edl-events"


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def kitchen_run(tmp_path_factory):
    if not (MODEL / "model.safetensors").exists():
        pytest.skip("demo model not built")
    out = tmp_path_factory.mktemp("kitchen")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SCENETAG_CPU_RUNTIME", raising=False)
        result = _cli("run", str(KITCHEN), "-c", str(CONFIG), "--model", str(MODEL), "-o", str(out),
                      "--formats", TIMELINES, "-q")
    assert result.exit_code == 0, result.output
    return out / "demo_kitchen"


def _segments(folder) -> list[tuple[str, float, float]]:
    df = pd.read_csv(folder / "segments.csv")
    return [(r.label, r.start_s, r.end_s) for r in df.itertuples() if r.kind == "tag"]


def _check_timelines(folder) -> None:
    segs = _segments(folder)
    assert any(label == "coffee cup" for label, _, _ in segs)
    frame = 1 / 15 + 1e-9
    back = otio.adapters.read_from_file(str(folder / "timeline.otio"))
    _assert_ranges(_by_name(back), segs, frame)
    assert back.tracks[0].name == "Shots"
    fcp = otio.adapters.read_from_file(str(folder / "timeline.fcpxml"))
    fcp_frame = 1 / 24 + 1e-9  # 15 fps is timed at 24 in FCPXML (see timelines.fcpxml_rate)
    _assert_ranges(_by_name(fcp), segs, 2 * fcp_frame)
    with av.open(str(folder / "chapters.txt"), format="ffmetadata") as c:
        assert len(c.chapters()) >= 1
    labels = {label for label, _, _ in segs}
    edls = sorted((folder / "edl").glob("*.edl"))
    assert len(edls) == len(labels)
    for path in edls:
        clips = list(otio.adapters.read_from_file(str(path), rate=float(edl_rate(15))).find_clips())
        assert clips
    assert not list(folder.glob(".*.tmp-*"))


@needs_demo
def test_run_writes_the_timeline_formats(kitchen_run):
    _check_timelines(kitchen_run)
    assert not (kitchen_run / "youtube.txt").exists()  # 15 s: YouTube needs three 10 s chapters
    assert not (kitchen_run / "markers.edl").exists()  # only what --formats asked for


@needs_demo
def test_report_rewrites_the_timeline_formats(kitchen_run, tmp_path):
    copy = tmp_path / "run" / "demo_kitchen"
    shutil.copytree(kitchen_run, copy)
    for name in ("timeline.otio", "timeline.fcpxml", "chapters.txt"):
        (copy / name).unlink()
    shutil.rmtree(copy / "edl")
    result = _cli("report", str(copy.parent), "--formats", "otio,fcpxml,chapters,edl-events", "-q")
    assert result.exit_code == 0, result.output
    _check_timelines(copy)


def test_the_default_formats_are_unchanged():
    from pipeline.config import OutputConfig

    assert OutputConfig().formats == ["csv", "plot", "json", "html", "vtt", "edl"]


def test_without_opentimelineio_it_is_one_warning(tmp_path, monkeypatch, caplog):
    import sys

    from pipeline.report import timeline_files
    from pipeline.types import Segment, VideoInfo, VideoResult

    monkeypatch.setitem(sys.modules, "opentimelineio", None)
    monkeypatch.setattr(timeline_files, "_warned", set())
    info = VideoInfo(str(KITCHEN), "mp4", "h264", 320, 240, 15.0, 15.0, 225)
    result = VideoResult(input_path=str(KITCHEN), name="k", info=info,
                         segments=[Segment("cup", "tag", 2.0, 6.0, 0.9, 0.8)])
    for _ in range(2):
        written = timeline_files.write_timeline_files(result, tmp_path, ["otio", "fcpxml", "chapters"])
        assert [p.name for p in written] == ["chapters.txt"]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "opentimelineio" in warnings[0].getMessage()


# --------------------------------------------------------------------------- shots in the run


@needs_demo
def test_run_with_shots_writes_shots_and_cues(tmp_path):
    import json

    from shot_media import Take, make_shot_clip

    clip = tmp_path / "cuts.mp4"
    truth = make_shot_clip(clip, [Take("astronaut", 30, "pan"), Take("coffee", 30, "zoom"),
                                  Take("chelsea", 30, "still")])
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SCENETAG_CPU_RUNTIME", raising=False)
        result = _cli("run", str(clip), "-c", str(CONFIG), "--model", str(MODEL), "-o", str(out),
                      "--shots", "--formats", "csv,json,otio,chapters", "--no-store", "-q")
    assert result.exit_code == 0, result.output
    folder = out / "cuts"
    shots = pd.read_csv(folder / "shots.csv", keep_default_na=False)
    assert list(shots.columns) == ["shot", "start_s", "end_s", "start_frame", "end_frame", "tags"]
    assert list(shots.start_frame[1:]) == truth.cuts
    assert list(shots.end_frame) == [*truth.cuts, truth.frames]
    assert shots.start_s[1] == pytest.approx(truth.cuts[0] / 25)
    cues = pd.read_csv(folder / "cues.csv")
    assert list(cues.columns) == ["kind", "start_s", "end_s"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["shots"] == 3 and set(summary["cues"]) == {"black", "frozen", "fade_in", "fade_out"}
    back = otio.adapters.read_from_file(str(folder / "timeline.otio"))
    shot_clips = list(back.tracks[0])
    assert [c.name for c in shot_clips] == ["Shot 1", "Shot 2", "Shot 3"]
    assert shot_clips[1].range_in_parent().start_time.to_seconds() == pytest.approx(truth.cuts[0] / 25,
                                                                                    abs=1 / 25)
    with av.open(str(folder / "chapters.txt"), format="ffmetadata") as c:
        assert len(c.chapters()) == 3


def test_shots_are_off_by_default_and_keep_the_hash():
    from pipeline.config import parse_config

    plain = parse_config({"labels": ["a", "b"]})
    assert plain.shots.enabled is False
    on = parse_config({"labels": ["a", "b"], "shots": {"enabled": True}})
    assert on.hash() != plain.hash()
    assert "shots" not in plain.model_dump(mode="json") or plain.hash() == parse_config(
        {"labels": ["a", "b"], "shots": {"enabled": False}}).hash()


def test_report_reads_the_shots_back_for_the_timelines(tmp_path):
    from pipeline.report import timeline_files as tf
    from pipeline.types import Segment, VideoInfo, VideoResult

    rows = [tf.ShotRow(1, 0.0, 7.0, 0, 105, "=cup; ball"), tf.ShotRow(2, 7.0, 15.0, 105, 225, "")]
    tf.write_shots_csv(rows, tmp_path)
    assert tf.read_shots(tmp_path) == rows  # a tag like a formula comes back as it was
    info = VideoInfo(str(KITCHEN), "mp4", "h264", 320, 240, 15.0, 15.0, 225)
    result = VideoResult(input_path=str(KITCHEN), name="k", info=info,  # shots None: as read back
                         segments=[Segment("cup", "tag", 2.0, 6.0, 0.9, 0.8)])
    tf.write_timeline_files(result, tmp_path, ["otio", "chapters"])
    back = otio.adapters.read_from_file(str(tmp_path / "timeline.otio"))
    assert [c.name for c in back.tracks[0]] == ["Shot 1", "Shot 2"]
    text = (tmp_path / "chapters.txt").read_text()
    assert "title=\\=cup + ball" in text and "title=Shot 2" in text


def test_rescore_leaves_shots_out_and_says_so(tmp_path):
    """Rescore reads the store alone; a shots pass would decode every frame."""
    import yaml
    from shot_media import Take, make_shot_clip

    clip = tmp_path / "cuts.mp4"
    make_shot_clip(clip, [Take("astronaut", 20, "still"), Take("coffee", 20, "still")])
    result = _cli("run", str(clip), "-c", str(CONFIG), "--model", str(MODEL), "-o", str(tmp_path / "run"),
                  "--formats", "csv,json", "-q")
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(CONFIG.read_text())
    data["model"]["id"] = str(MODEL)
    data["shots"] = {"enabled": True}
    config = tmp_path / "shots.yaml"
    config.write_text(yaml.safe_dump(data))
    result = _cli("rescore", "-c", str(config), "--store", str(tmp_path / "run" / "store"),
                  "-o", str(tmp_path / "again"))
    assert result.exit_code == 0, result.output
    assert "rescore never decodes every frame: shots are left out" in result.output
    assert (tmp_path / "again" / "cuts" / "segments.csv").exists()
    assert not (tmp_path / "again" / "cuts" / "shots.csv").exists()
