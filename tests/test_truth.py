"""Truth files: the CSV shape, scenetag's own segments files, the demo's JSON,
and one-line errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.measure.truth import TruthError, load_truth

ROOT = Path(__file__).parent.parent


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_and_input_matching(tmp_path):
    path = write(tmp_path, "truth.csv", "input,label,start_s,end_s,note\r\n"
                                        "kitchen,coffee cup,2,6,x\r\n"
                                        "\r\n"
                                        "street.mp4,'=car,1.5,5,y\r\n")
    truth = load_truth(path)
    assert [(iv.input, iv.label, iv.start_s, iv.end_s) for iv in truth.intervals] == \
        [("kitchen", "coffee cup", 2.0, 6.0), ("street.mp4", "=car", 1.5, 5.0)]
    assert truth.intervals[1].where == f"{path}:4"
    found = truth.resolve(["clips/kitchen.mp4", "/abs/street.mp4", "park.mp4"])
    assert [iv.label for iv in found["clips/kitchen.mp4"]] == ["coffee cup"]
    assert [iv.label for iv in found["/abs/street.mp4"]] == ["=car"]
    assert found["park.mp4"] == []


@pytest.mark.parametrize("text, message", [
    ("input,label,start_s\nk,cup,1\n", ":1: missing column end_s"),
    ("label,start_s,end_s\ncup,1,2\n", ":1: missing column input"),
    ("input,label,start_s,end_s\nk,cup,1,2\nk,cup,one,2\n", ":3: start_s must be a number"),
    ("input,label,start_s,end_s\nk,cup,1,nan\n", ":2: end_s must be a finite number"),
    ("input,label,start_s,end_s\nk,cup,-1,2\n", ":2: start_s must be a finite number of seconds >= 0"),
    ("input,label,start_s,end_s\nk,cup,3,2\n", ":2: end_s 2 is not after start_s 3"),
    ("input,label,start_s,end_s\nk,,1,2\n", ":2: empty label"),
    ("input,label,start_s,end_s\n\"k\nk\",cup,1,2\nk,cup,1,2,3\n", ":4: 5 cells, the header has 4"),
    ("", ": empty; expected the columns"),
])
def test_csv_errors_name_the_line(tmp_path, text, message):
    path = write(tmp_path, "t.csv", text)
    with pytest.raises(TruthError) as err:
        load_truth(path)
    assert f"{path}{message}" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_and_ambiguous_inputs_name_the_line(tmp_path):
    path = write(tmp_path, "t.csv", "input,label,start_s,end_s\na,cup,1,2\nnope,cup,1,2\n")
    with pytest.raises(TruthError, match=r"t\.csv:3: unknown input 'nope'; known: a\.mp4"):
        load_truth(path).resolve(["x/a.mp4"])
    with pytest.raises(TruthError, match=r"t\.csv:2: input 'a' matches 2 inputs"):
        load_truth(path).resolve(["x/a.mp4", "y/a.mov"])


def test_scenetag_segments_files_are_truth(tmp_path):
    folder = tmp_path / "demo_kitchen"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"input": "sample_videos/demo_kitchen.mp4"}))
    write(folder, "segments.csv", "label,kind,start_s,end_s,duration_s,peak,mean\r\n"
                                  "coffee cup,tag,1.8,5.8,4.0,0.98,0.97\r\n")
    truth = load_truth(folder / "segments.csv")
    assert [(iv.input, iv.label, iv.start_s) for iv in truth.intervals] == \
        [("sample_videos/demo_kitchen.mp4", "coffee cup", 1.8)]
    write(folder, "segments.json", json.dumps({"input": "k.mp4", "segments": [
        {"label": "ball", "kind": "tag", "start_s": 8.8, "end_s": 12.8}, {"label": "ball", "start_s": 2}]}))
    with pytest.raises(TruthError, match=r"segments\.json: segments\[1\]: empty end_s"):
        load_truth(folder / "segments.json")


def test_the_demo_truth_json_reads():
    truth = load_truth(ROOT / "sample_videos" / "demo_truth.json")
    kitchen = [iv for iv in truth.intervals if iv.input == "demo_kitchen.mp4"]
    assert [(iv.label, iv.start_s, iv.end_s) for iv in kitchen] == [("coffee cup", 2.0, 6.0),
                                                                    ("ball", 9.0, 13.0)]
    assert set(truth.labels) == {"coffee cup", "ball", "car", "skull", "house", "tree"}


def test_a_deeply_nested_truth_json_is_a_truth_error(tmp_path):
    """It was an internal error (exit 3: RecursionError) instead of one line."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    with pytest.raises(TruthError, match="nested too deeply"):
        load_truth(path)
