"""The readers people trust, as test helpers: OpenTimelineIO's CMX 3600
adapter for ``markers.edl`` and webvtt-py for ``tags.vtt``. ``conftest.py``
runs :func:`check_exports_in` on every test's ``tmp_path``, so every EDL and
VTT the suite writes is read by them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pandas as pd
import webvtt

from pipeline.report import exports
from pipeline.report.text import uncsv_cell
from pipeline.types import Segment

NAMED = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "59.94": Fraction(60000, 1001)}
SMPTE = set(NAMED.values()) | {Fraction(r) for r in (24, 25, 30, 50, 60)}

@dataclass
class EdlRead:
    rate: Fraction
    title: str
    markers: list[tuple[str, float]]  # OTIO marker name, seconds
    resolve: list[tuple[str, float, int]]  # |M: names, event start (s), |D: frames


def read_edl(text: str) -> EdlRead:
    """Parse an EDL with OTIO at the rate its TITLE line names (as a user
    would); fails on anything the adapter rejects."""
    found = re.search(r"^TITLE: .*\((\d+(?:\.\d+)?) fps NDF", text, re.M)
    assert found, text[:200]
    rate = NAMED.get(found.group(1)) or Fraction(found.group(1))
    assert rate in SMPTE and "FCM: NON-DROP FRAME" in text
    timeline = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(rate))
    markers, resolve = [], []
    for clip in timeline.find_clips():
        markers += [(m.name, m.marked_range.start_time.to_seconds()) for m in clip.markers]
        for comment in clip.metadata.get("cmx_3600", {}).get("comments", []):
            line = re.fullmatch(r"\|C:ResolveColor[A-Z][a-z]+ \|M:(.+) \|D:(\d+)", comment)
            assert line, comment
            resolve.append((line.group(1), clip.source_range.start_time.to_seconds(), int(line.group(2))))
    return EdlRead(rate, timeline.name, markers, resolve)


def assert_edl_matches(text: str, segments: list[Segment]) -> EdlRead:
    """Every segment has its locator within one frame of its start; each
    Resolve marker names the labels starting there, with the longest's
    length within one frame."""
    edl = read_edl(text)
    frame = 1 / float(edl.rate) + 1e-9
    assert len(edl.markers) == len(segments)
    remaining = list(edl.markers)
    for seg in sorted(segments, key=lambda s: (s.start_s, s.label)):
        name = exports._marker_name(seg)
        match = next(((n, t) for n, t in remaining if n == f"{name} {seg.peak:.2f}"
                      and abs(t - seg.start_s) <= frame), None)
        assert match, (seg, remaining)
        remaining.remove(match)
    for names, start, frames in edl.resolve:
        here = [s for s in segments if abs(s.start_s - start) <= frame
                and exports._marker_name(s) in names.split(" + ")]
        assert here, (names, start)
        longest = max(s.end_s - max(s.start_s, 0) for s in here)
        assert abs(frames - longest * float(edl.rate)) <= 1 or frames == 1
    assert sum(len(n.split(" + ")) for n, _, _ in edl.resolve) == len(segments)
    return edl


def segments_from_csv(path: Path) -> list[Segment]:
    """The segments of a ``segments.csv`` (labels with the CSV formula prefix undone)."""
    table = pd.read_csv(path, keep_default_na=False)
    return [Segment(uncsv_cell(str(r.label)), r.kind, r.start_s, r.end_s, r.peak, r.mean)
            for r in table.itertuples()]


def otio_check_folder(folder: Path) -> int:
    """Parse every markers.edl under ``folder`` against its segments.csv;
    returns how many were checked."""
    n = 0
    for path in folder.rglob("markers.edl"):
        text = path.read_text(encoding="utf-8")
        if (path.parent / "segments.csv").is_file():
            assert_edl_matches(text, segments_from_csv(path.parent / "segments.csv"))
        else:
            read_edl(text)
        n += 1
    return n


def check_exports_in(folder: Path) -> int:
    """Every ``markers.edl`` under ``folder`` parses in OpenTimelineIO and
    matches its ``segments.csv`` (when there is one); every ``tags.vtt``
    parses in webvtt-py with a cue per segment. Returns the files checked."""
    n = otio_check_folder(folder)
    for path in folder.rglob("tags.vtt"):
        captions = webvtt.read(str(path)).captions
        if (path.parent / "segments.csv").is_file():
            assert len(captions) == len(segments_from_csv(path.parent / "segments.csv")), path
        n += 1
    return n
