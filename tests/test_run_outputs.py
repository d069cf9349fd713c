"""What a run leaves in its output folder: an index of every input folder
there (merged across runs, images included), a summary.json per input
whatever the formats, and input folders replaced as a whole on a rerun."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from media import make_clip, make_image

import pipeline.atomic as atomic
from pipeline.config import parse_config
from pipeline.report import regenerate
from pipeline.run.job import RunOptions, run_job
from pipeline.run.rescore import rescore_job


def _config(model_dir, labels=("red", "blue"), formats=("csv", "plot", "json", "html", "vtt", "edl"),
            every_s=0.5, **output):
    return parse_config({"model": {"id": str(model_dir), "device": "cpu", "precision": "fp32"},
                         "sampling": {"every_seconds": every_s},
                         "labels": [{"name": n} for n in labels],
                         "output": {"formats": list(formats), **output}})


def _clip(folder: Path, name: str, seconds: float = 1) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return make_clip(folder / name, seconds=seconds, fps=10, size=(64, 48))


def _run(inputs, config, out, embedder, **options):
    return run_job(inputs, config, out, RunOptions(progress=False, **options), embedder=embedder)


def _index(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "index.csv", keep_default_na=False)


# --------------------------------------------------------------------------- index


def test_rerun_into_the_same_output_keeps_earlier_inputs(tmp_path, tiny_model_dir, tiny_embedder):
    a, b = _clip(tmp_path / "in", "a.mp4"), _clip(tmp_path / "in", "b.mp4")
    out = tmp_path / "out"
    _run([a], _config(tiny_model_dir), out, tiny_embedder)
    second = _run([b], _config(tiny_model_dir), out, tiny_embedder)
    assert [r.input_path for r in second.results] == [b]  # the run reports its own inputs
    index = _index(out)
    assert list(index["input"]) == [a, b] and set(index["status"]) == {"ok"}
    page = (out / "index.html").read_text("utf-8")
    assert "2 inputs" in page and 'href="a/report.html"' in page and 'href="b/report.html"' in page
    for name in ("a", "b"):  # each row shows the input's poster, earlier runs' included
        assert (out / name / "poster.jpg").is_file() and f'<img src="{name}/poster.jpg"' in page


@pytest.mark.expect_errors
def test_this_runs_result_wins_for_its_inputs(tmp_path, tiny_model_dir, tiny_embedder):
    a = _clip(tmp_path / "in", "a.mp4")
    out = tmp_path / "out"
    _run([a], _config(tiny_model_dir), out, tiny_embedder)
    Path(a).write_bytes(b"not a video any more")
    _run([a], _config(tiny_model_dir), out, tiny_embedder)
    index = _index(out)
    assert len(index) == 1 and index["status"][0] == "error"


@pytest.mark.expect_errors
def test_a_failed_rerun_leaves_no_stale_report(tmp_path, tiny_model_dir, tiny_embedder):
    a = _clip(tmp_path / "in", "a.mp4")
    out = tmp_path / "out"
    _run([a], _config(tiny_model_dir), out, tiny_embedder)
    assert (out / "a" / "report.html").is_file() and (out / "a" / "markers.edl").is_file()
    Path(a).write_bytes(b"not a video any more")
    _run([a], _config(tiny_model_dir), out, tiny_embedder)
    assert sorted(p.name for p in (out / "a").iterdir()) == ["summary.json"]
    assert json.loads((out / "a" / "summary.json").read_text("utf-8"))["status"] == "error"
    assert 'href="a/report.html"' not in (out / "index.html").read_text("utf-8")


def test_a_rerun_replaces_the_folder_as_a_whole(tmp_path, tiny_model_dir, tiny_embedder):
    a = _clip(tmp_path / "in", "a.mp4")
    out = tmp_path / "out"
    _run([a], _config(tiny_model_dir, labels=("cat", "dog"), top_frames=2), out, tiny_embedder)
    # top frames go to labels that appear; of two softmax labels, one always does
    first = {p.name.split("_")[0] for p in (out / "a" / "top_frames").iterdir()}
    assert first and first <= {"cat", "dog"}
    (out / "a" / "notes.txt").write_text("mine")  # anything in the folder is the run's to replace
    _run([a], _config(tiny_model_dir, labels=("red", "blue"), top_frames=2), out, tiny_embedder)
    second = {p.name.split("_")[0] for p in (out / "a" / "top_frames").iterdir()}
    assert second and second <= {"red", "blue"}  # none of the first run's files are left
    assert not (out / "a" / "notes.txt").exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_stale_temporary_folders_are_cleaned_up(tmp_path, tiny_model_dir, tiny_embedder):
    a = _clip(tmp_path / "in", "a.mp4")
    out = tmp_path / "out"
    stale, live = out / ".a.tmp-deadbeef", out / ".a.tmp-0badc0de"
    for leftover in (stale, live):
        (leftover / "thumbs").mkdir(parents=True)
        (leftover / "summary.json").write_text("{}")
    old = time.time() - atomic.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    _run([a], _config(tiny_model_dir), out, tiny_embedder)
    assert not stale.exists() and live.exists()  # a live writer's is never touched
    assert list(_index(out)["input"]) == [a]


def test_images_only_run_lists_images_in_the_index(tmp_path, tiny_model_dir, tiny_embedder):
    photos = tmp_path / "photos"
    photos.mkdir()
    paths = [make_image(photos / "one.png"), make_image(photos / "two.jpg", size=(48, 64))]
    out = tmp_path / "out"
    run = _run([str(photos)], _config(tiny_model_dir), out, tiny_embedder)
    assert run.exit_code == 0 and len(run.images) == 2
    index = _index(out)
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert sorted(index["input"]) == sorted(paths) == sorted(images["input"])
    for row in index.to_dict("records"):
        image = images[images["input"] == row["input"]].iloc[0]
        assert row["status"] == "ok" and row["frames_scored"] == 1
        assert row["tags"] == f"{image['top_label']}: {image['top_score']:.4f}"
    assert "2 inputs" in (out / "index.html").read_text("utf-8")
    other = _clip(tmp_path / "in", "v.mp4")  # a later video-only run keeps them listed
    _run([other], _config(tiny_model_dir), out, tiny_embedder)
    assert sorted(_index(out)["input"]) == sorted([*paths, other])


def test_a_truncated_input_is_ok_but_said_to_be_partial_everywhere(tmp_path, tiny_model_dir, tiny_embedder,
                                                                   caplog):
    """``head -c`` of an MKV: its header claims 6 s, 1.8 s decode. The run
    still succeeds (exit 0, status ok), and stderr, index.csv, the HTML
    report and the index page say what was decoded of what was claimed,
    also for a resumed run that rebuilds the row from summary.json."""
    whole = Path(_clip(tmp_path / "in", "cut.mkv", seconds=6)).read_bytes()
    cut = tmp_path / "in" / "cut.mkv"
    cut.write_bytes(whole[:len(whole) // 2])
    fine = _clip(tmp_path / "in", "fine.mp4")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        run = _run([str(cut), fine], _config(tiny_model_dir), out, tiny_embedder)
    assert run.exit_code == 0 and [r.status for r in run.results] == ["ok", "ok"]
    said = "partial: decoded 1.80 s of the 6.00 s the container claims (truncated?)"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{cut}: {said}" in warnings
    assert not [w for w in warnings if fine in w]
    for run_kind in ("fresh", "resumed"):
        index = _index(out)
        assert list(index["status"]) == ["ok", "ok"] and list(index["notes"]) == [said, ""], run_kind
        assert said in (out / "index.html").read_text("utf-8"), run_kind
        assert _run([str(cut), fine], _config(tiny_model_dir), out, tiny_embedder, resume=True).skipped == 2
    page = (out / "cut" / "report.html").read_text("utf-8")
    assert f'<p class="warning" role="alert">{said}</p>' in page


def test_the_cli_counts_and_lists_partial_inputs(tmp_path, tiny_model_dir):
    """The closing line and ``--json`` say which inputs were decoded only in part."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    whole = Path(_clip(tmp_path / "in", "cut.mkv", seconds=6)).read_bytes()
    cut = tmp_path / "in" / "cut.mkv"
    cut.write_bytes(whole[:len(whole) // 2])
    fine = _clip(tmp_path / "in", "fine.mp4")
    args = ["run", str(cut), fine, "--model", str(tiny_model_dir), "--labels", "red,blue", "--no-store",
            "--formats", "csv", "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    summary = json.loads(result.stdout)
    assert [i["notes"] for i in summary["inputs"]] == [
        ["partial: decoded 1.80 s of the 6.00 s the container claims (truncated?)"], []]
    assert summary["totals"]["partial"] == 1 and summary["totals"]["ok"] == 2
    assert "scenetag: 2 ok (1 partial); reports in" in result.stderr


# --------------------------------------------------------------------------- summary.json


def test_csv_only_still_writes_the_summary_and_resume_skips(tmp_path, tiny_model_dir, tiny_embedder):
    a = _clip(tmp_path / "in", "a.mp4")
    out = tmp_path / "out"
    config = _config(tiny_model_dir, formats=("csv",))
    _run([a], config, out, tiny_embedder)
    assert sorted(p.name for p in (out / "a").iterdir()) == ["frames.csv", "segments.csv", "summary.json"]
    again = _run([a], config, out, tiny_embedder, resume=True)
    assert again.skipped == 1
    assert [r.name for r in regenerate(out, ["html"])] == ["a"]


# --------------------------------------------------------------------------- rescore


def test_rescore_says_it_uses_the_stored_sampling(tmp_path, tiny_model_dir, tiny_embedder, caplog):
    a, b = _clip(tmp_path / "in", "a.mp4", seconds=2), _clip(tmp_path / "in", "b.mp4", seconds=2)
    out = tmp_path / "out"
    _run([a, b], _config(tiny_model_dir), out, tiny_embedder)
    with caplog.at_level(logging.WARNING):
        rescore_job(_config(tiny_model_dir, every_s=2.0), out / "store", tmp_path / "re",
                    embedder=tiny_embedder)
    warnings = [r.getMessage() for r in caplog.records if "sampling" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "every 0.5 s" in warnings[0] and "every 2 s" in warnings[0] and "\n" not in warnings[0]
    summary = json.loads((tmp_path / "re" / "a" / "summary.json").read_text("utf-8"))
    assert summary["sampling"]["every_seconds"] == 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        rescore_job(_config(tiny_model_dir), out / "store", tmp_path / "re2", embedder=tiny_embedder)
    assert not [r for r in caplog.records if "sampling" in r.getMessage()]
