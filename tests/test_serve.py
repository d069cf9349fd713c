"""``scenetag serve``: a real server on 127.0.0.1 (a free port) over the store
the demo run builds. Text and picture search find the right frames and
moments, range requests return the right bytes, nothing outside the
allow-list is reachable, and the page works in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
from demo_assets import MODEL, ROOT, needs_demo
from serve_helpers import request

pytest.importorskip("fastapi")
pytest.importorskip("lancedb")
pytestmark = needs_demo

CUP_QUERY = "a photo of a coffee cup."
CUP = (2.0, 6.0)  # demo_kitchen.mp4's coffee cup (sample_videos/demo_truth.json)
STEP = 0.5  # configs/demo.yaml samples every 0.5 s
FRAME = 1 / 15 + 1e-3  # the demo clips run at 15 fps
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_embedder():
    from pipeline.embed import load_embedder

    return load_embedder(str(MODEL), device="cpu")


@pytest.fixture(scope="module")
def served(demo_run, demo_embedder, tmp_path_factory):
    """A server over the demo store and reports, stopped after the module."""
    from pipeline.serve.app import create_app
    from pipeline.serve.server import start_in_thread
    from pipeline.store.db import EmbeddingStore

    _, out = demo_run
    store = EmbeddingStore.open(out / "store")
    app = create_app(store, demo_embedder, reports=out, thumbs=tmp_path_factory.mktemp("thumbs"))
    running = start_in_thread(app)
    yield running, out, app
    running.stop()


def get_json(running, path: str, **kw) -> dict:
    status, _, body = request(running, path, **kw)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def search(running, q: str, **params) -> dict:
    return get_json(running, "/api/search?" + urllib.parse.urlencode({"q": q, **params}))


def in_cup(hit: dict, slack: float = STEP) -> bool:
    return Path(hit["input"]).name == "demo_kitchen.mp4" and \
        CUP[0] - slack <= hit["time_s"] <= CUP[1] + slack


# --------------------------------------------------------------------------- search


def test_text_search_finds_the_kitchen_cup_frames_first(served):
    running, out, _ = served
    result = search(running, CUP_QUERY, top=8)
    hits = result["hits"]
    assert len(hits) == 8 and all(in_cup(h) for h in hits), [(h["input"], h["time_s"]) for h in hits]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert set(hits[0]) >= {"input", "time_s", "frame_index", "score"}


def test_api_answers_as_the_search_command_does(served, demo_embedder):
    """The API is `scenetag search`'s function over the same store: same frames, same order."""
    from pipeline.explore.search import query_vector
    from pipeline.explore.search import search as reference

    running, out, app = served
    store = app.state.scenetag.store
    want = reference(store, query_vector(store, lambda: demo_embedder, CUP_QUERY), top_k=15)
    got = search(running, CUP_QUERY, top=15)["hits"]
    assert [(h["input"], h["frame_index"]) for h in got] == [(h.input_path, h.frame_index) for h in want]
    assert [h["score"] for h in got] == pytest.approx([h.score for h in want], abs=1e-3)


@pytest.mark.parametrize("top", [1, 5, 50])
def test_moments_are_the_true_interval_whatever_the_top(served, top):
    """Issue 26 §2/§6.2: top 5 gave 00:02.000-00:04.500 and 00:05.533-00:06.033; top 20 ran
    to 00:06.433 (a refinement frame stretched by a whole sampling step)."""
    running, _, _ = served
    result = search(running, CUP_QUERY, top=top)
    cup = [m for m in result["moments"] if Path(m["input"]).name == "demo_kitchen.mp4"
           and m["start_s"] < CUP[1] and m["end_s"] > CUP[0]]
    assert len(cup) == 1 and cup[0] == result["moments"][0], result["moments"]
    best = cup[0]
    assert (best["start_s"], best["end_s"]) == pytest.approx(CUP, abs=FRAME)
    assert (best["start_clock"], best["end_clock"]) == ("00:02.000", "00:06.000")
    assert best["best_score"] == max(h["score"] for h in result["hits"])
    for moment in result["moments"]:  # each counts the hits inside it
        inside = [h for h in result["hits"] if h["input"] == moment["input"]
                  and moment["start_s"] <= h["time_s"] < moment["end_s"]]
        assert moment["hits"] == len(inside) >= 1


