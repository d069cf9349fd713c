"""The YAML config schema as typed models, and how it is loaded.

``load_config(path, overrides)`` reads YAML as ``yaml.safe_load`` does (and
refuses duplicate keys), applies
dotted-key overrides from the CLI (``{"sampling.every_seconds": 0.5}``) and
validates everything at once. Every problem is reported with its key path,
e.g. ``labels.2.prompts: must not be empty``.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.config_errors import format_errors
from pipeline.types import ConfigError, Sampling

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")
STARTER_CONFIG_PATH = Path(__file__).with_name("starter.yaml")  # what `scenetag config init` writes

# Caps on what one config may ask for, checked before any model loads: text is
# embedded and kept in memory per sentence, so an unbounded config is an
# unbounded run (1.5 M prompts once peaked at 22.5 GB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_LABELS = 1_000  # labels + nsfw.labels
MAX_SENTENCES = 10_000  # (prompts + negatives) x templates + background + safe
# Example pictures (labels[].images + negative_images, over all labels): each is
# read, hashed and decoded when the config loads, and embedded on first use.
MAX_EXEMPLAR_IMAGES = 64
MAX_EXEMPLAR_BYTES = 32 * 1024 * 1024  # one example picture
# A label with both prompts and images, and no image_weight: the picture mean
# and the text ensemble count equally.
DEFAULT_IMAGE_WEIGHT = 0.5
_PICTURE_KEYS = ("images", "negative_images", "image_weight")


class _UnsetType:
    """An override value that removes a key (e.g. the config's sampling rule
    when a CLI flag names a different one)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _UnsetType()


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored. Numbers
    are finite (`timeout_s: .inf` is a mistake, not "wait forever")."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelConfig(_Strict):
    id: str = DEFAULT_MODEL
    revision: str | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"  # int8: exported runtimes only
    runtime: Literal["auto", "torch", "openvino", "onnxruntime"] = "auto"
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
    """One label: text prompts, example pictures (``images``), or both.

    The label's vector is ``normalise((1 - w) * text + w * image_mean)``:
    ``text`` the normalised prompt x template ensemble, ``image_mean`` the
    normalised mean of its pictures' embeddings, ``w`` = :attr:`image_weight_used`.
    Without ``prompts`` a label with images has no text part (its name is not a
    prompt then); without images, the name is the prompt when none is given.
    """

    name: str = Field(min_length=1)
    prompts: list[str] | None = None
    negatives: list[str] = []
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    exit_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    images: list[str] = Field(default=[], max_length=MAX_EXEMPLAR_IMAGES)
    negative_images: list[str] = Field(default=[], max_length=MAX_EXEMPLAR_IMAGES)
    image_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    # path -> sha256 of the file's bytes, read when the config is validated
    _image_hashes: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("prompts")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not [p for p in v if p.strip()]:
            raise ValueError("must not be empty (omit it to use the label name)")
        return v

    @model_validator(mode="after")
    def _pictures_ok(self) -> LabelConfig:
        """``image_weight`` needs pictures, and a weight below 1 needs prompts;
        every picture must be a readable image (read and hashed now, before any
        model loads)."""
        if self.image_weight is not None and not self.images:
            raise ValueError(f"label {self.name!r}: image_weight needs images")
        if self.image_weight is not None and self.image_weight < 1.0 and not self.prompts:
            raise ValueError(f"label {self.name!r}: image_weight {self.image_weight} below 1 needs "
                             "prompts to blend with (a label from pictures only has no text part)")
        problems = []
        for key in ("images", "negative_images"):
            for path in getattr(self, key):
                digest, problem = _hash_picture(path)
                if problem:
                    problems.append(f"{key}: {problem}")
                else:
                    self._image_hashes[path] = digest
        if problems:
            raise ValueError(f"label {self.name!r}: " + "; ".join(problems))
        return self

    @property
    def prompt_list(self) -> list[str]:
        """The text prompts: ``prompts``, else the name (none for a label from pictures)."""
        if self.prompts:
            return list(self.prompts)
        return [] if self.images else [self.name]

    @property
    def image_weight_used(self) -> float:
        """``w`` in the blend: 0 without images, 1 without prompts, else
        ``image_weight`` (default :data:`DEFAULT_IMAGE_WEIGHT`)."""
        if not self.images:
            return 0.0
        if not self.prompts:
            return 1.0
        return DEFAULT_IMAGE_WEIGHT if self.image_weight is None else self.image_weight

    @property
    def image_hashes(self) -> dict[str, str]:
        """sha256 of every picture's bytes, by path (``images`` and ``negative_images``)."""
        return dict(self._image_hashes)


