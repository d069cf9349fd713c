"""``runtime: auto`` on a CPU (pipeline.embed.auto): runtime and precision chosen together
by measurement, within a first-use budget, cached per model, CPU and installation.

The decision logic runs on fake timings and a fake clock (:class:`FakeTrial`): which
candidate wins, what is skipped or deferred and why, what the next load goes on
with, the cache key. Faked CPUs are faked through ``pipeline.embed.cpu.cpuinfo_text``.
The last tests load the tiny CLIP as users get ``auto``; no test asserts a speed."""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.embed import auto, cpu
from pipeline.types import ModelLoadError

AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
ZEN5 = ("processor\t: 0\nmodel name\t: AMD EPYC 9B45\n"
        "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n")


def fake_cpu(monkeypatch, text: str) -> None:
    monkeypatch.setattr(cpu, "cpuinfo_text", lambda: text)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTrial:
    """Candidates with given speeds (img/s), min cosines and preparation seconds, on a fake clock."""

    def __init__(self, speeds: dict[str, float], *, cosines: dict[str, float] | None = None,
                 prepare_s: dict[str, float] | None = None, cached: tuple[str, ...] = (),
                 params_m: float = 126.0,
                 clock: FakeClock | None = None, fail: tuple[str, ...] = ()) -> None:
        self.images = [None] * 22
        self.photos = ["coffee"]
        self.params_m = params_m
        self.speeds, self.cosines, self.prepare_s = speeds, cosines or {}, prepare_s or {}
        self.on_disk = set(cached)
        self.clock = clock or FakeClock()
        self.fail = fail
        self.prepared: list[str] = []
        self.checked: list[str] = []
        self.applied = None

    def _pass(self, name: str) -> float:
        seconds = len(self.images) / self.speeds[name]
        self.clock.now += seconds
        return seconds

    def reference(self) -> float:
        return self._pass("torch-fp32")

    def cached(self, runtime: str, precision: str) -> bool:
        return runtime == "torch" or auto.label(runtime, precision) in self.on_disk

    def prepare(self, runtime: str, precision: str) -> str:
        name = auto.label(runtime, precision)
        self.prepared.append(name)
        if name in self.fail:
            raise RuntimeError(f"{name} broke")
        if name not in self.on_disk:
            self.clock.now += self.prepare_s.get(name, 1.0)
        self.on_disk.add(name)
        return name

    def check(self, ready: str) -> dict:
        self.checked.append(ready)
        self._pass(ready)
        cos = self.cosines.get(ready, 0.99995)
        return {"min_cosine_images": cos, "min_cosine_texts": 0.99999, "min_cosine": cos}

    def time_pass(self, ready: str) -> float:
        return self._pass(ready)

    def probe_int8(self, fp32_ready: str) -> str:
        self.prepared.append("probe")
        self.clock.now += 20.0
        return "probe"

    def apply(self, ready: str) -> None:
        self.applied = ready


def decide(trial: FakeTrial, precision: str = "auto", budget: float = 45.0, previous=None, exportable=True):
    candidates, skipped = auto.offered(precision, exportable=exportable, have=lambda name: True)
    return auto.decide(trial, candidates, skipped, budget=budget, precision=precision, previous=previous,
                       clock=trial.clock)


# Speeds measured on the AVX2 Zen 3 of issue 29 (ViT-B/32, img/s).
ZEN3_SPEEDS = {"torch-fp32": 16.9, "torch-bf16": 2.3, "onnxruntime-fp32": 18.7, "onnxruntime-int8": 31.0,
               "openvino-fp32": 18.4, "openvino-bf16": 17.7, "openvino-int8": 18.8, "probe": 19.0}


def test_on_an_avx2_cpu_onnxruntime_int8_wins_within_the_budget_and_nothing_needs_bf16(monkeypatch):
    fake_cpu(monkeypatch, AVX2)
    trial = FakeTrial(ZEN3_SPEEDS, prepare_s={"onnxruntime-fp32": 16, "onnxruntime-int8": 3,
                                              "openvino-fp32": 7})
    result, picked = decide(trial)
    assert result["chosen"] == picked == "onnxruntime-int8"
    rows = result["rows"]
    tried = [n for n in trial.prepared if n != "probe"][:4]
    assert tried == ["torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32"]  # in cost order
    assert rows["torch-bf16"]["status"] == rows["openvino-bf16"]["status"] == "skipped"
    assert "native bf16" in rows["torch-bf16"]["reason"]
    assert rows["onnxruntime-int8"]["agrees"] and rows["onnxruntime-int8"]["img_s"] == 31.0
    assert "onnxruntime-int8: 31 img/s = 1.83x torch fp32" in result["reason"]
    assert result["elapsed_s"] <= 45 + 5  # one stage's misestimate at most


