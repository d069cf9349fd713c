"""Cut evidence: where, inside a gap between two samples, the picture changes at once.

Refinement decodes every frame of a gap once (cheap) and reads their
thumbnails (:mod:`pipeline.decode.prints`) before embedding any (dear).
Pixels never decide an edge: they only say where to probe first, and when
the frames next to a probe may be left unscored. The rule (docs/EDGES.md,
"Frame-accurate edges"):

* A **jump** is the mean absolute difference between the thumbnails of two
  neighbouring frames. A **cut** is a jump of at least ``CUT_MIN`` grey
  levels and ``CUT_OVER_NOISE`` times the gap's noise (the median of its
  other jumps: compression, motion).
* A gap is **clear** when it was decoded whole, holds exactly one cut ``c``,
  that cut is ``CUT_DOMINANCE`` times every other jump of the gap, changes
  the colours (4x4x4 histogram) of ``CUT_MIN_COLOUR`` of the picture at
  least, and the pictures on either side are steady: every frame from
  ``lo`` to ``c-1`` keeps the colours of frame ``lo`` (and every frame from
  ``c`` to ``hi`` those of frame ``hi``) to within ``SAME_SHOT`` of the
  cut's change. Colours, not pixels, because an object moving inside the
  picture keeps its label; whatever fades, slides in or leaves across the
  gap changes them and the gap is not clear.
* A side of a clear cut is **still** when none of its frames differs from
  its sample by more than ``STILL`` grey levels (compression noise). Only a
  still side's frame next to the cut may go unscored: a moving picture (an
  object drifting, a slow zoom) keeps its colours, but not always its score.

Pure: numpy only.
"""

from __future__ import annotations

import numpy as np

from pipeline.decode.prints import KEEP_JUMPS, colour_distance, colours, difference, top_jumps
from pipeline.types import GapEvidence, GapScan

CUT_MIN = 1.5  # grey levels (0-255) of mean absolute thumbnail difference
CUT_OVER_NOISE = 6.0  # times the gap's median jump
NOISE_FLOOR = 0.25  # grey levels: a still picture's median jump is not a noise level to divide by
CUT_DOMINANCE = 4.0  # a clear cut is this many times every other jump of its gap
SAME_SHOT = 0.5  # a side's frames keep its sample's colours to within this share of the cut's change
STILL = 1.5  # grey levels: a side no frame of which differs more from its sample is a still picture
CUT_MIN_COLOUR = 0.02  # a clear cut changes the colour of at least this share of the picture


def evidence(scan: GapScan) -> GapEvidence:
    """What ``scan``'s thumbnails say about its gap (see the module)."""
    indices = np.asarray(scan.indices, np.int64)
    thumbs = np.asarray(scan.thumbs)
    if len(indices) < 2:
        return GapEvidence(scan.lo, scan.hi)
    jumps = _jumps(indices, thumbs)
    rest = sorted(jumps.values())[:-KEEP_JUMPS]  # the noise is what the candidates are not
    noise = max(float(np.median(rest)) if rest else 0.0, NOISE_FLOOR)
    cuts = tuple(i for i, d in top_jumps(indices, thumbs, KEEP_JUMPS)
                 if d >= CUT_MIN and d >= CUT_OVER_NOISE * noise)
    whole = len(indices) == scan.hi - scan.lo + 1 and indices[0] == scan.lo and indices[-1] == scan.hi
    times = _cut_times(scan, cuts)
    if not (whole and len(cuts) == 1 and _steady(indices, thumbs, jumps, cuts[0])):
        return GapEvidence(scan.lo, scan.hi, cuts, times=times)
    k = int(np.searchsorted(indices, cuts[0]))
    still = (max(difference(thumbs[0], t) for t in thumbs[:k]) <= STILL,
             max(difference(thumbs[-1], t) for t in thumbs[k:]) <= STILL)
    return GapEvidence(scan.lo, scan.hi, cuts, True, still, times)


def _cut_times(scan: GapScan, cut_frames: tuple[int, ...]) -> tuple[tuple[int, float], ...]:
    """``(frame, pts_s)`` of the frames either side of each cut that the scan
    kept in full (it keeps those of its largest jumps, so every cut's)."""
    if scan.frames is None:
        return ()
    wanted = {f for c in cut_frames for f in (c - 1, c)}
    return tuple((int(i), float(t)) for i, t in zip(scan.frames.indices, scan.frames.times_s)
                 if int(i) in wanted)


def _jumps(indices: np.ndarray, thumbs: np.ndarray) -> dict[int, float]:
    """Jump into each frame from its decoded predecessor, by the frame's index."""
    return {int(indices[k]): difference(thumbs[k - 1], thumbs[k]) for k in range(1, len(indices))
            if indices[k] == indices[k - 1] + 1}


def _steady(indices: np.ndarray, thumbs: np.ndarray, jumps: dict[int, float], cut: int) -> bool:
    """The cut towers over every other jump, and each side of it keeps the
    colours of its bracketing frame (colour histograms: what moves inside
    the picture keeps them, what appears, leaves or fades does not)."""
    size = jumps[cut]
    others = [d for i, d in jumps.items() if i != cut]
    if others and size < CUT_DOMINANCE * max(others):
        return False
    hists = [colours(t) for t in thumbs]
    k = int(np.searchsorted(indices, cut))
    change = colour_distance(hists[k - 1], hists[k])
    if change < CUT_MIN_COLOUR:
        return False
    return (max(colour_distance(hists[0], h) for h in hists[:k]) <= SAME_SHOT * change and
            max(colour_distance(hists[-1], h) for h in hists[k:]) <= SAME_SHOT * change)
