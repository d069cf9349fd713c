"""CPU runtimes (OpenVINO, ONNX Runtime) against torch fp32 on the tiny models:
embedding parity at every batch size, the export cache (reuse, damage), one-line
errors, and a whole `scenetag run` giving torch's scores."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from tiny_families import build_tiny_siglip, build_tiny_siglip2
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.embed import export as export_mod
from pipeline.embed import load_embedder
from pipeline.types import ModelLoadError

RUNTIMES = ("openvino", "onnxruntime")
TEXTS = ["a cat", "A photo of a big dog, on the beach!", "x", "two red cars in the rain", "city",
         "a person", "text or screen", "nature"]


@pytest.fixture(scope="module", autouse=True)
def export_cache(module_export_cache):
    return module_export_cache


@pytest.fixture(scope="module")
def tiny_siglip_dir(tmp_path_factory):
    return build_tiny_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip")


@pytest.fixture(scope="module", params=["clip", "siglip"])
def model_dir(request, tiny_model_dir, tiny_siglip_dir):
    return str(tiny_model_dir if request.param == "clip" else tiny_siglip_dir)


@pytest.fixture(scope="module")
def torch_embedders():
    cache: dict[str, object] = {}

    def get(model: str):
        if model not in cache:
            cache[model] = load_embedder(model, device="cpu", precision="fp32", runtime="torch", batch_size=8)
        return cache[model]
    return get


def _frames(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 40, 56, 3), dtype=np.uint8)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a * b).sum(axis=1).min())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_both_towers_match_torch_fp32_at_every_batch_size(runtime, model_dir, torch_embedders):
    pytest.importorskip(runtime)
    reference = torch_embedders(model_dir)
    embedder = load_embedder(model_dir, device="cpu", precision="fp32", runtime=runtime, batch_size=8)
    assert embedder.runtime.name == runtime and embedder.precision == "fp32"
    for n in (1, 3, 8):  # one exported graph serves every batch size
        frames = _frames(n, seed=n)
        assert _min_cosine(embedder.embed_images(frames), reference.embed_images(frames)) >= 0.9999
    for n in (1, 3, 8):  # and every text length (CLIP pads each batch to its longest text)
        assert _min_cosine(embedder.embed_texts(TEXTS[:n]), reference.embed_texts(TEXTS[:n])) >= 0.9999
    assert embedder.dim == reference.dim


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_second_load_reuses_the_cached_export(runtime, tiny_model_dir, monkeypatch, caplog):
    pytest.importorskip(runtime)
    load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime=runtime)  # exported by now
    calls = []
    real = export_mod.export
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a) or real(*a, **k))
    with caplog.at_level(logging.WARNING):
        embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime=runtime)
    assert calls == [] and not caplog.records
    assert embedder.embed_images(_frames(2, seed=0)).shape == (2, embedder.dim)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(runtime, tiny_model_dir, export_cache,
                                                         torch_embedders, monkeypatch, caplog):
    pytest.importorskip(runtime)
    load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime=runtime)
    entry, = (e for e in export_cache.glob(f"{runtime}-*")
              if json.loads((e / "meta.json").read_text())["model"] == str(tiny_model_dir)
              and json.loads((e / "meta.json").read_text()).get("precision", "fp32") == "fp32")
    biggest = max((p for p in entry.iterdir() if p.name != "meta.json"), key=lambda p: p.stat().st_size)
    with biggest.open("r+b") as fh:
        fh.truncate(biggest.stat().st_size // 2)
    calls = []
    real = export_mod.export
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a) or real(*a, **k))
    with caplog.at_level(logging.WARNING):
        embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime=runtime)
    assert len(calls) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("damaged" in w and biggest.name in w for w in warnings), warnings
    frames = _frames(3, seed=7)
    reference = torch_embedders(str(tiny_model_dir))
    assert _min_cosine(embedder.embed_images(frames), reference.embed_images(frames)) >= 0.9999


def test_the_cache_honours_xdg_cache_home_and_logs_the_export_time(tiny_model_dir, tmp_path,
                                                                   monkeypatch, caplog):
    pytest.importorskip("openvino")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="pipeline.embed.export"):
        load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="openvino")
    entries = list((tmp_path / "scenetag" / "exports").iterdir())
    assert [e.name.split("-")[0] for e in entries] == ["openvino"]
    assert {p.name for p in entries[0].iterdir()} >= {"image.xml", "image.bin", "text.xml", "meta.json"}
    assert any("exported" in r.getMessage() and " s " in r.getMessage() for r in caplog.records)


def test_an_unknown_runtime_is_a_one_line_error(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="unknown runtime 'tensorrt'") as info:
        load_embedder(str(tiny_model_dir), device="cpu", runtime="tensorrt")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_missing_package_is_a_one_line_error(runtime, tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, runtime, None)  # `import runtime` now raises ImportError
    with pytest.raises(ModelLoadError, match=rf"needs the {runtime} package.*scenetag\[cpu\]") as info:
        load_embedder(str(tiny_model_dir), device="cpu", runtime=runtime)
    assert "\n" not in str(info.value)


def test_exported_runtimes_refuse_what_they_cannot_run(tiny_model_dir, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelLoadError, match="runs at fp32, bf16 or int8"):
        load_embedder(str(tiny_model_dir), device="cpu", precision="fp16", runtime="openvino")
    with pytest.raises(ModelLoadError, match="runs at fp32 or int8 .precision bf16 is torch only"):
        load_embedder(str(tiny_model_dir), device="cpu", precision="bf16", runtime="onnxruntime")
    with pytest.raises(ModelLoadError, match="CPU only"):
        load_embedder(str(tiny_model_dir), device="meta", runtime="openvino")
    naflex = build_tiny_siglip2(tmp_path / "tiny-siglip2")
    with pytest.raises(ModelLoadError, match="fixed input size.*--runtime torch"):
        load_embedder(str(naflex), device="cpu", runtime="openvino")


def test_openvino_bf16_agrees_with_fp32_and_shares_the_fp32_export(tiny_model_dir, torch_embedders,
                                                                    monkeypatch):
    pytest.importorskip("openvino")
    load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="openvino")  # the fp32 export
    calls = []
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a))
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="bf16", runtime="openvino")
    assert calls == [] and embedder.precision == "bf16" and embedder.runtime.precision == "bf16"
    reference = torch_embedders(str(tiny_model_dir))
    frames = _frames(8, seed=3)
    # bf16 keeps 8 mantissa bits: torch's own bf16 agrees at ~0.99995 (docs/PERFORMANCE.md)
    assert _min_cosine(embedder.embed_images(frames), reference.embed_images(frames)) >= 0.999
    assert _min_cosine(embedder.embed_texts(TEXTS), reference.embed_texts(TEXTS)) >= 0.999


def test_auto_at_fp32_measures_the_fp32_runtimes_once(tiny_model_dir, cpu_auto_runtime, torch_embedders):
    """`runtime: auto` is measured on the CPU (pipeline.embed.auto), not a preference:
    at an asked precision, among that precision's candidates."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    embedder = load_embedder(str(tiny_model_dir), device="cpu", runtime="auto", precision="fp32")
    why = embedder.auto_choice
    assert set(why["candidates"]) == {"torch-fp32", "onnxruntime-fp32", "openvino-fp32"}
    assert why["chosen"] == f"{embedder.runtime.name}-fp32" and embedder.precision == "fp32"
    frames = _frames(3, seed=2)
    reference = torch_embedders(str(tiny_model_dir))
    assert _min_cosine(embedder.embed_images(frames), reference.embed_images(frames)) >= 0.9999
    again = load_embedder(str(tiny_model_dir), device="cpu", runtime="auto", precision="fp32")
    assert again.auto_choice["decided"] == "cached" and again.runtime.name == embedder.runtime.name


