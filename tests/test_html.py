"""The HTML report in a real browser: headless Chromium renders report.html
from a CLI run with the tiny model; the screenshot must not be blank, the DOM
must hold the segments table, and the page's script must work (clicking a
row shows its time; NSFW thumbnails are blurred until clicked).

Skipped only where Chromium is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_model import tiny_config
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.report import html
from pipeline.types import LabelTrack, Sampling, Segment, VideoInfo, VideoResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); browser test skipped")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1600"]


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dump_dom(page: Path, tmp_path: Path) -> str:
    # virtual time lets the page's scripts (and our probes) run before the dump
    return chromium(page, tmp_path, "--virtual-time-budget=3000", "--dump-dom").stdout


def with_probe(page: Path, probe: str) -> Path:
    """A copy of ``page`` with a script appended that records results as
    ``data-*`` attributes on <body>, for --dump-dom to read."""
    probed = page.with_name("probe-" + page.name)
    probed.write_text(page.read_text().replace("</body>", f"<script>{probe}</script></body>"))
    return probed


runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir, clip_dir) -> Path:
    out = tmp_path_factory.mktemp("html")
    cfg = tiny_config(out, tiny_model_dir,
                      "sampling: {every_seconds: 0.5}\ndecoder: {strategy: exact}\n"
                      "labels: [{name: cat}, {name: '<script>alert(1)</script>'}, {name: car}]\n"
                      "smoothing: {method: none}\n"
                      "segments: {threshold: 0.2, min_duration_s: 0, merge_gap_s: 0}\n")
    result = runner.invoke(app, ["run", str(clip_dir / "ten.mp4"), str(clip_dir / "twentyfive.mp4"),
                                 "-c", str(cfg), "-o", str(out / "r"), "-q", "--no-store"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / "r"


def test_report_screenshot_is_not_blank(run_dir, tmp_path):
    from PIL import Image, ImageStat

    shot = tmp_path / "shot.png"
    chromium(run_dir / "ten" / "report.html", tmp_path, f"--screenshot={shot}")
    with Image.open(shot) as im:
        assert im.size == (1280, 1600)
        grey = im.convert("L")
        assert ImageStat.Stat(grey).var[0] > 200, "screenshot looks blank"
        assert len(grey.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def test_dom_has_segment_rows_timeline_and_player(run_dir, tmp_path):
    dom = dump_dom(run_dir / "ten" / "report.html", tmp_path)
    segments = pd.read_csv(run_dir / "ten" / "segments.csv", keep_default_na=False)
    assert len(segments) >= 1
    assert '<table id="segments-table">' in dom
    rows = re.findall(r'<tr class="segment[^"]*" data-i="\d+"', dom)
    assert len(rows) == len(segments)
    assert len(re.findall(r"<img [^>]*thumbs/", dom)) == len(segments)
    assert '<svg id="timeline-svg"' in dom and dom.count('<polyline class="score"') == 3
    assert '<video id="player"' in dom
    assert "<script>alert" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_clicking_a_row_shows_its_time(run_dir, tmp_path):
    probe = ("var row = document.querySelector('#segments-table tr.segment');"
             "row.click();"
             "document.body.dataset.selected = document.getElementById('selected-time').textContent;"
             "document.body.dataset.start = row.dataset.start;"
             "document.body.dataset.rowSelected = row.classList.contains('selected');")
    dom = dump_dom(with_probe(run_dir / "ten" / "report.html", probe), tmp_path)
    start = float(re.search(r'data-start="([\d.]+)"', dom).group(1))
    selected = re.search(r'data-selected="(\d\d:\d\d:\d\d\.\d\d\d)"', dom)
    assert selected, "clicking a row did not show a time"
    h, m, s = selected.group(1).split(":")
    assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(start, abs=1e-3)
    assert 'data-row-selected="true"' in dom


def test_nsfw_thumbnail_is_blurred_until_clicked(clip_dir, tmp_path):
    times = np.arange(8) * 0.5
    tracks = [LabelTrack("cat", "tag", np.full(8, 0.8), np.full(8, 0.8), 0.5, 0.45),
              LabelTrack("gore", "nsfw", np.full(8, 0.9), np.full(8, 0.9), 0.7, 0.6)]
    info = VideoInfo(path=str(clip_dir / "ten.mp4"), container="mov,mp4", codec="h264", width=96,
                     height=64, duration_s=4.0, avg_fps=10.0, frame_count=40)
    result = VideoResult(input_path=str(clip_dir / "ten.mp4"), name="ten", info=info,
                         sampling=Sampling(every_seconds=0.5), frame_indices=np.arange(8) * 5,
                         times_s=times, tracks=tracks,
                         segments=[Segment("cat", "tag", 0.0, 2.0, 0.8, 0.8),
                                   Segment("gore", "nsfw", 1.0, 3.0, 0.9, 0.9)])
    page = html.write_report_html(result, tmp_path / "ten")
    assert len(list((tmp_path / "ten" / "thumbs").glob("*.jpg"))) == 2
    probe = ("var img = document.querySelector('.thumb.nsfw img');"
             "document.body.dataset.before = getComputedStyle(img).filter;"
             "img.parentNode.click();"
             "document.body.dataset.after = getComputedStyle(img).filter;"
             "document.body.dataset.plain = getComputedStyle("
             "document.querySelector('.thumb:not(.nsfw) img')).filter;")
    dom = dump_dom(with_probe(page, probe), tmp_path)
    assert re.search(r'data-before="blur\(', dom), "NSFW thumbnail is not blurred"
    assert 'data-after="none"' in dom and 'data-plain="none"' in dom


def test_index_page_links_every_input(run_dir, tmp_path):
    dom = dump_dom(run_dir / "index.html", tmp_path)
    assert 'href="ten/report.html"' in dom and 'href="twentyfive/report.html"' in dom
    assert len(re.findall(r'<tr class="ok">', dom)) == 2


def twenty_minutes_with_a_gap() -> VideoResult:
    """A 20-minute live stream, one sample a second, no frames 300-360 s."""
    from pipeline.decode.gaps import gap_note
    from pipeline.types import DecodeStats

    times = np.array([t for t in np.arange(1200.0) if not 300 < t < 360])
    score = 0.5 + 0.4 * np.sin(times / 30)
    return VideoResult(input_path="/nowhere/stream", name="stream", sampling=Sampling(every_seconds=1.0),
                       frame_indices=np.arange(len(times)), times_s=times,
                       tracks=[LabelTrack("cat", "tag", score, score, 0.5, 0.45)],
                       segments=[Segment("cat", "tag", 100.0, 200.0, 0.9, 0.8)],
                       decode=DecodeStats(strategy="live",
                                          notes=[gap_note(299.0, 360.0, "connection closed")]))


ZOOM_PROBE = """
var svg = document.getElementById('timeline-svg'), b = document.body.dataset;
var r = svg.getBoundingClientRect(), scale = r.width / svg.viewBox.baseVal.width;
function at(x) { return {bubbles: true, cancelable: true, clientX: r.left + x * scale, clientY: r.top + 60}; }
function seen() { return svg.dataset.t0 + '/' + svg.dataset.t1; }
b.before = seen();
document.getElementById('zoom-in').click(); document.getElementById('zoom-in').click();
b.zoomed = seen();
b.ticks = Array.from(document.querySelectorAll('#axis text'))
  .map(function (t) { return t.textContent; }).join(',');
