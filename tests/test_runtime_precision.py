"""Precisions on the exported CPU runtimes: int8 (OpenVINO: NNCF post-training
quantisation; ONNX Runtime: dynamic quantisation) against torch fp32 on the tiny
models, its own cache entry, and ``precision: auto`` measured once per
(model, runtime), cached, and re-measured when its record is damaged.

The tiny models have random weights, 32-wide layers and 32 px inputs: int8
rounding weighs far more on 32 channels than on ViT-B/32's 768, so their int8
image embeddings are held to cosine >= 0.97 (measured: 0.981 for the tiny SigLIP
on OpenVINO, whose activations are quantised too; 0.9995 tiny CLIP; ONNX Runtime
0.9998-0.9999) and each photo's int8 vector must
be nearest its own fp32 vector among the photos; ViT-B/32 random weights measure
~0.9997, docs/PERFORMANCE.md); the text tower is not quantised and stays at 0.9999."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
from tiny_families import build_tiny_siglip

from pipeline.embed import choose, load_embedder
from pipeline.embed import export as export_mod
from pipeline.types import ModelLoadError

RUNTIMES = ("openvino", "onnxruntime")
TEXTS = ["a cat", "A photo of a big dog, on the beach!", "x", "two red cars in the rain"]
INT8_TINY = 0.97  # see the module docstring


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
def reference():
    cache: dict[str, object] = {}

    def get(model: str):
        if model not in cache:
            cache[model] = load_embedder(model, device="cpu", precision="fp32", runtime="torch", batch_size=8)
        return cache[model]
    return get


def _photos(size: int) -> np.ndarray:
    return choose.check_images(choose.sample_photos(), size)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a * b).sum(axis=1).min())


def _entries(export_cache, runtime: str, model: str) -> dict[str, str]:
    """precision → entry folder name, of ``model``'s cache entries for ``runtime``."""
    out = {}
    for entry in export_cache.glob(f"{runtime}-*"):
        meta = json.loads((entry / "meta.json").read_text())
        if meta["model"] == model:
            out[meta.get("precision", "fp32")] = entry.name
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_agrees_with_torch_fp32_in_its_own_cache_entry(runtime, model_dir, reference):
    pytest.importorskip(runtime)
    if runtime == "openvino":
        pytest.importorskip("nncf")
    ref = reference(model_dir)
    embedder = load_embedder(model_dir, device="cpu", precision="int8", runtime=runtime, batch_size=8)
    assert embedder.precision == "int8" and embedder.runtime.precision == "int8"
    photos = _photos(ref.input_size)
    for n in (1, 3, len(photos)):  # dynamic batch survives quantisation
        assert _min_cosine(embedder.embed_images(photos[:n]), ref.embed_images(photos[:n])) >= INT8_TINY
    int8_vectors, fp32_reference = embedder.embed_images(photos), ref.embed_images(photos)
    print(f"int8 {runtime} {model_dir}: min cosine {_min_cosine(int8_vectors, fp32_reference):.4f}")
    whole = len(photos) // 2  # the photos, without their mirrors
    nearest = (int8_vectors[:whole] @ fp32_reference[:whole].T).argmax(axis=1)
    assert nearest.tolist() == list(range(whole))
    assert _min_cosine(embedder.embed_texts(TEXTS), ref.embed_texts(TEXTS)) >= 0.9999  # text stays fp32
    assert not np.allclose(int8_vectors, fp32_reference, atol=1e-4)  # quantised, not the fp32 graph
    entry = embedder.runtime.folder
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["precision"] == "int8" and meta["calibration"].startswith("sample-photos:")
    assert entry.name != export_mod.export_key(runtime, model_id=model_dir, revision=embedder.revision,
                                               precision="fp32", input_size=(ref.input_size,) * 2)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_second_int8_load_reuses_the_cache_and_prints_nothing(runtime, tiny_model_dir, monkeypatch,
                                                               capfd):
    pytest.importorskip(runtime)
    if runtime == "openvino":
        pytest.importorskip("nncf")
    load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime=runtime)
    out, err = capfd.readouterr()
    # NNCF draws progress bars and tables, ONNX Runtime's quantiser warns on the root logger
    assert "━" not in out + err and "Statistics" not in out + err and "pre-processing" not in out + err
    calls = []
    real = export_mod.export
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a) or real(*a, **k))
    load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime=runtime)
    assert calls == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_auto_picks_the_fastest_agreeing_precision_once_and_caches_it(runtime, tiny_model_dir, export_cache,
                                                                      reference, monkeypatch):
    pytest.importorskip(runtime)
    embedder = load_embedder(str(tiny_model_dir), device="cpu", runtime=runtime)  # precision auto
    records = list((export_cache / "decisions").glob(f"{runtime}-*.json"))
    decision = next(d for d in (json.loads(p.read_text()) for p in records)
                    if d["model"] == str(tiny_model_dir))
    measured = decision["measured"]
    assert set(measured) == set(choose.candidates(runtime)) and "fp32" in measured
    agreeing = {p: m["img_s"] for p, m in measured.items() if m["min_cosine"] >= choose.AGREEMENT}
    assert decision["precision"] == embedder.precision == max(agreeing, key=agreeing.get)
    assert decision["photos"][-1] == "grace_hopper" and decision["agreement"] == 0.999
    photos = _photos(embedder.input_size)
    ref = reference(str(tiny_model_dir))
    assert _min_cosine(embedder.embed_images(photos), ref.embed_images(photos)) >= choose.AGREEMENT
    calls = []
    monkeypatch.setattr(choose, "measure", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a))
    again = load_embedder(str(tiny_model_dir), device="cpu", runtime=runtime)
    assert calls == [] and again.precision == embedder.precision


