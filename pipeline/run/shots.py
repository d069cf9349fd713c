"""Shots and technical cues of one scored input (``run --shots``,
``shots.enabled``): one more pass over the file decoding every frame to a
thumbnail (:func:`pipeline.decode.every_frame.every_frame_prints`), then
:func:`~pipeline.analysis.shots.detect_shots` with the config's knobs and
:func:`~pipeline.analysis.cues.detect_cues`. Each shot is tagged with the
labels whose mean smoothed score over its sampled frames reaches the
label's enter threshold (:func:`~pipeline.analysis.shots.shot_labels`).

Finding shots improves an input's outputs; it never fails the input: on any
error the input goes on without shots (one warning).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from pipeline.analysis.cues import detect_cues
from pipeline.analysis.shots import detect_shots, shot_labels
from pipeline.config import Config, label_rules
from pipeline.decode.every_frame import every_frame_prints
from pipeline.report.timeline_files import ShotRow
from pipeline.types import VideoResult, describe_error

log = logging.getLogger(__name__)


def with_shots(result: VideoResult, config: Config) -> VideoResult:
    """``result`` with ``shots`` (:class:`ShotRow` s) and ``cues`` set; as it
    was when the file cannot be read again (see the module)."""
    try:
        return _with_shots(result, config)
    except Exception as ex:  # shots add to a finished input; they never cost it
        log.warning("%s: shots not detected (%s)", result.input_path, describe_error(ex))
        log.debug("shot detection for %s failed", result.input_path, exc_info=True)
        return result


def _with_shots(result: VideoResult, config: Config) -> VideoResult:
    s = config.shots
    fp = every_frame_prints(result.input_path)
    shots = detect_shots(fp.prints, fp.times_s, end_s=fp.end_s, threshold=s.threshold, ratio=s.ratio,
                         window=s.window, min_shot_frames=s.min_shot_frames, flash_frames=s.flash_frames)
    cues = detect_cues(fp.prints, fp.times_s, end_s=fp.end_s)
    tracks = [t for t in result.tracks if t.kind == "tag"]
    times = np.asarray(result.times_s, np.float64)
    n = min([len(times), *(len(t.smoothed) for t in tracks)])
    labels = [t.name for t in tracks]
    scores = (np.stack([np.asarray(t.smoothed[:n], np.float64) for t in tracks], axis=1)
              if tracks else np.zeros((n, 0)))
    thresholds = [label_rules(config, name, "tag").enter for name in labels]
    tagged = shot_labels(shots, times[:n], scores, labels, thresholds) if labels else []
    tags = {t.shot: "; ".join(t.labels) for t in tagged}
    rows = [ShotRow(sh.shot, sh.start_s, sh.end_s, sh.start_frame, sh.end_frame, tags.get(sh.shot, ""))
            for sh in shots]
    return dataclasses.replace(result, shots=rows, cues=list(cues))
