"""Frame-accurate segment edges from sparse samples: plan and bisect.

Coarse sampling puts a segment edge somewhere between two samples: the last
one on one side and the first one on the other. The score changes between
them, so the edge frame lies strictly between their frame indices (or on
the later one). Refinement bisects that gap: probe the middle frame, score
it, and keep the half where the label's score still crosses its threshold,
until the two brackets are neighbouring frames. A start edge is the first
frame whose raw score is ``>= enter``; an end edge is the last frame whose
raw score is ``>= exit`` (the hysteresis rules of
:func:`pipeline.analysis.smooth.hysteresis`, applied frame by frame).

A gradual change (a fade, an object sliding in) has no single edge frame:
bisection then finds *a* frame where the score crosses the threshold, which
is what the segment rules mean by an edge. With several crossings in one gap
it finds one of them.

Pixels guide the search (:mod:`pipeline.analysis.cuts`): when the caller decoded a
gap whole, its cut frames are probed first (each only while the probe bound
still holds from there), and in a *clear* gap (one hard cut between two
steady pictures) an edge is pinned at the cut once one of the cut's two
frames is scored on its side of the threshold and the other lies on a
*still* side (the same picture as its sample, whose score it takes); every
score involved must be ``MARGIN`` clear of the threshold. The bound
``ceil(log2(gap)) + 1`` scored frames per edge holds either way.

Refinement never adds or removes a segment: it only moves the edges the
coarse pass found, and an edge it cannot pin (no crossing among the raw
scores near it, an undecodable frame) keeps its coarse time.

Pure: no decoding, no model. :class:`Refinement` asks for frame indices
(:meth:`Refinement.wanted`) and is told their scores (:meth:`Refinement.feed`);
the caller decides how frames are decoded, embedded and batched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.types import GapEvidence, Interval, Segment

START, END = "start", "end"


@dataclass(frozen=True)
class CoarseSegment:
    """A segment found on the coarse samples, with what refining it needs.

    Attributes:
        segment: the segment as the coarse pass reports it.
        column: its label's column in the score matrix.
        interval: the samples ``[start, stop)`` it covers.
        enter: the label's enter threshold.
        exit: the label's exit threshold.
    """

    segment: Segment
    column: int
    interval: Interval
    enter: float
    exit: float


@dataclass
class EdgeSearch:
    """One edge being bisected between frame ``lo`` and frame ``hi``.

    Invariant: frame ``lo`` is on the segment's *before* side and frame
    ``hi`` on its *after* side (for a start edge: ``lo`` absent, ``hi``
    present; for an end edge: ``lo`` present, ``hi`` absent). ``hi_open``:
    ``hi`` lies past the last sample and may be past the end of the stream;
    a probe there that finds no frame is on the after side too.
    """

    owner: int  # position of the segment in the plan's input
    side: str
    column: int
    threshold: float
    lo: int
    hi: int
    hi_open: bool = False
    failed: bool = False
    probes: int = 0  # bisection steps taken
    frames: int = 0  # of which on a real frame (not past the end of the stream)
    budget: int | None = None  # the most steps allowed (max_probes); None: plain bisection only
    gap: tuple[int, int] = (0, 0)  # the brackets the search started from (its cut evidence's key)
    by_cut: bool = False  # pinned on cut evidence: the frame before the cut was not scored

    def __post_init__(self) -> None:
        if self.gap == (0, 0):
            self.gap = (self.lo, self.hi)

    @property
    def pinned(self) -> bool:
        """True once the brackets are neighbouring frames."""
        return not self.failed and self.hi - self.lo <= 1

    @property
    def active(self) -> bool:
        return not self.failed and not self.pinned

    @property
    def edge_frame(self) -> int:
        """The segment's first frame (start) or last frame (end)."""
        return self.hi if self.side == START else self.lo

    def after(self, score: float) -> bool:
        """Whether a frame with this score lies on the after side."""
        present = score >= self.threshold
        return present if self.side == START else not present

    def clearly(self, score: float, after: bool, margin: float) -> bool:
        """Whether ``score`` is on the after (or before) side by ``margin`` at least."""
        present = (self.side == START) == after
        return (score - self.threshold if present else self.threshold - score) >= margin


