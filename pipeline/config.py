"""The YAML config schema as typed models, and how it is loaded.

``load_config(path, overrides)`` reads YAML with ``yaml.safe_load``, applies
dotted-key overrides from the CLI (``{"sampling.every_seconds": 0.5}``) and
validates everything at once. Every problem is reported with its key path,
e.g. ``labels.2.prompts: must not be empty``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.types import ConfigError, Sampling

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")


class _UnsetType:
    """An override value that removes a key (e.g. the config's sampling rule
    when a CLI flag names a different one)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _UnsetType()


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    id: str = DEFAULT_MODEL
    revision: str | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    compile: bool = False

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be a positive integer or 'auto'")
        return v

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda", "mps") and not v.startswith("cuda:"):
            raise ValueError("must be one of auto, cpu, cuda, cuda:N, mps")
        return v


class SamplingConfig(_Strict):
    """Exactly one rule; ``every_seconds: 1.0`` when none is given."""

    every_seconds: float | None = Field(default=None, gt=0)
    every_n_frames: int | None = Field(default=None, ge=1)
    fps: float | None = Field(default=None, gt=0)
    max_frames: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_rule(self) -> SamplingConfig:
        rules = [r for r in (self.every_seconds, self.every_n_frames, self.fps) if r is not None]
        if len(rules) > 1:
            raise ValueError("set only one of every_seconds, every_n_frames, fps")
        return self

    @classmethod
    def of(cls, sampling: Sampling | None) -> SamplingConfig:
        """The config section that yields ``sampling`` (default when None)."""
        if sampling is None:
            return cls()
        return cls(every_seconds=sampling.every_seconds, every_n_frames=sampling.every_n_frames,
                   fps=sampling.target_fps, max_frames=sampling.max_frames)

    def to_sampling(self) -> Sampling:
        if self.every_n_frames is not None:
            return Sampling(every_n_frames=self.every_n_frames, max_frames=self.max_frames)
        if self.fps is not None:
            return Sampling(target_fps=self.fps, max_frames=self.max_frames)
        return Sampling(every_seconds=self.every_seconds or 1.0, max_frames=self.max_frames)


class DecoderConfig(_Strict):
    backend: Literal["pyav", "decord"] = "pyav"
    strategy: Literal["auto", "exact", "fast", "keyframes"] = "auto"
    # "frame": FFmpeg's frame + slice threads. "slice": slice threads only,
    # faster next to a CPU model on streams with several slices per frame,
    # but FFmpeg then stops flagging concealed (damaged) frames, so damage goes
    # unreported and such frames are scored (docs/PERFORMANCE.md).
    threads: Literal["frame", "slice"] = "frame"
    timeout_s: float = Field(default=600.0, gt=0)


class LabelConfig(_Strict):
    name: str = Field(min_length=1)
    prompts: list[str] | None = None
    negatives: list[str] = []
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    exit_threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("prompts")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not [p for p in v if p.strip()]:
            raise ValueError("must not be empty (omit it to use the label name)")
        return v

    @property
    def prompt_list(self) -> list[str]:
        return list(self.prompts) if self.prompts else [self.name]


class ScoringConfig(_Strict):
    mode: Literal["softmax", "binary"] = "softmax"
    templates: list[str] = ["a photo of {}."]
    background: list[str] = ["a photo.", "a photo of something.", "a blank image."]

    @field_validator("templates")
    @classmethod
    def _templates_ok(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must not be empty")
        bad = [t for t in v if t.count("{}") != 1]
        if bad:
            raise ValueError(f"each template needs exactly one '{{}}': {bad[0]!r}")
        return v


class SmoothingConfig(_Strict):
    method: Literal["none", "moving_average", "median", "ema"] = "median"
    window_s: float = Field(default=2.0, ge=0)


class SegmentConfig(_Strict):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    exit_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    min_duration_s: float = Field(default=1.0, ge=0)
    merge_gap_s: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _exit_below_enter(self) -> SegmentConfig:
        if self.exit_threshold is not None and self.exit_threshold > self.threshold:
            raise ValueError("exit_threshold must not exceed threshold")
        return self


class NsfwConfig(_Strict):
    """NSFW labels are scored in binary mode against ``safe`` prompts, with
    their own, more conservative segment rules (lower min duration: a short
    unsafe moment still matters)."""

    labels: list[LabelConfig] = []
    safe: list[str] = ["a safe for work photo.", "an ordinary photo."]
    threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    exit_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    min_duration_s: float = Field(default=0.5, ge=0)
    merge_gap_s: float = Field(default=2.0, ge=0)
    smoothing: SmoothingConfig = SmoothingConfig(method="median", window_s=1.0)
    verdict_min_s: float = Field(default=0.5, ge=0)


class OutputConfig(_Strict):
    formats: list[Literal["csv", "plot", "json", "html", "vtt", "edl", "thumbs"]] = \
        ["csv", "plot", "json", "html", "vtt", "edl"]
    top_frames: int = Field(default=0, ge=0)  # save the N best frames per label as JPEGs


class Config(_Strict):
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    decoder: DecoderConfig = DecoderConfig()
    scoring: ScoringConfig = ScoringConfig()
    labels: list[LabelConfig] = Field(min_length=1)
    smoothing: SmoothingConfig = SmoothingConfig()
    segments: SegmentConfig = SegmentConfig()
    nsfw: NsfwConfig = NsfwConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        names = [lab.name for lab in self.labels] + [lab.name for lab in self.nsfw.labels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"label names must be unique across labels and nsfw.labels: {dupes}")
        return self

    def hash(self) -> str:
        """A short stable hash of the effective config (for resume and reports)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load, override and validate a config.

    Args:
        path: a YAML file, or ``None`` for the built-in defaults (which need
            labels from ``overrides``).
        overrides: dotted key paths to values, applied after the file
            (``{"model.id": "x", "sampling.every_seconds": 0.5}``). ``None``
            values are ignored so CLI flags that were not given change nothing.

    Raises:
        ConfigError: with every problem found, each with its key path.
    """
    data = _read_yaml(Path(path)) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return Config.model_validate(data)
    except ValidationError as ex:
        raise ConfigError(_format_errors(ex, path)) from ex


def parse_config(data: dict[str, Any]) -> Config:
    """Validate an in-memory config mapping (for stored configs and tests)."""
    try:
        return Config.model_validate(data)
    except ValidationError as ex:
        raise ConfigError(_format_errors(ex, None)) from ex


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as ex:
        raise ConfigError(f"cannot read config {path}: {ex.strerror or ex}") from ex
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as ex:
        where = getattr(ex, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: invalid YAML{at}: {getattr(ex, 'problem', ex)}") from ex
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    if value is UNSET:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def _format_errors(ex: ValidationError, path: str | Path | None) -> str:
    parts = []
    for err in ex.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            msg = "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif err["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        parts.append(f"{loc}: {msg}")
    source = f"{path}: " if path else ""
    return source + "; ".join(parts)


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys the schema accepts at ``loc`` (list indices skipped)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside ``X``, ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