def test_torch_bf16_is_never_picked_without_native_bf16_even_if_it_timed_fastest(monkeypatch):
    from pipeline.embed import resolve_precision

    speeds = {**ZEN3_SPEEDS, "torch-bf16": 500.0, "openvino-bf16": 400.0}
    fake_cpu(monkeypatch, AVX2)
    trial = FakeTrial(speeds)
    result, _ = decide(trial, budget=math.inf)
    assert "torch-bf16" not in trial.prepared and "openvino-bf16" not in trial.prepared
    assert result["chosen"] == "onnxruntime-int8" and resolve_precision("auto", "cpu") == "fp32"
    fake_cpu(monkeypatch, ZEN5)  # the same timings where bf16 is native: it may win
    result, _ = decide(FakeTrial(speeds), budget=math.inf)
    assert result["chosen"] == "torch-bf16" and resolve_precision("auto", "cpu") == "bf16"


@pytest.mark.parametrize("flags", [AVX2, ZEN5])
def test_an_int8_that_does_not_agree_is_refused_on_any_cpu(monkeypatch, flags):
    fake_cpu(monkeypatch, flags)
    # ONNX Runtime's u8s8 int8 saturated on the AVX2 machine: min cosine 0.955
    trial = FakeTrial(ZEN3_SPEEDS, cosines={"onnxruntime-int8": 0.955, "openvino-int8": 0.998})
    result, _ = decide(trial, budget=math.inf)
    assert result["chosen"] not in ("onnxruntime-int8", "openvino-int8")
    assert result["rows"]["onnxruntime-int8"]["agrees"] is False
    assert "refused (disagree): onnxruntime-int8 0.9550" in result["reason"]


def test_what_does_not_fit_the_budget_waits_and_the_next_load_goes_on(monkeypatch, caplog):
    fake_cpu(monkeypatch, AVX2)
    slow = {"onnxruntime-fp32": 20, "onnxruntime-int8": 5, "openvino-fp32": 7}
    trial = FakeTrial(ZEN3_SPEEDS, prepare_s=slow)
    first, _ = decide(trial)
    rows = first["rows"]
    assert rows["onnxruntime-fp32"]["status"] == "measured"
    assert rows["openvino-fp32"] == {**rows["openvino-fp32"], "status": "deferred", "until": "later run"}
    assert "the next load goes on" in rows["openvino-fp32"]["reason"] and not first["complete"]
    assert first["elapsed_s"] <= 45 + 5
    # The next load: the cached exports load in a second; the new work comes first.
    again = FakeTrial(ZEN3_SPEEDS, prepare_s=slow, cached=tuple(n for n, r in rows.items()
                                                                 if r.get("status") == "measured"))
    caplog.clear()
    second, _ = decide(again, previous=rows)
    assert second["rows"]["openvino-fp32"]["status"] == "measured" and second["complete"]
    assert again.prepared.index("openvino-fp32") < again.prepared.index("onnxruntime-int8")
    assert "onnxruntime-int8" not in again.checked  # its agreement was settled by the first load
    assert second["rows"]["onnxruntime-int8"]["earlier"] and second["chosen"] == "onnxruntime-int8"


def test_a_settled_candidate_whose_export_is_gone_is_prepared_again_within_the_budget(monkeypatch):
    fake_cpu(monkeypatch, ZEN5)
    speeds = {**ZEN3_SPEEDS, "torch-bf16": 33.0, "openvino-bf16": 37.5, "openvino-int8": 69.0}
    previous = {"openvino-int8": {"status": "measured", "agrees": True, "min_cosine": 0.9997, "img_s": 69.0}}
    result, _ = decide(FakeTrial(speeds), previous=previous)  # its entry was deleted since
    assert result["rows"]["openvino-int8"]["status"] == "deferred"  # minutes: not remade behind the budget
    assert result["chosen"] != "openvino-int8"