def max_probes(gap_frames: int) -> int:
    """The most frames one edge may probe: ``ceil(log2(gap)) + 1`` for a gap
    of ``gap_frames`` frames strictly between its brackets (0 for none)."""
    return 0 if gap_frames <= 0 else math.ceil(math.log2(gap_frames)) + 1


# --------------------------------------------------------------------------- planning


def plan(coarse: Sequence[CoarseSegment], indices: np.ndarray, raw: np.ndarray, *,
         reach: int = 1, open_end: bool = True, step_frames: int = 1,
         frames_total: int | None = None) -> list[EdgeSearch]:
    """One search per edge that can be refined.

    Args:
        coarse: the segments, each with its label's column and thresholds.
        indices: frame index of each coarse sample, ascending.
        raw: the samples' raw scores, shape (samples, labels).
        reach: how many samples away from the smoothed edge the raw scores'
            crossing may be (smoothing moves an edge by up to half a window).
        open_end: a segment holding the last sample may end after it (False
            when sampling stopped early, at ``max_frames``).
        step_frames: the sampling step in frames, at least: without
            ``frames_total``, the stream is taken to end fewer than twice
            that many frames after the last sample (so a varying frame rate
            is covered), and found by probing past it.
        frames_total: frames in the stream, when the decoder counted them:
            a segment holding the last sample is searched up to that end.

    Returns:
        searches in the order of ``coarse``, start before end; an edge with
        no raw crossing near it gets none and keeps its coarse time.
    """
    idx = np.asarray(indices, np.int64)
    scores = np.asarray(raw, np.float64)
    n = len(idx)
    step = 2 * max(int(np.max(np.diff(idx))) if n > 1 else 1, step_frames)
    searches: list[EdgeSearch] = []
    for owner, (item, (low, high)) in enumerate(zip(coarse, _neighbours(coarse, n))):
        col, iv = scores[:, item.column], item.interval
        g = _start_gap(col, iv, item.enter, reach, low)
        if g is not None:
            lo, hi = int(idx[g - 1]) if g > 0 else -1, int(idx[g])
            searches.append(EdgeSearch(owner, START, item.column, item.enter, lo=lo, hi=hi,
                                       budget=max_probes(hi - lo - 1)))
        g = _end_gap(col, iv, item.exit, reach, high, open_end)
        if g is not None:
            if g < n:
                hi, open_ = int(idx[g]), False
            elif frames_total is not None:
                hi, open_ = max(int(frames_total), int(idx[-1]) + 1), False  # one past the last frame
            else:
                hi, open_ = int(idx[-1]) + step + 1, True
            lo = int(idx[g - 1])
            searches.append(EdgeSearch(owner, END, item.column, item.exit, lo=lo, hi=hi, hi_open=open_,
                                       budget=None if open_ else max_probes(hi - lo - 1)))
    return searches


def _neighbours(coarse: Sequence[CoarseSegment], n: int) -> list[tuple[int, int]]:
    """Per segment, the sample range its edges' gaps must stay within: after
    the previous segment of its label, before the next one."""
    bounds = []
    for item in coarse:
        same = [c.interval for c in coarse if c.column == item.column and c is not item]
        low = max([iv.stop for iv in same if iv.stop <= item.interval.start], default=0)
        high = min([iv.start for iv in same if iv.start >= item.interval.stop], default=n + 1)
        bounds.append((low, high))
    return bounds


def _start_gap(col: np.ndarray, iv: Interval, enter: float, reach: int, low: int) -> int | None:
    """The sample ``g`` that starts the raw crossing nearest the interval's
    start: ``col[g-1] < enter <= col[g]`` (``g == 0``: nothing before)."""
    for g in _nearest(iv.start, reach, max(low + 1 if low else 0, 0), iv.stop - 1):
        if col[g] >= enter and (g == 0 or not col[g - 1] >= enter):
            return g
    return None


