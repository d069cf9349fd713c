"""Which config a command loads, and the flags that override its keys.

``-c NAME`` finds a shipped config from anywhere (:func:`find_config`);
neither ``-c`` nor ``--labels`` means the packaged default. The helpers
below turn flags into ``load_config`` overrides, and :data:`FLAGS` names the
flag in an error about the key it set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.types import PipelineError

# A flag's errors name the flag: the config key each override sets.
FLAGS = {"model.id": "--model", "model.revision": "--revision", "model.device": "--device",
         "model.precision": "--precision", "model.runtime": "--runtime", "model.batch_size": "--batch-size",
         "scoring.mode": "--mode",
         "decoder.backend": "--decoder", "decoder.strategy": "--decode-strategy",
         "decoder.timeout_s": "--timeout", "sampling.max_frames": "--max-frames", "labels": "--labels",
         "output.formats": "--formats", "output.top_frames": "--top-frames",
         "sampling.every_seconds": "--every-seconds", "sampling.every_n_frames": "--every-n-frames",
         "sampling.fps": "--fps", "segments.refine": "--no-refine",
         "shots.enabled": "--shots"}


def mode_for(mode: str | None, config: str | None, labels: str | None) -> str | None:
    """--labels without a config scores each label on its own (a frame may
    show none of them); otherwise the config's mode applies unless --mode."""
    return mode or ("independent" if labels is not None and config is None else None)


def config_path(config: str | None, labels: str | None) -> Path | None:
    """With neither a config nor --labels, the packaged default config applies."""
    if config is not None:
        return find_config(config)
    if labels is not None:
        return None
    from pipeline.config import DEFAULT_CONFIG_PATH

    return DEFAULT_CONFIG_PATH


def find_config(name: str, flag: str = "--config: ") -> Path:
    """A config file path, or the name of a shipped config.

    A name (``demo``, ``demo.yaml``) is looked up in the folders of
    :func:`_config_folders`. An existing file of that name always wins.
    """
    path = Path(name).expanduser()
    if path.exists() or "/" in name or os.sep in name:
        if path.is_dir():
            raise PipelineError(f"{flag}{path} is a folder, not a config file")
        return path
    file = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    for folder in _config_folders():
        if (folder / file).is_file():
            return folder / file
    raise PipelineError(f"{flag}no config file {name} and no shipped config named {name!r} "
                        f"(shipped: {', '.join(shipped_configs())})")


def shipped_configs() -> list[str]:
    """Names ``-c NAME`` finds from here."""
    return sorted({p.stem for folder in _config_folders() for p in folder.glob("*.yaml")})


def _config_folders() -> list[Path]:
    """Where ``-c NAME`` looks, in order: ``./configs``, the checkout's
    ``configs/``, then the package's own (``pipeline/configs/`` holds the
    Hub-model configs and ``pipeline/default.yaml`` the default, as package
    data, so names work for an installed package too)."""
    from pipeline.config import DEFAULT_CONFIG_PATH

    package = DEFAULT_CONFIG_PATH.parent
    folders = [Path("configs"), package.parent / "configs", package / "configs", package]
    return [f for f in folders if f.is_dir()]


def label_list(labels: str | None) -> list[dict[str, Any]] | None:
    """``--labels a,b`` → label entries; an empty list (``--labels ""``) is an
    error later, blamed on the flag, never a silent fall-back to the config."""
    if labels is None:
        return None
    names = [name.strip() for name in labels.split(",") if name.strip()]
    if not names:
        raise PipelineError(f"--labels: give at least one label name (got {labels!r})")
    return [{"name": name} for name in names]


def csv_list(text: str | None, flag: str, allowed: tuple[str, ...], *,
              check: bool = True) -> list[str] | None:
    """``a,b`` → ``["a", "b"]``; empty is an error, never "use the config's".
    ``check=False`` leaves unknown names to the command (it says more)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise PipelineError(f"{flag}: give at least one of {', '.join(allowed)}")
    unknown = [t for t in items if check and t not in allowed]
    if unknown:
        raise PipelineError(f"{flag}: must be one of {', '.join(allowed)}; got {unknown[0]!r}")
    return items


def set_overrides(sets: list[str] | None) -> dict[str, Any]:
    """``--set key.path=VALUE`` pairs, VALUE parsed as YAML (``0.6``, ``[a, b]``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as ex:
            raise PipelineError(f"--set {key.strip()}: not a YAML value: {value!r}") from ex
    return out


def sampling_overrides(every_seconds: float | None, every_n_frames: int | None,
                        fps: float | None) -> dict[str, Any]:
    """A sampling flag replaces the config's rule instead of adding a second one."""
    given = {"sampling.every_seconds": every_seconds, "sampling.every_n_frames": every_n_frames,
             "sampling.fps": fps}
    if all(v is None for v in given.values()):
        return {}
    from pipeline.config import UNSET

    return {key: value if value is not None else UNSET for key, value in given.items()}
