"""Timelines for editors and players, from plain values (an input's path, its
frame rate and duration, segments as ``(label, start_s, end_s)``, NSFW
segments, shots): an OpenTimelineIO file, FCPXML, chapters (FFmetadata and
a YouTube chapter list) and one CMX 3600 events EDL per label.

* ``timeline.otio`` (:func:`write_otio`): a first track holding the source
  cut into its shots (one clip for the whole video without shots), NSFW
  segments as red markers on those clips, then one track per tag label: a
  clip per segment referencing the source (an ``ExternalReference`` to its
  ``file://`` URL) with its source range, gaps between. Times are frames at
  the stream's rate (:func:`~pipeline.report.exports.exact_fps`: 29.97 is
  30000/1001), from each segment's seconds.
* FCPXML (:func:`write_fcpxml`): the same timeline through
  ``otio-fcpx-xml-adapter`` (version 1.8, which Final Cut Pro 10.4+ and
  DaVinci Resolve import): the shots in the primary storyline, each label a
  lane of connected clips, NSFW markers on the storyline's clips. The
  adapter times NTSC rates as the integers below them (29.97 as 29) and
  knows only the SMPTE rates, so the FCPXML timeline runs at the integer
  SMPTE rate nearest the stream's (:func:`fcpxml_rate`: 29.97 → 30, 23.976
  → 24, 15 → 24); every time is the segment's seconds rounded to that
  rate's frames, within half a frame of ``segments.csv``, and the editor
  conforms the media to the timeline.
* Chapters (:func:`ffmetadata_text`, :func:`youtube_chapters`): from shots
  or from segments (:func:`chapters_from_shots`,
  :func:`chapters_from_segments`).
* Events EDLs (:func:`label_edl_text`, :func:`write_label_edls`): one event
  per segment, source and record timecode both the segment's place in the
  source (so the events sit where they happened, with gaps between), at the
  EDL rate of ``markers.edl`` (:func:`~pipeline.report.exports.edl_rate`),
  non-drop. OpenTimelineIO's CMX 3600 reader reads each back as a clip of
  that range.

Every file is written atomically. Labels pass through
:func:`~pipeline.report.text.clean_label`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pipeline.atomic import atomic_write_text, bounded_name
from pipeline.report.exports import edl_rate, exact_fps, frame_number, rate_name, timecode
from pipeline.report.text import clean_label, hms

# The rates otio-fcpx-xml-adapter 1.0 writes and reads back exactly (it
# truncates rates to integers when timing connected clips).
FCPXML_RATES = (24, 25, 30, 50, 60)
YOUTUBE_MIN_CHAPTER_S = 10.0  # YouTube's rules: every chapter at least 10 s,
YOUTUBE_MIN_CHAPTERS = 3  # at least three of them, the first at 00:00
SHOTS_TRACK = "Shots"


@dataclass(frozen=True)
class Span:
    """A labelled stretch of the source, in seconds."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Chapter:
    start_s: float
    end_s: float
    title: str


def spans(items: Iterable[Any]) -> list[Span]:
    """``(label, start_s, end_s)`` tuples, or objects with those attributes
    (:class:`~pipeline.types.Segment`, ``Span``), as sorted :class:`Span` s
    with clean labels; empty or reversed ones are dropped."""
    out = []
    for item in items:
        if isinstance(item, (tuple, list)):
            label, start, end = item[:3]
        else:
            label, start, end = item.label, item.start_s, item.end_s
        start, end = max(float(start), 0.0), float(end)
        if math.isfinite(start) and math.isfinite(end) and end > start:
            out.append(Span(" ".join(clean_label(label).split()), start, end))
    return sorted(out, key=lambda s: (s.start_s, s.end_s, s.label))


def _shot_spans(shots: Iterable[Any] | None, duration_s: float) -> list[Span]:
    """The shots as spans named ``Shot n``; without shots, the whole video."""
    shots = list(shots or [])
    if not shots:
        return [Span("Shot 1", 0.0, duration_s)]
    out = []
    for n, s in enumerate(shots, start=1):
        start, end = (s[0], s[1]) if isinstance(s, (tuple, list)) else (s.start_s, s.end_s)
        out.append(Span(f"Shot {getattr(s, 'shot', n)}", float(start), float(end)))
    return out