def _end_gap(col: np.ndarray, iv: Interval, exit_: float, reach: int, high: int,
             open_end: bool) -> int | None:
    """The first absent sample ``g`` of the raw crossing nearest the
    interval's end: ``col[g-1] >= exit > col[g]`` (``g == len``: past the last)."""
    n = len(col)
    for g in _nearest(iv.stop, reach, iv.start + 1, min(high - 1, n)):
        if col[g - 1] >= exit_ and (g == n and open_end or g < n and not col[g] >= exit_):
            return g
    return None


def _nearest(centre: int, reach: int, low: int, high: int) -> list[int]:
    """``centre``, then ``centre-1``, ``centre+1``, ... within ``[low, high]``."""
    out = []
    for d in range(reach + 1):
        for g in ((centre,) if d == 0 else (centre - d, centre + d)):
            if low <= g <= high:
                out.append(g)
    return out


# --------------------------------------------------------------------------- bisection


MARGIN = 0.1  # score units: how far from its threshold a score must be for cut evidence to stand
MAX_SCAN_FRAMES = 1200  # a longer gap is bisected without decoding it whole


@dataclass
class Refinement:
    """The searches of one input and every frame score known so far.

    ``known`` maps a frame index to ``(pts_s, scores)``; it starts with the
    coarse samples (and any refinement frames kept from an earlier run).
    ``evidence`` maps a gap's brackets ``(lo, hi)`` to what its pixels say
    (:mod:`pipeline.analysis.cuts`): searches in that gap probe at its cuts first
    and, in a clear gap, pin an edge at its cut once the cut frame's own
    score confirms it (:meth:`_pin_at_cut`).
    """

    searches: list[EdgeSearch]
    known: dict[int, tuple[float, np.ndarray]] = field(default_factory=dict)
    missing: set[int] = field(default_factory=set)
    probed: set[int] = field(default_factory=set)  # frames asked for (decoded) by this refinement
    evidence: dict[tuple[int, int], GapEvidence] = field(default_factory=dict)
    margin: float = MARGIN

    def gaps(self) -> list[tuple[int, int]]:
        """Gaps worth decoding whole: those of searches still open, between
        two samples, that have no evidence yet."""
        return sorted({s.gap for s in self.searches
                       if s.active and s.budget is not None and s.gap[0] >= 0 and s.gap not in self.evidence
                       and s.gap[1] - s.gap[0] - 1 <= MAX_SCAN_FRAMES})

    def wanted(self) -> list[int]:
        """Frames to score next, ascending; empty once every search is over.

        Steps each search through frames already known first, so stored
        frames cost nothing."""
        out: set[int] = set()
        for search in self.searches:
            while search.active:
                if self._pin_at_cut(search):
                    continue
                mid = self._next_probe(search)
                if mid in self.known or mid in self.missing:
                    self._step(search, mid)
                    continue
                out.add(mid)
                break
        return sorted(out)

    def _next_probe(self, search: EdgeSearch) -> int:
        """The gap's cut frames (and the frames just before them) first, each
        while the probe bound still holds from there; else the middle. At a
        clear cut, the frame on a moving side first: it cannot go unscored."""
        ev = self.evidence.get(search.gap)
        if ev is not None and search.budget is not None:
            room = search.budget - search.probes
            for cut in ev.cuts:
                for frame in _cut_order(search.lo, search.hi, cut, room, ev):
                    if search.lo < frame < search.hi and _fits(search.lo, search.hi, frame, room):
                        return frame
        return (search.lo + search.hi) // 2

    def _pin_at_cut(self, search: EdgeSearch) -> bool:
        """Pin the edge at a clear gap's cut with one of its two frames unscored.

        The cut ``c`` is the edge when frame ``c-1`` is on the before side and
        frame ``c`` on the after side. One of them must be scored (a sample,
        or a probe), and ``margin`` clear of the threshold; the other may be
        taken from its side's sample when that side is still (the very same
        picture) and the sample's score is ``margin`` clear too. Only while
        the search still holds the cut between its brackets."""
        ev = self.evidence.get(search.gap)
        if ev is None or not ev.clear:
            return False
        cut = ev.cuts[0]
        if not (search.lo <= cut - 1 and cut <= search.hi) or (search.lo, search.hi) == (cut - 1, cut):
            return False
        before = self._at_cut(search, cut - 1, ev.lo, ev.still[0], after=False)
        after = self._at_cut(search, cut, ev.hi, ev.still[1], after=True)
        if "scored" not in (before, after) or None in (before, after):
            return False
        search.lo, search.hi, search.by_cut = cut - 1, cut, "inferred" in (before, after)
        return True

    def _at_cut(self, search: EdgeSearch, frame: int, sample: int, still: bool, *, after: bool) -> str | None:
        """``"scored"`` when ``frame`` has a score clearly on the wanted side,
        ``"inferred"`` when it may be taken from its still side's sample,
        None when neither holds (yet)."""
        col, known = search.column, self.known
        if frame in known:
            return "scored" if search.clearly(float(known[frame][1][col]), after, self.margin) else None
        if still and sample in known and search.clearly(float(known[sample][1][col]), after, self.margin):
            return "inferred"
        return None

    def feed(self, frames: Mapping[int, tuple[float, np.ndarray]], asked: Sequence[int]) -> None:
        """Record the scores of the frames asked for; any not in ``frames``
        could not be decoded (or lie past the end of the stream)."""
        for index in asked:
            self.probed.add(index)
            if index in frames:
                self.known[index] = (float(frames[index][0]), np.asarray(frames[index][1]))
            else:
                self.missing.add(index)

    def _step(self, search: EdgeSearch, mid: int) -> None:
        search.probes += 1
        if mid in self.missing:
            if search.hi_open:
                search.hi = mid  # no frame there: the stream ended before it
            else:
                search.failed = True  # an undecodable frame inside the gap
            return
        search.frames += 1
        if search.after(float(self.known[mid][1][search.column])):
            search.hi = mid
        else:
            search.lo = mid

    def give_up(self) -> None:
        """End every search still waiting for a frame nobody will score (no
        decoder at hand): its edge keeps its coarse time."""
        self.wanted()
        for search in self.searches:
            if search.active:
                search.failed = True

    def run(self, score_frames) -> Refinement:
        """Bisect to the end with ``score_frames(indices) -> {index: (pts_s,
        scores)}`` (a synchronous prober; tests and single inputs)."""
        while wanted := self.wanted():
            self.feed(score_frames(wanted), wanted)
        return self


