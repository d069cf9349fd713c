"""One input's report writing never costs the batch, output folder names never
collide with run-level files or outgrow the file system's byte limit, and
input expansion never re-reads the run's own outputs."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from media import make_clip

import pipeline.atomic as atomic
from pipeline.config import parse_config
from pipeline.report.folders import OUTPUT_MARKER, RUN_LEVEL_NAMES
from pipeline.run.inputs import expand_inputs, output_names
from pipeline.run.job import RunOptions, run_job

NAME_MAX = 255


def _config(model_dir, labels=("red", "blue"), **output):
    return parse_config({"model": {"id": str(model_dir), "device": "cpu", "precision": "fp32"},
                         "sampling": {"every_seconds": 0.5},
                         "labels": [{"name": n} for n in labels],
                         "output": {"formats": ["csv", "plot", "json", "html", "vtt", "edl"], **output}})


def _clips(folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [make_clip(folder / n, seconds=1, fps=10, size=(64, 48)) for n in names]


def _run(inputs, config, out, embedder, **options):
    return run_job(inputs, config, out, RunOptions(progress=False, **options), embedder=embedder)


def _index(out: Path) -> dict[str, dict]:
    rows = pd.read_csv(out / "index.csv", keep_default_na=False).to_dict("records")
    return {Path(r["input"]).name: r for r in rows}


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".tmp-" in p.name]


def _disk_full_in(name: str):
    """An ``atomic._fsync_file`` that fails with ENOSPC for files written into
    folder ``name`` (its temporary), as a full disk would."""
    real = atomic._fsync_file

    def fsync(path):
        if Path(path).parent.name.startswith(f".{name}.tmp-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path)

    return fsync


# --------------------------------------------------------------------------- scoring failures


@pytest.mark.expect_errors
def test_a_scoring_exception_costs_only_that_input(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    import pipeline.run.job as run_module

    real = run_module._analysis  # scoring, smoothing and edge refinement of one input

    def broken(embedded, *args, **kwargs):
        if len(embedded.times_s) == 4:  # b.mp4 is the 2 s clip
            raise FloatingPointError("overflow in smoothing\nsecond line")
        return real(embedded, *args, **kwargs)

    monkeypatch.setattr(run_module, "_analysis", broken)
    folder = tmp_path / "in"
    clips = _clips(folder, "a.mp4", "c.mp4") + [make_clip(folder / "b.mp4", seconds=2, fps=10, size=(64, 48))]
    out = tmp_path / "out"
    run = _run(clips, _config(tiny_model_dir), out, tiny_embedder)
    status = {r.name: (r.status, r.error) for r in run.results}
    assert status["a"] == ("ok", None) and status["c"] == ("ok", None)
    assert status["b"] == ("error", "cannot score: FloatingPointError: overflow in smoothing second line")
    assert _index(out)["b.mp4"]["status"] == "error"
    assert json.loads((out / "b" / "summary.json").read_text("utf-8"))["status"] == "error"


# --------------------------------------------------------------------------- report failures


@pytest.mark.expect_errors
def test_a_report_exception_costs_only_that_input(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    from pipeline.report import plot

    real = plot.write_timeline_png

    def broken(result, out_dir):
        if result.name == "b":
            raise ValueError("mathtext: unknown symbol\nat line 2")
        return real(result, out_dir)

    monkeypatch.setattr(plot, "write_timeline_png", broken)
    clips = _clips(tmp_path / "in", "a.mp4", "b.mp4", "c.mp4")
    out = tmp_path / "out"
    run = _run(clips, _config(tiny_model_dir), out, tiny_embedder)
    status = {r.name: (r.status, r.error) for r in run.results}
    assert status["a"] == ("ok", None) and status["c"] == ("ok", None)
    assert status["b"][0] == "error" and "mathtext" in status["b"][1] and "\n" not in status["b"][1]
    assert run.exit_code == 1
    index = _index(out)
    assert [index[n]["status"] for n in ("a.mp4", "b.mp4", "c.mp4")] == ["ok", "error", "ok"]
    assert (out / "index.html").is_file()
    summary = json.loads((out / "b" / "summary.json").read_text("utf-8"))
    assert summary["status"] == "error" and summary["error"] == status["b"][1]
    assert sorted(p.name for p in (out / "b").iterdir()) == ["summary.json"]  # no half report
    assert not _temps(out)


@pytest.mark.expect_errors
def test_a_full_disk_costs_only_that_input(tmp_path, tiny_model_dir, tiny_embedder, monkeypatch):
    """ENOSPC on every write into b's folder: b is an error with no folder at
    all (not even its summary fits), a and c and the index are written."""
    monkeypatch.setattr(atomic, "_fsync_file", _disk_full_in("b"))
    clips = _clips(tmp_path / "in", "a.mp4", "b.mp4", "c.mp4")
    out = tmp_path / "out"
    run = _run(clips, _config(tiny_model_dir), out, tiny_embedder)
    index = _index(out)
    assert index["a.mp4"]["status"] == "ok" and index["c.mp4"]["status"] == "ok"
    assert index["b.mp4"]["status"] == "error"
    assert index["b.mp4"]["error"] == "cannot write reports: No space left on device"
    assert not (out / "b").exists() and not _temps(out)
    assert run.exit_code == 1


@pytest.mark.expect_errors
def test_a_full_disk_on_rerun_leaves_no_stale_folder(tmp_path, tiny_model_dir, tiny_embedder,
                                                     monkeypatch):
    clips = _clips(tmp_path / "in", "b.mp4")
    out = tmp_path / "out"
    _run(clips, _config(tiny_model_dir), out, tiny_embedder)
    assert (out / "b" / "report.html").is_file()
    monkeypatch.setattr(atomic, "_fsync_file", _disk_full_in("b"))
    _run(clips, _config(tiny_model_dir), out, tiny_embedder)
    assert not (out / "b").exists()  # the old "status ok" report must not pass for this run's
    assert _index(out)["b.mp4"]["status"] == "error"


# --------------------------------------------------------------------------- names


def test_inputs_named_like_run_level_files(tmp_path, tiny_model_dir, tiny_embedder):
    names = ["index.csv.mp4", "INDEX.HTML.mp4", "images.csv.mp4", "store.mp4", "search.csv.mp4"]
    clips = _clips(tmp_path / "in", *names)
    out = tmp_path / "out"
    run = _run(clips, _config(tiny_model_dir), out, tiny_embedder)
    assert run.exit_code == 0, [(r.name, r.error) for r in run.results]
    folders = {r.name.lower() for r in run.results}
    assert not folders & RUN_LEVEL_NAMES
    assert (out / "index.csv").is_file() and (out / "index.html").is_file()
    assert (out / "store").is_dir()
    assert sorted(_index(out)) == sorted(names)


def test_output_names_avoid_run_level_files_case_insensitively():
    paths = [f"/v/{n}.mp4" for n in ("Index.CSV", "index.html", "Images.csv", "STORE", "clusters.html",
                                     "search.png", "index")]
    names = output_names(paths)
    assert not {n.lower() for n in names.values()} & RUN_LEVEL_NAMES
    assert names["/v/Index.CSV.mp4"] == "Index.CSV-2"


def test_output_names_respect_what_the_folder_holds():
    existing = {"clip": "/a/clip.mp4", "notes": None, "clip-2": "/b/clip.mp4"}
    names = output_names(["/b/clip.mp4", "/c/clip.mp4", "/d/notes.mp4"], existing)
    # b keeps its folder; c takes nobody's; a user's own "notes" is never replaced
    assert names == {"/b/clip.mp4": "clip-2", "/c/clip.mp4": "clip-3", "/d/notes.mp4": "notes-2"}


def test_names_are_bounded_in_bytes():
    label = "\U0001d49c" * 60  # 4 bytes each in UTF-8
    assert len(atomic.bounded_name(label, 60).encode()) <= 60
    assert atomic.bounded_name("a/b c.d", 60) == "a_b_c_d"
    assert atomic.bounded_name("..a.b..", 60, dots=True) == "a.b"
    assert atomic.fit_bytes("é" * 10, 5) == "éé"  # never half a character
    name = output_names([f"/v/{label}.mp4"])[f"/v/{label}.mp4"]
    assert 0 < len(name.encode()) <= 80


def test_atomic_temp_names_fit_a_long_target(tmp_path):
    target = tmp_path / ("x" * 250)
    atomic.atomic_write_text(target, "ok")
    assert target.read_text() == "ok"
    with atomic.atomic_dir(tmp_path / ("é" * 120)) as tmp:  # 240 bytes
        assert len(tmp.name.encode()) <= NAME_MAX
        (tmp / "f").write_text("x")
    assert (tmp_path / ("é" * 120) / "f").is_file()


def test_a_long_label_of_four_byte_characters(tmp_path, tiny_model_dir, tiny_embedder):
    label = "\U0001d49c" * 60
    clips = _clips(tmp_path / "in", "a.mp4")
    config = _config(tiny_model_dir, labels=(label, "blue"), top_frames=1)
    config = config.model_copy(update={"output": config.output.model_copy(
        update={"formats": [*config.output.formats, "thumbs"]})})
    out = tmp_path / "out"
    run = _run(clips, config, out, tiny_embedder)
    assert run.exit_code == 0, run.results[0].error
    files = list((out / "a").rglob("*"))
    assert any(p.parent.name == "top_frames" for p in files)
    assert all(len(p.name.encode()) <= NAME_MAX for p in files)


# --------------------------------------------------------------------------- input expansion


def test_output_and_store_folders_are_not_inputs(tmp_path, tiny_model_dir, tiny_embedder):
    media = tmp_path / "media"
    _clips(media, "a.mp4")
    out, store = media / "reports", media / "cache"
    config = _config(tiny_model_dir, top_frames=2)
    _run([str(media)], config, out, tiny_embedder, store=store)
    assert list((out / "a" / "top_frames").glob("*.jpg"))
    again = _run([str(media)], config, out, tiny_embedder, store=store)
    assert [Path(r.input_path).name for r in again.results] == ["a.mp4"]
    assert not again.images and not (out / "images.csv").exists()
    paths, _ = expand_inputs([str(media / "**" / "*.jpg")], out, store)
    assert paths == []


def test_an_earlier_runs_outputs_are_not_inputs_of_the_next(tmp_path, tiny_model_dir, tiny_embedder):
    """``run sv2 -o sv2/rep``, then ``run sv2 -o sv2/rep2``: the first run's
    thumbnails, plots, search pictures and store must not become inputs of
    the second (they once did: "5 ok, 18 images")."""
    media = tmp_path / "sv2"
    _clips(media, "a.mp4")
    config = _config(tiny_model_dir, top_frames=2)
    config = config.model_copy(update={"output": config.output.model_copy(
        update={"formats": [*config.output.formats, "thumbs"]})})
    first = media / "rep"
    _run([str(media)], config, first, tiny_embedder, store=first / "store")
    assert (first / OUTPUT_MARKER).is_file() and list(first.rglob("*.jpg")) and list(first.rglob("*.png"))
    (first / "search-a-cup.png").write_bytes((first / "a" / "timeline.png").read_bytes())
    (first / "keep.mp4").write_bytes((media / "a.mp4").read_bytes())  # a user's video beside the reports
    again = _run([str(media)], config, media / "rep2", tiny_embedder, store=media / "rep2" / "store")
    assert sorted(Path(r.input_path).relative_to(media).as_posix() for r in again.results) == \
        ["a.mp4", "rep/keep.mp4"]
    assert not again.images


def test_searching_the_output_folder_skips_only_reports(tmp_path):
    out = tmp_path / "out"
    (out / "clip" / "thumbs").mkdir(parents=True)
    (out / "clip" / "summary.json").write_text("{}")
    (out / "clip" / "thumbs" / "000.jpg").write_bytes(b"x")
    (out / ".clip.tmp-1234abcd").mkdir()
    (out / ".clip.tmp-1234abcd" / "x.jpg").write_bytes(b"x")
    (out / "search.png").write_bytes(b"x")
    (out / "raw").mkdir()
    video = out / "raw" / "v.mp4"
    video.write_bytes(b"x")
    paths, errors = expand_inputs([str(out)], out, out / "store")
    assert paths == [str(video)] and not errors


def test_list_entries_are_relative_to_the_list_file(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "clip.mp4").write_bytes(b"x")
    (lists / "inputs.txt").write_text("clip.mp4\n# comment\n/abs/other.mp4\nsub/x.mp4\n", "utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    paths, errors = expand_inputs([str(lists / "inputs.txt")])
    assert paths == [str(lists / "clip.mp4"), "/abs/other.mp4", str(lists / "sub" / "x.mp4")]
    assert Path(paths[0]).is_file() and not errors
    monkeypatch.chdir(lists)
    assert expand_inputs(["inputs.txt"])[0][0] == "clip.mp4"