def test_the_accuracy_controlled_int8_of_a_vit_b32_waits_for_an_explicit_preparation(monkeypatch):
    fake_cpu(monkeypatch, ZEN5)  # VNNI and bf16: int8 can win here, no probe needed
    speeds = {**ZEN3_SPEEDS, "torch-bf16": 33.0, "openvino-bf16": 37.5, "openvino-int8": 69.0}
    result, _ = decide(FakeTrial(speeds))
    row = result["rows"]["openvino-int8"]
    assert row["status"] == "deferred" and row["until"] == "explicit" and row["estimate_s"] > 45
    assert "scenetag doctor --prepare" in row["reason"] and "avx512_vnni" in row["gate"]
    prepared = FakeTrial(speeds, prepare_s={"openvino-int8": 200})
    result, _ = decide(prepared, budget=math.inf)  # what --prepare does
    assert result["chosen"] == "openvino-int8" and result["complete"] and "probe" not in prepared.prepared


@pytest.mark.parametrize(("probe", "made"), [(19.0, False), (40.0, True)])
def test_without_vnni_a_quick_int8_probe_decides_whether_the_controlled_one_is_made(monkeypatch, probe, made):
    fake_cpu(monkeypatch, AVX2)
    trial = FakeTrial({**ZEN3_SPEEDS, "probe": probe, "openvino-int8": probe})
    result, _ = decide(trial, budget=math.inf)
    row = result["rows"]["openvino-int8"]
    assert "probe" in trial.prepared and row["probe"]["vs"] == "onnxruntime-int8"
    if made:  # 40 / 31 >= 1.2
        assert row["status"] == "measured" and "openvino-int8" in trial.prepared
    else:  # 19 / 31 < 1.2: minutes of quantisation for nothing
        assert row["status"] == "skipped" and "cannot win" in row["reason"]
        assert "openvino-int8" not in trial.prepared


def test_a_long_stage_says_it_is_still_going(monkeypatch, caplog):
    import time

    fake_cpu(monkeypatch, ZEN5)
    monkeypatch.setattr(auto, "HEARTBEAT_S", 0.05)
    trial = FakeTrial({**ZEN3_SPEEDS, "torch-bf16": 33.0, "openvino-bf16": 37.5, "openvino-int8": 69.0})
    real = trial.prepare

    def slow(runtime, precision):
        if (runtime, precision) == ("openvino", "int8"):
            time.sleep(0.3)  # the accuracy-controlled quantisation, in miniature
        return real(runtime, precision)

    trial.prepare = slow
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.auto"):
        decide(trial, budget=math.inf)
    assert "still quantising (accuracy-controlled) openvino-int8" in caplog.text


def test_a_probed_int8_deferred_by_one_load_is_made_when_prepared(monkeypatch):
    fake_cpu(monkeypatch, AVX2)
    speeds = {**ZEN3_SPEEDS, "probe": 40.0, "openvino-int8": 40.0}
    first, _ = decide(FakeTrial(speeds))
    assert first["rows"]["openvino-int8"]["status"] == "deferred"
    measured = tuple(n for n, r in first["rows"].items() if r.get("status") == "measured")
    again = FakeTrial(speeds, cached=measured)
    second, _ = decide(again, budget=math.inf, previous=first["rows"])  # what doctor --prepare does
    assert second["rows"]["openvino-int8"]["status"] == "measured" and second["chosen"] == "openvino-int8"


def test_a_failed_candidate_is_left_out_with_a_warning(monkeypatch, caplog):
    fake_cpu(monkeypatch, AVX2)
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.auto"):
        result, _ = decide(FakeTrial(ZEN3_SPEEDS, fail=("onnxruntime-int8",)), budget=math.inf)
    assert result["rows"]["onnxruntime-int8"] == {"status": "failed", "reason": "onnxruntime-int8 broke"}
    assert result["chosen"] == "onnxruntime-fp32" and "onnxruntime-int8 failed" in caplog.text