def _cut_order(lo: int, hi: int, cut: int, room: int, ev: GapEvidence) -> tuple[int, int]:
    """Which of a cut's two frames to probe first. At a clear cut with a
    still side, one scored frame may pin the edge: the moving side's (it
    cannot go unscored), else the cut frame ``cut``. Where both must be
    scored, the one that, found on its expected side, leaves the other
    within the probe bound: probing ``cut`` first leaves ``(lo, cut)`` to
    hold ``cut - 1``, probing ``cut - 1`` first leaves ``(cut - 1, hi)`` to
    hold ``cut`` (with the cut far from ``lo``, only that order confirms the
    edge in two probes)."""
    if ev.clear and ev.still != (False, False):
        return (cut - 1, cut) if ev.still == (False, True) else (cut, cut - 1)
    if _fits(lo, cut, cut - 1, room - 1) or not _fits(cut - 1, hi, cut, room - 1):
        return cut, cut - 1
    return cut - 1, cut


def _fits(lo: int, hi: int, frame: int, room: int) -> bool:
    """Whether probing ``frame`` between ``lo`` and ``hi`` leaves either side
    bisectable in the ``room - 1`` steps that remain."""
    return room >= 1 and max(frame - lo - 1, hi - frame - 1) <= 2 ** (room - 1) - 1


