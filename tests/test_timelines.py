"""Timelines read back with the readers editors' tools use: OpenTimelineIO
(``.otio``), its FCPXML adapter, its CMX 3600 adapter (events EDLs), PyAV's
FFmetadata demuxer (``chapters.txt``), and our own parse of YouTube's
``00:00 Title`` list. Every range must come back within one frame."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import opentimelineio as otio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis.shots import Shot
from pipeline.report import timelines as tl
from pipeline.report.exports import edl_rate, exact_fps

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = str(ROOT / "sample_videos" / "demo_kitchen.mp4")
LABELS = ["coffee cup", "ball", "children's toy & <b>", "émoji 🐈", "a=b;c#d\\e", "tab\there"]
RATES = [15.0, 24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60000 / 1001, 16.05]


@st.composite
def timelines(draw):
    """(fps, duration, tag segments, nsfw segments, shots): each label's
    segments apart from each other, shots tiling the video."""
    fps = draw(st.sampled_from(RATES))
    duration = draw(st.floats(5, 300))
    segments = []
    for label in draw(st.lists(st.sampled_from(LABELS), unique=True, max_size=4)):
        t = 0.0
        for _ in range(draw(st.integers(1, 4))):
            start = t + draw(st.floats(0, duration / 8))
            end = start + draw(st.floats(0.5, duration / 8))
            if end > duration:
                break
            segments.append((label, start, end))
            t = end + 0.2
    nsfw = [("skull", a, b) for _, a, b in segments[:1]]
    cuts = sorted(set(draw(st.lists(st.floats(0.5, duration - 0.5), max_size=6))))
    bounds = [0.0]
    for c in cuts:
        if c - bounds[-1] > 0.2 and duration - c > 0.2:
            bounds.append(c)
    bounds.append(duration)
    shots = [Shot(k + 1, a, b, 0, 1) for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return fps, duration, segments, nsfw, shots


def _clean(label: str) -> str:
    return " ".join(label.replace("\t", " ").split())


def _by_name(timeline) -> dict[str, list[tuple[float, float, float, float]]]:
    """Clip name -> [(timeline start, end, source start, end)] in seconds."""
    out: dict[str, list] = {}
    for track in timeline.tracks:
        for item in track:
            if isinstance(item, otio.schema.Clip):
                where, src = item.range_in_parent(), item.source_range
                out.setdefault(item.name, []).append((
                    where.start_time.to_seconds(), where.end_time_exclusive().to_seconds(),
                    src.start_time.to_seconds(), src.end_time_exclusive().to_seconds()))
    return out


def _assert_ranges(got: dict, segments, frame: float, *, names=lambda s: s) -> None:
    want: dict[str, list] = {}
    for label, a, b in segments:
        want.setdefault(names(_clean(label)), []).append((a, b))
    for name, ranges in want.items():
        assert len(got.get(name, [])) == len(ranges), (name, got.get(name))
        for (a, b), (ta, tb, sa, sb) in zip(sorted(ranges), sorted(got[name])):
            # on the timeline where it is in the source, and the source range itself
            assert abs(ta - a) <= frame and abs(tb - b) <= frame, (name, a, b, ta, tb)
            assert abs(sa - a) <= frame and abs(sb - b) <= frame


@settings(max_examples=40)
@given(timelines())
def test_otio_round_trip(tmp_path_factory, case):
    fps, duration, segments, nsfw, shots = case
    path = tmp_path_factory.mktemp("otio") / "timeline.otio"
    tl.write_otio(path, tl.build_timeline(KITCHEN, fps, duration, segments, nsfw, shots))
    back = otio.adapters.read_from_file(str(path))
    frame = 1 / float(exact_fps(fps)) + 1e-9
    got = _by_name(back)
    _assert_ranges(got, segments, frame)
    assert [t.name for t in back.tracks] == ["Shots", *dict.fromkeys(s.label for s in tl.spans(segments))]
    shot_clips = list(back.tracks[0])
    assert len(shot_clips) == len(shots)
    for clip, shot in zip(shot_clips, shots):
        assert clip.name == f"Shot {shot.shot}"
        assert Path(clip.media_reference.target_url.removeprefix("file://")) == Path(KITCHEN)
        r = clip.range_in_parent()
        assert abs(r.start_time.to_seconds() - shot.start_s) <= frame
        assert abs(r.end_time_exclusive().to_seconds() - shot.end_s) <= frame
    markers = [(m.name, m.marked_range, c) for c in shot_clips for m in c.markers]
    assert len(markers) == len(nsfw)
    for (name, rng, clip), (label, a, b) in zip(markers, nsfw):
        assert name == f"NSFW: {label}" and abs(rng.start_time.to_seconds() - a) <= frame
        assert abs(rng.end_time_exclusive().to_seconds() - b) <= frame
        assert clip.source_range.start_time <= rng.start_time  # on the shot it starts in


@settings(max_examples=40)
@given(timelines())
def test_fcpxml_reads_back_through_the_adapter(case):
    fps, duration, segments, nsfw, shots = case
    text = tl.fcpxml_text(KITCHEN, fps, duration, segments, nsfw, shots, width=320, height=240)
    back = otio.adapters.read_from_string(text, "fcpx_xml")
    rate = tl.fcpxml_rate(fps)
    frame = 1 / rate + 1e-9
    fcpx_name = lambda s: s.replace("'", "\u2019")  # noqa: E731
    # As written, in exact rationals: within a frame (half a frame of rounding)
    _assert_ranges(_fcpxml_ranges(text), segments, frame / 2 + 1e-9, names=fcpx_name)
    # As the adapter reads it back: it truncates each time to a whole frame
    # (int(29/50 * 50) is 28), so one frame more
    _assert_ranges(_by_name(back), segments, 2 * frame, names=fcpx_name)
    spine = [c for c in back.tracks[0] if isinstance(c, otio.schema.Clip)]
    assert [c.name for c in spine] == [f"Shot {s.shot}" for s in shots]
    markers = [m for c in spine for m in c.markers]
    assert [m.name for m in markers] == [f"NSFW: {label}" for label, _, _ in nsfw]
    for m, (_, a, _) in zip(markers, nsfw):
        assert abs(m.marked_range.start_time.to_seconds() - a) <= frame
    # what Final Cut Pro checks first: the version, a format with a frame duration
    # and size, every ref resolving to a resource
    assert '<fcpxml version="1.8">' in text
    fmt = re.search(r'<format id="r1" frameDuration="([^"]+)" width="320" height="240"', text)
    assert fmt and Fraction(fmt.group(1).rstrip("s")) == Fraction(1, rate)
    ids = set(re.findall(r' id="(r\d+)"', text))
    assert set(re.findall(r' ref="(r\d+)"', text)) <= ids and 'uid=""' not in text


def _fcpxml_ranges(text: str) -> dict[str, list[tuple[float, float, float, float]]]:
    """Connected clips (the label lanes) of an FCPXML document, read exactly:
    name -> [(timeline start, end, source start, end)] in seconds."""
    from xml.etree import ElementTree

    def t(value: str | None) -> Fraction:
        return Fraction(value.rstrip("s")) if value and value != "0s" else Fraction(0)

    out: dict[str, list] = {}
    for parent in ElementTree.fromstring(text.split("\n", 2)[2]).iter("clip"):
        for clip in parent.findall("clip"):
            if clip.get("lane") is None:
                continue
            # a connected clip's offset is in its parent's source time, which here is the source's
            offset, start, duration = t(clip.get("offset")), t(clip.get("start")), t(clip.get("duration"))
            out.setdefault(clip.get("name"), []).append(
                (float(offset), float(offset + duration), float(start), float(start + duration)))
    return out


def test_fcpxml_rates():
    assert [tl.fcpxml_rate(r) for r in (15, 24000 / 1001, 25, 30000 / 1001, 50, 60000 / 1001, 16.05)] == [
        24, 24, 25, 30, 50, 60, 24]


@settings(max_examples=40)
@given(timelines())
def test_events_edls_read_back_as_ranges(tmp_path_factory, case):
    fps, _, segments, _, _ = case
    folder = tmp_path_factory.mktemp("edl")
    written = tl.write_label_edls(folder, segments, KITCHEN, fps, name="demo")
    assert set(written) == {_clean(s[0]) for s in segments}
    rate = edl_rate(fps)
    frame = 1 / float(rate) + 1e-9
    for label, path in written.items():
        assert path.parent == folder and path.suffix == ".edl"
        text = path.read_text(encoding="utf-8")
        assert f"({tl.rate_name(rate)} fps NDF)" in text.splitlines()[0]
        back = otio.adapters.read_from_string(text, "cmx_3600", rate=float(rate))
        track, = back.tracks
        clips = list(back.find_clips())
        mine = sorted((a, b) for lab, a, b in segments if _clean(lab) == label)
        assert len(clips) == len(mine)
        for clip, (a, b) in zip(clips, mine):
            src = clip.source_range
            assert abs(src.start_time.to_seconds() - a) <= frame
            assert abs(src.end_time_exclusive().to_seconds() - b) <= frame
            # recorded where it happened: the reader starts the track at the first record-in
            shift = track.source_range.start_time.to_seconds() if track.source_range else 0.0
            assert clip.range_in_parent().start_time.to_seconds() - shift == pytest.approx(
                src.start_time.to_seconds())
            assert Path(clip.media_reference.target_url) == Path(KITCHEN)


def test_label_file_names_stay_apart(tmp_path):
    written = tl.write_label_edls(tmp_path, [("a/b", 1, 2), ("a b", 3, 4), ("A_B", 5, 6)], KITCHEN, 25)
    # told apart case-blind, as macOS and Windows file systems compare names
    assert [p.name for p in written.values()] == ["a_b.edl", "a_b-2.edl", "A_B-3.edl"]


# --------------------------------------------------------------------------- chapters


@st.composite
def chapter_lists(draw):
    duration = draw(st.floats(1, 4000))
    cuts = sorted(set(draw(st.lists(st.floats(0.01, duration - 0.01), max_size=12))))
    bounds = [0.0, *cuts, duration]
    titles = draw(st.lists(st.sampled_from([_clean(x) for x in LABELS] + ["Shot 1"]),
                           min_size=len(bounds) - 1, max_size=len(bounds) - 1))
    return [tl.Chapter(a, b, t) for (a, b), t in zip(zip(bounds, bounds[1:]), titles) if b > a]


@given(chapter_lists())
def test_ffmetadata_reads_back_in_ffmpeg(tmp_path_factory, chapters):
    path = tmp_path_factory.mktemp("ch") / "chapters.txt"
    tl.write_ffmetadata(path, chapters, title="demo = x; #1")
    with av.open(str(path), format="ffmetadata") as container:
        read, meta = container.chapters(), dict(container.metadata)
    assert meta["title"] == "demo = x; #1"
    kept = [c for c in chapters if round(c.end_s * 1000) > round(c.start_s * 1000)]
    assert len(read) == len(kept)
    for got, ch in zip(read, kept):
        assert got["metadata"]["title"] == ch.title
        assert abs(float(got["start"] * got["time_base"]) - ch.start_s) <= 0.0005 + 1e-9
        assert abs(float(got["end"] * got["time_base"]) - ch.end_s) <= 0.0005 + 1e-9


def _parse_youtube(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.splitlines():
        m = re.fullmatch(r"(?:(\d+):)?(\d{2}):(\d{2}) (.+)", line)
        assert m, line
        h, mm, ss, title = m.groups()
        out.append((int(h or 0) * 3600 + int(mm) * 60 + int(ss), title))
    return out


@given(chapter_lists())
def test_youtube_chapters_follow_youtubes_rules(chapters):
    yt = tl.youtube_chapters(chapters)
    kept = list(yt.chapters)
    assert kept[0].start_s == 0 and kept[-1].end_s == chapters[-1].end_s
    assert all(a.end_s == b.start_s for a, b in zip(kept, kept[1:]))  # still tiling the video
    assert {c.title for c in kept} <= {c.title for c in chapters}
    if yt.text is None:
        assert yt.notes and (len(kept) < 3 or any(c.end_s - c.start_s < 10 for c in kept))
        return
    lines = _parse_youtube(yt.text)
    assert lines[0][0] == 0 and len(lines) >= 3
    assert [t for _, t in lines] == [c.title for c in kept]
    for (s, _), c in zip(lines, kept):
        assert s == int(c.start_s + 1e-6) and c.end_s - c.start_s >= 10 - 1e-9
    assert all(b - a >= 10 for (a, _), (b, _) in zip(lines, lines[1:]))  # floor(b) - floor(a) >= floor(b - a)


def test_youtube_merges_and_says_so():
    chapters = [tl.Chapter(2, 20, "intro"), tl.Chapter(20, 24, "blip"), tl.Chapter(24, 60, "main"),
                tl.Chapter(60, 75, "end")]
    yt = tl.youtube_chapters(chapters)
    assert yt.text == "00:00 intro\n00:24 main\n01:00 end\n"  # the blip joins its shorter neighbour
    assert any("00:00" in n for n in yt.notes) and any("'blip'" in n for n in yt.notes)
    assert tl.youtube_chapters(chapters[:2]).text is None


def test_chapters_from_segments_and_shots():
    segs = [("coffee cup", 2.0, 6.0), ("ball", 5.0, 9.0), ("ball", 9.0, 13.0)]
    chapters = tl.chapters_from_segments(segs, 15.0)
    assert [(c.start_s, c.end_s, c.title) for c in chapters] == [
        (0.0, 2.0, "No tags"), (2.0, 5.0, "coffee cup"), (5.0, 6.0, "coffee cup + ball"),
        (6.0, 13.0, "ball"), (13.0, 15.0, "No tags")]
    shots = [Shot(1, 0.0, 7.3, 0, 110, "start"), Shot(2, 7.3, 15.0, 110, 225)]
    assert [(c.title, c.start_s) for c in tl.chapters_from_shots(shots, ["cup", ""])] == [
        ("cup", 0.0), ("Shot 2", 7.3)]


def test_the_demo_run_timeline(tmp_path):
    """The demo kitchen clip's segments (coffee cup frames 30-90, ball
    135-195 at 15 fps) in every format; the OTIO file names the real file."""
    segs = [("coffee cup", 2.0, 6.0), ("ball", 9.0, 13.0)]
    timeline = tl.build_timeline(KITCHEN, 15, 15.0, segs)
    tl.write_otio(tmp_path / "timeline.otio", timeline)
    back = otio.adapters.read_from_file(str(tmp_path / "timeline.otio"))
    cup = next(c for c in back.find_clips() if c.name == "coffee cup")
    assert (cup.source_range.start_time.value, cup.source_range.duration.value) == (30, 60)
    assert cup.source_range.start_time.rate == 15
    tl.write_fcpxml(tmp_path / "timeline.fcpxml", KITCHEN, 15, 15.0, segs, width=320, height=240)
    assert otio.adapters.read_from_file(str(tmp_path / "timeline.fcpxml")).name == "demo_kitchen"
    with pytest.raises(StopIteration):
        next(iter(tmp_path.glob(".*.tmp-*")))  # nothing half-written left