def _hash_picture(path: str) -> tuple[str, str | None]:
    """``(sha256 of the file's bytes, None)``, or ``("", why not)`` when the
    file is missing, too big or not an image Pillow can decode."""
    import io
    import os
    import stat

    try:  # non-blocking, and read only when a regular file: a named pipe hung `config validate`
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return "", f"{path} is not a regular file"
            raw = fh.read(MAX_EXEMPLAR_BYTES + 1)
    except OSError as ex:
        return "", f"cannot read {path}: {ex.strerror or ex}"
    if len(raw) > MAX_EXEMPLAR_BYTES:
        return "", f"{path} is over {MAX_EXEMPLAR_BYTES // 2**20} MB"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.draft("RGB", (512, 512))  # JPEG: decode at a reduced scale; enough to prove it reads
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as ex:
        return "", f"{path} is not a readable image ({' '.join(str(ex).split())})"
    return hashlib.sha256(raw).hexdigest(), None


def _names_to_labels(value: Any) -> Any:
    """``labels: [cup, ball]`` is shorthand for ``[{name: cup}, {name: ball}]``."""
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


# What "no label applies" looks like when a config names nothing else. Binary
# scoring needs some; a softmax uses background only when a config gives it.
DEFAULT_BACKGROUND = ["a photo.", "a photo of something.", "a blank image."]

# auto: the model's native rule (sigmoid for sigmoid-trained models, softmax
# otherwise; one label: independent); independent: each label its own yes/no
# (sigmoid for sigmoid-trained models, binary otherwise). See pipeline.analysis.score.
ScoringMode = Literal["auto", "softmax", "binary", "sigmoid", "independent"]