b.transform = document.getElementById('zoom').getAttribute('transform');
svg.dispatchEvent(new MouseEvent('mousedown', Object.assign(at(500), {button: 0})));
svg.dispatchEvent(new MouseEvent('mousemove', at(400)));
svg.dispatchEvent(new MouseEvent('mouseup', at(400)));
b.panned = seen();
svg.dispatchEvent(new WheelEvent('wheel', Object.assign(at(500), {ctrlKey: true, deltaY: 300})));
b.wheeled = seen();
document.getElementById('zoom-reset').click();
b.reset = seen();
var x0 = parseFloat(svg.dataset.x0), w = parseFloat(svg.dataset.x1) - x0;
svg.dispatchEvent(new MouseEvent('mousemove', at(x0 + w * 330 / parseFloat(svg.dataset.end))));
b.tip = document.getElementById('tip').textContent.replace(/\\n/g, ' | ');
"""


def test_a_long_timeline_zooms_and_pans_with_round_ticks(tmp_path):
    page = html.write_report_html(twenty_minutes_with_a_gap(), tmp_path / "stream", thumbs=False)
    dom = dump_dom(with_probe(page, ZOOM_PROBE), tmp_path)
    seen = {k: re.search(f'data-{k}="([^"]*)"', dom).group(1) for k in
            ("before", "zoomed", "ticks", "transform", "panned", "wheeled", "reset", "tip")}
    window = {k: tuple(map(float, seen[k].split("/")))
              for k in ("before", "zoomed", "panned", "wheeled", "reset")}
    end = window["before"][1]
    assert window["before"][0] == 0 and end == pytest.approx(1199.5, abs=1)
    a, b = window["zoomed"]  # two clicks of + : a quarter, about the middle
    assert b - a == pytest.approx(end / 4, abs=0.01) and (a + b) / 2 == pytest.approx(end / 2, abs=0.01)
    ticks = [int(m) * 60 + int(s) for m, s in (t.split(":") for t in seen["ticks"].split(","))]
    assert 3 <= len(ticks) <= 11 and a - 1 <= ticks[0] and ticks[-1] <= b + 1
    assert len(set(np.diff(ticks))) == 1 and np.diff(ticks)[0] in (1, 2, 5, 10, 15, 30, 60, 120, 300)
    x0, x1 = (float(re.search(f'data-{k}="([\\d.]+)"', dom).group(1)) for k in ("x0", "x1"))
    k, e = (float(v) for v in re.fullmatch(r"matrix\((\S+) 0 0 1 (\S+) 0\)", seen["transform"]).groups())
    assert k * (x0 + (x1 - x0) * a / end) + e == pytest.approx(x0, abs=0.01)  # the window starts at the left
    p0, p1 = window["panned"]  # dragged 100 units to the left: later times come into view
    assert p1 - p0 == pytest.approx(b - a, abs=0.01)  # clientX is whole pixels: within one pixel's time
    assert p0 - a == pytest.approx(100 / (x1 - x0) * (b - a), abs=0.01 * (b - a))
    assert window["wheeled"][1] - window["wheeled"][0] > p1 - p0  # Ctrl + wheel down zooms out
    assert window["reset"] == (0, end)
    assert "no frames (gap: connection closed)" in seen["tip"]


def index_of_three(folder: Path) -> Path:
    """index.html over three inputs with posters: 30 s beach, 5 s cat
    (unsafe), 120 s beach and cat."""
    from PIL import Image

    from pipeline.types import DecodeStats

    rows = []
    inputs = (("alpha", 30.0, ["beach"], "safe"), ("bravo", 5.0, ["cat"], "unsafe"),
              ("charlie", 120.0, ["beach", "cat"], "safe"))
    for name, seconds, tags, verdict in inputs:
        (folder / name).mkdir(parents=True)
        (folder / name / "report.html").write_text("<html></html>")
        Image.new("RGB", (32, 24), (200, 120, 40)).save(folder / name / "poster.jpg")
        info = VideoInfo(path=f"/in/{name}.mp4", container="mov,mp4", codec="h264", width=32, height=24,
                         duration_s=seconds, avg_fps=10.0, frame_count=int(seconds * 10))
        rows.append(VideoResult(input_path=f"/in/{name}.mp4", name=name, info=info, tags=tags,
                                nsfw_verdict=verdict, frame_indices=np.arange(int(seconds)),
                                decode=DecodeStats()))
    return html.write_index_html(rows, folder)


INDEX_PROBE = """
var b = document.body.dataset, buttons = document.querySelectorAll('#index-table button.sort');
function names() {
  return Array.from(document.querySelectorAll('#index-table tbody tr'))
    .filter(function (r) { return !r.hidden; })
    .map(function (r) { return r.cells[1].textContent; }).join(',');
}
b.first = names();
buttons[2].click(); b.byDuration = names();
buttons[2].click(); b.byDurationDown = names();
var filter = document.getElementById('index-filter');
filter.value = 'beach'; filter.dispatchEvent(new Event('input'));
b.beach = names(); b.count = document.getElementById('index-count').textContent;
b.blurred = getComputedStyle(document.querySelector('.thumb.nsfw img')).filter;
"""


def test_index_page_shows_posters_sorts_and_filters(tmp_path):
    page = index_of_three(tmp_path / "run")
    text = page.read_text("utf-8")
    assert text.count('<img src="') == 3 and 'src="bravo/poster.jpg"' in text
    dom = dump_dom(with_probe(page, INDEX_PROBE), tmp_path)
    seen = {k: re.search(f'data-{k}="([^"]*)"', dom).group(1)
            for k in ("first", "by-duration", "by-duration-down", "beach", "count", "blurred")}
    assert seen["first"] == "alpha,bravo,charlie"
    assert seen["by-duration"] == "bravo,alpha,charlie" and seen["by-duration-down"] == "charlie,alpha,bravo"
    assert seen["beach"] == "charlie,alpha" and seen["count"] == "2 of 3 shown"
    assert seen["blurred"].startswith("blur(")  # an unsafe video's poster waits for a click


SHOT_PROBE = """
var b = document.body.dataset, svg = document.getElementById('timeline-svg');
var block = document.querySelector('#timeline-svg rect.shot[data-i="1"]');
block.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}));
b.selected = document.getElementById('selected-time').textContent;
b.blocks = document.querySelectorAll('#timeline-svg rect.shot').length;
var r = block.getBoundingClientRect();
block.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, clientX: r.left + r.width / 2,
                                                 clientY: r.top + r.height / 2}));
