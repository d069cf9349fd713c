"""Segments of a live stream, opened and closed as samples arrive.

The rules are :mod:`pipeline.analysis.smooth`'s, applied by its own functions to
the part of the stream that is still open to change, so a stream yields the
segments a file run of the same samples yields:

* a smoothed value is final once the filter's window has passed it (half a
  window of lag for ``median`` / ``moving_average``; none for ``ema`` and
  ``none``);
* hysteresis, gap merging and the minimum duration run over the final
  values from the last settled sample on (earlier samples are kept a while
  as context, never able to start a run);
* a run is settled when no later run can merge with it: the stream has
  gone on for ``merge_gap_s`` beyond it.

Events, per label:

* tags: ``open`` once a segment is long enough to be kept, ``close`` when
  it is settled (with its final span, peak and mean);
* NSFW labels: ``nsfw`` as soon as the smoothed score crosses the
  threshold (moderation wants the earliest word), then ``confirm`` once the
  minimum duration is reached, or ``retract`` when it ends short; a
  confirmed one ends with ``close``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.analysis import smooth
from pipeline.config import LabelRules, label_rules
from pipeline.types import Segment

CONTEXT = 32  # settled samples kept before the open part: the sample step needs neighbours
TRIM_AT = 1024  # settled samples dropped once this many pile up
_EPS = 1e-6


@dataclass(frozen=True)
class Event:
    """A change in a label's presence. ``segment`` is set on ``close``."""

    event: str  # open, close, nsfw, confirm, retract
    label: str
    kind: str
    start_s: float
    end_s: float | None = None
    segment: Segment | None = None

    def as_dict(self) -> dict:
        out = {"event": self.event, "label": self.label, "kind": self.kind,
               "start_s": round(self.start_s, 3)}
        if self.end_s is not None:
            out["end_s"] = round(self.end_s, 3)
        if self.segment is not None:
            seg = self.segment
            out.update(duration_s=round(seg.duration_s, 3), peak=round(seg.peak, 6),
                       mean=round(seg.mean, 6))
        return out


def rules_for(config, names, kinds) -> list[LabelRules]:
    """Every label's rules from the config, as file runs read them."""
    return [label_rules(config, name, kind) for name, kind in zip(names, kinds)]


