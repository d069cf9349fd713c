"""The export cache (pipeline.embed.export) trusts only entries written for what is
asked: another model's entry copied or linked into this model's folder, or a
``meta.json`` of another shape, is exported again with a warning (issue 27, items 3
and 12); ONNX Runtime's int8 is written in the format this CPU's kernels do not
saturate in, and that format is part of its key (issue 29); an int8 entry is made
from the cached fp32 entry rather than traced again."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest

from pipeline.embed import cpu, load_embedder
from pipeline.embed import export as export_mod

AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
ZEN5 = ("processor\t: 0\nmodel name\t: AMD EPYC 9B45\n"
        "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n")
ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp\nCPU part\t: 0xd0c\n"


@pytest.fixture(scope="module", autouse=True)
def export_cache(module_export_cache):
    return module_export_cache


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    from tiny_model import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "other-clip", seed=1)


def _frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 56, 3), dtype=np.uint8)


def _agreement(embedder, model_dir) -> float:
    reference = load_embedder(str(model_dir), device="cpu", precision="fp32", runtime="torch")
    frames = _frames(4, seed=5)
    return float(np.min(np.sum(embedder.embed_images(frames) * reference.embed_images(frames), axis=1)))


@pytest.mark.parametrize("how", ["copied", "symlinked"])
def test_another_models_entry_in_this_models_folder_is_exported_again(how, tiny_model_dir, other_model_dir,
                                                                      caplog):
    pytest.importorskip("openvino")
    mine, theirs = (load_embedder(str(m), device="cpu", precision="fp32", runtime="openvino").runtime.folder
                    for m in (tiny_model_dir, other_model_dir))
    shutil.rmtree(mine)
    if how == "copied":
        shutil.copytree(theirs, mine)
    else:
        mine.symlink_to(theirs, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.export"):
        embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="openvino")
    assert any("exporting it again" in r.getMessage() and str(other_model_dir) in r.getMessage()
               for r in caplog.records), caplog.text
    assert _agreement(embedder, tiny_model_dir) >= 0.9999  # this model's vectors, not the other's
    assert not mine.is_symlink() and (theirs / "meta.json").exists()  # the other entry is left alone
    assert json.loads((mine / "meta.json").read_text())["model"] == str(tiny_model_dir)


def test_an_entry_written_under_another_key_is_exported_again(tiny_model_dir, caplog):
    pytest.importorskip("onnxruntime")
    fp32 = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="onnxruntime")
    int8 = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="onnxruntime")
    shutil.rmtree(int8.runtime.folder)
    shutil.copytree(fp32.runtime.folder, int8.runtime.folder)  # the same model's fp32 graph as its int8
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.export"):
        again = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="onnxruntime")
    assert "written for key" in caplog.text
    assert json.loads((again.runtime.folder / "meta.json").read_text())["precision"] == "int8"


WRONG_SHAPES = ['{"files": []}', '{"files": ["image.onnx", "text.onnx"]}', "[]", "null",
                '{"files": {"image.onnx": 7}, "inputs": {}}']


@pytest.mark.parametrize("meta", WRONG_SHAPES)
def test_an_export_record_of_any_wrong_shape_is_damage(meta, tmp_path):
    """Issue 27 item 12: a meta.json whose ``files`` is a list raised AttributeError."""
    (tmp_path / "meta.json").write_text(meta)
    assert export_mod.damage(tmp_path) == "meta.json is not an export record"


def test_an_export_record_of_the_wrong_shape_is_exported_again(tiny_model_dir, caplog):
    """The whole path for one of :data:`WRONG_SHAPES` (each re-export costs seconds)."""
    pytest.importorskip("onnxruntime")
    entry = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32",
                          runtime="onnxruntime").runtime.folder
    (entry / "meta.json").write_text(WRONG_SHAPES[1])
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.export"):
        embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="onnxruntime")
    assert "damaged" in caplog.text and "exporting it again" in caplog.text
    assert _agreement(embedder, tiny_model_dir) >= 0.9999


@pytest.mark.parametrize(("cpuinfo", "fmt"), [(AVX2, "u8s8-reduce-range"), (ZEN5, "u8s8"), (ARM, "u8s8")],
                         ids=["avx2", "avx512-vnni", "arm-dotprod"])
def test_onnxruntime_int8_is_written_in_the_format_the_cpu_does_not_saturate_in(cpuinfo, fmt, tiny_model_dir,
                                                                                 monkeypatch, tmp_path):
    """u8s8 saturated on an AVX2 Zen 3 without VNNI (tiny SigLIP: min cosine 0.955);
    ONNX Runtime's guide: 7-bit weights (reduce_range) there."""
    pytest.importorskip("onnxruntime")
    import onnxruntime.quantization as quantization

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    calls = []
    real = quantization.quantize_dynamic
    monkeypatch.setattr(quantization, "quantize_dynamic", lambda *a, **k: calls.append(k) or real(*a, **k))
    monkeypatch.setattr(cpu, "cpuinfo_text", lambda: cpuinfo)
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="onnxruntime")
    meta = json.loads((embedder.runtime.folder / "meta.json").read_text())
    assert meta["int8_format"] == fmt == meta["int8"]["format"]
    assert calls and calls[-1]["reduce_range"] is fmt.endswith("reduce-range")
    assert _agreement(embedder, tiny_model_dir) >= 0.97  # the tiny model's int8 bound, test_runtime_precision