b.tip = document.getElementById('tip').textContent.replace(/\\n/g, ' | ');
"""


def test_clicking_a_shot_seeks_to_its_start(clip_dir, tmp_path):
    from pipeline.report.timeline_files import CueRow, ShotRow

    times = np.arange(8) * 0.5
    info = VideoInfo(path=str(clip_dir / "ten.mp4"), container="mov,mp4", codec="h264", width=96,
                     height=64, duration_s=4.0, avg_fps=10.0, frame_count=40)
    result = VideoResult(input_path=str(clip_dir / "ten.mp4"), name="ten", info=info,
                         sampling=Sampling(every_seconds=0.5), frame_indices=np.arange(8) * 5, times_s=times,
                         tracks=[LabelTrack("cat", "tag", np.full(8, 0.8), np.full(8, 0.8), 0.5, 0.45)],
                         segments=[Segment("cat", "tag", 0.0, 2.0, 0.8, 0.8)],
                         shots=[ShotRow(1, 0.0, 1.3, 0, 13, "cat"), ShotRow(2, 1.3, 4.0, 13, 40, "<b>dog")],
                         cues=[CueRow("black", 1.2, 1.3)])
    page = html.write_report_html(result, tmp_path / "ten", thumbs=False)
    dom = dump_dom(with_probe(page, SHOT_PROBE), tmp_path)
    seen = {k: re.search(f'data-{k}="([^"]*)"', dom).group(1) for k in ("selected", "blocks", "tip")}
    assert seen["blocks"] == "2" and seen["selected"] == "00:00:01.300"
    assert "Shot 2  00:01.300–00:04.000  " in seen["tip"] and "b&gt;dog" in seen["tip"]  # as text
    assert "<b>dog" not in dom