def test_an_asked_precision_is_chosen_among_its_own_candidates(monkeypatch):
    fake_cpu(monkeypatch, AVX2)
    result, _ = decide(FakeTrial(ZEN3_SPEEDS), precision="fp32", budget=math.inf)
    assert result["chosen"] == "onnxruntime-fp32" and "onnxruntime-int8" not in result["rows"]


def test_the_decision_key_names_model_revision_cpu_cores_and_versions(monkeypatch):
    embedder = SimpleNamespace(model_id="m", revision="r1", input_size=224)
    fake_cpu(monkeypatch, AVX2)
    key, parts = auto.decision_key(embedder, "auto")
    assert parts["cpu"]["isa"] == ["avx2"] and parts["cpu"]["cpu"] == "AMD EPYC 7B13"
    assert set(parts["versions"]) == set(cpu.RUNTIME_PACKAGES)
    keys = {key}
    fake_cpu(monkeypatch, ZEN5)
    keys.add(auto.decision_key(embedder, "auto")[0])
    monkeypatch.setattr(cpu, "cores", lambda: 64)
    keys.add(auto.decision_key(embedder, "auto")[0])
    monkeypatch.setattr(cpu, "versions", lambda: {"onnxruntime": "9.9"})
    keys.add(auto.decision_key(embedder, "auto")[0])
    keys.add(auto.decision_key(SimpleNamespace(model_id="m", revision="r2", input_size=224), "auto")[0])
    keys.add(auto.decision_key(embedder, "int8")[0])
    assert len(keys) == 6 and all(k.startswith("auto-") for k in keys)


class FakeBuilder:
    def __init__(self) -> None:
        self.built: list[str] = []

    def cached(self, runtime: str, precision: str) -> bool:
        return True

    def build(self, runtime: str, precision: str, announce: bool = True) -> str:
        self.built.append(auto.label(runtime, precision))
        return auto.label(runtime, precision)


def test_a_cached_decision_is_used_without_measuring_and_a_foreign_one_is_not(monkeypatch, tmp_path, caplog):
    from pipeline.embed import runtime

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(runtime, "importable", lambda name: True)
    fake_cpu(monkeypatch, AVX2)
    embedder = SimpleNamespace(model_id="m", revision="r", input_size=224, precision="fp32", runtime=None)
    trials = []

    def factory(e, b):
        trials.append(FakeTrial(ZEN3_SPEEDS))
        return trials[-1]

    record = auto.choose(embedder, FakeBuilder(), budget=math.inf, trial_factory=factory)
    assert record["decided"] == "measured" and trials[0].applied == "onnxruntime-int8"
    path = auto.decision_path(record["key"])
    assert json.loads(path.read_text())["chosen"] == "onnxruntime-int8"
    builder = FakeBuilder()
    again = auto.choose(embedder, builder, trial_factory=factory)
    assert len(trials) == 1 and again["decided"] == "cached" and builder.built == ["onnxruntime-int8"]
    assert (embedder.runtime, embedder.precision) == ("onnxruntime-int8", "int8")
    summary = auto.summary(again)
    assert summary["chosen"] == "onnxruntime-int8" and summary["cpu"]["isa"] == ["avx2"]
    assert summary["candidates"]["torch-bf16"]["status"] == "skipped" and json.dumps(summary)
    fake_cpu(monkeypatch, ZEN5)  # the same cache on another machine: its own decision
    other = auto.choose(embedder, FakeBuilder(), budget=math.inf, trial_factory=factory)
    assert len(trials) == 2 and other["key"] != record["key"]
    path.write_text('{"key": "auto-0", "chosen": "onnxruntime-int8", "rows": {}}')  # someone else's
    fake_cpu(monkeypatch, AVX2)
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.auto"):
        auto.choose(embedder, FakeBuilder(), budget=math.inf, trial_factory=factory)
    assert len(trials) == 3 and "unusable" in caplog.text and "measuring again" in caplog.text


