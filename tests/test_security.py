"""Security properties: safe YAML, safe weights, no remote code, output paths
that never leave the output folder, and no shell."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.report.folders import safe_name
from pipeline.run.inputs import output_names
from pipeline.types import ConfigError, ModelLoadError

ROOT = Path(__file__).parent.parent
PIPELINE = ROOT / "pipeline"


# --------------------------------------------------------------------------- YAML


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
])
def test_yaml_python_tags_are_rejected(tmp_path, tag):
    from pipeline.config import load_config

    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("labels: [{name: cat}]\nmodel: {id: " + tag.format(marker=marker) + "}\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(cfg)
    assert not marker.exists()


def test_config_is_read_with_safe_load_only():
    source = (PIPELINE / "config.py").read_text(encoding="utf-8")
    assert "yaml.safe_load" in source
    for unsafe in ("yaml.load(", "yaml.unsafe_load", "yaml.full_load", "FullLoader", "UnsafeLoader"):
        assert unsafe not in source


# --------------------------------------------------------------------------- weights


class _Evil:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_model_dir(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path]:
    import torch

    folder = tmp_path / "evil-model"
    folder.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.suffix != ".safetensors":
            shutil.copy(file, folder / file.name)
    marker = tmp_path / "pwned"
    torch.save({"logit_scale": _Evil(str(marker))}, folder / "pytorch_model.bin")
    return folder, marker


def test_pickled_weights_with_code_are_refused(tmp_path, tiny_model_dir):
    from pipeline.embed import load_embedder

    folder, marker = _evil_model_dir(tmp_path, tiny_model_dir)
    # torch's weights-only unpickler refuses it; embed.py should turn that
    # into a ModelLoadError (run.py does, see the CLI test below)
    with pytest.raises(ModelLoadError):
        load_embedder(str(folder), device="cpu", precision="fp32")
    assert not marker.exists(), "the pickle's __reduce__ ran"


def test_pickled_weights_cli_is_exit_2_one_line(tmp_path, tiny_model_dir, clip_dir):
    folder, marker = _evil_model_dir(tmp_path, tiny_model_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(clip_dir / "ten.mp4"), "--labels", "cat,dog",
         "--model", str(folder), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert not marker.exists()
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenetag: error:") and "Traceback" not in proc.stderr


def test_remote_code_is_never_run(tmp_path, tiny_model_dir):
    """A config.json with an ``auto_map`` pointing at code in the folder."""
    from pipeline.embed import load_embedder

    folder = tmp_path / "remote-code"
    shutil.copytree(tiny_model_dir, folder)
    marker = tmp_path / "pwned"
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "from transformers import CLIPModel as EvilModel, CLIPConfig as EvilConfig\n",
        encoding="utf-8")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    with contextlib.suppress(ModelLoadError):  # refusing is fine; the built-in class too
        load_embedder(str(folder), device="cpu", precision="fp32")
    assert not marker.exists(), "remote code ran"


def test_loader_never_trusts_remote_code():
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted((PIPELINE / "embed").glob("*.py")))
    assert "trust_remote_code=True" not in source
    assert re.search(r"[\"']trust_remote_code[\"']\s*:\s*False", source)
    assert "weights_only=False" not in source


# --------------------------------------------------------------------------- output names

_HOSTILE_PARTS = st.sampled_from(["..", ".", "/", "\\", "../", "..\\", " ", "\t", "\x7f", "~", "*",
                                  "index", "images", "INDEX", "clip", "é", "日本", "\u202e", "\u0301",
                                  ":", "$HOME", "`id`", ";", "|", "\n"])
_NAMES = st.lists(st.one_of(_HOSTILE_PARTS, st.text(min_size=0, max_size=6)), max_size=8).map("".join)
_NAMES = _NAMES.filter(lambda s: "\x00" not in s)


def _check_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert Path(name).name == name and len(Path(name).parts) == 1


@settings(max_examples=300, deadline=None)
@given(_NAMES)
def test_safe_name_never_escapes(text):
    name = safe_name(text)
    if name:  # empty is allowed here; output_names replaces it
        _check_name(name)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(_NAMES, max_size=3), _NAMES), min_size=1, max_size=12))
def test_output_names_are_safe_and_unique(parts):
    paths = ["/".join([*dirs, base + ext])
             for (dirs, base), ext in zip(parts, [".mp4", ".mkv", "", ".MP4"] * 4, strict=False)]
    names = output_names(paths)
    assert set(names) == set(paths)
    chosen = list(names.values())
    for name in chosen:
        _check_name(name)
        assert name.lower() not in ("index", "images", "store")
    assert len({n.lower() for n in chosen}) == len(chosen)  # unique, even on case-insensitive disks


@pytest.mark.parametrize("path", ["../../etc/x.mp4", "..mp4", "...", "/", "a/../../b.mp4",
                                  "..\\..\\win.mp4", "~/.ssh/id.mp4", "\u202egnp.mp4", " .mp4"])
def test_known_traversal_names(path, tmp_path):
    name = output_names([path])[path]
    _check_name(name)
    out = tmp_path / "out"
    assert (out / name).resolve().parent == out.resolve()


# --------------------------------------------------------------------------- no shell


def test_no_shell_anywhere_in_pipeline():
    offenders = []
    pattern = re.compile(r"shell\s*=\s*True|os\.system\s*\(|os\.popen\s*\(|\bcommands\.getoutput|"
                         r"subprocess\.getoutput|subprocess\.getstatusoutput|(?<![.\w])eval\s*\(|"
                         r"(?<![.\w])exec\s*\(")
    for file in sorted(PIPELINE.rglob("*.py")):
        for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line.split("#", 1)[0]):
                offenders.append(f"{file.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, offenders