# --------------------------------------------------------------------------- OpenTimelineIO


def build_timeline(input_path: str, fps: float | Fraction | None, duration_s: float,
                   segments: Iterable[Any] = (), nsfw: Iterable[Any] = (),
                   shots: Iterable[Any] | None = None, *, name: str | None = None,
                   rate: float | Fraction | None = None, labels: Sequence[str] = ()):
    """The :class:`opentimelineio.schema.Timeline` the module describes.

    ``rate`` (default: the stream's, :func:`~pipeline.report.exports.exact_fps`
    of ``fps``) is the rate every time is counted in. Tag tracks come in the
    order of ``labels`` (the config's), then any other label in the order it
    first appears; a label without segments gets no track.
    """
    import opentimelineio as otio

    exact = exact_fps(rate if rate is not None else fps)
    r = float(exact)
    url = Path(input_path).resolve().as_uri()
    total = max(frame_number(max(duration_s, 0.0), exact), 1)

    def frames(t: float) -> int:
        return min(max(frame_number(t, exact), 0), total)

    def rt(f: int):
        return otio.opentime.RationalTime(f, r)

    def reference():
        return otio.schema.ExternalReference(target_url=url, available_range=otio.opentime.TimeRange(
            rt(0), rt(total)))

    def clip(span: Span, a: int, b: int, metadata: dict):
        return otio.schema.Clip(name=span.label, media_reference=reference(),
                                source_range=otio.opentime.TimeRange(rt(a), rt(b - a)),
                                metadata={"scenetag": metadata})

    timeline = otio.schema.Timeline(name=clean_label(name or Path(input_path).stem),
                                    global_start_time=rt(0))
    base = otio.schema.Track(name=SHOTS_TRACK, kind=otio.schema.TrackKind.Video)
    shot_clips = _laid_out(base, _shot_spans(shots, duration_s), frames, clip, rt, "shot")
    for seg in spans(nsfw):
        a, b = frames(seg.start_s), frames(seg.end_s)
        host = next((c for c, lo, hi in shot_clips if lo <= a < hi), shot_clips[-1][0])
        host.markers.append(otio.schema.Marker(
            name=f"NSFW: {seg.label}", color=otio.schema.MarkerColor.RED,
            marked_range=otio.opentime.TimeRange(rt(a), rt(max(b - a, 1))),
            metadata={"scenetag": {"kind": "nsfw", "label": seg.label}}))
    timeline.tracks.append(base)
    tags = spans(segments)
    present = {s.label for s in tags}
    order = [x for x in dict.fromkeys(" ".join(clean_label(x).split()) for x in labels) if x in present]
    for label in dict.fromkeys([*order, *(s.label for s in tags)]):
        track = otio.schema.Track(name=label, kind=otio.schema.TrackKind.Video)
        _laid_out(track, [s for s in tags if s.label == label], frames, clip, rt, "tag")
        timeline.tracks.append(track)
    return timeline


def _laid_out(track, items: list[Span], frames, clip, rt, kind: str) -> list[tuple[Any, int, int]]:
    """Append each span as a clip at its own place (a gap before it); spans
    overlapping the one before start where it ends. Returns (clip, a, b)."""
    import opentimelineio as otio

    out, cursor = [], 0
    for span in items:
        a, b = max(frames(span.start_s), cursor), frames(span.end_s)
        if b <= a:
            continue
        if a > cursor:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0), rt(a - cursor))))
        c = clip(span, a, b, {"kind": kind, "label": span.label})
        track.append(c)
        out.append((c, a, b))
        cursor = b
    return out


def write_otio(path: str | Path, timeline) -> Path:
    """Write ``timeline`` as OpenTimelineIO JSON (``.otio``) atomically."""
    import opentimelineio as otio

    return atomic_write_text(path, otio.adapters.write_to_string(timeline, "otio_json") + "\n")