class LabelTracker:
    """One label over one unbroken piece of a stream (a gap starts a new one)."""

    def __init__(self, rules: LabelRules):
        self.rules = rules
        self.times: list[float] = []
        self.raw: list[float] = []
        self.smoothed: list[float] = []  # final values only
        self.trimmed = 0  # samples dropped from the front of the lists
        self.base = 0  # first local sample not settled yet
        # run -> open | provisional | confirmed, keyed by the run's first sample time: its span's
        # start moves with the sampling step's estimate (the median spacing so far), its first
        # sample does not (only final smoothed values start a run)
        self.states: dict[float, str] = {}

    @property
    def final_count(self) -> int:
        """Samples of this piece whose smoothed value is final."""
        return self.trimmed + len(self.smoothed)

    @property
    def unsettled_from(self) -> float | None:
        """Stream time of the first sample a run may still start at or grow
        from; None when every sample so far is final and settled."""
        return self.times[self.base] if self.base < len(self.times) else None

    def value(self, position: int) -> float:
        """The final smoothed value of the piece's sample ``position``."""
        return self.smoothed[position - self.trimmed]

    def add(self, time_s: float, raw: float) -> list[Event]:
        self.times.append(float(time_s))
        self.raw.append(float(raw))
        self._finalise(ended=False)
        return self._settle(ended=False)

    def finish(self) -> list[Event]:
        """The piece ended: every value is final, every run settles."""
        self._finalise(ended=True)
        return self._settle(ended=True)

    # ------------------------------------------------------------------ smoothing

    def _finalise(self, ended: bool) -> None:
        r, n, k = self.rules, len(self.raw), len(self.smoothed)
        if r.method == "none" or r.window_s == 0:
            self.smoothed += self.raw[k:]
        elif r.method == "ema":  # causal: one step of smooth's own filter per sample
            for i in range(k, n):
                if i == 0:
                    self.smoothed.append(self.raw[0])
                    continue
                pair = smooth.smooth(np.array([self.smoothed[i - 1], self.raw[i]]),
                                     np.array(self.times[i - 1:i + 1]), "ema", r.window_s)
                self.smoothed.append(float(pair[1]))
        elif n >= 2 or ended:  # one sample tells no step, so no window
            half = smooth.window_samples(np.asarray(self.times[-64:]), r.window_s) // 2
            upto = n if ended else n - half
            if upto > k:
                lo, hi = max(0, k - half), min(n, upto + half)
                values = smooth.smooth(np.asarray(self.raw[lo:hi]), np.asarray(self.times[lo:hi]),
                                       r.method, r.window_s)
                self.smoothed += [float(v) for v in values[k - lo:upto - lo]]

    # ------------------------------------------------------------------ segments

    def _settle(self, ended: bool) -> list[Event]:
        r, n = self.rules, len(self.smoothed)
        if n <= self.base:
            return []
        lo = max(0, self.base - CONTEXT)
        t = np.asarray(self.times[lo:n], np.float64)
        s = np.asarray(self.smoothed[lo:n], np.float64)
        s[:self.base - lo] = -np.inf  # settled context: never starts a run
        step = smooth.sample_step(t)
        runs = smooth.merge_gaps(smooth.hysteresis(s, r.enter, r.exit), t, r.merge_gap_s)
        kept = {seg.start_s: seg for seg in smooth.detect_segments(
            r.label, r.kind, t, s, enter=r.enter, exit=r.exit, min_duration_s=r.min_duration_s,
            merge_gap_s=r.merge_gap_s, duration_s=None)}
        events: list[Event] = []
        new_base = n
        seen = set()
        for run in runs:
            start, end = smooth.interval_span(run, t, step, None)
            settled = ended or (run.stop < len(t) and
                                t[-1] - t[run.stop - 1] - step >= r.merge_gap_s + _EPS)
            key = float(t[run.start])
            seen.add(key)
            events += self._announce(key, start, end, kept.get(start), settled)
            if not settled:
                new_base = min(new_base, lo + run.start)
        # a run merged into the one before it (a gap closed up) is that run now
        self.states = {k: v for k, v in self.states.items() if k in seen or k < t[0]}
        self.base = new_base
        self._trim()
        return events

    def _announce(self, key: float, start: float, end: float, segment: Segment | None,
                  settled: bool) -> list[Event]:
        """Events for one run (``key``: its first sample's time): what changed since it was last seen."""
        r = self.rules
        state = self.states.get(key)
        long_enough = end - start >= r.min_duration_s - _EPS and end > start
        out = []
        if r.kind == "nsfw":
            if state is None:
                out.append(Event("nsfw", r.label, r.kind, start))
                state = "provisional"
            if state == "provisional" and long_enough and (segment is not None or not settled):
                out.append(Event("confirm", r.label, r.kind, start))
                state = "confirmed"
        elif state is None and long_enough and (segment is not None or not settled):
            out.append(Event("open", r.label, r.kind, start))
            state = "open"
        self.states[key] = state
        if not settled:
            return out
        del self.states[key]
        if segment is not None:
            out.append(Event("close", r.label, r.kind, segment.start_s, segment.end_s, segment))
        elif state is not None:  # announced, then ended too short
            out.append(Event("retract", r.label, r.kind, start, end))
        return out

    def _trim(self) -> None:
        cut = min(self.base - CONTEXT, len(self.smoothed) - 64)
        if cut >= TRIM_AT:
            del self.times[:cut], self.raw[:cut], self.smoothed[:cut]
            self.base -= cut
            self.trimmed += cut