def seed(indices: np.ndarray, times_s: np.ndarray, raw: np.ndarray,
         extra: Mapping[int, tuple[float, np.ndarray]] | None = None) -> dict[int, tuple[float, np.ndarray]]:
    """The ``known`` map of a :class:`Refinement`: coarse samples plus ``extra``."""
    known = dict(extra or {})
    known.update({int(i): (float(t), np.asarray(r)) for i, t, r in zip(indices, times_s, raw)})
    return known


# --------------------------------------------------------------------------- results


def refined_segments(coarse: Sequence[CoarseSegment], refinement: Refinement, *,
                     frame_s: float, duration_s: float | None) -> list[Segment]:
    """``coarse``'s segments with every pinned edge moved to its frame.

    A pinned start becomes the PTS of the segment's first frame; a pinned end
    the end of its last frame: the next frame's PTS when known, else its own
    PTS plus ``frame_s`` (clipped to ``duration_s``). A frame left unscored
    at a cut takes the PTS its gap's scan recorded (a store older than
    format 5 recorded none: the scored neighbour's PTS plus or minus
    ``frame_s`` stands in). An edge that could not be pinned, or whose time
    is unknown, keeps its coarse time; a segment whose edges would cross
    keeps both coarse edges.
    """
    by_owner: dict[tuple[int, str], EdgeSearch] = {(s.owner, s.side): s for s in refinement.searches}
    out = []
    for owner, item in enumerate(coarse):
        seg = item.segment
        start = _pinned(by_owner.get((owner, START)))
        end = _pinned(by_owner.get((owner, END)))
        start_s = _start_time(start, refinement, frame_s) if start else None
        end_s = _end_time(end, refinement, frame_s, duration_s) if end else None
        start, end = (start if start_s is not None else None), (end if end_s is not None else None)
        first_s = start_s if start else seg.start_s
        last_s = end_s if end else seg.end_s
        crossed = start is not None and end is not None and start.edge_frame > end.edge_frame
        if crossed or not first_s < last_s:
            start = end = None
            first_s, last_s = seg.start_s, seg.end_s
        out.append(replace(seg, start_s=first_s, end_s=last_s,
                           start_frame=start.edge_frame if start else None,
                           end_frame=end.edge_frame if end else None,
                           refined=_refined_label(start is not None, end is not None)))
    return out


def _pinned(search: EdgeSearch | None) -> EdgeSearch | None:
    return search if search is not None and search.pinned else None


def _frame_time(refinement: Refinement, search: EdgeSearch, frame: int) -> float | None:
    """The PTS of ``frame``: scored, else recorded by the scan of the search's gap."""
    if frame in refinement.known:
        return refinement.known[frame][0]
    evidence = refinement.evidence.get(search.gap)
    return evidence.time_of(frame) if evidence is not None else None


def _start_time(search: EdgeSearch, refinement: Refinement, frame_s: float) -> float | None:
    """The PTS of a pinned start's first frame (``hi``)."""
    own = _frame_time(refinement, search, search.hi)
    if own is not None:
        return own
    before = _frame_time(refinement, search, search.lo) if search.lo >= 0 else None
    return before + frame_s if before is not None else None


def _end_time(search: EdgeSearch, refinement: Refinement, frame_s: float,
              duration_s: float | None) -> float | None:
    """The end of a pinned end's last frame (``lo``): the next frame's PTS
    when known, else its own PTS plus ``frame_s`` (clipped to the duration)."""
    if search.hi not in refinement.missing:
        after = _frame_time(refinement, search, search.hi)
        if after is not None:
            return after
    own = _frame_time(refinement, search, search.lo)
    if own is None:
        return None
    end = own + frame_s
    return min(end, duration_s) if duration_s and duration_s > own else end


def _refined_label(start: bool, end: bool) -> str:
    return {(True, True): "both", (True, False): "start", (False, True): "end"}.get((start, end), "none")