@pytest.mark.parametrize(("env", "device", "precision", "compile_model", "expected"), [
    ("torch", "cpu", "auto", False, "torch"),  # the user's own choice for auto on CPUs
    ("onnxruntime", "cpu", "auto", False, "onnxruntime"),
    (None, "cuda", "auto", False, "torch"),  # GPUs run torch
    (None, "cpu", "fp16", False, "torch"),  # fp16 on a CPU is torch's alone
    (None, "cpu", "auto", True, "torch"),  # torch.compile compiles torch
    (None, "cpu", "bf16", False, "auto"),  # measured at load, among the runtimes that run bf16
    (None, "cpu", "auto", False, "auto"),  # measured at load (pipeline.embed.auto)
])
def test_what_auto_resolves_to(env, device, precision, compile_model, expected, cpu_auto_runtime,
                               monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    from pipeline.embed.runtime import auto_runtime

    if env:
        monkeypatch.setenv("SCENETAG_CPU_RUNTIME", env)
    assert auto_runtime(device, precision=precision, compile_model=compile_model) == expected


def test_auto_without_exported_runtimes_is_torch_and_int8_says_what_to_install(tiny_model_dir,
                                                                                cpu_auto_runtime,
                                                                                monkeypatch, tmp_path):
    from pipeline.embed import runtime as rt

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(rt, "importable", lambda name: name not in ("openvino", "nncf", "onnxruntime"))
    embedder = load_embedder(str(tiny_model_dir), device="cpu", runtime="auto")
    assert embedder.runtime.name == "torch"
    assert "onnxruntime not installed" in embedder.auto_choice["candidates"]["onnxruntime-int8"]["reason"]
    with pytest.raises(ModelLoadError, match=r"int8 runs on an exported runtime.*scenetag\[cpu\]") as info:
        load_embedder(str(tiny_model_dir), device="cpu", runtime="auto", precision="int8")
    assert "\n" not in str(info.value)


def test_auto_runs_a_naflex_model_on_torch(tmp_path_factory, cpu_auto_runtime):
    pytest.importorskip("openvino")
    model = build_tiny_siglip2(tmp_path_factory.mktemp("models") / "tiny-siglip2")
    assert load_embedder(str(model), device="cpu", runtime="auto").runtime.name == "torch"
    with pytest.raises(ModelLoadError, match="variable patch count"):
        load_embedder(str(model), device="cpu", runtime="auto", precision="int8")


def test_a_bad_cpu_runtime_setting_warns_and_keeps_the_default(cpu_auto_runtime, monkeypatch, caplog):
    pytest.importorskip("openvino")
    from pipeline.embed.runtime import auto_runtime

    monkeypatch.setenv("SCENETAG_CPU_RUNTIME", "tensorrt")
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.runtime"):
        assert auto_runtime("cpu") == "auto"  # measured, as without the setting
    assert "SCENETAG_CPU_RUNTIME=tensorrt is not a runtime" in caplog.text


def test_a_run_with_openvino_scores_frames_as_torch_does(tmp_path, tiny_model_dir, clip_dir):
    pytest.importorskip("openvino")
    cfg = tiny_config(tmp_path, tiny_model_dir, "sampling: {every_seconds: 0.5}\n"
                      "labels: [{name: cat}, {name: dog}, {name: car}]\n")
    frames = {}
    for runtime in ("torch", "openvino"):
        out = tmp_path / runtime
        result = CliRunner().invoke(app, ["run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out),
                                          "--runtime", runtime, "--precision", "fp32", "--no-store",
                                          "--no-refine", "-q"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        frames[runtime] = pd.read_csv(out / "ten" / "frames.csv")
    scores = [c for c in frames["torch"].columns if c.startswith(("score:", "smoothed:"))]
    assert len(scores) == 6 and len(frames["torch"]) == 8
    assert frames["openvino"]["time_s"].tolist() == frames["torch"]["time_s"].tolist()
    np.testing.assert_allclose(frames["openvino"][scores], frames["torch"][scores], atol=1e-4, rtol=0)


def test_bench_results_name_each_runtime_and_precision():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("scenetag_bench_keys", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    study = {"fp32": {"img_s": 1.0}, "bf16": {"img_s": 2.0}, "bf16-autocast": {"img_s": 3.0},
             "bf16+compile": {"img_s": 4.0}, "openvino-bf16": {"img_s": 5.0},
             "onnxruntime-fp32": {"img_s": 6.0}, "large_batch": {"batch": 1024}}
    assert bench.model_fps_keys(study) == {"model_fps_torch_fp32": 1.0, "model_fps_torch_bf16": 2.0,
                                           "model_fps_openvino_bf16": 5.0, "model_fps_onnxruntime_fp32": 6.0}


def _main_thread_signal_stack_is_usable() -> bool:
    """The calling thread's sigaltstack is off, or lies in mapped memory."""
    import ctypes

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    stack = StackT()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
    if stack.ss_flags & 2:  # SS_DISABLE
        return True
    with open("/proc/self/maps") as maps:
        spans = [line.split()[0].split("-") for line in maps]
    return any(int(lo, 16) <= stack.ss_sp < int(hi, 16) for lo, hi in spans)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack and /proc/self/maps")
def test_openvino_models_made_and_dropped_leave_ctrl_c_working(tiny_model_dir):
    """OpenVINO's CPU plugin sets a signal stack on the thread that compiles and puts
    back an older one when a model is dropped: compiled on the main thread, two towers
    and `auto`'s candidates left it pointing at freed memory, and the next Ctrl-C was a
    SIGSEGV (the full suite died in test_live's signal test after the demo run)."""
    import gc
    import signal

    pytest.importorskip("openvino")
    for precision in ("fp32", "bf16", "fp32"):
        embedder = load_embedder(str(tiny_model_dir), device="cpu", precision=precision, runtime="openvino")
        embedder.embed_images(_frames(2, seed=1))
        del embedder
        gc.collect()
    assert _main_thread_signal_stack_is_usable()
    caught = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: caught.append(1))
    try:
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert caught == [1]