def test_auto_keeps_fp32_when_nothing_else_agrees(tiny_model_dir, monkeypatch):
    pytest.importorskip("onnxruntime")
    from pipeline.embed.load import _exported_builder

    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="torch")
    build = _exported_builder(embedder, "onnxruntime", embedder._family)  # exports cached by the tests above
    monkeypatch.setattr(choose, "AGREEMENT", 1.5)  # no precision can reach it, fp32 included
    decision = choose.measure(embedder, "onnxruntime", build)
    assert decision["precision"] == "fp32" and set(decision["measured"]) == {"fp32", "int8"}
    assert embedder.runtime.name == "torch"  # measuring leaves the torch model in place


def test_a_damaged_decision_is_measured_again_with_a_warning(tiny_model_dir, export_cache, caplog):
    pytest.importorskip("onnxruntime")
    load_embedder(str(tiny_model_dir), device="cpu", runtime="onnxruntime")
    record = next(p for p in (export_cache / "decisions").glob("onnxruntime-*.json")
                  if json.loads(p.read_text())["model"] == str(tiny_model_dir))
    record.write_text('{"version": 1, "precision": "fp64"}')
    with caplog.at_level(logging.WARNING):
        embedder = load_embedder(str(tiny_model_dir), device="cpu", runtime="onnxruntime")
    assert any("decision" in r.getMessage() and "measuring again" in r.getMessage() for r in caplog.records)
    assert json.loads(record.read_text())["precision"] == embedder.precision in ("fp32", "int8")


def test_int8_on_torch_is_a_one_line_error(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="int8 runs on an exported CPU runtime.*--runtime openvino") \
            as info:
        load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="torch")
    assert "\n" not in str(info.value)


