"""Edge refinement for a group of inputs: a gap scan, then bisection rounds
through an engine.

First one ``scan`` call decodes every frame of each gap an edge lies in,
once (:meth:`~pipeline.engine.local.LocalEngine.scan`); the thumbnails give
each gap's cut evidence (:mod:`pipeline.analysis.cuts`) and the few full frames kept
are embedded from memory when probed. Then each round asks every input's
:class:`~pipeline.analysis.edges.Refinement` which frames it needs next, hands all
of them to one ``probe`` call (the engine decodes and embeds them, batched
like any frames), scores them and feeds the scores back, until every edge
is pinned or given up. The frames found travel on with the input
(:class:`~pipeline.engine.base.RefineFrames`), with the evidence, so the
store keeps both and :func:`analyse_refined` redoes the (pure, cheap)
search from them when the input's reports are written, or rescored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from operator import methodcaller

import numpy as np

from pipeline.analysis import cuts
from pipeline.analysis.analyse import Coarse, coarse_analysis, finish_refined, start_refinement
from pipeline.analysis.edges import Refinement
from pipeline.analysis.score import Classifier, score
from pipeline.config import Config
from pipeline.engine.base import EmbeddedInput, RefineFrames, merge_batches, split_wanted
from pipeline.types import FrameBatch, GapScan, RefineSummary, describe_error

log = logging.getLogger(__name__)

Probe = Callable[..., dict[str, EmbeddedInput]]
Scan = Callable[[dict[str, list[tuple[int, int]]]], dict[str, list[GapScan]]]


def fetch(inputs: list[EmbeddedInput], config: Config, classifier: Classifier,
          probe: Probe | None, scan: Scan | None = None) -> list[EmbeddedInput]:
    """``inputs``, each with the refinement frames its edges need.

    Inputs that failed, images, and inputs with nothing to refine come back
    as they were. ``scan`` first decodes every frame of each gap an edge
    lies in, once (``{path: [(lo, hi)]}`` -> ``{path: [GapScan]}``): its
    thumbnails give the cut evidence (:mod:`pipeline.analysis.cuts`), and the few
    full frames it keeps are embedded from memory when probed. ``probe``
    maps ``{path: frame indices}`` (and ``frames=``, ``{path: FrameBatch}``
    already decoded) to ``{path: embedded frames}``: an index it found no
    frame for lies past the end of the stream (or cannot be decoded); a path
    it leaves out could not be read at all. None refines from frames (and
    evidence) already kept only.
    """
    jobs = {e.path: job for e in inputs if (job := _Job.start(e, config, classifier)) is not None}
    failed: dict[str, str] = {}
    if scan is not None and probe is not None:
        gaps = {path: found for path, found in _each(jobs, lambda job: job.refinement.gaps(), failed).items()
                if found}
        scans = _engine_call("scan", partial(scan, gaps), gaps) if gaps else {}
        _each({path: jobs[path] for path in gaps if path in jobs},
              lambda job: job.take_scans(scans.get(job.embedded.path)), failed)
    while probe is not None:
        asked = _each(jobs, lambda job: job.refinement.wanted(), failed)
        requests = {path: wanted for path, wanted in asked.items() if wanted}
        if not requests:
            break
        held = {path: jobs[path].held for path in requests if jobs[path].held is not None}
        call = partial(probe, requests, frames=held) if held else partial(probe, requests)
        answers = _engine_call("probe", call, requests)
        for path, wanted in requests.items():
            if path in answers:
                _each({path: jobs[path]}, methodcaller("feed", answers[path], wanted, classifier), failed)
            else:  # unreadable now: its edges keep their coarse times
                _each({path: jobs[path]}, lambda job: job.refinement.give_up(), failed)
    return [_outcome(e, jobs.get(e.path), failed.get(e.path)) for e in inputs]


def _outcome(embedded: EmbeddedInput, job: _Job | None, failed: str | None) -> EmbeddedInput:
    if failed is not None:
        return replace(embedded, refine=replace(embedded.refine or RefineFrames(), failed=failed))
    return job.embedded_with_frames() if job is not None else embedded


def _each(jobs: dict[str, _Job], step: Callable[[_Job], object],
          failed: dict[str, str]) -> dict[str, object]:
    """``step`` of every job, by path. A job whose step fails (a bug on one
    input's data) leaves ``jobs`` for ``failed``, with one warning: its
    input keeps the edges it had. Refinement improves edges; it never
    costs an input."""
    out = {}
    for path, job in list(jobs.items()):
        try:
            out[path] = step(job)
        except Exception as ex:
            failed[path] = describe_error(ex)
            log.warning("%s: edge refinement failed (%s); its edges stay at sample resolution",
                        path, failed[path])
            log.debug("refining %s failed", path, exc_info=True)
            del jobs[path]
    return out


def _engine_call(what: str, call: Callable[[], dict], requests: dict) -> dict:
    """``call()``; when the engine fails, every input asked about is left
    out of the answer (as if unreadable: its edges keep their coarse times),
    with one warning."""
    try:
        return call()
    except Exception as ex:
        log.warning("edge refinement could not %s %s (%s); their edges stay at sample resolution",
                    what, ", ".join(sorted(requests)), describe_error(ex))
        log.debug("refinement %s failed", what, exc_info=True)
        return {}


@dataclass
class _Job:
    embedded: EmbeddedInput
    refinement: Refinement
    new: list[EmbeddedInput] = field(default_factory=list)
    decoded: int = 0
    held: FrameBatch | None = None  # full frames a gap scan kept, not embedded yet
    scanned: int = 0  # gaps decoded whole this run

    @classmethod
    def start(cls, embedded: EmbeddedInput, config: Config, classifier: Classifier) -> _Job | None:
        if embedded.error is not None or embedded.info is None or embedded.info.is_image \
                or not len(embedded.indices):
            return None
        try:
            _, refinement = _refinement(embedded, config, classifier)
        except Exception:  # scoring fails again, and is reported, when the input is analysed
            log.debug("cannot plan edge refinement for %s", embedded.path, exc_info=True)
            return None
        return cls(embedded, refinement) if refinement.searches else None

    def take_scans(self, scans: list[GapScan] | None) -> None:
        """Take the gap scans' evidence and frames (None: unreadable; bisect)."""
        for found in scans or []:
            self.refinement.evidence[(found.lo, found.hi)] = cuts.evidence(found)
            self.decoded += found.decoded
            self.scanned += 1
        self.held = merge_batches([found.frames for found in scans or []])

    def feed(self, answer: EmbeddedInput | None, wanted: list[int], classifier: Classifier) -> None:
        frames = {}
        if answer is not None and len(answer.indices):
            scores = score(classifier, answer.embeddings)
            frames = {int(i): (float(t), scores[k])
                      for k, (i, t) in enumerate(zip(answer.indices, answer.times_s))}
            self.new.append(answer)
        if answer is not None and answer.stats is not None:
            self.decoded += answer.stats.frames_decoded
        self.refinement.feed(frames, wanted)
        if self.held is not None:  # what is embedded now is held no longer
            self.held, _ = split_wanted(sorted(set(map(int, self.held.indices)) - set(frames)), self.held)

    def embedded_with_frames(self) -> EmbeddedInput:
        old = self.embedded.refine or RefineFrames()
        parts = [old] if len(old) else []
        parts += [RefineFrames(a.indices, a.times_s, a.embeddings) for a in self.new]
        gaps = tuple(self.refinement.evidence[k] for k in sorted(self.refinement.evidence))
        if not parts:
            return replace(self.embedded, refine=replace(old, missing=frozenset(self.refinement.missing),
                                                         decoded=self.decoded, gaps=gaps,
                                                         scanned=self.scanned))
        indices = np.concatenate([p.indices for p in parts]).astype(np.int64)
        _, first = np.unique(indices, return_index=True)  # one row per frame, the stored one first
        times = np.concatenate([p.times_s for p in parts]).astype(np.float64)
        vectors = np.concatenate([p.embeddings for p in parts]).astype(np.float32)
        frames = RefineFrames(indices=indices[first], times_s=times[first], embeddings=vectors[first],
                              missing=frozenset(self.refinement.missing), decoded=self.decoded,
                              embedded=sum(len(a.indices) for a in self.new), gaps=gaps,
                              scanned=self.scanned)
        return replace(self.embedded, refine=frames)


def _refinement(embedded: EmbeddedInput, config: Config,
                classifier: Classifier) -> tuple[Coarse, Refinement]:
    """The coarse analysis of ``embedded`` and its edge searches, seeded with
    every refinement frame it already carries."""
    coarse = coarse_analysis(embedded.times_s, embedded.embeddings, classifier, config, embedded.info)
    extra = embedded.refine
    kept = {}
    if extra is not None and len(extra):
        scores = score(classifier, extra.embeddings)
        kept = {int(i): (float(t), scores[k]) for k, (i, t) in enumerate(zip(extra.indices, extra.times_s))}
    total = embedded.stats.frames_total if embedded.stats is not None else None
    refinement = start_refinement(coarse, embedded.indices, config, embedded.info, kept, total)
    if extra is not None:
        refinement.missing |= set(extra.missing)
        refinement.evidence.update({(g.lo, g.hi): g for g in extra.gaps})
    return coarse, refinement


def analyse_refined(embedded: EmbeddedInput, classifier: Classifier, config: Config) -> dict:
    """:func:`pipeline.analysis.analyse.analyse` with each edge pinned to its frame,
    from the refinement frames ``embedded`` carries (an edge whose frames
    are not all there keeps its coarse time). Adds ``refine``, a
    :class:`~pipeline.types.RefineSummary`."""
    coarse, refinement = _refinement(embedded, config, classifier)
    refinement.give_up()
    result = finish_refined(coarse, refinement, config, embedded.info)
    extra = embedded.refine or RefineFrames()
    scores = score(classifier, extra.embeddings) if len(extra) else \
        np.zeros((0, len(coarse.tracks)), np.float64)
    result["refine"] = RefineSummary(
        indices=np.asarray(extra.indices, np.int64), times_s=np.asarray(extra.times_s, np.float64),
        scores=np.asarray(scores, np.float64), frames_decoded=extra.decoded,
        frames_embedded=extra.embedded, frames_kept=len(extra) - extra.embedded,
        edges=2 * len(coarse.segments), edges_pinned=sum(s.pinned for s in refinement.searches),
        edges_by_cut=sum(s.pinned and s.by_cut for s in refinement.searches))
    return result