class ScoringConfig(_Strict):
    mode: ScoringMode = "auto"
    templates: list[str] = ["a photo of {}."]
    # Binary: each label's shared negatives. Softmax: an implicit "none of
    # these" class, scored with the labels and never reported. Given by the
    # config, or DEFAULT_BACKGROUND where a mode may resolve to binary.
    background: list[str] = []

    @field_validator("templates")
    @classmethod
    def _templates_ok(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must not be empty")
        for template in v:
            _check_template(template)
        return v


def _check_template(template: str) -> None:
    """A template is text with exactly one bare ``{}`` where the prompt goes.

    Checked with the same parser ``str.format`` uses, so ``{{}}`` (a literal
    pair of braces), ``{x}`` (a named field) and ``{0.__class__}`` (attribute
    access) are refused here instead of failing, or worse, at scoring time.
    """
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as ex:
        raise ValueError(f"template {template!r} is not valid: {ex}") from None
    if len(fields) != 1 or fields[0] != ("", "", None):
        raise ValueError(f"template {template!r} must contain exactly one {{}} (where the prompt goes) "
                         "and no other {...} fields; write a literal brace as {{ or }}")


class SmoothingConfig(_Strict):
    method: Literal["none", "moving_average", "median", "ema"] = "median"
    window_s: float = Field(default=2.0, ge=0)


class SegmentConfig(_Strict):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    exit_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    min_duration_s: float = Field(default=1.0, ge=0)
    merge_gap_s: float = Field(default=1.0, ge=0)
    # Pin every edge (tags and NSFW labels) to its frame by bisecting
    # between the samples that bracket it (pipeline.analysis.edges).
    refine: bool = True

    @model_validator(mode="after")
    def _exit_below_enter(self) -> SegmentConfig:
        _check_exit(self.threshold, self.exit_threshold)
        return self


def _check_exit(threshold: float, exit_threshold: float | None) -> None:
    if exit_threshold is not None and exit_threshold > threshold:
        raise ValueError(f"exit_threshold {exit_threshold} must not exceed threshold {threshold}")


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

    _labels_from_names = field_validator("labels", mode="before")(_names_to_labels)

    @model_validator(mode="after")
    def _exit_below_enter(self) -> NsfwConfig:
        _check_exit(self.threshold, self.exit_threshold)
        _check_label_exits(self.labels, self.threshold, "labels")
        return self


def _check_label_exits(labels: list[LabelConfig], section_threshold: float, where: str) -> None:
    """A label's own exit threshold must not exceed the threshold it enters at
    (its own, else its section's)."""
    for i, lab in enumerate(labels):
        enter = lab.threshold if lab.threshold is not None else section_threshold
        if lab.exit_threshold is not None and lab.exit_threshold > enter:
            raise ValueError(f"{where}.{i}.exit_threshold {lab.exit_threshold} must not exceed "
                             f"the threshold {enter} it enters at")


class ShotsConfig(_Strict):
    """Shot and cue detection after scoring (``run --shots``): one extra
    pass decoding every frame to a thumbnail (pipeline.analysis.shots)."""

    enabled: bool = False
    threshold: float = Field(default=12.0, gt=0)  # grey levels of mean thumbnail difference
    ratio: float = Field(default=3.0, gt=0)  # times the local noise a cut stands out by
    window: int = Field(default=8, ge=1)  # frames each side whose median jump is the noise
    min_shot_frames: int = Field(default=15, ge=1)  # transitions closer than this: one kept
    flash_frames: int = Field(default=3, ge=0)  # a change undone within this many frames is a flash


class OutputConfig(_Strict):
    # otio, fcpxml, chapters, edl-events: pipeline.report.timeline_files
    formats: list[Literal["csv", "plot", "json", "html", "vtt", "edl", "thumbs",
                          "otio", "fcpxml", "chapters", "edl-events"]] = \
        ["csv", "plot", "json", "html", "vtt", "edl"]
    top_frames: int = Field(default=0, ge=0)  # save the N best frames per label as JPEGs


class Config(_Strict):
    """A whole validated config: every section with its defaults filled in."""

    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    decoder: DecoderConfig = DecoderConfig()
    scoring: ScoringConfig = ScoringConfig()
    labels: list[LabelConfig] = Field(min_length=1)
    smoothing: SmoothingConfig = SmoothingConfig()
    segments: SegmentConfig = SegmentConfig()
    nsfw: NsfwConfig = NsfwConfig()
    output: OutputConfig = OutputConfig()
    shots: ShotsConfig = ShotsConfig()

    _labels_from_names = field_validator("labels", mode="before")(_names_to_labels)

    @model_validator(mode="before")
    @classmethod
    def _default_background(cls, data: Any) -> Any:
        """A mode that may resolve to binary gets DEFAULT_BACKGROUND when the
        config gives none (binary scores each label against it)."""
        scoring = data.get("scoring", {}) if isinstance(data, dict) else None
        if not isinstance(scoring, dict) or "background" in scoring:
            return data
        mode, labels = scoring.get("mode", "auto"), data.get("labels")
        if mode in ("binary", "independent") or (mode == "auto" and isinstance(labels, list)
                                                 and len(labels) == 1):
            return {**data, "scoring": {**scoring, "background": list(DEFAULT_BACKGROUND)}}
        return data

    @model_validator(mode="after")
    def _softmax_needs_two(self) -> Config:
        """A softmax over one label scores it 1.0 on every frame: refused."""
        if self.scoring.mode == "softmax" and len(self.labels) == 1 and not self.scoring.background:
            raise ValueError("scoring.mode softmax with one label scores it 1.0 on every frame: "
                             "add labels, or scoring.background (a none-of-these class), "
                             "or use mode binary, sigmoid or auto")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        names = [lab.name for lab in self.labels] + [lab.name for lab in self.nsfw.labels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"label names must be unique across labels and nsfw.labels: {dupes}")
        _check_label_exits(self.labels, self.segments.threshold, "labels")
        return self

    @model_validator(mode="after")
    def _bounded(self) -> Config:
        labels = self.labels + self.nsfw.labels
        if len(labels) > MAX_LABELS:
            raise ValueError(f"{len(labels):,} labels (labels + nsfw.labels); at most {MAX_LABELS:,} "
                             "are allowed per config")
        pictures = sum(len(lab.images) + len(lab.negative_images) for lab in labels)
        if pictures > MAX_EXEMPLAR_IMAGES:
            raise ValueError(f"{pictures:,} example pictures (images + negative_images); at most "
                             f"{MAX_EXEMPLAR_IMAGES} are allowed per config")
        prompts = sum(len(lab.prompt_list) + len(lab.negatives) for lab in labels)
        sentences = prompts * len(self.scoring.templates) + len(self.scoring.background) + \
            len(self.nsfw.safe)
        if sentences > MAX_SENTENCES:
            raise ValueError(f"{sentences:,} sentences to embed ((prompts + negatives) x templates "
                             f"+ background + safe); at most {MAX_SENTENCES:,} are allowed per config")
        return self

    def image_hashes(self) -> dict[str, str]:
        """sha256 of every example picture's bytes, by path, over all labels."""
        return {p: h for lab in self.labels + self.nsfw.labels for p, h in lab.image_hashes.items()}

    def hash(self) -> str:
        """A short stable hash of the effective config (for resume and reports).
        Example pictures count by content: editing one changes the hash."""
        data = self.model_dump(mode="json")
        for label in data["labels"] + data["nsfw"]["labels"]:
            for key in _PICTURE_KEYS:  # unset: configs without pictures keep the hash they had
                if label.get(key) in ([], None):
                    label.pop(key, None)
        if data["shots"] == ShotsConfig().model_dump(mode="json"):
            data.pop("shots")  # off as it always was: configs keep the hash they had
        pictures = self.image_hashes()
        if pictures:
            data["image_hashes"] = pictures
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LabelRules:
    """What one label's segments depend on besides its scores, as the config
    gives them: file runs, live runs and calibration all read them here."""

    label: str
    kind: str  # tag or nsfw
    enter: float
    exit: float
    method: str  # smoothing filter
    window_s: float
    min_duration_s: float
    merge_gap_s: float


def label_rules(config: Config, name: str, kind: str) -> LabelRules:
    """``name``'s rules: its own thresholds over its section's (``nsfw`` or
    ``segments``); exit defaults to 90% of enter (a little hysteresis stops
    flicker at the boundary), and never exceeds it."""
    nsfw = kind == "nsfw"
    section = config.nsfw if nsfw else config.segments
    smoothing = config.nsfw.smoothing if nsfw else config.smoothing
    label = next(lab for lab in (config.nsfw.labels if nsfw else config.labels) if lab.name == name)
    enter = label.threshold if label.threshold is not None else section.threshold
    exit_ = label.exit_threshold if label.exit_threshold is not None else section.exit_threshold
    if exit_ is None or exit_ > enter:
        exit_ = 0.9 * enter
    return LabelRules(name, kind, enter, exit_, smoothing.method, smoothing.window_s,
                      section.min_duration_s, section.merge_gap_s)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None,
                flags: dict[str, str] | None = None) -> Config:
    """Load, override and validate a config.

    Args:
        path: a YAML file, or ``None`` for the built-in defaults (which need
            labels from ``overrides``).
        overrides: dotted key paths to values, applied after the file
            (``{"model.id": "x", "sampling.every_seconds": 0.5}``). ``None``
            values are ignored so CLI flags that were not given change nothing.
        flags: the CLI flag behind each override key (``{"scoring.mode":
            "--mode"}``): an error in an overridden value names the flag, not
            the file.

    Raises:
        ConfigError: with every problem found, each with its key path.
    """
    data = read_yaml(Path(path)) if path is not None else {}
    if path is not None:
        _resolve_model_path(data, Path(path).parent)
        _resolve_picture_paths(data, Path(path).parent)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    for key, value in given.items():
        _set_dotted(data, key, value)
    try:
        return Config.model_validate(data)
    except ValidationError as ex:
        named = {key: (flags or {}).get(key, key) for key in given if key in (flags or {})}
        raise ConfigError(format_errors(ex, Config, path, named)) from ex
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None


