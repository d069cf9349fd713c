"""Tune a config's thresholds and segment rules on labelled clips
(``scenetag calibrate``), from stored embeddings only: nothing is decoded.

Each input is scored once (the rescore machinery: the store's prompt cache,
the model only when a prompt is missing); the search then replays only the
cheap part, smoothing and segment detection, on the cached scores.

The search, bounded (``GRID``): (1) one enter threshold and exit ratio for
every label on a coarse grid, (2) the smoothing window and the minimum
duration and gap merge (in sampling steps), (3) a local refinement of the
threshold and exit ratio, (4) each label's own threshold and exit ratio
(coarse grid, then refinement) with the rules of (2) fixed. A setting is
better when its segment F1 is higher, ties going to the higher mean IoU.
A full tie goes, on the coarse grids, to the middle of the tied points (a
margin both ways on clips not seen; a bad config's value can tie at F1 0
with every point), and in the refinements and (4) to the value the step
started from (in (4) the label's own, from the config). A search that ends
no better than the config returns the config: nothing moves without a
gain. Labels without positive truth in the clips a fit sees keep the
shared values of (1)-(3): tuned on negatives alone a label would learn
never to fire.

Cross-validation by input (leave-one-input-out up to ``LOO_MAX`` inputs,
else ``FOLDS`` folds): every fold is fitted on the other inputs and scored
on its own, so a setting that only suits one clip shows up as a bad fold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.analysis import smooth
from pipeline.config import Config
from pipeline.measure.evaluate import Counts, compare
from pipeline.measure.truth import Truth
from pipeline.types import PipelineError

log = logging.getLogger(__name__)

THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
EXIT_RATIOS = (0.5, 0.8, 1.0)
STEPS = (0, 1, 2, 4)  # smoothing window, min duration, merge gap: in sampling steps
REFINE = (-0.04, -0.02, -0.01, 0.01, 0.02, 0.04)
FINE_EXIT = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
GRID = (f"thresholds {', '.join(f'{t:g}' for t in THRESHOLDS)} x exit ratios "
        f"{', '.join(f'{r:g}' for r in EXIT_RATIOS)}; window, min duration, merge gap each "
        f"{', '.join(map(str, STEPS))} sampling steps; refinement threshold "
        f"{', '.join(f'{d:+g}' for d in REFINE)}, exit ratios {', '.join(f'{r:g}' for r in FINE_EXIT)}")
LOO_MAX, FOLDS = 6, 5


@dataclass(eq=False)  # compared by identity (folds hold clips out)
class Clip:
    """One labelled input, scored once."""

    path: str
    times_s: np.ndarray
    duration_s: float | None
    scores: np.ndarray  # N x L, the classifier's label order
    truth: dict[str, list[tuple[float, float]]]
    fps: float | None
    _smoothed: dict = field(default_factory=dict)

    def smoothed(self, col: int, method: str, window_s: float) -> np.ndarray:
        key = (col, method, round(window_s, 9))
        if key not in self._smoothed:
            self._smoothed[key] = smooth.smooth(self.scores[:, col], self.times_s, method, window_s)
        return self._smoothed[key]


@dataclass(frozen=True)
class Tunables:
    """What calibration tunes of one label's rules (exit as a ratio of enter,
    so one grid of ratios fits every threshold)."""

    enter: float
    exit_ratio: float
    window_s: float
    min_duration_s: float
    merge_gap_s: float


@dataclass
class Setting:
    """The :class:`Tunables` of every label, by name, and the ``shared`` ones
    (the section defaults)."""

    rules: dict[str, Tunables]
    shared: Tunables


@dataclass
class Problem:
    """The labels, their kinds and smoothing methods, and the scored clips."""

    names: list[str]
    kinds: list[str]
    methods: list[str]
    clips: list[Clip]
    min_iou: float

    def counts(self, name: str, rules: Tunables, clips: Sequence[Clip]) -> Counts:
        col = self.names.index(name)
        total = Counts()
        for clip in clips:
            s = clip.smoothed(col, self.methods[col], rules.window_s)
            segs = smooth.detect_segments(name, self.kinds[col], clip.times_s, s, enter=rules.enter,
                                          exit=rules.enter * rules.exit_ratio,
                                          min_duration_s=rules.min_duration_s,
                                          merge_gap_s=rules.merge_gap_s, duration_s=clip.duration_s)
            total.add(compare([(g.start_s, g.end_s) for g in segs], clip.truth.get(name, []),
                              self.min_iou, clip.fps))
        return total

    def overall(self, setting: Setting, clips: Sequence[Clip]) -> Counts:
        total = Counts()
        for name in self.names:
            total.add(self.counts(name, setting.rules[name], clips))
        return total


def _key(c: Counts) -> tuple[float, float]:
    return (round(c.f1, 9), round(c.mean_iou, 9))


def fit(problem: Problem, clips: Sequence[Clip], incumbent: Setting) -> Setting:
    """The best setting for ``clips`` (the search of the module docstring),
    starting from ``incumbent`` (the config's): ``incumbent`` itself unless
    the search found one strictly better on ``clips``."""
    start = incumbent.shared
    shared = _best(problem, clips, problem.names, [
        replace(start, enter=t, exit_ratio=r) for t in THRESHOLDS for r in EXIT_RATIOS])
    step = float(np.median([smooth.sample_step(c.times_s) for c in clips]))
    shared = _best(problem, clips, problem.names, [
        replace(shared, window_s=w * step, min_duration_s=d * step, merge_gap_s=g * step)
        for w in STEPS for d in STEPS for g in STEPS])
    shared = _refine(problem, clips, problem.names, shared)
    rules = {name: _own(problem, clips, name, shared, incumbent.rules[name]) for name in problem.names}
    tuned = Setting(rules, shared)
    gain = _key(problem.overall(tuned, clips)) > _key(problem.overall(incumbent, clips))
    return tuned if gain else incumbent


def _own(problem: Problem, clips: Sequence[Clip], name: str, shared: Tunables, mine: Tunables) -> Tunables:
    """Step (4) for one label: its own threshold and exit ratio under the
    ``shared`` rules, starting from its config's (``mine``); ``shared``
    itself for a label without positive truth in ``clips``."""
    if not any(c.truth.get(name) for c in clips):
        return shared
    grid = [replace(shared, enter=t, exit_ratio=r) for t in THRESHOLDS for r in EXIT_RATIOS]
    own = _best(problem, clips, [name], [shared] + grid,
                incumbent=replace(shared, enter=mine.enter, exit_ratio=mine.exit_ratio))
    return _refine(problem, clips, [name], own)


def _best(problem: Problem, clips: Sequence[Clip], names: Sequence[str], candidates: list[Tunables],
          incumbent: Tunables | None = None) -> Tunables:
    """The best of ``candidates``: ``incumbent`` when given and none beats
    it (a move must gain something), else of the equally good ones the
    middle one (in grid order), which leaves a margin both ways on clips
    not seen."""
    def key(rules: Tunables) -> tuple[float, float]:
        total = Counts()
        for name in names:
            total.add(problem.counts(name, rules, clips))
        return _key(total)

    keys = [key(rules) for rules in candidates]
    if incumbent is not None and key(incumbent) >= max(keys):
        return incumbent
    tied = [rules for rules, k in zip(candidates, keys) if k == max(keys)]
    return tied[(len(tied) - 1) // 2]


def _refine(problem: Problem, clips: Sequence[Clip], names: Sequence[str], rules: Tunables) -> Tunables:
    near = [replace(rules, enter=float(np.clip(rules.enter + d, 0.001, 0.999))) for d in REFINE]
    rules = _best(problem, clips, names, near, incumbent=rules)
    return _best(problem, clips, names, [replace(rules, exit_ratio=r) for r in FINE_EXIT], incumbent=rules)


# --------------------------------------------------------------------------- the whole job


@dataclass
class Calibration:
    """What ``calibrate`` found and measured."""

    problem: Problem
    before: Setting
    after: Setting
    folds: list[tuple[str, float, float]]  # (held-out inputs, F1 before, F1 after)
    skipped: list[str]
    seconds: float

    @property
    def unchanged(self) -> bool:
        """Nothing beat the input config on the calibration clips: it is kept as it is."""
        return self.after is self.before

    def per_label(self) -> dict[str, tuple[float, float]]:
        """Per label, F1 on every calibration clip before and after tuning."""
        clips = self.problem.clips
        return {n: (self.problem.counts(n, self.before.rules[n], clips).f1,
                    self.problem.counts(n, self.after.rules[n], clips).f1) for n in self.problem.names}


def calibrate(config: Config, store_dir: Path, truth: Truth, *, min_iou: float = 0.5,
              allow_unseen: bool = False, embedder=None) -> Calibration:
    """Score the store's labelled inputs once, cross-validate and fit.

    Raises:
        PipelineError: the store is empty, no stored input has truth, a truth
            label is not one of the config's, or (unless ``allow_unseen``) a
            config label has no positive truth.
        TruthError: a truth row names an input the store does not have.
    """
    began = time.perf_counter()
    problem, skipped = _problem(config, store_dir, truth, min_iou, embedder)
    unseen = [n for n in problem.names if not any(c.truth.get(n) for c in problem.clips)]
    if unseen and not allow_unseen:
        raise PipelineError(
            f"cannot calibrate {', '.join(repr(n) for n in unseen)}: no positive truth in {truth.path} "
            f"for the stored inputs; add truth, remove the label, or pass --shared-unseen to give "
            f"{'it' if len(unseen) == 1 else 'them'} the values tuned on the other labels")
    before = _setting_of(config, problem)
    folds = []
    for held in _folds(problem.clips):
        train = [c for c in problem.clips if c not in held]
        tuned = fit(problem, train, before)
        folds.append((", ".join(Path(c.path).name for c in held),
                      problem.overall(before, held).f1, problem.overall(tuned, held).f1))
    after = fit(problem, problem.clips, before)
    return Calibration(problem, before, after, folds, skipped, time.perf_counter() - began)


def check_store_model(config: Config, store, store_dir: Path) -> None:
    """Refuse to fit ``config``'s model with another model's vectors: the
    thresholds would be written into a config naming a model they were
    never measured on (``--model`` names the store's model instead)."""
    if store.same_model(config.model.id, config.model.revision):
        return
    family = f", {store.model_family}" if store.model_family else ""
    raise PipelineError(f"{store_dir} was embedded with {store.describe_model()}{family}, not the config's "
                        f"model {config.model.id}: thresholds fitted on its vectors would not fit that "
                        "model; "
                        f"pass --model {store.model_id} to tune for the store's model")


def _folds(clips: list[Clip]) -> list[list[Clip]]:
    if len(clips) < 2:
        return []  # nothing to hold out
    if len(clips) <= LOO_MAX:
        return [[c] for c in clips]
    return [clips[k::FOLDS] for k in range(FOLDS)]


def _problem(config: Config, store_dir: Path, truth: Truth, min_iou: float,
             embedder) -> tuple[Problem, list[str]]:
    from pipeline.analysis.analyse import video_duration
    from pipeline.analysis.score import score
    from pipeline.run.rescore import rescore_classifier
    from pipeline.store.db import EmbeddingStore, StoreError

    store = EmbeddingStore.open(store_dir)
    videos = {v.input_path: v for v in store.videos()}  # newest copy per input wins, as in rescore
    if not videos:
        raise StoreError(f"embedding store {store_dir} holds no embeddings")
    check_store_model(config, store, store_dir)
    by_input = truth.resolve(list(videos))
    classifier, _, _ = rescore_classifier(config, store, None, embedder)
    strangers = [iv for ivs in by_input.values() for iv in ivs if iv.label not in classifier.names]
    if strangers:
        raise PipelineError(f"{strangers[0].where}: label {strangers[0].label!r} is not in the config "
                            f"(labels: {', '.join(classifier.names)})")
    used = [v for path, v in videos.items() if by_input[path]]
    skipped = [path for path in videos if not by_input[path]]
    if not used:
        raise PipelineError(f"{truth.path}: no stored input has truth rows")
    if skipped:
        log.warning("%d stored input%s without truth rows skipped: %s", len(skipped),
                    "" if len(skipped) == 1 else "s", ", ".join(skipped))
    clips = []
    for video, embedded in zip(used, store.embedded_many(used)):
        spans: dict[str, list[tuple[float, float]]] = {}
        for iv in by_input[video.input_path]:
            spans.setdefault(iv.label, []).append((iv.start_s, iv.end_s))
        info = embedded.info
        clips.append(Clip(video.input_path, np.asarray(embedded.times_s, np.float64),
                          video_duration(info, embedded.times_s), score(classifier, embedded.embeddings),
                          spans, getattr(info, "avg_fps", None) if info is not None else None))
    methods = [(config.nsfw.smoothing if k == "nsfw" else config.smoothing).method for k in classifier.kinds]
    return Problem(list(classifier.names), list(classifier.kinds), methods, clips, min_iou), skipped


def _setting_of(config: Config, problem: Problem) -> Setting:
    """The rules ``config`` gives each label (as :func:`pipeline.analysis.analyse.analyse` reads them)."""
    from pipeline.config import label_rules

    rules = {}
    for name, kind in zip(problem.names, problem.kinds):
        given = label_rules(config, name, kind)
        rules[name] = Tunables(given.enter, given.exit / given.enter if given.enter > 0 else 1.0,
                               given.window_s, given.min_duration_s, given.merge_gap_s)
    return Setting(rules, next(iter(rules.values())))


# --------------------------------------------------------------------------- the tuned config


def tuned_yaml(config_path: Path, config: Config, result: Calibration, out_path: Path,
               truth_path: Path, store_dir: Path, *, model_id: str | None = None) -> str:
    """The input config (as read from ``config_path``) with the tuned values,
    under a comment header saying what was measured. Relative local paths
    (the model folder, example pictures) are rewritten for ``out_path``;
    ``model_id`` (``--model``): the model the values were tuned for, named
    in place of the config's."""
    import yaml

    from pipeline.config import read_yaml

    data = read_yaml(config_path)
    _rebase_pictures(data, config_path.parent, out_path.parent)
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    if model_id is not None:  # the model tuned for, in place of the config's
        data["model"] = {**model, "id": _model_for(config, out_path.parent)}
        data["model"].pop("revision", None)
    elif isinstance(model.get("id"), str) and model["id"] != config.model.id:  # a relative folder
        model["id"] = _model_for(config, out_path.parent)
    if result.unchanged:  # the config's own values, as it wrote them
        return _header(result, config_path, truth_path, store_dir) + \
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    after = result.after.rules
    for section, kind in (("labels", "tag"), ("nsfw", "nsfw")):
        entries = data.get(section, []) if kind == "tag" else (data.get("nsfw") or {}).get("labels", [])
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") in after:
                rules = after[entry["name"]]
                entry["threshold"] = round(rules.enter, 4)
                entry["exit_threshold"] = round(rules.enter * rules.exit_ratio, 4)
    shared = result.after.shared
    _set_section(data, "smoothing", config.smoothing.method, shared)
    data.setdefault("segments", {}).update(_section_values(shared))
    if config.nsfw.labels:
        nsfw = data.setdefault("nsfw", {})
        _set_section(nsfw, "smoothing", config.nsfw.smoothing.method, shared)
        nsfw.update(_section_values(shared))
    return _header(result, config_path, truth_path, store_dir) + \
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def _section_values(rules: Tunables) -> dict[str, float]:
    """A section's defaults: what a label added later starts from."""
    return {"threshold": round(rules.enter, 4), "exit_threshold": round(rules.enter * rules.exit_ratio, 4),
            "min_duration_s": round(rules.min_duration_s, 4), "merge_gap_s": round(rules.merge_gap_s, 4)}


def _set_section(data: dict, key: str, method: str, rules: Tunables) -> None:
    section = data.setdefault(key, {})
    section.setdefault("method", method)  # a new section must not change the method the config had
    section["window_s"] = round(rules.window_s, 4)


def _model_for(config: Config, new: Path) -> str:
    """The config's model as ``new``'s config names it: a local folder
    relative to ``new`` (load_config resolved it), a Hub id as it is."""
    import os

    model_id = config.model.id
    return os.path.relpath(model_id, new.resolve()) if Path(model_id).is_dir() else model_id


def _rebase_pictures(data: dict, old: Path, new: Path) -> None:
    import os

    labels = list(data.get("labels") or []) + list((data.get("nsfw") or {}).get("labels") or [])
    for entry in labels:
        for key in ("images", "negative_images"):
            paths = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(paths, list):
                entry[key] = [os.path.relpath((old / p).resolve(), new.resolve())
                              if isinstance(p, str) and not Path(p).expanduser().is_absolute() else p
                              for p in paths]


def _header(result: Calibration, config_path: Path, truth_path: Path, store_dir: Path) -> str:
    problem = result.problem
    lines = [f"scenetag calibrate: {config_path} tuned on {truth_path} (store {store_dir}),",
             f"{len(problem.clips)} input(s): {', '.join(Path(c.path).name for c in problem.clips)}.",
             f"Segment F1 at IoU >= {problem.min_iou:g}, one-to-one matching; ties go to the higher",
             "mean IoU, then to the middle of the tied grid points (a refinement: to where it started);",
             "a result no better than the input config keeps the config.",
             f"Search: {GRID}.",
             "The input config's comments are not kept.", "",
             "Segment F1 per label on those inputs, before -> after:"]
    seen = {n for c in problem.clips for n, spans in c.truth.items() if spans}
    lines += [f"  {name}: {b:.3f} -> {a:.3f}" if name in seen else
              f"  {name}: no positive truth; given the shared values"
              for name, (b, a) in result.per_label().items()]
    if result.folds:
        kind = "leave-one-input-out" if len(result.folds) == len(problem.clips) else f"{FOLDS}-fold"
        lines.append(f"Cross-validated ({kind}: fitted without the held-out inputs, scored on them), "
                     "F1 before -> after:")
        lines += [f"  held out {held}: {b:.3f} -> {a:.3f}" for held, b, a in result.folds]
        lines.append(f"  mean: {np.mean([f[1] for f in result.folds]):.3f} -> "
                     f"{np.mean([f[2] for f in result.folds]):.3f}")
    else:
        lines.append("One input: no cross-validation (nothing to hold out); expect it to flatter.")
    if result.unchanged:
        lines.append("No setting beat the input config on these inputs: its values are kept.")
    lines.append(f"Calibrated in {result.seconds:.1f} s.")
    return "".join(f"# {line}\n" if line else "#\n" for line in lines) + "\n"