def test_an_unwritable_cache_leaves_auto_on_torch_with_one_warning(monkeypatch, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a cache under a file cannot be made, for root too
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    fake_cpu(monkeypatch, AVX2)
    embedder = SimpleNamespace(model_id="m", revision="r", input_size=224, precision="fp32", runtime=None)
    with caplog.at_level(logging.WARNING, logger="pipeline.embed.auto"):
        for _ in range(2):
            record = auto.choose(embedder, FakeBuilder(), trial_factory=lambda e, b: pytest.fail("measured"))
    assert record["chosen"] == "torch-fp32" and record["decided"] == "fallback"
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1


@pytest.mark.parametrize(("value", "expected"), [("", 45.0), ("10", 10.0), ("inf", math.inf), ("x", 45.0),
                                                 ("-3", 45.0)])
def test_the_budget_setting(monkeypatch, value, expected):
    monkeypatch.setenv(auto.BUDGET_ENV, value)
    assert auto.budget_s() == expected


def test_int8_asked_where_no_exported_runtime_is_installed_says_what_to_install(monkeypatch):
    candidates, skipped = auto.offered("int8", have=lambda name: False)
    assert candidates == [("torch", "fp32")] and "scenetag[cpu]" in skipped["onnxruntime-int8"]


# --------------------------------------------------------------------------- the tiny CLIP, as users get it


@pytest.fixture(scope="module")
def export_cache(module_export_cache):
    return module_export_cache


def test_auto_measures_on_this_cpu_once_and_says_why(tiny_model_dir, export_cache, cpu_auto_runtime,
                                                     monkeypatch, caplog):
    from pipeline.embed import choose, load_embedder

    monkeypatch.setenv(auto.BUDGET_ENV, "inf")  # every candidate (the budget's own tests fake the clock)
    with caplog.at_level(logging.WARNING, logger="pipeline.embed"):
        embedder = load_embedder(str(tiny_model_dir), device="cpu")
    why = embedder.auto_choice
    assert why["decided"] == "measured" and why["complete"]
    assert why["chosen"] == f"{embedder.runtime.name}-{embedder.precision}"
    assert why["candidates"][why["chosen"]]["agrees"] and json.dumps(why)
    assert set(why["candidates"]) == {auto.label(r, p) for r, p in auto.ORDER}
    assert "runtime auto: done in" in caplog.text
    assert "exporting it once" not in caplog.text  # auto announces what it prepares itself
    reference = load_embedder(str(tiny_model_dir), device="cpu", precision="fp32", runtime="torch")
    photos = choose.check_images(choose.sample_photos(), embedder.input_size)
    cosines = np.sum(embedder.embed_images(photos) * reference.embed_images(photos), axis=1)
    assert cosines.min() >= choose.AGREEMENT
    monkeypatch.setattr(auto, "decide", lambda *a, **k: pytest.fail("measured again"))
    monkeypatch.delenv(auto.BUDGET_ENV)
    again = load_embedder(str(tiny_model_dir), device="cpu")
    assert again.auto_choice["decided"] == "cached" and again.auto_choice["chosen"] == why["chosen"]


def test_doctor_gives_this_machines_table_and_json(tiny_model_dir, export_cache, monkeypatch):
    from pipeline.embed import doctor

    monkeypatch.setattr(auto, "decide", lambda *a, **k: pytest.fail("doctor measures what is not cached"))
    report = doctor.doctor(str(tiny_model_dir))  # the decision of the test above
    assert report["picked"] == next(r for r in report["rows"] if r["picked"])["runtime"] + "-" + \
        next(r for r in report["rows"] if r["picked"])["precision"]
    assert report["cpu"] == cpu.signature() and json.loads(json.dumps(report)) == report
    text = doctor.table(report)
    assert "<- auto" in text and f"auto picks {report['picked']}" in text and report["cpu"]["cpu"] in text
    for runtime, precision in auto.ORDER:
        assert any(line.split()[:2] == [runtime, precision] for line in text.splitlines())


def test_a_read_only_cache_does_not_stop_the_default_runtime(tiny_model_dir, tmp_path, cpu_auto_runtime,
                                                             monkeypatch, caplog):
    """Issue 27 item 13: `runtime: auto` with a cache it cannot write used to fail the run."""
    from pipeline.embed import load_embedder

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING):
        embedder = load_embedder(str(tiny_model_dir), device="cpu")
    assert embedder.runtime.name == "torch" and embedder.auto_choice["decided"] == "fallback"
    assert len([r for r in caplog.records if r.name.startswith("pipeline")]) == 1
    with pytest.raises(ModelLoadError, match="int8 needs an exported runtime"):
        load_embedder(str(tiny_model_dir), device="cpu", precision="int8")
