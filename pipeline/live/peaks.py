"""The picture at each segment's peak, kept while a live stream plays: the
thumbnails of its report (a stream cannot be read again for them).

A segment's peak is its sample with the highest smoothed score (the first,
on a tie), as :func:`pipeline.report.stills.peak_time` finds it. Only the
pictures that may still become a peak are held, so memory stays bounded:

* a sample's picture waits until every label's smoothed value of it is final;
* per label, one picture per *stretch* (samples at or above the exit
  threshold, from the first at or above the enter threshold): its best
  sample. A hysteresis run is one stretch, and a segment a few merged runs;
* a stretch goes once no segment can take it: when a segment of its label
  closes after it, or when it lies before every unsettled run;
* the pictures of closed segments are kept as JPEG, the first
  ``MAX_THUMBS`` by start (the thumbnails a report shows).

The pictures are the model's input (its short side, e.g. 224 pixels),
kept at most at a thumbnail's size (180).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from pipeline.config import LabelRules
from pipeline.report.stills import MAX_THUMBS, THUMB_SHORT_SIDE
from pipeline.types import Segment

MAX_STRETCHES = 64  # per label; beyond it the two oldest become one
_EPS = 1e-6


@dataclass
class _Stretch:
    last_s: float
    best: float
    best_s: float
    picture: np.ndarray | bytes


class PeakPictures:
    """Pictures of one stream's segment peaks.

    Args:
        rules: per label, in track order.
        max_kept: closed segments whose picture is kept.
    """

    def __init__(self, rules: list[LabelRules], max_kept: int = MAX_THUMBS):
        self.rules, self.max_kept = rules, max_kept
        self.done = [0] * len(rules)  # per label: samples whose final value was seen
        self._pending: dict[int, tuple[float, np.ndarray]] = {}  # sample -> (time, picture)
        self._open: list[_Stretch | None] = [None] * len(rules)
        self._closed: list[list[_Stretch]] = [[] for _ in rules]
        self._kept: dict[tuple[str, str, float, float], tuple[float, bytes]] = {}

    def sample(self, number: int, time_s: float, image: np.ndarray) -> None:
        """Sample ``number`` of the stream was scored."""
        self._pending[number] = (time_s, image)

    def final(self, label: int, number: int, value: float) -> None:
        """Label ``label``'s smoothed value of sample ``number`` is final."""
        r = self.rules[label]
        time_s, image = self._pending[number]
        self.done[label] = number + 1
        if value >= r.exit:
            cur = self._open[label]
            if cur is None and value >= r.enter:
                cur = self._open[label] = _Stretch(time_s, value, time_s, image)
            elif cur is not None and value > cur.best:
                cur.best, cur.best_s, cur.picture = value, time_s, image
            if cur is not None:
                cur.last_s = time_s
        else:  # below exit (or NaN): the stretch is over
            self._end(label)
        low = min(self.done)
        for n in [n for n in self._pending if n < low]:
            del self._pending[n]

    def closed(self, label: int, segment: Segment) -> None:
        """A segment of ``label`` closed: keep its peak's picture."""
        inside = [s for s in (*self._closed[label], self._open[label])
                  if s is not None and segment.start_s - _EPS <= s.best_s <= segment.end_s + _EPS]
        if inside:
            best = max(inside, key=lambda s: s.best)  # max() keeps the first of equals
            key = (segment.label, segment.kind, segment.start_s, segment.end_s)
            self._kept[key] = (best.best_s, _jpeg(best.picture))
            if len(self._kept) > self.max_kept:
                del self._kept[max(self._kept, key=lambda k: (k[2], k[3]))]
        self._closed[label] = [s for s in self._closed[label] if s.last_s > segment.end_s + _EPS]

    def settled_before(self, label: int, time_s: float | None) -> None:
        """No run of ``label`` before ``time_s`` can change any more (None: none is open)."""
        closed = self._closed[label]
        self._closed[label] = [s for s in closed if time_s is not None and s.last_s >= time_s - _EPS]

    def piece_ended(self) -> None:
        """A gap: every run has settled."""
        for label in range(len(self.rules)):
            self._open[label] = None
            self._closed[label] = []

    def pictures_at(self, times: list[float]) -> list[np.ndarray | None]:
        """The kept picture of each peak time (a segment's peak, else of the
        segment that holds the time); None where none was kept."""
        from PIL import Image

        out: list[np.ndarray | None] = []
        for t in times:
            exact = [v for v in self._kept.values() if abs(v[0] - t) <= _EPS]
            around = [v for k, v in self._kept.items() if k[2] - _EPS <= t <= k[3] + _EPS]
            found = (exact or around or [None])[0]
            out.append(None if found is None else np.asarray(Image.open(io.BytesIO(found[1])).convert("RGB")))
        return out

    def _end(self, label: int) -> None:
        cur = self._open[label]
        if cur is None:
            return
        cur.picture = _jpeg(cur.picture)
        closed = self._closed[label]
        closed.append(cur)
        self._open[label] = None
        if len(closed) > MAX_STRETCHES:  # an ever-flickering label: the oldest two become one
            a, b = closed[0], closed[1]
            closed[:2] = [b if b.best > a.best else _Stretch(b.last_s, a.best, a.best_s, a.picture)]


def _jpeg(picture: np.ndarray | bytes) -> bytes:
    """A picture as JPEG, its short side at most a thumbnail's."""
    if isinstance(picture, bytes):
        return picture
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(picture))
    scale = THUMB_SHORT_SIDE / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
