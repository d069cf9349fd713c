"""OpenVINO int8 with accuracy control: NNCF keeps in float the ops that cost the most
agreement until the image tower's min cosine to its fp32 graph on the validation
images reaches the target, and the target, method and validation set are part of
the export's cache key (ONNX Runtime's dynamic int8 has no such control and keeps
its key). On the tiny CLIP, whose 32-wide layers lose more to int8 than ViT-B/32's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.embed import choose, load_embedder
from pipeline.embed import export as export_mod

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module", autouse=True)
def export_cache(module_export_cache):
    return module_export_cache


@pytest.fixture(scope="module")
def quantisable(tiny_model_dir):
    """The tiny CLIP's fp32 OpenVINO image graph, its calibration and validation inputs."""
    from pipeline.embed.load import _exported_builder

    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="torch")
    fp32 = _exported_builder(embedder, "openvino", embedder._family)("fp32")
    cal = choose.calibration(embedder)
    samples = [[p.numpy()] for p in cal.pixels]
    validation = [[p.numpy()] for p in cal.validation]
    return fp32.folder / "image.xml", samples, validation


def _validation_cosine(fp32_xml, int8_xml, validation) -> float:
    import openvino as ov

    from pipeline.embed.runtime import _min_cosine_to

    core = ov.Core()
    return _min_cosine_to(core.read_model(str(fp32_xml)), core.read_model(str(int8_xml)), validation)


def test_accuracy_control_keeps_ops_float_only_when_the_metric_needs_it(quantisable, tmp_path):
    from pipeline.embed.runtime import OpenVinoRuntime

    fp32_xml, samples, validation = quantisable
    plain = OpenVinoRuntime.quantize_tower(fp32_xml, tmp_path / "plain.xml", samples)
    plain_cos = _validation_cosine(fp32_xml, tmp_path / "plain.xml", validation)
    assert plain["method"] == "nncf-ptq" and plain_cos < 0.99999  # int8 costs the tiny model agreement
    # A target plain int8 misses: some ops go back to float, and the target is met.
    target = 1 - (1 - plain_cos) / 4
    strict = OpenVinoRuntime.quantize_tower(fp32_xml, tmp_path / "strict.xml", samples,
                                            validation=validation, target=target)
    print(f"plain {plain_cos:.6f} ({len(plain['float_ops'])} float), target {target:.6f}: "
          f"{strict['validation_min_cosine']} ({len(strict['float_ops'])} float)")
    assert strict["method"] == "nncf-accuracy-control" and strict["target"] == target
    assert len(strict["float_ops"]) > len(plain["float_ops"]) and strict["int8_ops"] < plain["int8_ops"]
    assert strict["validation_min_cosine"] >= target
    assert _validation_cosine(fp32_xml, tmp_path / "strict.xml", validation) >= target
    # A target plain int8 already meets: nothing is reverted.
    loose = OpenVinoRuntime.quantize_tower(fp32_xml, tmp_path / "loose.xml", samples,
                                           validation=validation, target=plain_cos - 0.01)
    assert loose["float_ops"] == plain["float_ops"] and loose["int8_ops"] == plain["int8_ops"]


def test_the_int8_cache_key_names_the_accuracy_control(tiny_model_dir, export_cache, monkeypatch):
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="openvino")
    meta = json.loads((embedder.runtime.folder / "meta.json").read_text())
    assert meta["int8"]["method"] == "nncf-accuracy-control" and meta["int8"]["target"] == choose.INT8_TARGET
    assert f"min-cosine>={choose.INT8_TARGET}" in meta["calibration"] and "validation:" in meta["calibration"]
    assert meta["int8"]["validation_min_cosine"] >= choose.INT8_TARGET or not meta["int8"]["int8_ops"]
    calls = []
    real = export_mod.export
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(choose, "INT8_TARGET", 0.9)  # another method: another graph, another entry
    other = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="openvino")
    assert len(calls) == 1 and other.runtime.folder != embedder.runtime.folder
    assert json.loads((other.runtime.folder / "meta.json").read_text())["int8"]["target"] == 0.9


def test_onnxruntime_int8_key_ignores_the_accuracy_control(tiny_model_dir, monkeypatch):
    pytest.importorskip("onnxruntime")
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="torch")
    cal, other = choose.calibration(embedder), choose.calibration(embedder, target=0.9)
    assert cal.key(True) != other.key(True)  # OpenVINO: the target is part of the key
    assert cal.key(False) == other.key(False) == cal.name  # ONNX Runtime: dynamic, uncontrolled
    first = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="onnxruntime")
    assert json.loads((first.runtime.folder / "meta.json").read_text())["int8"]["method"] == \
        "onnxruntime-dynamic"
    calls = []
    monkeypatch.setattr(export_mod, "export", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(choose, "INT8_TARGET", 0.9)
    again = load_embedder(str(tiny_model_dir), device="cpu", precision="int8", runtime="onnxruntime")
    assert calls == [] and again.runtime.folder == first.runtime.folder


def test_validation_images_are_not_the_check_images():
    size, photos = 32, choose.sample_photos()
    checks = choose.check_images(photos, size, synthetic=choose.FLAT_SCENES, drawn=choose.DRAWN_SCENES)
    validation, name = choose.validation_images(photos, size)
    assert "seed2" in name.split(":") and "seed1" not in name.split(":")  # the check's flat scenes are seed 1
    held_out = {c.tobytes() for c in checks}
    assert not any(v.tobytes() in held_out for v in validation)
    assert len(validation) == len(photos) * 2 + 12 + 6 + 12 and np.stack(validation).dtype == np.uint8


def test_drawn_scenes_are_in_every_set_each_of_its_own_seed():
    """The demo model's int8 agreed 0.9997 on photos and flat scenes but 0.9973 on its
    cartoon frames: drawings are checked, validated and calibrated on, never the same ones."""
    from pipeline.embed.scenes import drawn_scenes

    size, photos = 32, choose.sample_photos()
    assert len(set(choose.DRAWN_SEEDS.values())) == 3
    drawn = {role: {d.tobytes() for d in drawn_scenes(size, 12, seed=seed)}
             for role, seed in choose.DRAWN_SEEDS.items()}
    checks = {c.tobytes() for c in choose.check_images(photos, size, synthetic=choose.FLAT_SCENES,
                                                       drawn=choose.DRAWN_SCENES)}
    validation, name = choose.validation_images(photos, size)
    validation = {v.tobytes() for v in validation}
    assert len(checks & drawn["check"]) == choose.DRAWN_SCENES and not checks & drawn["validation"]
    assert len(validation & drawn["validation"]) == 12 and not validation & drawn["check"]
    assert f"drawn:seed{choose.DRAWN_SEEDS['validation']}" in name


def test_drawn_calibration_is_in_the_export_key(tiny_model_dir):
    embedder = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="torch")
    cal = choose.calibration(embedder)
    fewer = choose.calibration(embedder, drawn=0)
    assert len(cal.pixels) == len(fewer.pixels) + 24
    assert cal.key(True) != fewer.key(True) and f"seed{choose.DRAWN_SEEDS['calibration']}" in cal.key(True)
