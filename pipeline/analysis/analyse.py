"""From one input's frame embeddings to its result: scores, smoothed tracks,
segments, totals, tags and the NSFW verdict.

Pure: no I/O, no model. ``run`` calls it for every input, whichever engine
produced the embeddings, and ``rescore`` calls it on stored embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.analysis import edges as refine
from pipeline.analysis import smooth
from pipeline.analysis.score import Classifier, score
from pipeline.config import Config, label_rules
from pipeline.decode.base import interval_in_frames
from pipeline.types import LabelTrack, Segment, VideoInfo


def analyse(times_s: np.ndarray, embeddings: np.ndarray, classifier: Classifier,
            config: Config, info: VideoInfo | None) -> dict:
    """Score and post-process one video (coarse edges only).

    Returns:
        keyword arguments for :class:`pipeline.types.VideoResult`: ``tracks``,
        ``segments``, ``totals``, ``tags``, ``nsfw_verdict``.
    """
    coarse = coarse_analysis(times_s, embeddings, classifier, config, info)
    return finish(coarse, [c.segment for c in coarse.segments], config)


@dataclass(frozen=True)
class Coarse:
    """One video scored and segmented on its sampled frames, before refinement."""

    times_s: np.ndarray
    scores: np.ndarray  # raw, samples x labels
    tracks: list[LabelTrack]
    segments: list[refine.CoarseSegment]  # sorted by start, then label
    duration_s: float | None


def coarse_analysis(times_s: np.ndarray, embeddings: np.ndarray, classifier: Classifier,
                    config: Config, info: VideoInfo | None) -> Coarse:
    """Scores, smoothed tracks and segments of the sampled frames."""
    scores = score(classifier, embeddings)
    duration = video_duration(info, times_s)
    tracks = [_track(name, kind, scores[:, i], times_s, config)
              for i, (name, kind) in enumerate(zip(classifier.names, classifier.kinds))]
    coarse = [refine.CoarseSegment(seg, column, iv, track.threshold, track.exit_threshold)
              for column, track in enumerate(tracks)
              for seg, iv in _segments(track, times_s, config, duration)]
    coarse.sort(key=lambda c: (c.segment.start_s, c.segment.label))
    return Coarse(np.asarray(times_s, np.float64), scores, tracks, coarse, duration)


def finish(coarse: Coarse, segments: list[Segment], config: Config) -> dict:
    """The result's fields from the final segments: totals, tags, verdict."""
    totals = [smooth.label_totals(track, [s for s in segments if s.label == track.name], coarse.duration_s)
              for track in coarse.tracks]
    verdict = smooth.nsfw_verdict([s for s in segments if s.kind == "nsfw"],
                                  bool(config.nsfw.labels), config.nsfw.verdict_min_s)
    return {"tracks": coarse.tracks, "segments": segments, "totals": totals,
            "tags": smooth.video_tags(totals), "nsfw_verdict": verdict}


def start_refinement(coarse: Coarse, indices: np.ndarray, config: Config, info: VideoInfo | None,
                     kept: dict[int, tuple[float, np.ndarray]] | None = None,
                     frames_total: int | None = None) -> refine.Refinement:
    """The edge searches of one video, seeded with its samples' scores and
    ``kept`` (frame index -> (pts_s, scores) of frames refined before);
    ``frames_total``: the stream's length in frames, when the decoder knows it."""
    reach = max(_reach(config.smoothing, coarse.times_s),
                _reach(config.nsfw.smoothing, coarse.times_s))
    cut = config.sampling.max_frames is not None and len(indices) >= config.sampling.max_frames
    fps = coarse_fps(info)
    step = interval_in_frames(config.sampling.to_sampling(), fps) or 1.0
    searches = refine.plan(coarse.segments, indices, coarse.scores, reach=reach, open_end=not cut,
                           step_frames=math.ceil(step), frames_total=frames_total)
    return refine.Refinement(searches, refine.seed(indices, coarse.times_s, coarse.scores, kept))


