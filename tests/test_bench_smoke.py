"""Smoke run of benchmarks/bench.py: a tiny clip and the tiny CLIP, every row
measured once, results.json written with the documented keys. No timing is
asserted: numbers on a shared test machine mean nothing."""

from __future__ import annotations

import importlib.util
import json
import sys

from conftest import ROOT

KEYS = {"naive_fps", "decode_fps", "model_fps", "e2e_fps", "speedup_vs_naive", "efficiency",
        "rss_1min_mb", "rss_40min_mb", "device", "precision", "machine", "date", "sampling",
        "targets", "issue4_targets", "auto_numbers", "first_use", "precision_study"}


def _load_bench():
    spec = importlib.util.spec_from_file_location("scenetag_bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_quick_run_writes_results(tmp_path):
    bench = _load_bench()
    out = tmp_path / "results.json"
    args = bench.parse_args(["--quick", "--tiny-model", "--clip-seconds", "2", "--width", "160",
                             "--height", "90", "--naive-seconds", "2", "--skip-rss",
                             "--device", "cpu", "--precision", "fp32", "--batch-size", "8",
                             "--study-batch", "8", "--runtime-rows", "torch:bf16,onnxruntime:int8",
                             "--first-use-budget", "0",
                             "--cache", str(tmp_path / "cache"), "--out", str(out), "--silent"])
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from threads; on a busy box they cost
    try:
        bench.run_bench(args)
    finally:
        torch.set_num_threads(threads)
    results = json.loads(out.read_text())
    assert set(results) >= KEYS
    assert results["device"] == "cpu" and results["precision"] == "fp32"
    assert results["details"]["e2e"]["frames"] == 2
    for key in ("naive_fps", "decode_fps", "model_fps", "e2e_fps"):
        assert results[key] > 0
    assert {"fp32", "bf16", "bf16-autocast", "int8-dynamic"} <= set(results["precision_study"])
    # the int8 row runs the quantised model (the runtime, not `.model`, runs the towers)
    assert results["precision_study"]["int8-dynamic"]["min_cosine_vs_fp32"] < 0.999999
    assert set(results["targets"].values()) <= {"PASS", "MISS", "UNMEASURED"}
    assert results["targets"]["first_use_overhead<=60s"] in ("PASS", "MISS")  # measured even here
    assert results["first_use"]["fresh_load_s"] > 0 and "overhead_s" in results["first_use"]
    assert isinstance(results["machine"]["isa"], list) and results["machine"]["cores"] >= 1
    assert results["rescore_s"] > 0 and results["rescore_cached_prompts_s"] > 0
    assert results["camera_e2e_fps"] > 0 and results["details"]["camera"]["e2e"]["frames"] == 2
    assert "rescore>=100x_rerun" in results["issue4_targets"]
    assert results["targets"]["shots_run<=1.5x_plain"] == results["shots"]["grade"]  # issue 30's row
    assert results["shots"]["shots"] >= 1 and results["shots"]["ratio"] > 0
    # the CPU-time bound row and the exported-runtime rows (one of each, to stay quick)
    assert results["cpu_bound_fps"] > 0 and results["e2e_vs_cpu_bound"] > 0 and results["runtime"] == "torch"
    if importlib.util.find_spec("onnxruntime") is not None:
        assert results["model_fps_onnxruntime_int8"] > 0 and results["model_fps_torch_bf16"] > 0
        assert results["precision_study"]["onnxruntime-int8"]["min_cosine_photos"] > 0.9
        assert results["e2e_exported"]["onnxruntime-auto"]["fps"] > 0


def test_bench_runtimes_only_with_the_decode_study(tmp_path):
    """``--runtimes-only`` (the short re-run): the runtime rows and the loop-filter rows."""
    bench = _load_bench()
    out = tmp_path / "runtime_results.json"
    args = bench.parse_args(["--runtimes-only", "--tiny-model", "--clip-seconds", "2", "--width", "160",
                             "--height", "90", "--runtime-rows", "torch:fp32", "--decode-study",
                             "--study-batch", "8", "--cache", str(tmp_path / "cache"), "--out", str(out),
                             "--silent"])
    results = json.loads(out.read_text()) if bench.run_runtime_bench(args) else None
    assert results["model_fps_torch_fp32"] > 0
    loop = results["precision_study"]["decode_loop_filter"]
    assert {"fast-none", "fast-all", "keyframes-none", "keyframes-all"} <= set(loop)
    assert loop["keyframes-none"]["min_cosine_vs_filtered"] == 1.0


def test_bench_tokenizer_keeps_prompt_words_whole(tmp_path):
    """Text-tower work follows token count: like the real CLIP vocabulary, the
    bench model's must not spell prompt words out letter by letter."""
    from transformers import AutoTokenizer

    bench = _load_bench()
    folder = bench.build_model(tmp_path / "m", tiny=True)
    tokens = AutoTokenizer.from_pretrained(folder).tokenize("a photo of a dog.")
    assert tokens == ["a</w>", "photo</w>", "of</w>", "a</w>", "dog</w>", ".</w>"]


def test_bench_clip_is_cached_and_decodable(tmp_path):
    from pipeline.decode import probe

    bench = _load_bench()
    path = bench.make_clip(tmp_path / "c.mp4", 1, 64, 36)
    mtime = path.stat().st_mtime_ns
    assert bench.make_clip(path, 1, 64, 36).stat().st_mtime_ns == mtime  # cached, not rebuilt
    info = probe(str(path))
    assert (info.width, info.height, info.codec) == (64, 36, "h264")


def test_families_bench_measures_each_family_through_the_loader(tmp_path):
    """benchmarks/families_bench.py: one row per family and precision, each
    loaded through load_embedder with its own scoring rule, ratios to ViT-B/32."""
    spec = importlib.util.spec_from_file_location("scenetag_families_bench",
                                                  ROOT / "benchmarks" / "families_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "families.json"
    module.run(module.parse_args(["--quick", "--tiny-model", "--batch-size", "4", "--cache",
                                  str(tmp_path / "cache"), "--out", str(out), "--silent"]))
    rows = json.loads(out.read_text())["rows"]
    families = {(r["family"], r["scoring_rule"]) for r in rows.values()}
    assert families == {("clip", "softmax"), ("siglip", "sigmoid"), ("siglip2", "sigmoid")}
    from pipeline.embed import resolve_precision

    precisions = {"fp32", resolve_precision("auto", "cpu")}  # bf16 only where the CPU has it
    assert {r["precision"] for r in rows.values()} == precisions
    assert len(rows) == 3 * len(precisions) and all(r["img_per_s"] > 0 for r in rows.values())
    assert all(r["vs_clip_b32"] == 1.0 for n, r in rows.items() if n.startswith("clip-vit-b32"))


def test_bench_grades_issue_29s_targets_on_its_rows():
    """``targets``: auto against the best agreeing row (model only) and the best runtime
    (end to end), its first-use overhead and agreement; rows that disagree never count."""
    bench = _load_bench()
    study = {"fp32": {"img_s": 99.0},  # the in-process torch row: not a runtime row
             "torch-fp32": {"img_s": 17.0, "min_cosine_photos": 1.0},
             "onnxruntime-int8": {"img_s": 31.0, "min_cosine_photos": 0.9997,
                                  "min_cosine_demo_frames": 0.9996},
             "openvino-int8": {"img_s": 60.0, "min_cosine_photos": 0.998},  # disagrees
             "onnxruntime-auto": {"img_s": 40.0, "min_cosine_photos": 0.9997},  # an auto row
             "auto-auto": {"img_s": 30.0, "runtime": "onnxruntime", "precision": "int8",
                           "min_cosine_photos": 0.9997, "min_cosine_vs_fp32": 0.9995}}
    e2e = {"auto-auto": {"fps": 20.0}, "torch-auto": {"fps": 18.0}, "onnxruntime-auto": {"fps": 21.0}}
    grades, numbers = bench.auto_targets(study, e2e, {"overhead_s": 61.0})
    assert numbers["model"]["best_row"] == "onnxruntime-int8" and numbers["model"]["ratio"] == 0.968
    assert numbers["e2e"]["best_runtime"] == "onnxruntime-auto" and numbers["agreement"] == 0.9995
    assert grades == {"model_auto>=0.9x_best_agreeing_row": "PASS", "e2e_auto>=0.9x_best_runtime": "PASS",
                      "first_use_overhead<=60s": "MISS", "auto_agreement>=0.999": "PASS"}
    assert set(bench.auto_targets({}, {}, {})[0].values()) == {"UNMEASURED"}


def test_bench_shots_only_merges_its_row(tmp_path):
    """``--shots-only``: the same run with and without ``--shots``, graded and
    merged into the results file, whose other rows stay as they were."""
    bench = _load_bench()
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"e2e_fps": 12.5, "targets": {"e2e_auto>=0.9x_best_runtime": "PASS"}}))
    args = bench.parse_args(["--shots-only", "--tiny-model", "--clip-seconds", "2", "--width", "160",
                             "--height", "90", "--device", "cpu", "--precision", "fp32", "--batch-size", "8",
                             "--cache", str(tmp_path / "cache"), "--out", str(out), "--silent"])
    bench.run_shots_bench(args)
    results = json.loads(out.read_text())
    row = results["shots"]
    assert results["e2e_fps"] == 12.5 and results["targets"]["e2e_auto>=0.9x_best_runtime"] == "PASS"
    assert results["targets"]["shots_run<=1.5x_plain"] == row["grade"] in ("PASS", "MISS")
    assert len(row["walls_s"]["plain"]) == len(row["walls_s"]["shots"]) == row["rounds"] == 2
    assert row["ratio"] == round(row["shots_s"] / row["plain_s"], 3) and row["shots"] >= 1
    assert isinstance(row["machine"]["isa"], list) and row["date"]
