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