@pytest.mark.parametrize("q", ["", "   ", "\t"])
def test_a_blank_query_is_refused_clearly(served, q):
    running, _, _ = served
    status, _, body = request(running, "/api/search?" + urllib.parse.urlencode({"q": q}))
    assert status == 400 and json.loads(body) == {
        "detail": "q: give words to search for (the query is empty or blank)"}


def test_min_score_and_video_filters(served):
    running, _, _ = served
    hits = search(running, CUP_QUERY, top=50, min_score=0.5)["hits"]
    assert hits and all(h["score"] >= 0.5 for h in hits) and all(in_cup(h) for h in hits)
    park = search(running, CUP_QUERY, top=5, video="demo_park")["hits"]
    assert len(park) == 5 and {Path(h["input"]).name for h in park} == {"demo_park.mp4"}
    status, _, body = request(running, "/api/search?q=x&video=nothing-like-it")
    assert status == 400 and b"no stored input matches" in body
    assert request(running, "/api/search?q=x&top=0")[0] == 422
    assert len(search(running, CUP_QUERY, top=4, sampling="every 0.5 s")["hits"]) == 4
    status, _, body = request(running, "/api/search?q=x&sampling=every+9+s")
    assert status == 400 and b"the store holds: 'every 0.5 s" in body


def test_picture_search_finds_its_frame(served, tmp_path):
    from PIL import Image

    from pipeline.decode import read_frames_at

    running, out, _ = served
    clip = str(ROOT / "sample_videos" / "demo_kitchen.mp4")
    [frame] = read_frames_at(clip, [4.0])
    picture = tmp_path / "query.png"
    Image.fromarray(frame.image).save(picture)
    status, _, body = _upload(running, picture.read_bytes(), "query.png", {"top": "3"})
    assert status == 200, body[:300]
    hits = json.loads(body)["hits"]
    assert Path(hits[0]["input"]).name == "demo_kitchen.mp4" and abs(hits[0]["time_s"] - 4.0) <= STEP
    status, _, body = _upload(running, b"not a picture at all", "x.png", {})
    assert status == 400 and b"not a picture" in body


def _upload(running, data: bytes, name: str, fields: dict) -> tuple[int, dict, bytes]:
    boundary = "scenetagtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return request(running, "/api/search/image", method="POST", body=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


# --------------------------------------------------------------------------- inputs, files


def _kitchen(running) -> dict:
    inputs = get_json(running, "/api/inputs")["inputs"]
    return next(i for i in inputs if i["name"] == "demo_kitchen.mp4")


def test_inputs_carry_their_reports(served):
    running, _, _ = served
    inputs = {i["name"]: i for i in get_json(running, "/api/inputs")["inputs"]}
    assert set(inputs) == {"demo_kitchen.mp4", "demo_park.mp4", "demo_street.mp4"}
    assert inputs["demo_street.mp4"]["nsfw_verdict"] == "unsafe"
    assert inputs["demo_kitchen.mp4"]["nsfw_verdict"] == "safe"
    assert "coffee cup" in inputs["demo_kitchen.mp4"]["tags"]
    detail = get_json(running, f"/api/inputs/{inputs['demo_kitchen.mp4']['id']}")
    names = [t["name"] for t in detail["timeline"]["tracks"]]
    assert "coffee cup" in names and len(detail["timeline"]["times"]) == detail["frames"] == 30
    assert detail["stored_frames"] > 30  # its edge-refinement frames are stored (and searchable) too
    assert any(s["label"] == "coffee cup" for s in detail["segments"])


def test_nsfw_hits_are_flagged(served):
    running, _, _ = served
    hits = search(running, "a photo of a skull.", top=3)["hits"]
    assert all(Path(h["input"]).name == "demo_street.mp4" and h["nsfw"] for h in hits)
    assert not any(h["nsfw"] for h in search(running, CUP_QUERY, top=3)["hits"])


