"""Shared fixtures: a tiny CLIP built at test time, generated media, and a
guard that fails a test when the code under test logs an unexpected ERROR."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `runtime: auto` runs torch in tests, as it would on a GPU, so that the tiny models'
# embeddings are torch's and no test pays an export it did not ask for. Tests of
# `auto` itself, and the demo run (the main job, run as users run it), take it
# away with the `cpu_auto_runtime` fixture. Set, not defaulted: a developer's
# own setting must not change what the suite tests.
os.environ["SCENETAG_CPU_RUNTIME"] = "torch"

# Property tests draw the same examples on every run: the suite is deterministic.
settings.register_profile("scenetag", derandomize=True, deadline=None)
settings.load_profile("scenetag")

TESTS = Path(__file__).parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session", autouse=True)
def _export_cache_of_the_session(tmp_path_factory):
    """Exported models go to a cache of the test session's own, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-session")))
        yield


@pytest.fixture
def cpu_auto_runtime(monkeypatch):
    """``runtime: auto`` as users get it on a CPU (see SCENETAG_CPU_RUNTIME above)."""
    monkeypatch.delenv("SCENETAG_CPU_RUNTIME")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tiny_model import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def module_export_cache(tmp_path_factory):
    """One exported-model cache (XDG_CACHE_HOME) for a test module: each model is
    exported once per runtime there; yields its ``exports`` folder."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder))
        yield folder / "scenetag" / "exports"


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dir):
    from pipeline.embed import load_embedder

    return load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", batch_size=8)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """A folder with small generated clips: 4 s at 10 fps, 3 s at 25 fps."""
    from media import make_clip

    folder = tmp_path_factory.mktemp("clips")
    make_clip(folder / "ten.mp4", seconds=4, fps=10, size=(96, 64))
    make_clip(folder / "twentyfive.mp4", seconds=3, fps=25, size=(80, 80))
    return folder


@pytest.fixture(scope="session")
def ts_clip(tmp_path_factory) -> Path:
    """8 s of MPEG-TS at 10 fps, alternating dark and index bands every 2 s:
    what the live tests serve, and read as a file to compare."""
    from live_servers import alternating_picture, write_ts

    path = tmp_path_factory.mktemp("live") / "alt.ts"
    with path.open("wb") as out:
        write_ts(out, 80, 10, realtime=False, picture=alternating_picture)
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo clips run once with the demo model: ``(truth, out)``, the
    true intervals and the folder holding the reports and ``out/store``."""
    import json

    from demo_assets import CONFIG, MODEL, ROOT, TRUTH
    from typer.testing import CliRunner

    from pipeline.cli import app

    truth = json.loads(TRUTH.read_text())["clips"]
    out = tmp_path_factory.mktemp("demo")
    clips = [str(ROOT / "sample_videos" / name) for name in truth]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SCENETAG_CPU_RUNTIME")  # the demo's runtime as `make demo` gets it
        result = CliRunner().invoke(app, ["run", *clips, "-c", str(CONFIG), "--model", str(MODEL),
                                          "-o", str(out), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return truth, out


@pytest.fixture(autouse=True)
def logging_as_before_the_test():
    """A test that calls the CLI in-process leaves its stderr handler and log
    levels on the root logger, as the CLI does in a real process; the next
    test starts from the logging it would have had alone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "scenetag-cli" or h in handlers]
    root.setLevel(level)


@pytest.fixture(autouse=True)
def no_unexpected_errors(caplog, request):
    """A test fails if the code logs ERROR, unless it is marked
    ``@pytest.mark.expect_errors`` (bad-input tests)."""
    caplog.set_level(logging.WARNING)
    yield
    if request.node.get_closest_marker("expect_errors"):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, f"unexpected ERROR logs: {[r.getMessage() for r in errors]}"


@pytest.fixture(autouse=True)
def exports_read_by_reference_readers(request):
    """Every ``markers.edl`` and ``tags.vtt`` a test leaves in its
    ``tmp_path`` must parse in OpenTimelineIO's CMX 3600 adapter and
    webvtt-py (what editors' pipelines and players use), and match the
    ``segments.csv`` beside it."""
    yield
    folder = request.node.funcargs.get("tmp_path")  # the test's own, still on disk
    if folder is not None:
        from reference_readers import check_exports_in

        check_exports_in(folder)


def pytest_configure(config):
    config.addinivalue_line("markers", "expect_errors: the test expects ERROR log records")
