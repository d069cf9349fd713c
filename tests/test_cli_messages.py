"""CLI words: flag mistakes name the flag in the tool's own words, help shows
choices and ranges, --version, --json on stdout only, plurals, a clean stderr
on Ray runs, and user mistakes that are exit 2 with one line (never exit 3)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
ROOT = Path(__file__).parent.parent


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def config_file(tmp_path: Path, model_dir: Path, body: str = "labels: [cat, dog]\n") -> Path:
    return tiny_config(tmp_path, model_dir, "sampling: {every_seconds: 0.5}\n" + body)


@pytest.mark.parametrize("args, expected", [
    (["--mode", "binay"],
     "scenetag: error: --mode: must be one of auto, softmax, binary, sigmoid, independent; got 'binay'"),
    (["--labels", ","], "scenetag: error: --labels: give at least one label name"),
    (["--labels", ""], "scenetag: error: --labels: give at least one label name"),
    (["--formats", ""], "scenetag: error: --formats: give at least one of csv, plot"),
    (["--formats", "csv,pdf"], "scenetag: error: --formats: must be one of csv"),
    (["--timeout", "inf"], "scenetag: error: --timeout: must be a finite number; got inf"),
    (["--top-frames", "-1"], "scenetag: error: --top-frames: must be at least 0"),
    (["--every-seconds", "0", "--decode-strategy", "fast"], "scenetag: error: --every-seconds: must be"),
])
def test_flag_mistakes_name_the_flag(tmp_path, tiny_model_dir, args, expected):
    cfg = config_file(tmp_path, tiny_model_dir)
    result = invoke("run", "x.mp4", "-c", str(cfg), "-o", str(tmp_path / "o"), *args)
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(expected), line
    assert str(cfg) not in line and "Input should" not in line and "Value error" not in line


def test_eps_without_dbscan_is_an_error(tmp_path):
    for flag, value in (("--eps", "0.3"), ("--min-samples", "5")):
        result = invoke("cluster", "--store", str(tmp_path / "store"), flag, value)
        assert result.exit_code == 2
        assert error_line(result).startswith(f"scenetag: error: {flag} applies to DBSCAN only")


def test_help_shows_choices_ranges_and_defaults():
    text = invoke("run", "--help").output
    assert "{inputs}" not in text and "<list[str]>" not in text
    assert "range>" not in text and "<str>" not in text
    assert "INPUT..." in text and "<auto|softmax|binary|sigmoid|independent>" in text
    assert "<auto|exact|fast|keyframes>" in text
    assert "openai/clip-vit-base-patch32" in text and "one frame every 1.0 s" in text
    assert "FILE|NAME" in text
    for command in ("cluster", "search", "report", "rescore", "config show", "config validate"):
        text = invoke(*command.split(), "--help").output
        assert "<str>" not in text and "range>" not in text and "<list[" not in text, command


def test_version_comes_from_package_metadata():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"scenetag {version('scenetag')}"


def test_named_config_is_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("config", "show", "-c", "demo")
    assert result.exit_code == 0, result.output
    assert f"id: {ROOT / 'models' / 'scenetag-demo-clip'}" in result.output
    result = invoke("config", "show", "-c", "no-such-config")
    assert result.exit_code == 2 and "no shipped config named 'no-such-config'" in error_line(result)


def test_output_that_is_a_file_or_read_only_is_exit_2(tmp_path, tiny_model_dir, clip_dir):
    cfg = config_file(tmp_path, tiny_model_dir)
    (tmp_path / "afile").write_text("x")
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "afile"))
    assert result.exit_code == 2 and "--output:" in error_line(result) and "is a file" in result.output
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "afile" / "out"))
    assert result.exit_code == 2 and "--output: cannot create" in error_line(result)
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(locked / "out"))
    assert result.exit_code == 2 and "--output: cannot create" in error_line(result)


@pytest.mark.parametrize("body, fragment", [
    ("labels: [cat]\nscoring: {templates: ['{x} {}']}", "scoring.templates"),
    ("labels: [cat]\nscoring: {templates: ['{0.__class__} {}']}", "scoring.templates"),
    ("labels: [cat]\nlabels: [dog]\n", "duplicate key 'labels'"),
])
def test_config_mistakes_are_exit_2_not_internal_errors(tmp_path, tiny_model_dir, clip_dir, body, fragment):
    cfg = config_file(tmp_path, tiny_model_dir, body)
    result = invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and fragment in error_line(result)


def test_non_utf8_and_deeply_nested_configs_are_exit_2(tmp_path):
    for raw in (b"labels: [caf\xe9]\n", b"[" * 100_000):
        (tmp_path / "c.yaml").write_bytes(raw)
        result = invoke("config", "validate", str(tmp_path / "c.yaml"))
        assert result.exit_code == 2 and "internal error" not in result.output
        assert error_line(result).startswith(f"scenetag: error: {tmp_path / 'c.yaml'}: ")


@pytest.fixture(scope="module")
def json_run(tmp_path_factory, tiny_model_dir, clip_dir):
    out = tmp_path_factory.mktemp("json")
    cfg = config_file(out, tiny_model_dir, "labels: [cat, dog]\n"
                      "segments: {threshold: 0.3, min_duration_s: 0}\noutput: {formats: [csv, json]}\n")
    (out / "bad.mp4").write_text("not a video")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip_dir / "ten.mp4"), str(out / "bad.mp4"),
         "-c", str(cfg), "-o", str(out / "reports"), "--json", "--no-store"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    return proc, out / "reports"


def test_json_summary_is_all_of_stdout(json_run):
    proc, reports = json_run
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    by_name = {entry["name"]: entry for entry in summary["inputs"]}
    ok, bad = by_name["ten"], by_name["bad"]
    assert ok["status"] == "ok" and ok["error"] is None and ok["output"] == str(reports / "ten")
    assert set(ok) >= {"input", "name", "status", "error", "tags", "segments", "nsfw_verdict", "output"}
    assert ok["input"].endswith("ten.mp4") and ok["nsfw_verdict"] in ("safe", "unsafe", "n/a")
    for seg in ok["segments"]:
        assert seg["label"] in ("cat", "dog") and 0 <= seg["start_s"] <= seg["end_s"]
    stored = json.loads((reports / "ten" / "summary.json").read_text())
    assert sorted(ok["tags"]) == sorted(stored.get("tags", ok["tags"]))
    assert bad["status"] == "error" and bad["error"]
    assert summary["totals"] == {"inputs": 2, "ok": 1, "failed": 1, "resumed": 0, "images": 0, "partial": 0}
    assert "scenetag: 1 ok, 1 failed" in proc.stderr


def test_plurals_in_summary_lines(tmp_path, tiny_model_dir):
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "one.png")
    cfg = config_file(tmp_path, tiny_model_dir)
    result = invoke("run", str(tmp_path / "one.png"), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "1 image;" in result.output and "1 images" not in result.output


@pytest.mark.slow  # one Ray start-up in a subprocess: ~30-60 s on 2 cores
def test_ray_run_keeps_stderr_clean(tmp_path, tiny_model_dir, clip_dir):
    pytest.importorskip("ray.data")
    cfg = config_file(tmp_path, tiny_model_dir, "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip_dir / "ten.mp4"), "-c", str(cfg),
         "-o", str(tmp_path / "o"), "--engine", "ray", "--no-store", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_BACKEND_LOG_LEVEL"},
             "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "core_worker" not in proc.stderr and " E " not in proc.stderr and "ERROR" not in proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_fifo_and_symlink_inputs_say_what_they_are(tmp_path):
    from pipeline.decode.base import check_readable
    from pipeline.types import VideoOpenError

    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    expected = {"pipe.mp4": "is a named pipe (FIFO), not a media file", "loop.mp4": "symbolic link loop",
                "dangling.mp4": "broken symbolic link", "absent.mp4": "file not found"}
    for name, fragment in expected.items():
        with pytest.raises(VideoOpenError, match=re.escape(fragment)):
            check_readable(str(tmp_path / name))


def test_rescore_json_summary(tmp_path, tiny_model_dir, clip_dir):
    cfg = config_file(tmp_path, tiny_model_dir, "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    out = tmp_path / "o"
    assert invoke("run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out), "-q").exit_code == 0
    new = config_file(tmp_path, tiny_model_dir, "labels: [car, tree]\noutput: {formats: [csv]}\n")
    result = invoke("rescore", "-c", str(new), "--store", str(out / "store"), "-o", str(tmp_path / "re"),
                    "--json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [e["status"] for e in summary["inputs"]] == ["ok"] and summary["totals"]["ok"] == 1
    assert summary["inputs"][0]["output"] == str(tmp_path / "re" / summary["inputs"][0]["name"])


def test_shipped_configs_are_package_data():
    """`-c coffee` must work for an installed package (no checkout around it)."""
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "configs/*.yaml" in package_data["pipeline"] and "*.yaml" in package_data["pipeline"]
    for name in ("coffee", "nsfw"):
        packaged = ROOT / "pipeline" / "configs" / f"{name}.yaml"
        assert packaged.is_file() and (ROOT / "configs" / f"{name}.yaml").resolve() == packaged.resolve()


# --------------------------------------------------------------------------- issue 26 §6.5, §6.11


def option_help(text: str, flag: str) -> str:
    """The help entry of ``flag`` (its line and the wrapped lines after it)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag))
    entry = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip().startswith("-") or not line.strip():
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