def test_range_requests_return_the_right_bytes(served):
    running, _, _ = served
    kitchen = _kitchen(running)
    data = (ROOT / "sample_videos" / "demo_kitchen.mp4").read_bytes()
    status, headers, body = request(running, kitchen["video"], headers={"Range": "bytes=100-1099"})
    assert status == 206 and body == data[100:1100]
    assert headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert headers["accept-ranges"] == "bytes" and headers["content-type"] == "video/mp4"
    status, _, body = request(running, kitchen["video"], headers={"Range": "bytes=-64"})
    assert status == 206 and body == data[-64:]
    status, _, body = request(running, kitchen["video"])
    assert status == 200 and body == data
    assert request(running, kitchen["video"], headers={"Range": f"bytes={len(data) + 10}-"})[0] == 416


def test_thumbnails_are_made_once_and_cached_on_disk(served):
    from PIL import Image

    running, _, app = served
    kitchen = _kitchen(running)
    status, headers, body = request(running, kitchen["thumb"])
    assert status == 200 and headers["content-type"] == "image/jpeg"
    with Image.open(__import__("io").BytesIO(body)) as im:
        assert min(im.size) == app.state.scenetag.thumbs.side
    folder = app.state.scenetag.thumbs.folder
    made = {p: p.stat().st_mtime_ns for p in folder.glob("*.jpg")}
    assert made
    assert request(running, kitchen["thumb"])[2] == body
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.jpg")} == made  # read, not made again
    assert request(running, f"/api/thumb/{kitchen['id']}/999999.jpg")[0] == 404  # not a stored frame


