"""Shots in a run's outputs beyond shots.csv: the strip of report.html (one
block per shot, the cues under it; none without shots; hostile tags
escaped), ``scenetag report`` drawing it again from shots.csv and cues.csv,
and the store's ``shots`` table (exactly shots.csv's rows, replaced on a
rerun, removed with the input; a store without the table opens and searches)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from shot_media import Take, make_shot_clip
from test_exports import HOSTILE, make_result
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.report import html, readback
from pipeline.report.text import clock
from pipeline.report.timeline_files import CueRow, ShotRow, read_shots
from pipeline.store.db import EmbeddingStore
from pipeline.store.schema import SHOTS
from pipeline.types import Segment

runner = CliRunner()
SHOT_RECT = re.compile(r'<rect class="shot (?:even|odd)" data-i="(\d+)" data-start="([\d.]+)" '
                       r'x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>([^<]*)</title></rect>')


def _run(folder: Path, config: Path, clip: Path, out: Path, store: Path, *extra: str):
    result = runner.invoke(app, ["run", str(clip), "-c", str(config), "-o", str(out), "--store", str(store),
                                 "-q", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / clip.stem


@pytest.fixture(scope="module")
def shots_run(tmp_path_factory, tiny_model_dir):
    """A three-take clip run with ``--shots`` into its own store:
    ``(input folder, store folder, clip, config)``."""
    folder = tmp_path_factory.mktemp("shot-outputs")
    clip = folder / "takes.mp4"
    make_shot_clip(clip, [Take("astronaut", 20, "pan"), Take("coffee", 20, "still"),
                          Take("chelsea", 20, "zoom")])
    config = tiny_config(folder, tiny_model_dir,
                         "sampling: {every_seconds: 0.2}\ndecoder: {strategy: exact}\n"
                         "labels: [{name: cat}, {name: cup}]\nsmoothing: {method: none}\n"
                         "segments: {threshold: 0.2, min_duration_s: 0, merge_gap_s: 0}\n")
    out = _run(folder, config, clip, folder / "run", folder / "store", "--shots")
    return out, folder / "store", clip, config


def _data(page: str) -> dict:
    blob = re.search(r'<script id="scenetag-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(blob.group(1))


def _check_strip(page: str, shots: list[ShotRow]) -> None:
    blocks = SHOT_RECT.findall(page)
    assert len(blocks) == len(shots) >= 2
    for (_, start, _, width, title), shot in zip(blocks, shots):
        assert float(start) == pytest.approx(shot.start_s, abs=5e-4)
        assert title.startswith(f"Shot {shot.shot}  {clock(shot.start_s)}–{clock(shot.end_s)}")
        assert float(width) > 0
    xs = [float(block[2]) for block in blocks]
    assert xs == sorted(xs)  # on the segments' time axis, left to right
    data = _data(page)
    assert [(s["shot"], s["start"], s["end"]) for s in data["shots"]] == \
        [(s.shot, round(s.start_s, 3), round(s.end_s, 3)) for s in shots]


# --------------------------------------------------------------------------- report.html


def test_the_page_of_a_shots_run_has_a_block_per_shot(shots_run):
    folder, *_ = shots_run
    shots = read_shots(folder)
    csv = pd.read_csv(folder / "shots.csv", keep_default_na=False)
    assert len(shots) == len(csv) == 3
    _check_strip((folder / "report.html").read_text(encoding="utf-8"), shots)


def test_report_draws_the_strip_again_from_the_csvs(shots_run, tmp_path):
    folder, *_ = shots_run
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    (copy / "report.html").unlink()
    back = readback.load_result(copy)
    assert back.shots == read_shots(folder)
    cues = pd.read_csv(folder / "cues.csv")
    assert [(c.kind, c.start_s) for c in back.cues] == list(zip(cues.kind, cues.start_s))
    result = runner.invoke(app, ["report", str(copy)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _check_strip((copy / "report.html").read_text(encoding="utf-8"), back.shots)


def test_no_strip_without_shots(tmp_path):
    result = make_result([Segment("cup", "tag", 1.0, 3.0, 0.9, 0.8)])
    for shots in (None, []):
        result.shots, result.cues = shots, shots
        page = html.write_report_html(result, tmp_path / "x", thumbs=False).read_text()
        assert 'class="shot' not in page and 'class="cue' not in page and ">shots</text>" not in page
        assert "shots" not in _data(page)


def test_hostile_shot_tags_and_cue_kinds_are_escaped(tmp_path):
    result = make_result([Segment("cup", "tag", 1.0, 3.0, 0.9, 0.8)])
    result.shots = [ShotRow(1, 0.0, 4.0, 0, 120, HOSTILE), ShotRow(2, 4.0, 10.0, 120, 300, "cup")]
    result.cues = [CueRow("black", 3.9, 4.1), CueRow(HOSTILE, 5.0, 7.5)]
    page = html.write_report_html(result, tmp_path / "x", thumbs=False).read_text()
    assert "<script>alert" not in page and "<!--" not in page
    assert page.count("</script>") == page.count("<script")  # only our own blocks close
    assert "<title>Shot 1  00:00.000–00:04.000  &lt;script&gt;alert(1)&lt;/script&gt; &amp; " in page
    assert '<rect class="cue cue-black"' in page and '<rect class="cue cue-other"' in page
    data = _data(page)
    assert [s["tags"] for s in data["shots"]] == [HOSTILE, "cup"]
    assert [c["kind"] for c in data["cues"]] == ["black", HOSTILE]
    _check_strip(page, result.shots)


# --------------------------------------------------------------------------- the store


def _table_rows(store: Path) -> list[dict]:
    import lancedb

    return lancedb.connect(str(store)).open_table(SHOTS).to_arrow().to_pylist()


def _stored(store_dir: Path) -> list[tuple]:
    store = EmbeddingStore.open(store_dir)
    (video,) = store.videos()
    shots = store.shots()[video.key]
    return [(s.shot, round(s.start_s, 6), round(s.end_s, 6), s.start_frame, s.end_frame, s.tags)
            for s in shots]


def _csv(folder: Path) -> list[tuple]:
    return [(s.shot, round(s.start_s, 6), round(s.end_s, 6), s.start_frame, s.end_frame, s.tags)
            for s in read_shots(folder)]


def test_the_store_keeps_exactly_the_runs_shots(shots_run):
    folder, store_dir, *_ = shots_run
    assert _stored(store_dir) == _csv(folder)
    rows = _table_rows(store_dir)
    assert len(rows) == len(_csv(folder))
    summary = json.loads((folder / "summary.json").read_text())
    assert {r["config_hash"] for r in rows} == {summary["config_hash"]}


def test_a_rerun_replaces_the_shots_and_removing_the_input_removes_them(shots_run, tmp_path):
    folder, store_dir, clip, config = shots_run
    store_copy = tmp_path / "store"
    shutil.copytree(store_dir, store_copy)
    again = _run(tmp_path, config, clip, tmp_path / "again", store_copy, "--shots")  # a cache hit
    assert _stored(store_copy) == _csv(again) == _csv(folder)
    assert len(_table_rows(store_copy)) == len(_csv(folder))  # replaced, not added to
    _run(tmp_path, config, clip, tmp_path / "plain", store_copy, "--no-cache")  # frames again, no shots
    assert _stored(store_copy) == _csv(folder)  # the content's shots stay with it
    store = EmbeddingStore.open(store_copy)
    (video,) = store.videos()
    store.delete(video.key)
    assert store.shots() == {} and _table_rows(store_copy) == []


def test_a_store_without_the_shots_table_opens_and_searches(shots_run, tmp_path):
    from pipeline.explore.search import search

    _, _, clip, config = shots_run
    _run(tmp_path, config, clip, tmp_path / "run", tmp_path / "store")  # no --shots: as older stores
    store = EmbeddingStore.open(tmp_path / "store")
    assert SHOTS not in store._table_names()
    assert store.shots() == {}
    query = store.frames().vectors[0]
    hits = search(store, query, top_k=3)
    assert len(hits) == 3 and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert store.compact(min_fragments=0)  # upkeep over the tables it has