@pytest.mark.parametrize("command, flag, bound", [
    ("run", "--every-seconds", "x>0"), ("run", "--fps", "x>0"), ("run", "--timeout", "x>0"),
    ("config show", "--every-seconds", "x>0"), ("cluster", "--eps", "x>0"),
    ("eval", "--iou", "0<x<=1"), ("calibrate", "--iou", "0<x<=1"),
])
def test_help_states_the_bound_a_flag_enforces(tmp_path, command, flag, bound):
    entry = option_help(invoke(*command.split(), "--help").output, flag)
    assert f"[{bound}]" in entry or f"; {bound}]" in entry, entry
    assert "x>=0" not in entry, entry
    args = {"run": ["run", "x.mp4", "-o", str(tmp_path / "o")], "config show": ["config", "show"],
            "cluster": ["cluster", "--dbscan", "--store", str(tmp_path)],
            "eval": ["eval", str(tmp_path), "--truth", __file__],
            "calibrate": ["calibrate", "--truth", __file__, "--store", str(tmp_path)]}[command]
    result = invoke(*args, flag, "0")
    assert result.exit_code == 2
    assert error_line(result).startswith(f"scenetag: error: {flag}: must be greater than 0"), result.output


def test_a_small_positive_value_passes_the_bound():
    result = invoke("config", "show", "--every-seconds", "0.001")
    assert result.exit_code == 0, result.output
    assert "every_seconds: 0.001" in result.output