# --------------------------------------------------------------------------- FCPXML


def fcpxml_rate(fps: float | Fraction | None) -> int:
    """The integer SMPTE rate nearest the stream's (see the module)."""
    r = float(exact_fps(fps))
    return min(FCPXML_RATES, key=lambda x: (abs(x - r), x))


def fcpxml_text(input_path: str, fps: float | Fraction | None, duration_s: float,
                segments: Iterable[Any] = (), nsfw: Iterable[Any] = (),
                shots: Iterable[Any] | None = None, *, name: str | None = None,
                width: int | None = None, height: int | None = None, labels: Sequence[str] = ()) -> str:
    """The FCPXML document of :func:`build_timeline` at :func:`fcpxml_rate`,
    written by ``otio-fcpx-xml-adapter``; ``width``/``height`` go on its format
    (the adapter asks ffprobe for them, which need not be installed)."""
    import opentimelineio as otio

    # The adapter finds elements with XPath [@name='...']: a quote in a name breaks its query.
    def safe(items: Iterable[Any]) -> list[Span]:
        return [Span(s.label.replace("'", "\u2019"), s.start_s, s.end_s) for s in spans(items)]

    timeline = build_timeline(input_path, fps, duration_s, safe(segments), safe(nsfw), shots,
                              name=(name or Path(input_path).stem).replace("'", "\u2019"),
                              rate=fcpxml_rate(fps), labels=[x.replace("'", "\u2019") for x in labels])
    text = otio.adapters.write_to_string(timeline, "fcpx_xml")
    return _finish_fcpxml(text, width, height)


def _finish_fcpxml(text: str, width: int | None, height: int | None) -> str:
    """The adapter's document with the format's size, without an empty
    project ``uid`` (an empty identifier is not one), and with each connected
    clip's offset exact.

    The adapter computes a connected clip's offset through float seconds
    truncated to frames (``int(113/50 * 50)`` is 112), a frame early one time
    in a few. Every clip here sits on the timeline where it is in the source
    (a storyline clip's ``offset`` equals its ``start``), so a connected
    clip's offset, in its parent's source time, is its own ``start``."""
    head, sep, body = text.partition("<fcpxml")
    root = ElementTree.fromstring(sep + body)
    for parent in root.iter("clip"):
        for child in parent.findall("clip"):
            if child.get("lane") is not None:
                child.set("offset", child.get("start", "0s"))
    for fmt in root.iter("format"):
        if width and height:
            fmt.set("width", str(width))
            fmt.set("height", str(height))
        if not fmt.get("name"):
            del fmt.attrib["name"]
    for project in root.iter("project"):
        if not project.get("uid"):
            project.attrib.pop("uid", None)
    ElementTree.indent(root, space="    ")
    return head.rstrip() + "\n" + ElementTree.tostring(root, encoding="unicode") + "\n"


def write_fcpxml(path: str | Path, input_path: str, fps: float | Fraction | None, duration_s: float,
                 segments: Iterable[Any] = (), nsfw: Iterable[Any] = (),
                 shots: Iterable[Any] | None = None, **kwargs: Any) -> Path:
    """Write :func:`fcpxml_text` to ``path`` (``.fcpxml``) atomically."""
    return atomic_write_text(path, fcpxml_text(input_path, fps, duration_s, segments, nsfw, shots,
                                               **kwargs))


# --------------------------------------------------------------------------- chapters


def chapters_from_shots(shots: Iterable[Any], titles: Sequence[str] | None = None) -> list[Chapter]:
    """A chapter per shot, titled ``Shot n`` or by ``titles`` (one per shot:
    e.g. the labels :func:`~pipeline.analysis.shots.shot_labels` found)."""
    out = []
    for k, span in enumerate(_shot_spans(shots, 0.0)):
        title = titles[k] if titles is not None and k < len(titles) and titles[k] else span.label
        out.append(Chapter(span.start_s, span.end_s, _title(title)))
    return out


