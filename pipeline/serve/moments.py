"""Moments: the search hits of one input that lie close together in time,
as one time range, the unit people look for ("the cup is on screen from
00:02 to 00:06"), rather than eight frames half a second apart.

Pure functions over :class:`~pipeline.search.Hit`; numpy-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.search import Hit

GAP_STEPS = 3  # hits up to this many sampling steps apart are one moment


@dataclass(frozen=True)
class Moment:
    """Hits of one input grouped into ``[start_s, end_s]``.

    ``end_s`` is the last hit's time plus one sampling step: a sampled frame
    stands for the step that follows it, so a single hit is a range one step
    long, and hits at 2.0 ... 5.5 s every 0.5 s cover 2.0-6.0 s.
    """

    input_path: str
    start_s: float
    end_s: float
    best_score: float
    best_time_s: float
    hits: int
    best_frame_index: int = -1  # the best hit's stored frame (its thumbnail)


def group_moments(hits: Sequence[Hit], step_s: Callable[[str], float], *,
                  gap_steps: float = GAP_STEPS,
                  duration_s: Callable[[str], float | None] = lambda _: None) -> list[Moment]:
    """Group ``hits`` into moments, best first.

    Args:
        step_s: an input's sampling step in seconds (how far apart its stored
            frames are).
        gap_steps: hits of one input at most this many steps apart join.
        duration_s: an input's duration, when known: a moment never ends after it.

    Returns:
        every hit in exactly one moment; moments ordered by best score (then
        input and start, so ties come out the same way every time).
    """
    by_input: dict[str, list[Hit]] = {}
    for hit in hits:
        by_input.setdefault(hit.input_path, []).append(hit)
    moments: list[Moment] = []
    for path, mine in by_input.items():
        step = max(float(step_s(path)), 1e-3)
        mine.sort(key=lambda h: h.time_s)
        run = [mine[0]]
        for hit in mine[1:]:
            if hit.time_s - run[-1].time_s <= gap_steps * step + 1e-9:
                run.append(hit)
            else:
                moments.append(_moment(run, step, duration_s(path)))
                run = [hit]
        moments.append(_moment(run, step, duration_s(path)))
    return sorted(moments, key=lambda m: (-m.best_score, m.input_path, m.start_s))


def _moment(run: list[Hit], step: float, duration: float | None) -> Moment:
    best = max(run, key=lambda h: h.score)
    end = run[-1].time_s + step
    if duration is not None and duration > run[-1].time_s:
        end = min(end, duration)
    return Moment(input_path=run[0].input_path, start_s=run[0].time_s, end_s=end,
                  best_score=best.score, best_time_s=best.time_s, hits=len(run),
                  best_frame_index=best.frame_index)