@pytest.mark.parametrize("typo, meant", [("--every-second", "--every-seconds"),
                                         ("--evry-seconds", "--every-seconds"),
                                         ("--formast", "--formats")])
def test_an_unknown_flag_gets_the_closest_one(typo, meant):
    result = invoke("run", "x.mp4", typo, "1")
    assert result.exit_code == 2
    assert error_line(result) == (f"scenetag: error: {typo}: no such option; did you mean {meant}? "
                                  "(see `scenetag run --help`)")


def test_an_unknown_flag_like_no_other_says_so():
    result = invoke("run", "x.mp4", "--frobnicate")
    assert result.exit_code == 2
    assert error_line(result) == "scenetag: error: --frobnicate: no such option (see `scenetag run --help`)"


def test_missing_or_wrong_paths_are_one_line_in_the_tools_words(tmp_path):
    missing = tmp_path / "nothere"
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [(["report", str(missing)], f"DIR: folder not found: {missing}"),
             (["eval", str(tmp_path), "--truth", str(missing)], f"--truth: file not found: {missing}"),
             (["cluster", "--store", str(afile)], f"--store: {afile} is a file, not a folder"),
             (["eval", str(tmp_path), "--truth", str(tmp_path)],
              f"--truth: {tmp_path} is a folder, not a file")]
    for args, expected in cases:
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert error_line(result) == f"scenetag: error: {expected}", args