def parse_config(data: dict[str, Any]) -> Config:
    """Validate an in-memory config mapping (for stored configs and tests)."""
    try:
        return Config.model_validate(data)
    except ValidationError as ex:
        raise ConfigError(format_errors(ex, Config, None)) from ex


def is_local_model(model_id: str) -> bool:
    """Whether a model id names a folder rather than a Hub repository.

    Hub ids are ``name`` or ``org/name``; an id starting with ``.``, ``/`` or
    ``~``, or with more than one ``/``, is always a folder. (A Hub-shaped id
    that exists on disk is a folder too; the caller checks that.)
    """
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1


def _resolve_model_path(data: dict[str, Any], folder: Path) -> None:
    """A relative local ``model.id`` is relative to the config file's folder,
    not to where scenetag runs, so ``-c /abs/configs/demo.yaml`` works from
    anywhere. A Hub-shaped id (``org/name``) is a folder only when it exists
    there; otherwise it stays a Hub id."""
    model = data.get("model")
    model_id = model.get("id") if isinstance(model, dict) else None
    if not isinstance(model_id, str) or not model_id:
        return
    path = Path(model_id).expanduser()
    if path.is_absolute():
        return
    candidate = folder / path
    if is_local_model(model_id) or candidate.exists():
        model["id"] = str(candidate.resolve())


