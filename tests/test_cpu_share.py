"""The model's thread pools sleep while they wait, so the decoder running
beside them on the same cores is not starved (pipeline.embed.cpu_share): OpenMP's
wait policy is set before torch loads, a user's own choice is kept, and ONNX
Runtime sessions do not spin, and OpenVINO's threads are not pinned to cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.embed.cpu_share import ONNXRUNTIME_SESSION_CONFIG, sleeping_openmp

ROOT = Path(__file__).resolve().parents[1]


def _without_torch(monkeypatch):
    """As a fresh process is before anything imported torch."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def test_openmp_is_asked_to_sleep_before_torch_loads(monkeypatch):
    _without_torch(monkeypatch)
    env: dict[str, str] = {}
    assert sleeping_openmp(env) is True
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize("users", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}])
def test_a_users_own_openmp_setting_wins(monkeypatch, users):
    _without_torch(monkeypatch)
    env = dict(users)
    assert sleeping_openmp(env) is False
    assert env == users


def test_after_torch_has_loaded_nothing_changes():
    import torch  # noqa: F401 - libgomp has now read its settings
    env: dict[str, str] = {}
    assert sleeping_openmp(env) is False and env == {}


def test_the_console_script_sets_the_policy_before_any_command_imports_torch(tmp_path):
    # The real entry point, with its command swapped for one that reports what
    # a command would find: the policy set, torch not yet loaded.
    probe = ("import json, os, sys\n"
             "import pipeline.cli as cli\n"
             "cli.app = lambda: print(json.dumps({'policy': os.environ.get('OMP_WAIT_POLICY'),"
             " 'torch_loaded': 'torch' in sys.modules}))\n"
             "cli.main()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"policy": "PASSIVE", "torch_loaded": False}


def test_onnxruntime_sessions_do_not_spin(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from pipeline.embed import load_embedder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="onnxruntime")
    for tower in ("image", "text"):
        options = embedder.runtime._towers[tower].get_session_options()
        for key in ONNXRUNTIME_SESSION_CONFIG:
            assert options.get_session_config_entry(key) == "0", (tower, key)


def test_openvino_threads_are_not_pinned_to_cores(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from pipeline.embed import load_embedder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="openvino")
    for tower in ("image", "text"):
        assert embedder.runtime._towers[tower].get_property("ENABLE_CPU_PINNING") is False, tower
