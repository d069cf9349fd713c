"""CSV formula injection (OWASP): no CSV the tool writes holds a cell, header
cells included, that a spreadsheet would run as a formula; numbers stay
numbers; `scenetag report` reads the labels back unchanged."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_exports import make_result
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.report import tables
from pipeline.types import Segment, VideoResult

FORMULAS = ["=1+1", "@SUM(1)", "+cmd|' /C calc'!A0", "-2+3", "\tx", "\rx", '=HYPERLINK("http://x")']
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
runner = CliRunner()


def cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def formula_cells(path: Path) -> list[str]:
    """Cells a spreadsheet would evaluate: starting with = + - @ tab CR and
    not a plain number."""
    out = []
    for row in cells(path):
        for cell in row:
            if cell.startswith(TRIGGERS):
                try:
                    float(cell)
                except ValueError:
                    out.append(cell)
    return out


def hostile_result() -> VideoResult:
    segs = [Segment(label, "tag", float(i), float(i) + 0.5, 0.9, 0.8) for i, label in enumerate(FORMULAS)]
    result = make_result(segs, name="=HYPERLINK(\"x\")", input_path="=HYPERLINK(\"x\").mp4")
    result.error = "@boom"
    return result


def test_segments_csv(tmp_path):
    path = tables.write_segments_csv(hostile_result(), tmp_path)
    assert formula_cells(path) == []
    labels = [row[0] for row in cells(path)[1:]]
    assert labels == ["'" + f for f in FORMULAS]


def test_frames_csv_headers(tmp_path):
    path = tables.write_frames_csv(hostile_result(), tmp_path)
    assert formula_cells(path) == []
    assert "score:=1+1" in cells(path)[0]  # "score:" already makes it text


def test_index_csv(tmp_path):
    path = tables.write_index_csv([hostile_result()], tmp_path)
    assert formula_cells(path) == []
    row = dict(zip(*cells(path), strict=True))
    assert row["name"] == "'=HYPERLINK(\"x\")" and row["input"] == "'=HYPERLINK(\"x\").mp4"
    assert row["error"] == "'@boom" and row["tags"].startswith("'")


def test_images_csv_headers_and_cells(tmp_path):
    from pipeline.analysis.analyse import ImageResult

    rows = [ImageResult("=cmd.png", {"=1+1": 0.75, "@SUM(1)": 0.25}, {"=1+1": "tag", "@SUM(1)": "tag"},
                        ["=1+1"], "n/a"),
            ImageResult("ok.png", {"-x": 1.0}, {"-x": "tag"}, ["-x"], "n/a")]
    path = tables.write_images_csv(rows, tmp_path)
    assert formula_cells(path) == []
    assert cells(path)[0] == ["input", "top_label", "top_score", "tags", "nsfw_verdict", "'=1+1", "'@SUM(1)",
                              "'-x", "summary"]


def test_numbers_stay_numbers(tmp_path):
    frame = pd.DataFrame({"label": ["-0.5", "-x", "'=y", "plain"], "value": [-1.25, -3.0, 0.0, 2.0]})
    path = tables.write_csv(frame, tmp_path / "t.csv")
    back = pd.read_csv(path)
    assert back["value"].tolist() == [-1.25, -3.0, 0.0, 2.0] and back["value"].dtype.kind == "f"
    assert [row[0] for row in cells(path)[1:]] == ["-0.5", "'-x", "''=y", "plain"]


def test_cell_rule_round_trips():
    from pipeline.report.text import csv_cell, uncsv_cell

    for value in [*FORMULAS, "'=x", "''@y", "'", "", "-1", "1e-3", "ok", "'quoted'", "- dash"]:
        assert uncsv_cell(csv_cell(value)) == value, value
    assert csv_cell(-1.5) == -1.5 and csv_cell(None) is None


def test_search_csv(tmp_path):
    from pipeline.explore.search import Hit, write_csv

    hits = [Hit(1, "=HYPERLINK(\"x\").mp4", 1.5, 15, -0.25), Hit(2, "@a.mp4", 2.0, 20, 0.5)]
    path = write_csv(hits, tmp_path)
    assert formula_cells(path) == []
    table = pd.read_csv(path)
    assert table["score"].tolist() == [-0.25, 0.5] and table["input"][0] == "'=HYPERLINK(\"x\").mp4"


def test_clusters_and_outliers_csv(tmp_path):
    pytest.importorskip("sklearn")
    from pipeline.explore.cluster import cluster
    from pipeline.explore.cluster_outputs import write_outputs
    from pipeline.store.rows import FrameRows

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    paths = np.array(["=1+1.mp4"] * 6 + ["@SUM(1).mp4"] * 6, dtype=object)
    rows = FrameRows(input_path=paths, key=paths.copy(), frame_index=np.arange(12),
                     time_s=np.arange(12) * 0.5, vectors=vectors)
    write_outputs(rows, cluster(vectors, k=2, outliers=3), tmp_path)
    for name in ("clusters.csv", "outliers.csv"):
        assert formula_cells(tmp_path / name) == [], name
    assert pd.read_csv(tmp_path / "clusters.csv")["input"].str.startswith("'").all()


def test_run_and_report_keep_formula_labels(tmp_path, tiny_model_dir, clip_dir):
    """End to end: a hostile input name and labels; `scenetag report` reads
    segments.csv back with the labels as the config spelt them."""
    clip = tmp_path / '=HYPERLINK("x").mp4'
    clip.write_bytes((clip_dir / "ten.mp4").read_bytes())
    cfg = tiny_config(tmp_path, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\nlabels: [{name: '=1+1'}, {name: '@SUM(1)'}]\n"
                      "smoothing: {method: none}\nsegments: {threshold: 0.0, min_duration_s: 0}\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(clip), "-c", str(cfg), "-o", str(out), "-q", "--no-store",
                                 "--formats", "csv,json,html"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (folder,) = [p.parent for p in out.glob("*/summary.json")]
    for path in (folder / "segments.csv", folder / "frames.csv", out / "index.csv"):
        assert formula_cells(path) == [], path
    from pipeline.report.readback import load_result

    loaded = load_result(folder)
    assert {s.label for s in loaded.segments} == {"=1+1", "@SUM(1)"}
    assert [t.name for t in loaded.tracks] == ["=1+1", "@SUM(1)"]
