"""Config loading: defaults, overrides, and errors that name their key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import DEFAULT_CONFIG_PATH, UNSET, load_config
from pipeline.types import ConfigError, Sampling

ROOT = Path(__file__).parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["default.yaml", "coffee.yaml", "nsfw.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(name):
    path = ROOT / "configs" / name
    if not path.exists():
        pytest.skip(f"{name} not shipped yet")
    cfg = load_config(path)
    assert cfg.labels


def test_default_config_is_the_packaged_one():
    assert (ROOT / "configs" / "default.yaml").resolve() == DEFAULT_CONFIG_PATH.resolve()


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "labels: [{name: cat}]"))
    assert cfg.model.id == "openai/clip-vit-base-patch32"
    assert cfg.sampling.to_sampling() == Sampling(every_seconds=1.0)
    assert cfg.labels[0].prompt_list == ["cat"]


def test_overrides_apply_and_none_is_ignored(tmp_path):
    cfg = load_config(write(tmp_path, "labels: [{name: cat}]\nsampling: {every_seconds: 2}"),
                      {"model.id": "x/y", "model.device": None, "sampling.every_seconds": 0.25})
    assert cfg.model.id == "x/y" and cfg.model.device == "auto"
    assert cfg.sampling.every_seconds == 0.25


def test_unset_override_replaces_sampling_rule(tmp_path):
    cfg = load_config(write(tmp_path, "labels: [{name: cat}]\nsampling: {every_seconds: 2}"),
                      {"sampling.every_seconds": UNSET, "sampling.every_n_frames": 5})
    assert cfg.sampling.to_sampling() == Sampling(every_n_frames=5)


@pytest.mark.parametrize("text, fragment", [
    ("labels: [{name: cat}]\nmodle: {id: x}", "modle: unknown key (allowed: model, sampling,"),
    ("labels: [{name: cat, promts: [x]}]", "labels.0.promts: unknown key (allowed: name, prompts,"),
    ("labels: [{name: cat}]\nnsfw: {labels: [{name: x, treshold: 1}]}",
     "nsfw.labels.0.treshold: unknown key (allowed: name, prompts, negatives, threshold"),
    ("labels: [{name: cat, prompts: []}]", "labels.0.prompts: must not be empty"),
    ("labels: [{name: cat, threshold: 1.5}]", "labels.0.threshold"),
    ("labels: []", "labels"),
    ("labels: [{name: cat}]\nsmoothing: {method: gaussian}", "smoothing.method: must be one of"),
    ("labels: [{name: cat}]\nsampling: {every_seconds: 1, fps: 2}", "set only one of"),
    ("labels: [{name: cat}, {name: cat}]", "unique"),
    ("labels: [{name: cat}]\nscoring: {templates: ['no placeholder']}", "scoring.templates"),
    ("labels: [{name: cat}]\nsegments: {threshold: 0.3, exit_threshold: 0.5}", "exit_threshold"),
])
def test_errors_name_the_key_path(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_all_errors_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "labels: [{name: cat, threshold: 2}]\nsampling: {fps: -1}"))
    assert "labels.0.threshold" in str(info.value) and "sampling.fps" in str(info.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(write(tmp_path, "labels: [unclosed"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_executed(tmp_path):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "labels: !!python/object/apply:os.system ['echo hi']"))


def test_hash_changes_with_effective_config(tmp_path):
    path = write(tmp_path, "labels: [{name: cat}]")
    assert load_config(path).hash() == load_config(path).hash()
    assert load_config(path).hash() != load_config(path, {"sampling.every_seconds": 3}).hash()


# --------------------------------------------------------------------------- issue 12/13 config items


def test_labels_may_be_plain_names(tmp_path):
    cfg = load_config(write(tmp_path, "labels: [cup, {name: ball, prompts: [a ball]}]\n"
                                      "nsfw: {labels: [skull]}"))
    assert [lab.name for lab in cfg.labels] == ["cup", "ball"]
    assert cfg.labels[0].prompt_list == ["cup"] and cfg.nsfw.labels[0].name == "skull"


@pytest.mark.parametrize("text, fragment", [
    ("labels: [cat]\nmodel: {batch_size: x}",
     "model.batch_size: must be a whole number or one of auto; got 'x'"),
    ("labels: cat", "labels: must be a list; got 'cat'"),
    ("labels: []", "labels: must have at least 1 item"),
    ("labels: [cat]\nsampling: {every_seconds: -1}", "sampling.every_seconds: must be greater than 0"),
    ("labels: [cat]\nmodel: clip", "model: must be a mapping"),
    ("labels: [cat]\nscoring: {mode: binay}",
     "scoring.mode: must be one of auto, softmax, binary, sigmoid, independent; got 'binay'"),
])
def test_errors_are_in_plain_words(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "Input should" not in str(info.value) and "after validation" not in str(info.value)


def test_flag_errors_name_the_flag_not_the_file(tmp_path):
    path = write(tmp_path, "labels: [cat]\nsmoothing: {method: wobble}")
    with pytest.raises(ConfigError) as info:
        load_config(path, {"scoring.mode": "binay", "labels": []},
                    flags={"scoring.mode": "--mode", "labels": "--labels"})
    text = str(info.value)
    assert text.startswith("--mode: must be one of auto, softmax, binary, sigmoid, independent; got 'binay'")
    assert "--labels: must have at least 1 item" in text
    assert f"{path}: smoothing.method: must be one of" in text
    assert f"{path}: scoring" not in text


@pytest.mark.parametrize("template", ["{{}}", "{x} {}", "{0.__class__} {}", "{} {}", "{!r}", "{:>9}", "{"])
def test_template_needs_exactly_one_bare_field(tmp_path, template):
    with pytest.raises(ConfigError, match="scoring.templates"):
        load_config(write(tmp_path, f"labels: [cat]\nscoring: {{templates: [{template!r}]}}"))


def test_template_may_contain_literal_braces(tmp_path):
    cfg = load_config(write(tmp_path, "labels: [cat]\nscoring: {templates: ['{{a}} photo of {}.']}"))
    assert cfg.scoring.templates[0].format("cat") == "{a} photo of cat."


@pytest.mark.parametrize("text, fragment", [
    ("labels: [{name: cat, threshold: 0.5, exit_threshold: 0.6}]", "labels.0.exit_threshold 0.6"),
    ("labels: [{name: cat, exit_threshold: 0.6}]\nsegments: {threshold: 0.5}", "labels.0.exit_threshold"),
    ("labels: [cat]\nnsfw: {threshold: 0.5, exit_threshold: 0.6}", "nsfw: exit_threshold 0.6"),
    ("labels: [cat]\nnsfw: {labels: [{name: x, threshold: 0.4, exit_threshold: 0.45}]}",
     "labels.0.exit_threshold 0.45"),
])
def test_exit_threshold_above_threshold_is_an_error(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert fragment in str(info.value)


def test_duplicate_keys_are_rejected_with_their_line(tmp_path):
    with pytest.raises(ConfigError, match=r"line 3.*duplicate key 'labels' \(first given at line 1\)"):
        load_config(write(tmp_path, "labels: [cat]\nsampling: {every_seconds: 1}\nlabels: [dog]\n"))
    with pytest.raises(ConfigError, match="duplicate key 'every_seconds'"):
        load_config(write(tmp_path, "labels: [cat]\nsampling: {every_seconds: 1, every_seconds: 2}\n"))


@pytest.mark.parametrize("raw, fragment", [
    (b"labels: [caf\xe9]\n", r"not UTF-8 text \(byte 0xe9"),
    (b"[" * 100_000, "invalid YAML"),
    (b"labels:\n" + b"  - a\n" * 700_000, "over 4 MB"),
])
def test_unreadable_configs_are_config_errors(tmp_path, raw, fragment):
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_label_and_sentence_caps(tmp_path):
    from pipeline.config import MAX_LABELS, MAX_SENTENCES

    many = ", ".join(f"l{i}" for i in range(MAX_LABELS + 1))
    with pytest.raises(ConfigError, match=f"at most {MAX_LABELS:,}"):
        load_config(write(tmp_path, f"labels: [{many}]"))
    prompts = ", ".join(f"p{i}" for i in range(MAX_SENTENCES // 2))
    with pytest.raises(ConfigError, match=f"at most {MAX_SENTENCES:,} are allowed"):
        load_config(write(tmp_path, f"labels: [{{name: a, prompts: [{prompts}]}}]\n"
                                    "scoring: {templates: ['a {}', 'b {}', 'c {}']}"))


def test_relative_model_folder_resolves_against_the_config(tmp_path, monkeypatch):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "configs").mkdir()
    cfg_path = tmp_path / "configs" / "c.yaml"
    cases = {"../models/mine": tmp_path / "models" / "mine",
             "./missing": tmp_path / "configs" / "missing"}
    monkeypatch.chdir(tmp_path / "models")  # anywhere else
    for model_id, expected in cases.items():
        cfg_path.write_text(f"model: {{id: '{model_id}'}}\nlabels: [cat]", encoding="utf-8")
        assert load_config(cfg_path).model.id == str(expected)
    (tmp_path / "configs" / "org").mkdir()
    (tmp_path / "configs" / "org" / "local").mkdir()
    for model_id, expected in {"org/local": str(tmp_path / "configs" / "org" / "local"),
                               "openai/clip-vit-base-patch32": "openai/clip-vit-base-patch32"}.items():
        cfg_path.write_text(f"model: {{id: '{model_id}'}}\nlabels: [cat]", encoding="utf-8")
        assert load_config(cfg_path).model.id == expected
    # a CLI --model is the user's own path: relative to where they are, left alone here
    assert load_config(cfg_path, {"model.id": "../x"}).model.id == "../x"


def test_huge_config_fails_fast_in_small_memory(tmp_path):
    import time
    import tracemalloc

    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as fh:  # 1.5 M prompts, ~24 MB (issue 13 item 6)
        fh.write("labels:\n  - name: x\n    prompts:\n")
        fh.writelines(f"      - a prompt number {i}\n" for i in range(1_500_000))
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="over 4 MB"):
        load_config(path)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 64 * 2**20
