"""The per-video timeline image: label scores over time with their segments.

Drawn on a bare :class:`matplotlib.figure.Figure` rendered by the Agg canvas,
never through ``pyplot``: no global figure registry to leak over thousands of
videos, no GUI backend switched on a user's interpreter, and safe to call
from worker threads. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.report.notes import Gap, gaps
from pipeline.report.text import plain_text
from pipeline.types import LabelTrack, VideoResult

# tab10 without its red, which is reserved for NSFW segments
TAG_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
               "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
NSFW_COLOUR = "#d62728"
# NSFW labels: reds and browns none of the tag colours is near
NSFW_COLOURS = [NSFW_COLOUR, "#8c1c13", "#f4a582", "#67001f", "#e7298a"]
_GAP_EPS_S = 1e-3  # gap bounds are noted to the millisecond


def write_timeline_png(result: VideoResult, out_dir: str | Path, *, title: str | None = None) -> Path:
    """Write ``timeline.png``: one row for tag labels and, when the video has
    NSFW tracks, a second row for them.

    Each label gets a line (smoothed score), faint dots (raw score), a dashed
    line at its threshold and shaded spans for its segments; NSFW segments
    are hatched red. A live stream's gaps are hatched grey, and no line
    crosses one. The x axis reads mm:ss (h:mm:ss past an hour).

    Returns:
        the path written.
    """
    fig = timeline_figure(result, title=title)
    path = Path(out_dir) / "timeline.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def timeline_figure(result: VideoResult, *, title: str | None = None):
    """The figure :func:`write_timeline_png` saves (a bare Agg figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tags = [t for t in result.tracks if t.kind != "nsfw"]
    nsfw = [t for t in result.tracks if t.kind == "nsfw"]
    rows = 2 if nsfw else 1
    fig = Figure(figsize=(12, 2.2 + 2.3 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    times = np.asarray(result.times_s, dtype=np.float64)
    end = _x_end(result, times)
    colours = track_colours(result.tracks)
    _draw_row(axes[0], tags, result, colours, "tags")
    if nsfw:
        _draw_row(axes[1], nsfw, result, colours, "NSFW")
    _format_time_axis(axes[-1], end)
    axes[-1].set_xlabel("time")
    if len(times) == 0:
        axes[0].text(0.5, 0.5, "no frames scored", transform=axes[0].transAxes,
                     ha="center", va="center", color="0.4")
    fig.suptitle(title if title is not None else _default_title(result), fontsize=11)
    plain_text(fig)  # labels and file names are drawn as typed: "$" is no mathtext
    return fig


def track_colours(tracks: Sequence[LabelTrack]) -> dict[tuple[str, str], str]:
    """Each track's colour, by ``(name, kind)``, in the image and the HTML
    alike: tag labels through :data:`TAG_COLOURS` in track order, NSFW
    labels through :data:`NSFW_COLOURS` (the first one red)."""
    colours: dict[tuple[str, str], str] = {}
    count = {"tag": 0, "nsfw": 0}
    for track in tracks:
        kind = "nsfw" if track.kind == "nsfw" else "tag"
        palette = NSFW_COLOURS if kind == "nsfw" else TAG_COLOURS
        colours[(track.name, track.kind)] = palette[count[kind] % len(palette)]
        count[kind] += 1
    return colours


def pieces(times: np.ndarray, gaps: Sequence[Gap]) -> list[slice]:
    """The runs of samples a line may join: ``times`` cut at every gap (a
    live stream's reconnect), so no line is drawn across one."""
    times = np.asarray(times, np.float64)
    cuts = {int(np.searchsorted(times, gap.start_s + _GAP_EPS_S, side="right")) for gap in gaps}
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(times)), len(times)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _broken_line(times: np.ndarray, values: np.ndarray, parts: list[slice]) -> tuple[np.ndarray, np.ndarray]:
    # matplotlib lifts the pen at a NaN: one between pieces breaks the line there
    xs, ys = [], []
    for part in parts:
        xs += [times[part], [np.nan]]
        ys += [np.asarray(values, np.float64)[part], [np.nan]]
    return (np.concatenate(xs[:-1]), np.concatenate(ys[:-1])) if parts else (times, values)


def _draw_row(ax, tracks: Sequence[LabelTrack], result: VideoResult,
              colours: dict[tuple[str, str], str], name: str) -> None:
    times = np.asarray(result.times_s, dtype=np.float64)
    breaks = gaps(result)
    parts = pieces(times, breaks)
    lone = [part.start for part in parts if part.stop - part.start == 1]  # a line of one point is not drawn
    for i, gap in enumerate(breaks):
        ax.axvspan(gap.start_s, gap.end_s, facecolor="0.9", hatch="xx", edgecolor="0.7", lw=0, gid="gap",
                   label="no frames (gap)" if i == 0 else "_gap")
    for track in tracks:
        colour = colours[(track.name, track.kind)]
        ax.plot(*_broken_line(times, track.smoothed, parts), color=colour, lw=1.5, label=track.name)
        if lone:
            ax.plot(times[lone], np.asarray(track.smoothed)[lone], "o", color=colour, label="_lone")
        ax.plot(times, track.raw, ".", color=colour, alpha=0.25, ms=3)
        ax.axhline(track.threshold, color=colour, ls="--", lw=0.8, alpha=0.8)
        for seg in (s for s in result.segments if s.label == track.name):
            if seg.kind == "nsfw":
                ax.axvspan(seg.start_s, seg.end_s, facecolor=NSFW_COLOUR, alpha=0.15,
                           hatch="//", edgecolor=NSFW_COLOUR, lw=0)
            else:
                ax.axvspan(seg.start_s, seg.end_s, color=colour, alpha=0.12, lw=0)
    ax.set_ylabel(f"{name} score")
    ax.set_ylim(*_y_limits(tracks))
    ax.grid(True, alpha=0.3)
    if tracks:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                  ncol=1 + len(tracks) // 16)


def _y_limits(tracks: Sequence[LabelTrack]) -> tuple[float, float]:
    values = [np.asarray(v, np.float64) for t in tracks for v in (t.raw, t.smoothed)]
    values = [v[np.isfinite(v)] for v in values if len(v)]
    lo = min([0.0, *(float(v.min()) for v in values if len(v))])
    hi = max([1.0, *(float(v.max()) for v in values if len(v))])
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def _x_end(result: VideoResult, times: np.ndarray) -> float:
    return time_extent(result, times)


def time_extent(result: VideoResult, times: np.ndarray) -> float:
    """Where a time axis ends: the decoded frames' extent (last sample plus
    half a step), stretched to the claimed duration or a segment's end only
    when that lies within ``max(step, 1 s)`` of it.

    Container metadata lies (a 28 KB MKV can claim 1e14 ms), so nothing is
    sized from the claimed duration alone.
    """
    t = np.asarray(times, dtype=np.float64)
    t = t[np.isfinite(t)]
    if len(t) == 0:
        return 1.0
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    step = step if math.isfinite(step) and step > 0 else 1.0
    end = float(t[-1]) + step / 2
    limit = end + max(step, 1.0)
    claimed = [seg.end_s for seg in result.segments]
    if result.info is not None and result.info.duration_s:
        claimed.append(float(result.info.duration_s))
    end = max([end, *(c for c in claimed if math.isfinite(c) and c <= limit)])
    return end if end > 0 else 1.0


def _format_time_axis(ax, end: float) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.set_xlim(0.0, end)
    ax.xaxis.set_major_locator(MultipleLocator(tick_step(end)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_clock(x, end >= 3600)))


# Tick spacings a clock reads at a glance; past the last, whole hours.
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def tick_step(end: float, max_ticks: int = 12) -> float:
    """A clock-friendly tick spacing in seconds (:data:`TICK_STEPS`: 1 s,
    5 s, 1 min, 15 min, ...), at most ``max_ticks`` steps up to ``end``."""
    for step in TICK_STEPS:
        if end / step <= max_ticks:
            return float(step)
    return float(3600 * np.ceil(end / 3600 / max_ticks))


def axis_ticks(end: float, max_ticks: int = 10) -> list[tuple[float, str]]:
    """``(time, label)`` of each tick from 0 to ``end`` at :func:`tick_step`
    spacing, labelled by :func:`format_clock` (h:mm:ss from an hour on)."""
    step = tick_step(end, max_ticks)
    return [(k * step, format_clock(k * step, end >= 3600)) for k in range(int(end // step) + 1)]


def format_clock(seconds: float, hours: bool = False) -> str:
    """``75.0`` → ``"01:15"``; with ``hours``, ``3725.0`` → ``"1:02:05"``."""
    total = int(round(max(seconds, 0.0)))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if hours else f"{m + 60 * h:02d}:{s:02d}"


def _default_title(result: VideoResult) -> str:
    tags = ", ".join(result.tags) if result.tags else "no tags"
    verdict = f" · NSFW: {result.nsfw_verdict}" if result.nsfw_verdict != "n/a" else ""
    return f"{result.name or result.input_path} · {tags}{verdict}"