def test_each_int8_format_has_its_own_entry(tiny_model_dir, monkeypatch):
    pytest.importorskip("onnxruntime")
    folders = set()
    for cpuinfo in (AVX2, ZEN5):
        monkeypatch.setattr(cpu, "cpuinfo_text", lambda text=cpuinfo: text)
        folders.add(load_embedder(str(tiny_model_dir), device="cpu", precision="int8",
                                  runtime="onnxruntime").runtime.folder)
    assert len(folders) == 2  # a cache shared by both machines serves each its own graph


def test_an_int8_entry_is_made_from_the_cached_fp32_entry(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from pipeline.embed.runtime import OnnxRuntime

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fp32 = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="onnxruntime")

    def no_trace(*args, **kwargs):
        raise AssertionError("the fp32 entry's graph was there to quantise")

    monkeypatch.setattr(OnnxRuntime, "export_tower", classmethod(no_trace))
    int8 = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="onnxruntime")
    meta = json.loads((int8.runtime.folder / "meta.json").read_text())
    assert meta["from"] == fp32.runtime.folder.name and meta["precision"] == "int8"
    assert meta["revision"] == int8.revision and meta["key"] == int8.runtime.folder.name
    assert _agreement(int8, tiny_model_dir) >= 0.97


def test_damage_names_what_does_not_match(tmp_path):
    entry = tmp_path / "onnxruntime-x"
    entry.mkdir()
    (entry / "image.onnx").write_bytes(b"graph")
    files = {"image.onnx": {"size": 5, "sha256": hashlib.sha256(b"graph").hexdigest()}}
    meta = {"model": "a", "revision": "r", "key": "onnxruntime-x", "files": files,
            "inputs": {"image": ["pixel_values"], "text": ["input_ids"]}}
    (entry / "meta.json").write_text(json.dumps(meta))
    assert export_mod.damage(entry, {"model": "a", "revision": "r", "key": "onnxruntime-x"}) is None
    assert "model 'a', not 'b'" in export_mod.damage(entry, {"model": "b"})
    assert "revision" in export_mod.damage(entry, {"revision": "r2"})
    (entry / "meta.json").write_text(json.dumps({**meta, "files": {"../../etc/passwd": files["image.onnx"]}}))
    assert "missing" in export_mod.damage(entry)  # a record never names a file outside its entry