def _resolve_picture_paths(data: dict[str, Any], folder: Path) -> None:
    """Relative ``images``/``negative_images`` of every label are relative to
    the config file's folder (as a relative ``model.id`` is), made absolute."""
    nsfw = data.get("nsfw")
    sections = [data.get("labels"), nsfw.get("labels") if isinstance(nsfw, dict) else None]
    for labels in sections:
        for label in labels if isinstance(labels, list) else []:
            for key in ("images", "negative_images"):
                paths = label.get(key) if isinstance(label, dict) else None
                if isinstance(paths, list):
                    label[key] = [str((folder / Path(p).expanduser()).resolve())
                                  if isinstance(p, str) and p else p for p in paths]


class _ConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """``yaml.safe_load`` (libyaml when present: it caps nesting depth), but a
    key given twice in one mapping is an error instead of silently taking the
    last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key; the base class reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {first})",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> Any:
    """What ``yaml.safe_load`` does, with the duplicate-key check."""
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file as a plain mapping, before validation (a key given twice,
    bad YAML, a non-mapping or an unreadable file: ConfigError naming the file)."""
    text = _read_text(path)
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as ex:
        where = getattr(ex, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: invalid YAML{at}: {getattr(ex, 'problem', None) or ex}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply to be a config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as ex:
        raise ConfigError(f"cannot read config {path}: {ex.strerror or ex}") from ex
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES // 2**20} MB; a config is at most "
                          f"{MAX_LABELS:,} labels and {MAX_SENTENCES:,} sentences")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[ex.start]:02x} at offset {ex.start}); "
                          "save the config as UTF-8") from None


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