TRAVERSALS = [
    "/api/video/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/video/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/api/video/%252e%252e%252fetc%252fpasswd",
    "/api/video/../../../../etc/passwd",
    "/api/video//etc/passwd",
    "/api/video/%2Fetc%2Fpasswd",
    "/api/video/..%5C..%5Cwindows%5Cwin.ini",
    "/api/thumb/..%2F..%2F/..%2Fetc%2Fpasswd",
    "/api/thumb/%2e%2e/%2e%2e%2fpyproject.toml",
    "/api/inputs/..%2F..%2Fpyproject.toml",
    "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e/%2e%2e/cli.py",
    "/static/../app.py",
    "/static/index.html%00.js",
    "/static/.%2Fapp.js%2F..%2F..%2Fapi.py",
    "/..%2Fpipeline%2Fcli.py",
    "/pyproject.toml",
    "/store/meta.lance",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_attempts_get_404(served, path):
    running, out, _ = served
    status, _, body = request(running, path)
    assert status == 404, (path, status, body[:200])
    assert b"root:" not in body and b"[build-system]" not in body


def test_traversal_with_a_real_input_id(served):
    running, _, _ = served
    ident = _kitchen(running)["id"]
    for path in (f"/api/video/{ident}/../../../etc/passwd", f"/api/video/{ident}%2F..%2F..%2Fetc%2Fpasswd",
                 f"/api/thumb/{ident}/..%2F..%2F..%2Fetc%2Fpasswd", f"/api/thumb/{ident}/31.jpg%2F..%2F..",
                 f"/api/thumb/{ident}/-1.jpg", f"/api/thumb/{ident}/31.png"):
        assert request(running, path)[0] == 404, path


def test_page_headers_and_no_cdn(served):
    running, _, _ = served
    status, headers, page = request(running, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    static = Path(__file__).parent.parent / "pipeline" / "serve" / "static"
    for name in ("index.html", "app.js", "app.css", "docs.html", "docs.js"):
        text = (static / name).read_text()
        assert "innerHTML" not in text and "<script>" not in text, name
        elsewhere = text.replace('"http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        assert "http://" not in elsewhere and "https://" not in elsewhere, f"{name} names another server"
    spec = get_json(running, "/openapi.json")
    assert {"/api/search", "/api/search/image", "/api/inputs", "/api/thumb/{ident}/{name}",
            "/api/video/{ident}"} <= set(spec["paths"])
    assert request(running, "/docs")[0] == 200


def test_host_header_is_checked(served):
    running, _, _ = served
    status, _, _ = request(running, "/api/inputs", headers={"Host": "attacker.example"})
    assert status == 400  # a rebound DNS name pointing at 127.0.0.1 is refused


def test_server_answers_searches_while_thumbnails_are_made(demo_run, demo_embedder, tmp_path):
    """A thumbnail blocked in its decode must not hold up a search."""
    from pipeline.serve.app import create_app
    from pipeline.serve.library import Library
    from pipeline.serve.server import start_in_thread
    from pipeline.store.db import EmbeddingStore

    release = threading.Event()

    class SlowFiles(Library):
        def open_file(self, ident):
            release.wait(30)
            return super().open_file(ident)

    _, out = demo_run
    store = EmbeddingStore.open(out / "store")
    library = SlowFiles(Library.load(store).inputs())
    running = start_in_thread(create_app(store, demo_embedder, library=library, thumbs=tmp_path / "t"))
    try:
        kitchen = next(i for i in library.inputs() if i.name == "demo_kitchen.mp4")
        got: list = []
        waiting = threading.Thread(target=lambda: got.append(
            request(running, f"/api/thumb/{kitchen.id}/{min(kitchen.times)}.jpg")))
        waiting.start()
        hits = search(running, CUP_QUERY, top=5)["hits"]  # answered while the thumbnail waits
        assert len(hits) == 5 and waiting.is_alive() and not got
        release.set()
        waiting.join(30)
        assert got and got[0][0] == 200
    finally:
        release.set()
        running.stop()


def test_token_is_required_when_set(demo_run, demo_embedder, tmp_path):
    from pipeline.serve.app import create_app, token_cookie_name
    from pipeline.serve.server import start_in_thread
    from pipeline.store.db import EmbeddingStore

    _, out = demo_run
    app = create_app(EmbeddingStore.open(out / "store"), demo_embedder, token="s3cret", thumbs=tmp_path)
    running = start_in_thread(app)
    try:
        assert request(running, "/api/inputs")[0] == 401
        assert request(running, "/")[0] == 401
        assert request(running, "/api/inputs?token=wrong")[0] == 401
        assert request(running, "/api/inputs", headers={"Authorization": "Bearer s3cret"})[0] == 200
        status, headers, _ = request(running, "/?token=s3cret")
        name = token_cookie_name(urllib.parse.urlsplit(running.url).port)
        cookie = headers["set-cookie"].split(";")[0]
        assert status == 200 and cookie.startswith(f"{name}=") and "httponly" in headers["set-cookie"].lower()
        assert request(running, "/api/inputs", headers={"Cookie": cookie})[0] == 200
    finally:
        running.stop()


# --------------------------------------------------------------------------- file safety


def test_a_file_replaced_by_a_symlink_is_refused(demo_run, demo_embedder, tmp_path):
    from pipeline.serve.library import Input, Library, input_id
    from pipeline.store.keys import content_hash

    copy = tmp_path / "clip.mp4"
    shutil.copy(ROOT / "sample_videos" / "demo_kitchen.mp4", copy)
    entry = Input(id=input_id(str(copy)), path=str(copy), hashes=frozenset({content_hash(copy)}),
                  duration_s=15.0, step_s=0.5, times={0: 0.0})
    library = Library([entry])
    with library.open_file(entry.id) as opened:
        assert os.path.samefile(opened.path, copy)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    copy.unlink()
    copy.symlink_to(secret)
    assert library.open_file(entry.id) is None  # not the file the store embedded
    copy.unlink()
    copy.symlink_to(ROOT / "sample_videos" / "demo_kitchen.mp4")  # same bytes, other mtime: refused too
    assert library.open_file(entry.id) is None
    assert library.open_file("0" * 16) is None


def test_reports_behind_symlinks_are_not_read(tmp_path):
    from pipeline.serve.library import find_reports

    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    (outside / "x" / "summary.json").write_text(json.dumps({"input": "/etc/passwd", "tags": ["leak"]}))
    root = tmp_path / "reports"
    (root / "real").mkdir(parents=True)
    (root / "real" / "summary.json").write_text(json.dumps({"input": "a.mp4", "tags": ["ok"]}))
    (root / "linked-dir").symlink_to(outside / "x", target_is_directory=True)
    (root / "file").mkdir()
    (root / "file" / "summary.json").symlink_to(outside / "x" / "summary.json")
    (root / "broken").mkdir()
    (root / "broken" / "summary.json").write_text("{not json")
    found = find_reports(root)
    assert [r.folder.name for r in found] == ["real"]


def test_reports_match_inputs_by_path():
    from pipeline.serve.library import Input, Report, _attach_reports

    a = Input(id="a", path="/data/day1/clip.mp4", hashes=frozenset(), duration_s=1, step_s=1)
    b = Input(id="b", path="/data/day2/clip.mp4", hashes=frozenset(), duration_s=1, step_s=1)
    c = Input(id="c", path="/data/other.mp4", hashes=frozenset(), duration_s=1, step_s=1)
    reports = [Report(Path(__file__).parent, {"input": "day2/clip.mp4", "tags": ["x"]}),
               Report(Path(__file__).parent, {"input": "clip.mp4", "tags": ["ambiguous"]}),
               Report(Path(__file__).parent, {"input": "/elsewhere/other.mp4", "tags": ["no"]})]
    _attach_reports([a, b, c], reports)
    assert a.report is None and b.report.tags == ["x"] and c.report is None


# --------------------------------------------------------------------------- CLI


def test_cli_says_when_the_extra_is_missing(monkeypatch, demo_run):
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    _, out = demo_run
    result = CliRunner().invoke(app, ["serve", "--store", str(out / "store")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'scenetag[serve]'" in lines[0], result.output


def test_cli_help_does_not_import_the_web_stack():
    code = ("import sys; from pipeline.cli import app; "
            "from typer.testing import CliRunner; CliRunner().invoke(app, ['serve', '--help']); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch', 'lancedb') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_cli_serve_starts_warns_off_loopback_and_stops(demo_run):
    """The real command: bound to every interface it warns, and needs its token."""
    _, out = demo_run
    cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--store", str(out / "store"), "--reports",
           str(out), "--host", "0.0.0.0", "--port", "0", "--token", "tok", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    try:
        lines = []
        while not any("serving" in line for line in lines):
            line = proc.stderr.readline()
            assert line, f"server exited: {''.join(lines)}"
            lines.append(line)
        assert any("other machines can reach this server" in line for line in lines), lines
        url = lines[-1].split(" at ")[1].split()[0]
        port = urllib.parse.urlsplit(url).port
        assert "3 inputs" in lines[-1] and url.endswith("?token=tok")

        class Here:
            url = f"http://127.0.0.1:{port}/"

        assert request(Here, "/api/inputs")[0] == 401
        assert len(get_json(Here, "/api/inputs", headers={"Authorization": "Bearer tok"})["inputs"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop, exit status 0
        assert proc.wait(timeout=30) == 0
    assert "stopped" in proc.stderr.read()


# --------------------------------------------------------------------------- browser


def _chromium(tmp_path: Path, url: str, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1280,900", f"--user-data-dir={profile}", "--virtual-time-budget=8000"]
    done = subprocess.run([CHROMIUM, *flags, *args, url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _artifacts(tmp_path: Path) -> Path:
    """Where the screenshot is kept: $SCENETAG_TEST_ARTIFACTS (CI uploads it), else tmp_path."""
    folder = Path(os.environ.get("SCENETAG_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_browser_shows_the_hits_of_a_query_in_the_url(served, tmp_path):
    import re

    from PIL import Image, ImageStat

    running, _, _ = served
    url = running.url + "?" + urllib.parse.urlencode({"q": CUP_QUERY, "top": "50"})
    dom = _chromium(tmp_path, url, "--dump-dom")
    cards = re.findall(r'<figure class="card hit"[^>]*data-input="([^"]+)"[^>]*data-time="([^"]+)"', dom)
    assert len(cards) == 50, dom[-3000:]  # a full page of hits, each with its thumbnail
    assert len(re.findall(r'<img loading="lazy" decoding="async" alt="[^"]*" src="/api/thumb/', dom)) >= 50
    assert all(Path(p).name == "demo_kitchen.mp4" and CUP[0] - STEP <= float(t) <= CUP[1] + STEP
               for p, t in cards[:8])
    assert re.search(r'<figure class="card moment"', dom) and "demo_kitchen.mp4" in dom
    assert re.search(r"00:0[2-5]\.\d\d\d", dom)  # times shown as mm:ss.mmm
    skull = _chromium(tmp_path, running.url + "?q=a+photo+of+a+skull.&top=3", "--dump-dom")
    assert len(re.findall(r'<span class="thumb nsfw"', skull)) >= 3  # blurred until clicked
    kitchen = _kitchen(running)
    player = _chromium(tmp_path, running.url + f"?open={kitchen['id']}&t=2.067", "--dump-dom")
    assert f'src="/api/video/{kitchen["id"]}#t=2.067"' in player  # the player seeks to the hit
    assert '<output id="player-time">00:02.067</output>' in player
    detail = get_json(running, f"/api/inputs/{kitchen['id']}")
    assert player.count("<polyline") == len(detail["timeline"]["tracks"])  # the label timeline
    assert len(re.findall(r'<tr class="segment', player)) == len(detail["segments"])
    shot = _artifacts(tmp_path) / "serve.png"
    _chromium(tmp_path, url, f"--screenshot={shot}")
    with Image.open(shot) as im:
        assert im.size == (1280, 900)
        assert ImageStat.Stat(im.convert("L")).var[0] > 200, "screenshot looks blank"


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: it reads commands on its fd 3 and answers on
    fd 4, each message JSON ending in a NUL byte), to click and read the page."""

    def __init__(self, tmp_path: Path) -> None:
        commands, self._send = os.pipe()
        self._answers, answers = os.pipe()
        commands, answers = _above(commands, 10), _above(answers, 10)  # not 3 or 4 themselves
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'devtools-profile'}", "--remote-debugging-pipe"]
        self.proc = subprocess.Popen(  # bash (dash takes fds 0-9 only) puts the pipes at 3 and 4
            ["bash", "-c", f'exec "$0" "$@" 3<&{commands} 4>&{answers}', CHROMIUM, *flags, "about:blank"],
            pass_fds=(commands, answers), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands)
        os.close(answers)
        self._buffer, self._next = b"", 0

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._answers, 1 << 16)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next:
                assert "error" not in answer, answer
                return answer["result"]

    def open(self, url: str) -> str:
        """A new tab at ``url``; returns its session."""
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def run(self, session: str, expression: str, *, loading: bool = False):
        """``expression``'s value in the tab (with ``loading``, None while it throws:
        the page is not there yet)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if loading and "exceptionDetails" in result:
            return None
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait(self, session: str, expression: str, timeout: float = 30.0):
        import time

        deadline = time.monotonic() + timeout
        while not (value := self.run(session, expression, loading=True)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)
        return value

    def close(self) -> None:
        try:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        finally:
            os.close(self._send)
            os.close(self._answers)


def _above(fd: int, lowest: int) -> int:
    """``fd`` moved to a number of at least ``lowest``."""
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return moved


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_browser_keeps_the_open_video_and_time_in_the_address(served, tmp_path):
    """Issue 26 §6.11: opening a moment and seeking put ``&open=ID&t=SECONDS`` in
    the address bar; opening that address shows the same view; closing drops it."""
    running, _, _ = served
    kitchen = _kitchen(running)
    place = "Object.fromEntries(new URLSearchParams(location.search))"
    browser = DevTools(tmp_path)
    try:
        tab = browser.open(running.url + "?" + urllib.parse.urlencode({"q": CUP_QUERY, "top": "5"}))
        browser.wait(tab, "document.querySelectorAll('figure.card.moment').length > 0")
        browser.run(tab, "document.querySelector('figure.card.moment').click()")  # the cup, from 2.0 s
        browser.wait(tab, "new URLSearchParams(location.search).has('open')")
        assert browser.run(tab, place) == {"q": CUP_QUERY, "top": "5", "open": kitchen["id"], "t": "2.000"}
        browser.wait(tab, "document.querySelectorAll('#segments-table tbody tr').length >= 2")
        browser.run(tab, "document.querySelectorAll('#segments-table tbody tr')[1].click()")  # the ball, 9 s
        assert browser.wait(tab, f"{place}.t === '9.000' && location.href")
        bookmark = browser.run(tab, "location.href")

        again = browser.open(bookmark)
        browser.wait(again, "!document.getElementById('player-box').hidden")
        assert browser.wait(again, "document.getElementById('player-time').textContent") == "00:09.000"
        assert browser.run(again, "document.getElementById('player').getAttribute('src')") == \
            f"/api/video/{kitchen['id']}#t=9.000"
        assert browser.wait(again, "document.querySelectorAll('figure.card.hit').length") == 5
        browser.run(again, "document.getElementById('player-close').click()")
        assert browser.run(again, place) == {"q": CUP_QUERY, "top": "5"}
    finally:
        browser.close()


def test_cli_bad_input_is_one_line(demo_run, tmp_path):
    import socket

    from typer.testing import CliRunner

    from pipeline.cli import app

    _, out = demo_run
    runner = CliRunner()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cases = {("--port", str(port)): f"cannot listen on 127.0.0.1:{port}",
                 ("--reports", str(tmp_path / "nowhere")): "--reports: no folder",
                 ("--host", "256.1.1.1"): "--host 256.1.1.1"}
        for args, message in cases.items():
            result = runner.invoke(app, ["serve", "--store", str(out / "store"), *args])
            lines = result.output.strip().splitlines()
            assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], (args, result.output)
    result = runner.invoke(app, ["serve", "--store", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no embedding store at" in result.output


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_browser_with_a_token_shows_hostile_labels_as_text(demo_run, demo_embedder, tmp_path):
    """The token cookie carries the page's own requests (fetches, thumbnails);
    a tag written as HTML in a report is shown as text, not run."""
    from pipeline.serve.app import create_app
    from pipeline.serve.server import start_in_thread
    from pipeline.store.db import EmbeddingStore

    _, out = demo_run
    reports = tmp_path / "reports"
    shutil.copytree(out / "demo_kitchen", reports / "demo_kitchen")
    summary = reports / "demo_kitchen" / "summary.json"
    data = json.loads(summary.read_text())
    data["tags"] = ["<img src=x onerror=alert(1)>", *data["tags"]]
    summary.write_text(json.dumps(data))
    app = create_app(EmbeddingStore.open(out / "store"), demo_embedder, reports=reports, token="tok",
                     thumbs=tmp_path / "thumbs")
    running = start_in_thread(app)
    try:
        dom = _chromium(tmp_path, running.url + "?token=tok&view=browse&q=a+photo+of+a+ball.&top=5",
                        "--dump-dom")
        address = _address_after_opening_a_moment(tmp_path, running.url + "?token=tok&q=a+photo+of+a+ball.")
    finally:
        running.stop()
    assert dom.count('<figure class="card hit"') == 5  # the API answered the cookie-carrying fetch
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and "<img src=x" not in dom
    assert dom.count('<tr tabindex="0" data-id=') == 3 and "coffee cup" in dom
    # the view's address, bookmarked or shared, does not carry the token (the cookie does)
    assert set(address) == {"q", "top", "open", "t"}, address


def _address_after_opening_a_moment(tmp_path: Path, url: str) -> dict:
    browser = DevTools(tmp_path)
    try:
        tab = browser.open(url)
        browser.wait(tab, "document.querySelectorAll('figure.card.moment').length > 0")
        browser.run(tab, "document.querySelector('figure.card.moment').click()")
        browser.wait(tab, "new URLSearchParams(location.search).has('open')")
        return browser.run(tab, "Object.fromEntries(new URLSearchParams(location.search))")
    finally:
        browser.close()


def test_requests_write_nothing_but_the_thumbnail_cache(served, tmp_path):
    """A new prompt is embedded, not added to the store's prompt cache; searching
    builds no index; a picture query leaves no file behind."""
    from PIL import Image

    running, out, app = served

    def files(folder: Path) -> dict:
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}

    before = files(out)
    search(running, "a photo of a ball in a kitchen, never asked before.", top=30)
    search(running, CUP_QUERY, top=30, min_score=0.2, video="demo_kitchen")
    picture = tmp_path / "q.png"
    Image.new("RGB", (64, 48), (200, 180, 40)).save(picture)
    assert _upload(running, picture.read_bytes(), "q.png", {"top": "5"})[0] == 200
    get_json(running, "/api/inputs")
    for entry in app.state.scenetag.library.inputs():
        request(running, f"/api/inputs/{entry.id}")
        request(running, f"/api/video/{entry.id}", headers={"Range": "bytes=0-99"})
    assert files(out) == before