def chapters_from_segments(segments: Iterable[Any], duration_s: float, *,
                           empty_title: str = "No tags") -> list[Chapter]:
    """Chapters tiling ``[0, duration_s]`` from tag segments: a new chapter
    wherever the set of labels on screen changes, titled by those labels
    (``a + b``; ``empty_title`` where none is), neighbours with one title joined."""
    segs = [s for s in spans(segments) if s.start_s < duration_s]
    cuts = sorted({0.0, duration_s, *(s.start_s for s in segs), *(min(s.end_s, duration_s) for s in segs)})
    out: list[Chapter] = []
    for a, b in zip(cuts, cuts[1:]):
        if b <= a:
            continue
        here = list(dict.fromkeys(s.label for s in segs if s.start_s < b and s.end_s > a))
        title = _title(" + ".join(here) or empty_title)
        if out and out[-1].title == title:
            out[-1] = Chapter(out[-1].start_s, b, title)
        else:
            out.append(Chapter(a, b, title))
    return out


def _title(text: str) -> str:
    return " ".join(clean_label(text).split()) or "Chapter"


def ffmetadata_text(chapters: Sequence[Chapter], title: str | None = None) -> str:
    """``chapters.txt`` in FFmpeg's metadata format (``;FFMETADATA1``): one
    ``[CHAPTER]`` per chapter of a millisecond or more, so ``ffmpeg -i video -i
    chapters.txt -map_metadata 1 -map_chapters 1 -c copy out.mp4`` adds them."""
    lines = [";FFMETADATA1"]
    if title:
        lines.append(f"title={_ffmeta_escape(title)}")
    for ch in chapters:
        start, end = round(ch.start_s * 1000), round(ch.end_s * 1000)
        if end <= start:
            continue  # under a millisecond: nothing a player could seek to
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}",
                  f"title={_ffmeta_escape(ch.title)}"]
    return "\n".join(lines) + "\n"


def _ffmeta_escape(text: str) -> str:
    # FFmpeg's metadata format: '=', ';', '#', '\' and newlines are escaped with '\'
    text = " ".join(clean_label(text).split())
    return "".join("\\" + c if c in "=;#\\\n" else c for c in text)


def write_ffmetadata(path: str | Path, chapters: Sequence[Chapter], title: str | None = None) -> Path:
    return atomic_write_text(path, ffmetadata_text(chapters, title))


@dataclass(frozen=True)
class YoutubeChapters:
    """A YouTube chapter list: ``text`` (None when YouTube's rules cannot be
    met), the ``chapters`` it lists, and ``notes`` on what was changed."""

    text: str | None
    chapters: tuple[Chapter, ...]
    notes: tuple[str, ...]


def youtube_chapters(chapters: Sequence[Chapter], *, min_length_s: float = YOUTUBE_MIN_CHAPTER_S,
                     min_count: int = YOUTUBE_MIN_CHAPTERS) -> YoutubeChapters:
    """``00:00 Title`` lines, one per chapter, meeting YouTube's rules: the
    first at 00:00, every chapter at least ``min_length_s``, at least
    ``min_count`` of them (otherwise YouTube shows none).

    What is done when the chapters do not: the first is moved to 00:00
    (what comes before it joins it); the shortest chapter under
    ``min_length_s`` is merged into its shorter neighbour, again and again,
    the longer part's title kept (the first chapter's when it is merged
    forward); when fewer than ``min_count`` remain there is no list
    (``text`` None), with the reason in ``notes``.
    """
    notes: list[str] = []
    chs = [c for c in sorted(chapters, key=lambda c: c.start_s) if c.end_s > c.start_s]
    if not chs:
        return YoutubeChapters(None, (), ("no chapters",))
    if chs[0].start_s > 0:
        notes.append(f"first chapter moved from {_clock(chs[0].start_s)} to 00:00")
        chs[0] = Chapter(0.0, chs[0].end_s, chs[0].title)
    while len(chs) > 1:
        short = [k for k, c in enumerate(chs) if c.end_s - c.start_s < min_length_s - 1e-9]
        if not short:
            break
        k = min(short, key=lambda k: (chs[k].end_s - chs[k].start_s, k))
        if k == 0:
            j = 1
        elif k == len(chs) - 1:
            j = k - 1
        else:
            j = min(k - 1, k + 1, key=lambda j: (chs[j].end_s - chs[j].start_s, j))
        a, b = sorted((k, j))
        keep = chs[j] if chs[j].end_s - chs[j].start_s >= chs[k].end_s - chs[k].start_s else chs[k]
        notes.append(f"'{chs[k].title}' ({chs[k].end_s - chs[k].start_s:.1f} s) merged into "
                     f"'{chs[j].title}'")
        chs[a:b + 1] = [Chapter(chs[a].start_s, chs[b].end_s, keep.title)]
    if len(chs) < min_count or chs[0].end_s - chs[0].start_s < min_length_s - 1e-9:
        notes.append(f"{len(chs)} chapter(s) of at least {min_length_s:g} s; YouTube needs {min_count}")
        return YoutubeChapters(None, tuple(chs), tuple(notes))
    hours = chs[-1].start_s >= 3600
    text = "\n".join(f"{_clock(c.start_s, hours)} {c.title}" for c in chs) + "\n"
    return YoutubeChapters(text, tuple(chs), tuple(notes))