def test_openvino_int8_without_nncf_is_a_one_line_error_and_auto_skips_it(tiny_model_dir, tmp_path,
                                                                          monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` now raises ImportError
    with pytest.raises(ModelLoadError, match=r"int8 on openvino needs the nncf package.*scenetag\[cpu\]") \
            as info:
        load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="openvino")
    assert "\n" not in str(info.value)
    assert "int8" not in choose.candidates("openvino")



def test_runtime_and_precision_are_kept_in_summary_and_store_and_reach_rescore(tmp_path, tiny_model_dir,
                                                                               clip_dir):
    pytest.importorskip("onnxruntime")
    from tiny_model import tiny_config
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.store.db import EmbeddingStore

    cfg = tiny_config(tmp_path, tiny_model_dir, "sampling: {every_seconds: 0.5}\n"
                      "labels: [{name: cat}, {name: dog}]\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out),
                                      "--runtime", "onnxruntime", "--precision", "int8", "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = json.loads((out / "ten" / "summary.json").read_text())["model"]
    assert (model["runtime"], model["precision"]) == ("onnxruntime", "int8")
    videos = EmbeddingStore.open(out / "store").videos()
    assert [v.precision for v in videos] == ["onnxruntime-int8"]
    result = CliRunner().invoke(app, ["rescore", "--store", str(out / "store"), "-c", str(cfg),
                                      "-o", str(tmp_path / "re"), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "re" / "ten" / "summary.json").read_text())["model"]
    assert (model["runtime"], model["precision"]) == ("onnxruntime", "int8")  # what the stored frames rest on


@pytest.mark.parametrize(("labels", "runtime", "precision", "device", "expected"), [
    (["onnxruntime-int8"], "auto", "auto", "cpu", ("onnxruntime", "int8")),
    (["onnxruntime-int8", "onnxruntime-int8"], "auto", "fp32", "cpu", ("onnxruntime", "int8")),
    (["onnxruntime-int8"], "torch", "auto", "cpu", ("torch", "auto")),  # asked for: never overridden
    (["onnxruntime-int8"], "auto", "auto", "cuda", ("auto", "auto")),  # exported runtimes are CPU only
    (["onnxruntime-int8", "bf16"], "auto", "auto", "cpu", ("auto", "auto")),  # made by two runtimes
    (["bf16"], "auto", "auto", "cpu", ("torch", "auto")),  # made by torch: auto would export
    ([], "auto", "auto", "cpu", ("auto", "auto")),
])
def test_auto_over_stored_embeddings_reuses_the_runtime_they_were_made_with(labels, runtime, precision,
                                                                             device, expected):
    pytest.importorskip("onnxruntime")
    from pipeline.embed.runtime import reuse_stored

    assert reuse_stored(labels, runtime, precision, device) == expected


def test_a_stored_runtime_that_is_not_installed_falls_back_to_auto(monkeypatch):
    from pipeline.embed import runtime as rt

    monkeypatch.setattr(rt, "importable", lambda name: name != "nncf")
    assert rt.reuse_stored(["openvino-int8"], "auto", "auto", "cpu") == ("auto", "auto")
    assert rt.reuse_stored(["openvino-bf16"], "auto", "auto", "cpu") == ("openvino", "bf16")


def test_search_and_rescore_embed_with_the_store_runtime(tmp_path, tiny_model_dir, clip_dir, monkeypatch):
    """A query (or a refinement frame) embedded by torch would be compared with
    int8 vectors: ``search`` and ``rescore`` load the stored frames' runtime."""
    pytest.importorskip("onnxruntime")
    from tiny_model import tiny_config
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.cli.commands_store import _store_embedder
    from pipeline.run.rescore import _StoredProber
    from pipeline.store.db import EmbeddingStore

    cfg = tiny_config(tmp_path, tiny_model_dir, "sampling: {every_seconds: 1}\nlabels: [{name: cat}]\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(clip_dir / "ten.mp4"), "-c", str(cfg), "-o", str(out),
                                      "--runtime", "onnxruntime", "--precision", "int8", "--no-refine", "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db = EmbeddingStore.open(out / "store")
    embedder = _store_embedder(db, None, "cpu")
    assert (embedder.runtime.name, embedder.precision) == ("onnxruntime", "int8")
    assert _store_embedder(db, None, "cpu", "torch").runtime.name == "torch"  # --runtime still decides

    from pipeline.config import load_config
    from pipeline.run import rescore as rescore_module

    class NoDecode:  # the frames do not matter here, only the model they would be embedded with
        def probe(self, requests, embed, frames=None):
            return {}

    given = []
    monkeypatch.setattr(rescore_module, "_stored_engine",
                        lambda video, config, embedder: given.append(embedder) or NoDecode())
    video = db.videos()[0]
    _StoredProber(load_config(cfg), db, None, allowed=True)._probe({video.input_path: [1]}, video=video)
    assert given[0].precision_label == "onnxruntime-int8"  # kept with the int8 label in the store
