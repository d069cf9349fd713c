"""Self-contained HTML reports: ``<name>/report.html`` per input and
``index.html`` across inputs, rendered from a :class:`VideoResult` (a run's
own, or one read back from its folder by :mod:`pipeline.report.readback`).

A page needs no network: CSS and JavaScript are package files
(``page.css``, ``report.js``, ``index.js``) inlined in it, the timeline is an
inline SVG drawn here from the scores, thumbnails are JPEG files beside the
page (``thumbs/``) and the video, when reachable, is linked by a relative
path. Every string from the outside world (labels, paths, errors, metadata)
is escaped with :func:`html.escape`; the data the page's script reads is JSON
in a ``<script type="application/json">`` block with every ``<`` written as
``\\u003c``, so no label can close the block or open a comment.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.report.notes import Gap, gaps, partial_note
from pipeline.report.plot import NSFW_COLOUR, TICK_STEPS, axis_ticks, pieces, time_extent, track_colours
from pipeline.report.stills import POSTER, write_segment_thumbs
from pipeline.report.text import clean_label, clock, container_name, hms
from pipeline.types import LabelTrack, Segment, VideoInfo, VideoResult

log = logging.getLogger(__name__)


def esc(text: Any) -> str:
    """Escaped for HTML text and double-quoted attributes (``quote=True``),
    control and bidi characters removed (see :func:`clean_label`)."""
    return html.escape(clean_label(text))


_SVG_W, _ROW_H, _PAD_L, _PAD_R, _PAD_T, _AXIS_H = 1000, 150, 44, 12, 10, 24
_SHOT_H, _CUE_H = 22, 9  # the shot strip and, under it, the cue strip (only with shots)
CUE_CLASSES = ("black", "frozen", "fade_in", "fade_out")  # pipeline.analysis.cues.CUE_KINDS


# --------------------------------------------------------------------------- per-input page


def write_report_html(result: VideoResult, out_dir: str | Path, *, thumbs: bool = True,
                      pictures=None) -> Path:
    """Write ``report.html`` for one input (and its ``thumbs/`` when asked).

    Args:
        result: the input's result (a failed one gets a page with its error).
        out_dir: the input's report folder.
        thumbs: re-read a frame per segment at its peak for the table.
        pictures: where those frames come from instead of the input (see
            :func:`pipeline.report.stills.write_segment_thumbs`).

    Returns:
        the path written.
    """
    out = Path(out_dir)
    segments = sorted(result.segments, key=lambda s: (s.start_s, s.end_s, s.label))
    thumb_paths = write_segment_thumbs(result, out, segments, pictures=pictures) \
        if thumbs and result.status == "ok" else {}
    body = [_header(result, back=True), _meta_table(result)]
    if result.status == "ok":
        video = _video_src(result, out)
        body += [_player(video, result.info), _timeline(result, segments),
                 _segments_table(segments, thumb_paths)]
    body.append(_data_script(result, segments))
    page = _page(f"scenetag: {result.name}", "\n".join(body), script=asset("report.js"))
    return atomic_write_text(out / "report.html", page)


def _header(result: VideoResult, back: bool) -> str:
    link = '<p class="nav"><a href="../index.html">&larr; all inputs</a></p>' if back else ""
    status = "" if result.status == "ok" else \
        f'<p class="error" role="alert">error: {esc(result.error or "failed")}</p>'
    partial = partial_note(result) if result.status == "ok" else None
    if partial:
        status = f'<p class="warning" role="alert">{esc(partial)}</p>'
    return (f"<header>{link}<h1>{esc(result.name or result.input_path)}</h1>"
            f'<p class="path">{esc(result.input_path)}</p>{status}</header>')


def _meta_table(result: VideoResult) -> str:
    rows = [(k, v) for k, v in _meta_rows(result) if v not in (None, "")]
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
    return f'<section id="meta"><h2>Video</h2><table class="meta">{cells}</table></section>'


def _meta_rows(result: VideoResult) -> list[tuple[str, Any]]:
    info, s, d = result.info, result.sampling, result.decode
    rows: list[tuple[str, Any]] = [("status", result.status + (" (partial)" if partial_note(result) else ""))]
    if info is not None:
        fps = f"{info.avg_fps:.3f}".rstrip("0").rstrip(".") if info.avg_fps else None
        rows += [("container", container_name(info.container, info.path or result.input_path)),
                 ("codec", info.codec),
                 ("size", f"{info.width}×{info.height}"),
                 ("duration", hms(info.duration_s) if info.duration_s is not None else None),
                 ("fps", fps), ("rotation", f"{info.rotation}°" if info.rotation else None)]
    rows += [("sampling", s.describe() if s is not None else None),
             ("frames scored", len(result.frame_indices)),
             ("decode", f"{d.strategy}, {d.frames_decoded} frames decoded, "
                        f"{d.corrupt_packets} corrupt packets" if d is not None else None),
             ("model", " @ ".join(x for x in (result.model_id, result.model_revision) if x)),
             ("precision", result.precision), ("tags", ", ".join(result.tags) or "none"),
             ("NSFW verdict", result.nsfw_verdict), ("config hash", result.config_hash),
             ("wall time", f"{result.wall_time_s:.1f} s" if result.wall_time_s else None)]
    return rows


def _video_src(result: VideoResult, out: Path) -> str | None:
    """A relative URL from the report to the input, when the input is a file
    a browser can reach from there."""
    path = Path(result.input_path)
    if result.info is not None and result.info.is_image or not path.is_file():
        return None
    try:
        rel = os.path.relpath(path.resolve(), out.resolve())
    except ValueError:  # another drive on Windows
        return None
    return quote(Path(rel).as_posix())


# What browsers play natively (Chrome, Firefox, Safari, Edge): anything else
# gets a note up front, and the page's script says so too if loading fails.
_PLAYABLE_CODECS = frozenset({"h264", "vp8", "vp9", "av1", "theora"})
_PLAYABLE_CONTAINERS = ("mov", "mp4", "webm", "matroska", "ogg")
_CONVERT_HINT = "ffmpeg -i INPUT -c:v libx264 -pix_fmt yuv420p OUTPUT.mp4"


def _player(src: str | None, info: VideoInfo | None = None) -> str:
    if src is None:
        return ""
    doubt = playback_doubt(info)
    note = (f'<p id="player-note" class="note" role="note">{esc(doubt)}</p>' if doubt else
            '<p id="player-note" class="note" role="note" hidden></p>')
    return ('<section id="player-box"><video id="player" controls preload="metadata" '
            f'src="{esc(src)}"></video>{note}</section>')


def playback_doubt(info: VideoInfo | None) -> str | None:
    """Why a browser likely cannot play the input, or None when it likely can."""
    if info is None:
        return None
    codec, container = (info.codec or "?").lower(), (info.container or "?").lower()
    doubts = [f"{codec} codec"] if codec not in _PLAYABLE_CODECS else []
    if not any(c in container.split(",") for c in _PLAYABLE_CONTAINERS):
        doubts.append(f"{container.split(',')[0]} container")
    if info.pix_fmt not in ("", "yuv420p", "yuvj420p"):
        doubts.append(f"{info.pix_fmt} pixels")
    if not doubts:
        return None
    return (f"Browsers usually cannot play this video ({', '.join(doubts)}); the timeline, table "
            f"and thumbnails work without the player. To watch it here, convert it: {_CONVERT_HINT}")


# --------------------------------------------------------------------------- timeline


def _timeline(result: VideoResult, segments: Sequence[Segment]) -> str:
    """The interactive SVG: what the page's script zooms (``#zoom``, scaled
    along time), what it moves (``#marks``, ``#cursor``) and redraws
    (``#axis``); without the script, the whole video at a glance."""
    times = np.asarray(result.times_s, dtype=np.float64)
    end = _end_time(result, times)
    rows = _rows(result, segments)
    shots = _shots_of(result)
    plot_h = _ROW_H * len(rows) + (_SHOT_H + _CUE_H if shots else 0)
    colours, breaks = track_colours(result.tracks), gaps(result)
    zoomed, marks, titles = _gap_rects(breaks, end, plot_h), [], []
    for r, (title, tracks, kind) in enumerate(rows):
        top = _PAD_T + r * _ROW_H
        titles.append(f'<text class="row" x="4" y="{top + 14}">{esc(title)}</text>')
        zoomed += _segment_rects(segments, kind, colours, top, end)
        lines, points = _track_lines(tracks, times, pieces(times, breaks), colours, top, end)
        zoomed, marks = zoomed + lines, marks + points
    if shots:  # the strip under the rows: a block per shot, and the cues under it
        top = _PAD_T + _ROW_H * len(rows)
        titles.append(f'<text class="row" x="4" y="{top + 15}">shots</text>')
        zoomed += _shot_rects(shots, top, end) + _cue_rects(result.cues or [], top + _SHOT_H, end)
    plot_w, axis_y = _SVG_W - _PAD_L - _PAD_R, _PAD_T + plot_h
    svg = (f'<svg id="timeline-svg" viewBox="0 0 {_SVG_W} {axis_y + _AXIS_H}" role="img" '
           f'aria-label="scores over time" data-end="{end:.6f}" data-x0="{_PAD_L}" '
           f'data-x1="{_SVG_W - _PAD_R}" data-steps="{",".join(str(s) for s in TICK_STEPS)}">'
           f'<defs><clipPath id="plot-clip"><rect x="{_PAD_L}" y="0" width="{plot_w}" '
           f'height="{axis_y + _AXIS_H}"/></clipPath></defs>'
           f'<rect class="bg" x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}"/>'
           f'<g id="axis">{"".join(_axis(end, axis_y))}</g>'
           f'<g clip-path="url(#plot-clip)"><g id="zoom">{"".join(zoomed)}</g>'
           f'<g id="marks">{"".join(marks)}</g></g>{"".join(titles)}'
           f'<line id="cursor" x1="0" x2="0" y1="{_PAD_T}" y2="{axis_y}"/></svg>')
    legend = _legend(colours, breaks, result.cues or [] if shots else [])
    return (f'<section id="timeline"><h2>Timeline</h2>{_ZOOM_CONTROLS}<div class="timeline-box">{svg}'
            f'<div id="tip" hidden></div></div><ul class="legend">{legend}</ul>'
            f'<p class="hint">Hover for scores; click a segment, {"a shot, " if shots else ""}a row of '
            'the table or the timeline to jump there. Zoom with the buttons or Ctrl + wheel; when '
            'zoomed, drag or Shift + wheel pans.</p></section>')


_ZOOM_CONTROLS = ('<div class="zoom" role="group" aria-label="timeline zoom">'
                  '<button type="button" id="zoom-in" title="zoom in">+</button>'
                  '<button type="button" id="zoom-out" title="zoom out">&minus;</button>'
                  '<button type="button" id="zoom-reset" title="whole video">whole video</button>'
                  '<output id="zoom-view"></output></div>')


def _rows(result: VideoResult, segments: Sequence[Segment]) -> list[tuple[str, list[LabelTrack], str]]:
    rows = [("tags", [t for t in result.tracks if t.kind != "nsfw"], "tag")]
    if any(t.kind == "nsfw" for t in result.tracks) or any(s.kind == "nsfw" for s in segments):
        rows.append(("NSFW", [t for t in result.tracks if t.kind == "nsfw"], "nsfw"))
    return rows


def _legend(colours: dict[tuple[str, str], str], breaks: Sequence[Gap], cues: Sequence = ()) -> str:
    legend = "".join(f'<li><span class="swatch" style="background:{c}"></span>{esc(name)}</li>'
                     for (name, _), c in colours.items())
    legend += "".join(f'<li><span class="swatch cue-{kind}"></span>{kind.replace("_", " ")}</li>'
                      for kind in CUE_CLASSES if any(c.kind == kind for c in cues))
    return legend + ('<li><span class="swatch gap"></span>no frames (gap)</li>' if breaks else "")


def _x(t: float, end: float) -> float:
    return _PAD_L + (_SVG_W - _PAD_L - _PAD_R) * (t / end if end > 0 else 0.0)


def _y(score: float, top: float) -> float:
    return top + 6 + (_ROW_H - 12) * (1.0 - min(max(score, 0.0), 1.0))


def _segment_rects(segments: Sequence[Segment], kind: str, colours: dict, top: float,
                   end: float) -> list[str]:
    out = []
    for i, seg in enumerate(segments):
        if (seg.kind == "nsfw") != (kind == "nsfw"):
            continue
        x0, x1 = _x(seg.start_s, end), _x(seg.end_s, end)
        colour = NSFW_COLOUR if seg.kind == "nsfw" else colours.get((seg.label, seg.kind), "#888")
        tip = f"{seg.label}: {hms(seg.start_s)} – {hms(seg.end_s)} (peak {seg.peak:.2f})"
        out.append(f'<rect class="seg" data-i="{i}" x="{x0:.2f}" y="{top + 2}" '
                   f'width="{max(x1 - x0, 1.5):.2f}" height="{_ROW_H - 4}" fill="{colour}">'
                   f"<title>{esc(tip)}</title></rect>")
    return out


def _shots_of(result: VideoResult) -> list:
    """The input's shots in time order (none when the run did not look for them)."""
    return sorted(result.shots or [], key=lambda s: (s.start_s, s.shot))


def shot_title(shot) -> str:
    """A shot's tooltip: ``Shot n  mm:ss.mmm–mm:ss.mmm`` and its tags."""
    tags = f"  {shot.tags}" if shot.tags else ""
    return f"Shot {shot.shot}  {clock(shot.start_s)}–{clock(shot.end_s)}{tags}"


def _shot_rects(shots: Sequence, top: float, end: float) -> list[str]:
    """One block per shot, alternating shades (``shot even``/``shot odd``)."""
    out = []
    for i, shot in enumerate(shots):
        x0, x1 = _x(shot.start_s, end), _x(shot.end_s, end)
        out.append(f'<rect class="shot {"odd" if i % 2 else "even"}" data-i="{i}" '
                   f'data-start="{shot.start_s:.3f}" x="{x0:.2f}" y="{top + 2}" '
                   f'width="{max(x1 - x0, 1.0):.2f}" height="{_SHOT_H - 4}">'
                   f"<title>{esc(shot_title(shot))}</title></rect>")
    return out


def _cue_rects(cues: Sequence, top: float, end: float) -> list[str]:
    """A thin mark per technical cue (black, frozen, fade in, fade out)."""
    out = []
    for i, cue in enumerate(cues):
        kind = cue.kind if cue.kind in CUE_CLASSES else "other"  # read back from a file: any text
        x0, x1 = _x(cue.start_s, end), _x(cue.end_s, end)
        tip = f"{cue.kind}  {clock(cue.start_s)}–{clock(cue.end_s)}"
        out.append(f'<rect class="cue cue-{kind}" data-i="{i}" data-start="{cue.start_s:.3f}" '
                   f'x="{x0:.2f}" y="{top}" width="{max(x1 - x0, 1.5):.2f}" height="{_CUE_H - 2}">'
                   f"<title>{esc(tip)}</title></rect>")
    return out


def _gap_rects(breaks: Sequence[Gap], end: float, height: float) -> list[str]:
    out = []
    for gap in breaks:
        x0, x1 = _x(gap.start_s, end), _x(gap.end_s, end)
        tip = f"no frames {hms(gap.start_s)} – {hms(gap.end_s)}" + (f": {gap.reason}" if gap.reason else "")
        out.append(f'<rect class="gap" x="{x0:.2f}" y="{_PAD_T}" width="{max(x1 - x0, 1.5):.2f}" '
                   f'height="{height}"><title>{esc(tip)}</title></rect>')
    return out


def _track_lines(tracks: Sequence[LabelTrack], times: np.ndarray, parts: list[slice], colours: dict,
                 top: float, end: float) -> tuple[list[str], list[str]]:
    """Threshold and score lines (scaled when zoomed), and a dot for each
    lone sample (moved when zoomed: a scaled circle would be an ellipse)."""
    lines, dots = [], []
    for track in tracks:
        colour = colours[(track.name, track.kind)]
        if math.isfinite(track.threshold):
            y = _y(track.threshold, top)
            lines.append(f'<line class="thr" x1="{_PAD_L}" x2="{_SVG_W - _PAD_R}" y1="{y:.2f}" '
                         f'y2="{y:.2f}" stroke="{colour}"/>')
        smoothed = np.asarray(track.smoothed, np.float64)
        for part in parts:  # one line per run of samples: none crosses a gap
            tv = [(t, v) for t, v in zip(times[part], smoothed[part], strict=True) if math.isfinite(v)]
            pts = " ".join(f"{_x(t, end):.2f},{_y(v, top):.2f}" for t, v in tv)
            lines.append(f'<polyline class="score" points="{pts}" stroke="{colour}">'
                         f"<title>{esc(track.name)}</title></polyline>")
            if len(tv) == 1:  # a one-point line draws nothing: mark the sample
                (t, v), = tv
                dots.append(f'<circle class="score" data-t="{t:.6f}" cx="{_x(t, end):.2f}" '
                            f'cy="{_y(v, top):.2f}" r="4" fill="{colour}">'
                            f"<title>{esc(track.name)}</title></circle>")
    return lines, dots


def _axis(end: float, y: float) -> list[str]:
    out = []
    for t, label in axis_ticks(end):  # round steps, at most 11 ticks whatever the extent
        x = _x(t, end)
        # a label centred near the right edge would be cut off: end-align it there
        anchor = ' style="text-anchor:end"' if x + 3.5 * len(label) > _SVG_W else ""
        out.append(f'<line class="tick" x1="{x:.2f}" x2="{x:.2f}" y1="{_PAD_T}" y2="{y + 4}"/>'
                   f'<text class="tick" x="{x:.2f}" y="{y + 17}"{anchor}>{label}</text>')
    return out


def _end_time(result: VideoResult, times: np.ndarray) -> float:
    return time_extent(result, times)


# --------------------------------------------------------------------------- segments table


def _segments_table(segments: Sequence[Segment], thumbs: dict[int, str]) -> str:
    head = ("<tr><th>#</th><th>frame</th><th>label</th><th>kind</th><th>start</th><th>end</th>"
            "<th>duration</th><th>peak</th><th>mean</th></tr>")
    rows = [_segment_row(i, seg, thumbs.get(i)) for i, seg in enumerate(segments)]
    if not rows:
        rows = ['<tr class="empty"><td colspan="9">no segments detected</td></tr>']
    return (f'<section id="segments"><h2>Segments</h2><p>Selected: <output id="selected-time">'
            f'&mdash;</output></p><table id="segments-table"><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _segment_row(i: int, seg: Segment, thumb: str | None) -> str:
    nsfw = seg.kind == "nsfw"
    img = ""
    if thumb:
        img = (f'<img src="{esc(quote(thumb))}" alt="{esc(seg.label)} at peak" loading="lazy">')
        if nsfw:
            img = f'<span class="thumb nsfw" title="NSFW: click to reveal">{img}</span>'
        else:
            img = f'<span class="thumb">{img}</span>'
    cls = "segment nsfw-row" if nsfw else "segment"
    return (f'<tr class="{cls}" data-i="{i}" data-start="{seg.start_s:.3f}" tabindex="0">'
            f'<td>{i + 1}</td><td>{img}</td><td class="label"><bdi>{esc(seg.label)}</bdi></td>'
            f"<td>{esc(seg.kind)}</td><td>{hms(seg.start_s)}</td><td>{hms(seg.end_s)}</td>"
            f"<td>{seg.duration_s:.3f} s</td><td>{seg.peak:.3f}</td><td>{seg.mean:.3f}</td></tr>")


# --------------------------------------------------------------------------- embedded data


def _data_script(result: VideoResult, segments: Sequence[Segment]) -> str:
    colours = track_colours(result.tracks)
    data = {
        "times": [round(float(t), 3) for t in result.times_s],
        "tracks": [{"name": clean_label(t.name), "kind": t.kind, "colour": colours[(t.name, t.kind)],
                    "smoothed": [_num(v) for v in t.smoothed]} for t in result.tracks],
        "segments": [{"label": clean_label(s.label), "kind": s.kind, "start": round(s.start_s, 3),
                      "end": round(s.end_s, 3)} for s in segments],
        "gaps": [{"start": g.start_s, "end": g.end_s, "reason": clean_label(g.reason)} for g in gaps(result)],
    }
    shots = _shots_of(result)
    if shots:
        data["shots"] = [{"shot": s.shot, "start": round(s.start_s, 3), "end": round(s.end_s, 3),
                          "tags": clean_label(s.tags)} for s in shots]
        data["cues"] = [{"kind": clean_label(c.kind), "start": round(c.start_s, 3), "end": round(c.end_s, 3)}
                        for c in result.cues or []]
    return f'<script id="scenetag-data" type="application/json">{script_json(data)}</script>'


def script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``</script>``, no
    ``<!--``, whatever the strings hold."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def _num(v: Any) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


# --------------------------------------------------------------------------- index page


_INDEX_COLUMNS = ("", "name", "status", "duration", "frames", "tags", "NSFW", "input / error")


def write_index_html(results: Sequence[VideoResult], out_dir: str | Path) -> Path:
    """Write ``index.html``: one row per input, with its poster, linking to
    its report; the page's script sorts by a column and filters by text."""
    out = Path(out_dir)
    head = "".join("<th></th>" if not name else
                   f'<th><button type="button" class="sort" data-col="{i}">{name}</button></th>'
                   for i, name in enumerate(_INDEX_COLUMNS))
    rows = [_index_row(r, out) for r in results]
    if not rows:
        rows = [f'<tr class="empty"><td colspan="{len(_INDEX_COLUMNS)}">no inputs</td></tr>']
    body = (f"<header><h1>scenetag report</h1><p>{len(results)} inputs{_index_counts(results)}</p></header>"
            '<section><p class="filter"><input id="index-filter" type="search" '
            'placeholder="filter: name, tag, status, path" aria-label="filter the inputs"> '
            '<output id="index-count"></output></p>'
            f'<table id="index-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')
    page = _page("scenetag report", body, script=asset("index.js"))
    return atomic_write_text(out / "index.html", page)


def _index_counts(results: Sequence[VideoResult]) -> str:
    failed = sum(r.status != "ok" for r in results)
    partial = sum(r.status == "ok" and partial_note(r) is not None for r in results)
    words = [f"{n} {word}" for n, word in ((failed, "failed"), (partial, "partial")) if n]
    return f" ({', '.join(words)})" if words else ""


def _index_row(r: VideoResult, out: Path) -> str:
    report = f"{quote(r.name)}/report.html" if r.name and (out / r.name / "report.html").is_file() else None
    name = esc(r.name or "—")
    if report:
        name = f'<a href="{esc(report)}">{name}</a>'
    seconds = r.info.duration_s if r.info is not None and r.info.duration_s else None
    detail = esc(r.input_path) + (f'<br><span class="error">{esc(r.error)}</span>' if r.error else "")
    partial = partial_note(r)
    if partial is not None:
        detail += f'<br><span class="warning">{esc(partial)}</span>'
    status = r.status + (" (partial)" if partial else "")
    return (f'<tr class="{esc(r.status)}"><td class="poster">{_poster(r, out, report)}</td>'
            f"<td>{name}</td><td>{esc(status)}</td>"
            f'<td data-sort="{seconds if seconds is not None else ""}">{hms(seconds) if seconds else ""}</td>'
            f'<td data-sort="{len(r.frame_indices)}">{len(r.frame_indices)}</td>'
            f"<td>{', '.join(f'<bdi>{esc(t)}</bdi>' for t in r.tags)}</td>"
            f"<td>{esc(r.nsfw_verdict)}</td><td>{detail}</td></tr>")


def _poster(r: VideoResult, out: Path, report: str | None) -> str:
    """The input's ``poster.jpg``: blurred until clicked for an unsafe video,
    else a link to its report."""
    if not r.name or not (out / r.name / POSTER).is_file():
        return ""
    img = f'<img src="{esc(quote(r.name))}/{POSTER}" alt="" loading="lazy">'
    if r.nsfw_verdict == "unsafe":
        return f'<span class="thumb nsfw" title="NSFW: click to reveal">{img}</span>'
    img = f'<span class="thumb">{img}</span>'
    return f'<a href="{esc(report)}" tabindex="-1">{img}</a>' if report else img


# --------------------------------------------------------------------------- page shell


# file: lets thumbnails and the video load from disk; nothing may connect anywhere.
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src 'self' data: file:; media-src 'self' file:")


@functools.cache
def asset(name: str) -> str:
    """A file of the page's CSS or JavaScript, shipped beside this module
    (every page inlines them: a report opens with no network)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _page(title: str, body: str, script: str) -> str:
    js = f"<script>{script}</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>{esc(title)}</title><style>{asset('page.css')}</style></head>\n"
            f"<body>\n{body}\n{js}\n</body></html>\n")