@pytest.mark.expect_errors
def test_a_missing_input_is_named_once(tmp_path, tiny_model_dir):
    cfg = config_file(tmp_path, tiny_model_dir)
    missing = str(tmp_path / "nothere.mp4")
    result = invoke("run", missing, "-c", str(cfg), "-o", str(tmp_path / "o"), "--no-store")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "error" in line)
    assert line.count("nothere.mp4") == 1 and "file not found" in line, line


DEBUG_PROBE = """
import logging, sys
from pipeline.cli.logs import setup_logging
setup_logging(quiet=False, debug=True)
from matplotlib.figure import Figure
from matplotlib.backends.backend_agg import FigureCanvasAgg
fig = Figure(); FigureCanvasAgg(fig); fig.add_subplot().set_title("fonts are looked up")
fig.savefig(sys.argv[1], format="png")
from PIL import Image
Image.open(sys.argv[1]).load()
logging.getLogger("pipeline.run.job").debug("our own debug line")
logging.getLogger("matplotlib").warning("a library's warning")
"""


def test_debug_shows_our_lines_and_only_warnings_of_libraries(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DEBUG_PROBE, str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MPLCONFIGDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "scenetag: debug: our own debug line" in lines
    assert "scenetag: warning: a library's warning" in lines
    assert not [line for line in lines if "findfont" in line or "STREAM" in line or "pydot" in line], \
        proc.stderr[:2000]
    assert len(lines) <= 5, proc.stderr[:2000]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once it is closed


@pytest.mark.parametrize("network", ["HF_HUB_OFFLINE", "unreachable"])
def test_download_model_without_network_fails_fast_in_one_line(tmp_path, network):
    import time

    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(ROOT), HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
    if network == "HF_HUB_OFFLINE":
        env["HF_HUB_OFFLINE"] = "1"
    else:  # a Hub that refuses connections: nothing leaves this machine
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "download-model", "nobody/no-model"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    took = time.monotonic() - began
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("scenetag: error: cannot download model 'nobody/no-model': "), lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr
    assert ("HF_HUB_OFFLINE" if network == "HF_HUB_OFFLINE" else "cannot be reached") in lines[0]
    assert took < 10, f"took {took:.1f} s"  # it retried for 24 s before


def test_resumed_input_is_counted_once_as_resumed(tmp_path, tiny_model_dir, clip_dir):
    cfg = config_file(tmp_path, tiny_model_dir, "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    args = ["run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(tmp_path / "o"), "--no-store"]
    assert invoke(*args).exit_code == 0
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert f"scenetag: 1 resumed; reports in {tmp_path / 'o'}/" in result.output, result.output
    assert "1 ok" not in result.output
    summary = json.loads(invoke(*args, "--resume", "--json", "-q").output)
    assert summary["totals"] == {"inputs": 1, "ok": 0, "failed": 0, "resumed": 1, "images": 0, "partial": 0}


def _last_frame(text: str) -> str:
    return [frame for frame in text.split("\r") if "inputs" in frame][-1]


def test_run_bar_reaches_all_inputs_and_counts_resumed_ones():
    import io

    from pipeline.progress import RunProgress
    from pipeline.types import Sampling, VideoInfo

    info = VideoInfo(path="a.mp4", container="mp4", codec="h264", width=8, height=8, duration_s=3.0,
                     avg_fps=1.0, frame_count=3)
    buf = io.StringIO()
    with RunProgress(["a.mp4"], Sampling(every_seconds=1.0), file=buf, disable=False) as progress:
        progress.started("a.mp4", info)
        progress.embedded("a.mp4", 3)
        progress.finished("a.mp4", 3)
        assert "inputs 1/1" in _last_frame(buf.getvalue())
    buf = io.StringIO()
    with RunProgress(["a.mp4"], Sampling(every_seconds=1.0), file=buf, disable=False,
                     resumed=1) as progress:
        assert "inputs 1/2 (1 resumed)" in _last_frame(buf.getvalue())
        progress.started("a.mp4", info)
        progress.finished("a.mp4", 3)
        assert "inputs 2/2 (1 resumed)" in _last_frame(buf.getvalue())


@pytest.mark.parametrize("tool", sorted(p.name for p in (ROOT / "tools").glob("*.py")))
def test_every_tool_answers_help(tmp_path, tool):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--help"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_a_flag_with_two_names_is_named_without_stray_quotes(tmp_path):
    result = invoke("search", "x", "--store", str(tmp_path), "--top", "0")
    assert result.exit_code == 2
    assert "scenetag: error: --top / -k: must be at least 1" in result.output, result.output


def test_logging_after_an_in_process_call_reaches_the_stderr_of_the_moment(tmp_path, capfd):
    """The CLI's log handler writes to whatever sys.stderr is when a record
    arrives. Bound to the stream of its call, it outlived it: an app (or test
    runner) that calls the CLI in-process and later logs got "--- Logging
    error --- ValueError: I/O operation on closed file" on its stderr."""
    import logging

    result = runner.invoke(app, ["search", "x", "--store", str(tmp_path / "nothing")])
    assert result.exit_code != 0
    capfd.readouterr()
    logging.getLogger("pipeline.decode.pyav").warning("after the call")
    err = capfd.readouterr().err
    assert "Logging error" not in err
    assert "scenetag: warning: after the call" in err


@pytest.mark.expect_errors
def test_a_nul_byte_in_an_input_path_fails_that_input_alone(tmp_path, tiny_model_dir, clip_dir):
    """An internal error (exit 3: "ValueError: embedded null byte" from the
    store's hashing) cost the whole run; now the input fails in one line and
    the others are scored."""
    cfg = config_file(tmp_path, tiny_model_dir, "labels: [cat, dog]\noutput: {formats: [csv]}\n")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"bad\0name.mp4\n{clip_dir / 'ten.mp4'}\n")
    result = runner.invoke(app, ["run", str(listing), "-c", str(cfg), "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1, result.output
    assert "not a usable path (it holds a NUL byte)" in result.output
    assert (tmp_path / "o" / "ten" / "segments.csv").exists()


def test_doctor_prints_the_table_or_its_json(monkeypatch):
    """``scenetag doctor`` is :mod:`pipeline.embed.doctor` on the command line
    (its measurement is tested in test_runtime_auto.py)."""
    from pipeline.embed import doctor as core

    asked = {}
    report = {"model": "m", "rows": []}

    def fake(model, *, prepare, fresh):
        asked.update(model=model, prepare=prepare, fresh=fresh)
        return report

    monkeypatch.setattr(core, "doctor", fake)
    monkeypatch.setattr(core, "table", lambda r: f"table of {r['model']}")
    result = runner.invoke(app, ["doctor", "-m", "some/model", "--prepare", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == report
    assert asked == {"model": "some/model", "prepare": True, "fresh": False}
    result = runner.invoke(app, ["doctor", "--fresh"])
    assert result.stdout.strip() == "table of m" and asked["fresh"] and asked["model"].startswith("openai/")
