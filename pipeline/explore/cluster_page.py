"""``clusters.html``: the 2-D projection of a clustering as one self-contained
page (inline SVG, no network): axes, a legend with each cluster's size (and,
named from a config, what it holds), and on hover the frame's input, time,
cluster, distance and a thumbnail.

Thumbnails are small JPEG data URIs re-read from the inputs at the frames'
times; at most ``THUMB_MAX`` of them (outliers first, then frames spread
over each cluster), ``THUMB_SIDE`` pixels high, so the page stays small.
The page's CSS and script are package files beside this module
(``cluster.css``, ``cluster.js``), inlined.

Rendering only: it takes a finished :class:`~pipeline.explore.cluster.Clustering`
(the model below it); :mod:`pipeline.explore.cluster_outputs` calls it.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
from importlib import resources
from pathlib import Path

import numpy as np

from pipeline.explore.cluster import OUTLIER_MADS, Clustering, colour
from pipeline.report.text import clean_label, clock
from pipeline.store.rows import FrameRows

log = logging.getLogger(__name__)

HTML_MAX_POINTS = 20_000  # an SVG element each; beyond this a browser crawls
THUMB_MAX = 200
THUMB_SIDE = 72
SVG_W, SVG_H = 680, 600
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 64, 16, 16, 48


def write_html(xy: np.ndarray, rows: FrameRows, result: Clustering, path: Path) -> Path:
    """Write the page for ``result`` over the projection ``xy`` (N x 2) of
    ``rows``. Returns its path."""
    from pipeline.atomic import atomic_write_text
    from pipeline.report.html import script_json

    shown = np.arange(len(xy))[:HTML_MAX_POINTS]
    inputs = list(dict.fromkeys(str(p) for p in rows.input_path))
    where = {p: n for n, p in enumerate(inputs)}
    to_svg = _scaler(xy)
    marks = [_mark(to_svg(xy[i]), rows, result, int(i), where) for i in shown]
    thumbs = thumbnails(rows, _thumb_choice(result, shown))
    data = {"inputs": [clean_label(p) for p in inputs], "thumbs": {str(i): u for i, u in thumbs.items()}}
    note = f"<p>showing the first {len(shown):,} of {len(xy):,} frames</p>" if len(shown) < len(xy) else ""
    page = (f"<!doctype html><meta charset=utf-8><title>scenetag clusters</title>"
            f"<style>{_asset('cluster.css')}</style>"
            f"<h1>{len(xy):,} frames, {html.escape(result.method)} (PCA projection)</h1>{note}"
            f"<p>Hover a point for its frame (with a thumbnail for {len(thumbs):,} of them).</p>"
            f"<div class=wrap><svg width={SVG_W} height={SVG_H} viewBox='0 0 {SVG_W} {SVG_H}'>"
            f"{_axes(xy, to_svg)}{''.join(marks)}</svg>{_legend(result)}</div>"
            f"<div id=tip hidden><img id=tip-img alt='' hidden><div><bdi id=tip-input></bdi></div>"
            f"<div id=tip-text></div></div>"
            f"<script type='application/json' id=cluster-data>{script_json(data)}</script>"
            f"<script>{_asset('cluster.js')}</script>")
    return atomic_write_text(path, page)


@functools.cache
def _asset(name: str) -> str:
    """The page's CSS or script, a package file beside this module. The
    files end in a newline, as text files do; the page never had it."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8").removesuffix("\n")


def _scaler(xy: np.ndarray):
    lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.ones(2))
    span = np.maximum(hi - lo, 1e-9)
    w, h = SVG_W - _PAD_L - _PAD_R, SVG_H - _PAD_T - _PAD_B

    def to_svg(p: np.ndarray) -> tuple[float, float]:
        # SVG's y axis points down
        return (_PAD_L + float((p[0] - lo[0]) / span[0]) * w,
                SVG_H - _PAD_B - float((p[1] - lo[1]) / span[1]) * h)

    return to_svg


def _axes(xy: np.ndarray, to_svg) -> str:
    """A frame, five ticks per axis with values, and the axis names."""
    lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.ones(2))
    x0, y0, x1, y1 = _PAD_L, _PAD_T, SVG_W - _PAD_R, SVG_H - _PAD_B
    parts = [f"<rect x='{x0}' y='{y0}' width='{x1 - x0}' height='{y1 - y0}'/>"]
    for v in np.linspace(lo[0], hi[0], 5):
        x = to_svg(np.array([v, lo[1]]))[0]
        parts.append(f"<line x1='{x:.1f}' y1='{y1}' x2='{x:.1f}' y2='{y1 + 5}'/>"
                     f"<text x='{x:.1f}' y='{y1 + 18}' text-anchor='middle'>{v:.2g}</text>")
    for v in np.linspace(lo[1], hi[1], 5):
        y = to_svg(np.array([lo[0], v]))[1]
        parts.append(f"<line x1='{x0 - 5}' y1='{y:.1f}' x2='{x0}' y2='{y:.1f}'/>"
                     f"<text x='{x0 - 8}' y='{y + 4:.1f}' text-anchor='end'>{v:.2g}</text>")
    parts.append(f"<text x='{(x0 + x1) / 2}' y='{SVG_H - 8}' text-anchor='middle'>PC 1</text>"
                 f"<text transform='translate(14 {(y0 + y1) / 2}) rotate(-90)' text-anchor='middle'>"
                 f"PC 2</text>")
    return f"<g class=axes>{''.join(parts)}</g>"