def _clock(t: float, hours: bool = False) -> str:
    """``mm:ss`` (``h:mm:ss`` when ``hours``), seconds rounded down so a
    chapter never starts before its time."""
    s = int(math.floor(t + 1e-6))
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if hours or h else f"{m:02d}:{sec:02d}"


# --------------------------------------------------------------------------- events EDLs


def label_edl_text(label: str, segments: Iterable[Any], input_path: str, fps: float | Fraction | None,
                   *, name: str | None = None) -> str:
    """One label's CMX 3600 events EDL: an event per segment of ``label``
    (``segments`` may hold other labels: they are left out)."""
    rate = edl_rate(fps)
    label = " ".join(clean_label(label).split())
    mine = [s for s in spans(segments) if s.label == label]
    title = _edl_safe(f"{name or Path(input_path).stem} - {label}") or "scenetag"
    lines = [f"TITLE: {title} ({rate_name(rate)} fps NDF)", "FCM: NON-DROP FRAME", ""]
    clip = _edl_safe(Path(input_path).name) or "clip"
    cursor = 0
    for n, seg in enumerate(mine, start=1):
        a, b = max(frame_number(seg.start_s, rate), cursor), frame_number(seg.end_s, rate)
        if b <= a:
            continue
        tc_in, tc_out = timecode(a, rate, drop=False), timecode(b, rate, drop=False)
        lines += [f"{n:03d}  AX       V     C        {tc_in} {tc_out} {tc_in} {tc_out}",
                  f"* FROM CLIP NAME: {clip}", f"* FROM FILE: {Path(input_path).resolve()}",
                  f"* SCENETAG: {label} {hms(seg.start_s)} --> {hms(seg.end_s)}", ""]
        cursor = b
    return "\n".join(lines)


def _edl_safe(text: str) -> str:
    return " ".join(clean_label(text).replace("|", " ").split())


def write_label_edls(out_dir: str | Path, segments: Iterable[Any], input_path: str,
                     fps: float | Fraction | None, *, name: str | None = None) -> dict[str, Path]:
    """One events EDL per label with segments, ``<label>.edl`` in ``out_dir``
    (names made safe; two labels with one safe name get ``-2``, ``-3``...)."""
    segs = spans(segments)
    out: dict[str, Path] = {}
    used: set[str] = set()
    for label in dict.fromkeys(s.label for s in segs):
        stem = bounded_name(label, 60) or "label"
        safe, k = stem, 2
        while safe.casefold() in used:
            safe, k = f"{stem}-{k}", k + 1
        used.add(safe.casefold())
        out[label] = atomic_write_text(Path(out_dir) / f"{safe}.edl",
                                       label_edl_text(label, segs, input_path, fps, name=name))
    return out
