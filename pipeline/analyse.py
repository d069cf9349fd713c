"""From one input's frame embeddings to its result: scores, smoothed tracks,
segments, totals, tags and the NSFW verdict.

Pure: no I/O, no model. ``run`` calls it for every input, whichever engine
produced the embeddings, and ``rescore`` calls it on stored embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import smooth
from pipeline.config import Config
from pipeline.score import Classifier, score
from pipeline.types import LabelTrack, Segment, VideoInfo


def analyse(times_s: np.ndarray, embeddings: np.ndarray, classifier: Classifier,
            config: Config, info: VideoInfo | None) -> dict:
    """Score and post-process one video.

    Returns:
        keyword arguments for :class:`pipeline.types.VideoResult`: ``tracks``,
        ``segments``, ``totals``, ``tags``, ``nsfw_verdict``.
    """
    scores = score(classifier, embeddings)
    duration = video_duration(info, times_s)
    tracks = [_track(name, kind, scores[:, i], times_s, config)
              for i, (name, kind) in enumerate(zip(classifier.names, classifier.kinds))]
    segments = sorted((seg for track in tracks for seg in _segments(track, times_s, config, duration)),
                      key=lambda s: (s.start_s, s.label))
    totals = [smooth.label_totals(track, [s for s in segments if s.label == track.name], duration)
              for track in tracks]
    verdict = smooth.nsfw_verdict([s for s in segments if s.kind == "nsfw"],
                                  bool(config.nsfw.labels), config.nsfw.verdict_min_s)
    return {"tracks": tracks, "segments": segments, "totals": totals,
            "tags": smooth.video_tags(totals), "nsfw_verdict": verdict}


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
            if scores[name] >= _thresholds(name, kinds[name], config)[0]]
    tags = sorted((n for n in over if kinds[n] == "tag"), key=lambda n: -scores[n])
    verdict = "n/a" if not config.nsfw.labels else \
        "unsafe" if any(kinds[n] == "nsfw" for n in over) else "safe"
    return ImageResult(path, scores, kinds, tags, verdict)


def _track(name: str, kind: str, raw: np.ndarray, times_s: np.ndarray, config: Config) -> LabelTrack:
    enter, exit_ = _thresholds(name, kind, config)
    rules = config.nsfw.smoothing if kind == "nsfw" else config.smoothing
    smoothed = smooth.smooth(raw, times_s, rules.method, rules.window_s)
    return LabelTrack(name=name, kind=kind, raw=raw.astype(np.float64), smoothed=smoothed,
                      threshold=enter, exit_threshold=exit_)


def _thresholds(name: str, kind: str, config: Config) -> tuple[float, float]:
    """Per-label thresholds override the section defaults; exit defaults to
    90% of enter (a little hysteresis stops flicker at the boundary)."""
    section = config.nsfw if kind == "nsfw" else config.segments
    labels = config.nsfw.labels if kind == "nsfw" else config.labels
    label = next(lab for lab in labels if lab.name == name)
    enter = label.threshold if label.threshold is not None else section.threshold
    exit_ = label.exit_threshold if label.exit_threshold is not None else section.exit_threshold
    if exit_ is None or exit_ > enter:
        exit_ = 0.9 * enter
    return enter, exit_


def _segments(track: LabelTrack, times_s: np.ndarray, config: Config,
              duration: float | None) -> list[Segment]:
    rules = config.nsfw if track.kind == "nsfw" else config.segments
    return smooth.detect_segments(track.name, track.kind, times_s, track.smoothed,
                                  enter=track.threshold, exit=track.exit_threshold,
                                  min_duration_s=rules.min_duration_s,
                                  merge_gap_s=rules.merge_gap_s, duration_s=duration)


def video_duration(info: VideoInfo | None, times_s: np.ndarray) -> float | None:
    """The duration segments are clipped to: the container's, stretched to the
    last sample; None when unknown."""
    if info is not None and info.duration_s:
        return max(info.duration_s, float(times_s[-1]) if len(times_s) else 0.0)
    return None
