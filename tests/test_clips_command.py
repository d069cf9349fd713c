"""``scenetag clips`` on a run folder: the demo kitchen clip's segments
(coffee cup frames 30-90, ball 135-195 at 15 fps) as ``scenetag run``
writes them, cut through the CLI; and its one-line failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.clips.plan import plan_clips, stamp
from pipeline.types import Segment

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ROOT / "sample_videos" / "demo_kitchen.mp4"
SEGMENTS = """label,kind,start_s,end_s,duration_s,peak,mean,start_frame,end_frame,refined
coffee cup,tag,2.0,6.0,4.0,0.98,0.97,30,90,both
ball,tag,9.0,13.0,4.0,0.99,0.99,135,195,both
"""


def _run_folder(root: Path, source: Path = KITCHEN, name: str = "demo_kitchen") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "segments.csv").write_text(SEGMENTS)
    (folder / "summary.json").write_text(json.dumps({
        "input": str(source), "status": "ok",
        "video": {"container": "mov,mp4", "codec": "h264", "width": 320, "height": 240,
                  "duration_s": 15.0, "avg_fps": 15.0, "frame_count": 225}}))
    return root


def _cli(*args):
    return CliRunner().invoke(app, ["clips", *map(str, args)], catch_exceptions=False)


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_the_demo_coffee_cup_holds_exactly_its_frames(tmp_path):
    run = _run_folder(tmp_path / "run")
    result = _cli(run, "--label", "coffee cup", "-o", tmp_path / "clips")
    assert result.exit_code == 0, result.output
    clip, = (tmp_path / "clips" / "demo_kitchen").iterdir()
    assert clip.name == "coffee_cup-1-00.02.000.mp4"
    assert _frames(clip) == 90 - 30


def test_every_segment_a_clip_and_a_supercut_in_time_order(tmp_path):
    run = _run_folder(tmp_path / "run")
    result = _cli(run, "-o", tmp_path / "clips", "--supercut", tmp_path / "all.mp4", "--pad", "0.4")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "clips" / "demo_kitchen").iterdir())
    assert names == ["ball-1-00.09.000.mp4", "coffee_cup-1-00.02.000.mp4"]
    for name in names:  # 4 s and 0.4 s either side: 72 frames at 15 fps
        assert _frames(tmp_path / "clips" / "demo_kitchen" / name) == 72
    assert _frames(tmp_path / "all.mp4") == 2 * 72


def test_copy_says_how_early_each_clip_starts(tmp_path):
    run = _run_folder(tmp_path / "run")
    result = _cli(run, "--copy", "--label", "ball", "-o", tmp_path / "clips")
    assert result.exit_code == 0, result.output
    assert "ball-1-00.09.000.mp4: starts" in result.output and "s early" in result.output


@pytest.mark.expect_errors
def test_a_folder_without_segments_is_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _cli(tmp_path / "empty", "-o", tmp_path / "clips")
    assert result.exit_code == 2
    assert "no segments.csv found" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "clips").exists()
    run = _run_folder(tmp_path / "run")
    assert _cli(run, "--label", "giraffe", "-o", tmp_path / "clips").exit_code == 2
    assert _cli(run, "--copy", "--exact", "-o", tmp_path / "clips").exit_code == 2


@pytest.mark.expect_errors
def test_a_source_that_moved_fails_that_input_alone(tmp_path):
    run = _run_folder(tmp_path / "run")
    _run_folder(run, source=tmp_path / "gone.mp4", name="gone")
    result = _cli(run, "--label", "coffee cup", "-o", tmp_path / "clips")
    assert result.exit_code == 1
    assert "gone: source" in result.output and "is not there" in result.output
    assert [p.name for p in (tmp_path / "clips").iterdir()] == ["demo_kitchen"]


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path):
    run = _run_folder(tmp_path / "run")
    out = tmp_path / "clips"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
        "from pipeline.cli import main\n"
        f"sys.argv = ['scenetag', 'clips', {str(run)!r}, '-o', {str(out)!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if "cannot write clip" in line]
    assert lines, done.stderr
    left = [p.name for p in (out / "demo_kitchen").iterdir()]
    assert not [n for n in left if n.startswith(".")]  # no temporary
    for name in left:  # whatever is there is whole
        assert _frames(out / "demo_kitchen" / name) == 60


def test_the_plan_pads_within_the_video_and_names_by_start():
    segs = [Segment("cup", "tag", 0.2, 3.0, 1, 1, 3, 45), Segment("cup", "tag", 14.0, 15.0, 1, 1),
            Segment("a/b", "tag", 61.5, 62.0, 1, 1)]
    plan = plan_clips("v.mov", segs, pad_s=0.5, duration_s=14.5)
    assert [c.name for c in plan] == ["cup-1-00.00.200.mov", "cup-2-00.14.000.mov", "a_b-1-01.01.500.mov"]
    assert (plan[0].part.start_s, plan[0].part.start_frame) == (0.0, None)
    assert plan[1].part.end_s == 14.5
    exact = plan_clips("v.webm", segs[:1])
    assert exact[0].name.endswith(".mp4") and (exact[0].part.start_frame, exact[0].part.end_frame) == (3, 45)
    assert stamp(3725.25) == "62.05.250"