def _reach(rules, times_s: np.ndarray) -> int:
    """Samples a smoothing filter may move an edge by: half its window, at least one."""
    if rules.method == "none" or rules.window_s <= 0 or len(times_s) < 2:
        return 1
    if rules.method == "ema":
        return max(1, math.ceil(2 * rules.window_s / smooth.sample_step(times_s)))
    return max(1, smooth.window_samples(times_s, rules.window_s) // 2 + 1)


def finish_refined(coarse: Coarse, refinement: refine.Refinement, config: Config,
                   info: VideoInfo | None) -> dict:
    """:func:`finish` with every pinned edge moved to its frame."""
    segments = refine.refined_segments(coarse.segments, refinement, frame_s=1.0 / coarse_fps(info),
                                       duration_s=coarse.duration_s)
    return finish(coarse, segments, config)


def coarse_fps(info: VideoInfo | None) -> float:
    """The frame rate refinement assumes: the average rate, else 25."""
    return info.avg_fps if info is not None and info.avg_fps else 25.0


@dataclass(frozen=True)
class ImageResult:
    """One still image, scored as a video's frames are.

    Attributes:
        input_path: the image file.
        scores: every label's probability (tags first, then NSFW labels), by
            the classifier's mode: a softmax over the tags under ``softmax``,
            independent yes/no scores under ``binary`` and ``sigmoid``.
        kinds: ``"tag"`` or ``"nsfw"`` per label.
        tags: the tag labels at or above their threshold, best first.
        nsfw_verdict: ``"unsafe"`` when an NSFW label reaches its threshold,
            ``"safe"`` otherwise, ``"n/a"`` without NSFW labels.
    """

    input_path: str
    scores: dict[str, float]
    kinds: dict[str, str]
    tags: list[str]
    nsfw_verdict: str


def analyse_image(path: str, embedding: np.ndarray, classifier: Classifier,
                  config: Config) -> ImageResult:
    """Score one image's embedding (1 x D) with the thresholds videos use
    (a label's own ``threshold``, else its section's)."""
    raw = score(classifier, np.asarray(embedding).reshape(1, -1))[0]
    scores = {name: float(s) for name, s in zip(classifier.names, raw)}
    kinds = dict(zip(classifier.names, classifier.kinds))
    over = [name for name in classifier.names
            if scores[name] >= label_rules(config, name, kinds[name]).enter]
    tags = sorted((n for n in over if kinds[n] == "tag"), key=lambda n: -scores[n])
    verdict = "n/a" if not config.nsfw.labels else \
        "unsafe" if any(kinds[n] == "nsfw" for n in over) else "safe"
    return ImageResult(path, scores, kinds, tags, verdict)


def _track(name: str, kind: str, raw: np.ndarray, times_s: np.ndarray, config: Config) -> LabelTrack:
    rules = label_rules(config, name, kind)
    smoothed = smooth.smooth(raw, times_s, rules.method, rules.window_s)
    return LabelTrack(name=name, kind=kind, raw=raw.astype(np.float64), smoothed=smoothed,
                      threshold=rules.enter, exit_threshold=rules.exit)


def _segments(track: LabelTrack, times_s: np.ndarray, config: Config,
              duration: float | None) -> list:
    rules = label_rules(config, track.name, track.kind)
    return smooth.segments_and_intervals(track.name, track.kind, times_s, track.smoothed,
                                  enter=track.threshold, exit=track.exit_threshold,
                                  min_duration_s=rules.min_duration_s,
                                  merge_gap_s=rules.merge_gap_s, duration_s=duration)


def video_duration(info: VideoInfo | None, times_s: np.ndarray) -> float | None:
    """The duration segments are clipped to: the container's, stretched to the
    last sample; None when unknown."""
    if info is not None and info.duration_s:
        return max(info.duration_s, float(times_s[-1]) if len(times_s) else 0.0)
    return None