def _mark(pos: tuple[float, float], rows: FrameRows, result: Clustering, i: int,
          where: dict[str, int]) -> str:
    x, y = pos
    label = int(result.labels[i])
    path = str(rows.input_path[i])
    caption = result.caption(label)
    text = (f"{clock(float(rows.time_s[i]))} · {'noise' if label == -1 else f'cluster {label}'}"
            f"{f' ({caption})' if caption else ''} · distance {result.distances[i]:.3f}")
    attrs = f"data-i='{i}' data-in='{where[path]}' data-t='{html.escape(text)}'"
    tip = html.escape(clean_label(f"{path} · {text}"))
    if result.is_outlier[i]:
        return (f"<g class=out {attrs}><title>outlier: {tip}</title>"
                f"<path d='M{x-5:.1f},{y-5:.1f}l10,10m0,-10l-10,10' stroke='#000' stroke-width='2'/></g>")
    return (f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4' fill='{colour(label)}' {attrs}>"
            f"<title>{tip}</title></circle>")


def _legend(result: Clustering) -> str:
    items = []
    for label in sorted(set(result.labels.tolist())):
        n = int((result.labels == label).sum())
        name = "noise (DBSCAN)" if label == -1 else f"cluster {label}"
        caption = result.caption(label)
        holds = f" · {html.escape(clean_label(caption), quote=False)}" if caption else ""
        items.append(f"<li><span class=sw style='background:{colour(label)}'></span>{name}: "
                     f"{n:,} frame{'s' if n != 1 else ''}{holds}</li>")
    n_out = int(result.is_outlier.sum())
    rule = ("noise frames" if result.method.startswith("dbscan") else
            f"farther from their cluster's centre than its median distance + {OUTLIER_MADS:g} robust SD")
    items.append(f"<li><b>×</b> outlier: {n_out:,} ({html.escape(rule)})</li>")
    return f"<ul class=legend>{''.join(items)}</ul>"


def _thumb_choice(result: Clustering, shown: np.ndarray, limit: int = THUMB_MAX) -> list[int]:
    """Outliers (farthest first), then frames spread evenly over each
    cluster's distance ranking, up to ``limit`` in all."""
    shown_set = set(shown.tolist())
    flagged = [int(i) for i in np.argsort(-np.nan_to_num(result.distances, nan=-1.0), kind="stable")
               if result.is_outlier[i] and int(i) in shown_set][:limit]
    labels = sorted(set(result.labels.tolist()))
    quota = max(1, (limit - len(flagged)) // max(len(labels), 1))
    chosen = list(flagged)
    for label in labels:
        members = [int(i) for i in np.flatnonzero(result.labels == label)
                   if int(i) in shown_set and not result.is_outlier[i]]
        members.sort(key=lambda i: float(np.nan_to_num(result.distances[i])))
        picks = np.unique(np.linspace(0, len(members) - 1, min(quota, len(members))).round().astype(int))
        chosen += [members[p] for p in picks] if members else []
    return chosen[:limit]


def thumbnails(rows: FrameRows, indices: list[int]) -> dict[int, str]:
    """JPEG data URIs of the frames at ``indices``, re-read from their inputs
    (one read per input); an input that cannot be read costs its thumbnails."""
    from pipeline.decode import read_frames_at

    by_path: dict[str, list[int]] = {}
    for i in indices:
        by_path.setdefault(str(rows.input_path[i]), []).append(i)
    out: dict[int, str] = {}
    for path, wanted in by_path.items():
        wanted.sort(key=lambda i: float(rows.time_s[i]))
        try:
            frames = read_frames_at(path, [float(rows.time_s[i]) for i in wanted], short_side=THUMB_SIDE)
        except Exception as ex:  # a moved or damaged file costs its thumbnails, not the page
            log.warning("cannot read thumbnails from %s: %s", path, " ".join(str(ex).split()))
            continue
        for i, frame in zip(wanted, frames, strict=False):
            out[i] = _data_uri(frame.image)
    return out


def _data_uri(image: np.ndarray) -> str:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    im.thumbnail((THUMB_SIDE * 3, THUMB_SIDE))  # bounded whatever the aspect ratio
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
