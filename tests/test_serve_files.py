"""What ``scenetag serve`` reads from disk, under attack (issue 27, items 1,
4 and 12): an input swapped between the stored clip and another file while
it is fetched never serves the other file's bytes (video or thumbnail);
report files are read only when they are regular files in the folder
(no symlink, no named pipe, size capped), and a malformed one is a clear
error for that input while the rest of the library is still served. No
demo model needed: the server runs over a hand-made library."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from demo_assets import needs_demo
from serve_helpers import finishes, release_fifo, request, serving, uvicorn_errors

pytest.importorskip("fastapi")

SECRET = b"root:x:0:0:SECRET-LINE:/root:/bin/sh\n"


def _input(path: Path, **kw):
    from pipeline.serve.library import Input, input_id
    from pipeline.store.keys import content_hash

    return Input(id=input_id(str(path)), path=str(path), hashes=frozenset({content_hash(path)}),
                 duration_s=kw.pop("duration_s", 2.0), step_s=kw.pop("step_s", 0.1),
                 times=kw.pop("times", {0: 0.0}), **kw)


class Swapper:
    """Re-points ``link`` between ``targets`` as fast as it can (each swap
    one atomic rename), until stopped; leaves it at the first target."""

    def __init__(self, link: Path, *targets: Path) -> None:
        self.link, self.targets = link, targets
        self.stop_flag = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        spare = self.link.with_name(self.link.name + ".swap")
        while not self.stop_flag.is_set():
            for target in self.targets[1:] + self.targets[:1]:
                spare.unlink(missing_ok=True)
                spare.symlink_to(target)
                os.replace(spare, self.link)
                self.swaps += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        self.thread.join(10)


# --------------------------------------------------------------------------- 1: swapped inputs


def test_video_never_serves_the_file_a_swapped_symlink_points_at(tmp_path):
    """Item 1: the check that the file is the stored one and the bytes sent
    come from one open file, so a symlink re-pointed between them cannot
    make the server send another file (before: /etc/passwd as video/mp4,
    and h11 Content-Length tracebacks when the sizes differed)."""
    from pipeline.serve.library import Library

    real = tmp_path / "real.mp4"
    real.write_bytes(os.urandom(48 * 1024))
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET * 8)
    link = tmp_path / "clip.mp4"
    link.symlink_to(real)
    entry = _input(link)
    data = real.read_bytes()
    seen: dict[int, int] = {}
    with serving(Library([entry]), tmp_path) as running, uvicorn_errors() as errors:
        assert request(running, f"/api/video/{entry.id}")[2] == data  # verified once: the fast path
        with Swapper(link, real, secret) as swapper:
            deadline = time.monotonic() + 8
            n = 0
            while time.monotonic() < deadline and n < 600:
                ranged = n % 2 == 1
                status, headers, body = request(
                    running, f"/api/video/{entry.id}", headers={"Range": "bytes=0-99"} if ranged else {})
                n += 1
                seen[status] = seen.get(status, 0) + 1
                assert b"SECRET" not in body, f"request {n} ({status}) served the secret"
                if status == 200:
                    assert body == data and headers["content-length"] == str(len(data))
                elif status == 206:
                    assert body == data[:100]
                else:
                    assert status == 404, (status, body[:200])
        assert swapper.swaps > 100, swapper.swaps
        assert request(running, f"/api/video/{entry.id}")[2] == data
        assert not errors.lines(), errors.lines()[:3]
    assert seen.get(200, 0) + seen.get(206, 0) > 0, seen


def test_thumbnails_are_made_from_the_file_that_was_checked(tmp_path):
    """Item 1 (thumbnails): the decoder reads the descriptor that was
    verified, not the path again."""
    from media import make_clip
    from PIL import Image

    from pipeline.serve.library import Library

    real = Path(make_clip(tmp_path / "real.mp4", seconds=2, fps=10, size=(64, 48)))
    other = Path(make_clip(tmp_path / "other.mp4", seconds=2, fps=10, size=(64, 48), pattern="solid"))
    link = tmp_path / "clip.mp4"
    link.symlink_to(real)
    entry = _input(link, times={i: i / 10 for i in range(20)})

    def real_strip(body: bytes) -> bool:
        with Image.open(io.BytesIO(body)) as img:
            rgb = img.convert("RGB")
        r, g, b = rgb.getpixel((rgb.width // 2, rgb.height - 3))  # the real clip's red strip
        return r > 150 and g < 100 and b < 100

    with serving(Library([entry]), tmp_path) as running:
        status, _, body = request(running, f"/api/thumb/{entry.id}/0.jpg")
        assert status == 200 and real_strip(body)  # made from the descriptor's own name
        with Swapper(link, real, other):
            for index in range(1, 20):
                status, _, body = request(running, f"/api/thumb/{entry.id}/{index}.jpg")
                assert status in (200, 404), status
                assert status == 404 or real_strip(body), f"thumbnail {index} is of the other file"


def test_a_still_image_input_gets_its_thumbnail(tmp_path):
    """A picture input's thumbnail is decoded as a picture, though the
    decoder is given the descriptor's name (no extension)."""
    from PIL import Image

    from pipeline.serve.library import Library

    picture = tmp_path / "photo.png"
    Image.new("RGB", (320, 240), (250, 10, 10)).save(picture)
    entry = _input(picture, duration_s=0.0)
    with serving(Library([entry]), tmp_path) as running:
        status, headers, body = request(running, f"/api/thumb/{entry.id}/0.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(body)) as img:
        assert min(img.size) == 180 and img.convert("RGB").getpixel((5, 5))[0] > 200


@pytest.mark.parametrize(("spec", "status", "part"), [
    ("bytes=0-0", 206, slice(0, 1)), ("bytes=5-", 206, slice(5, None)), ("bytes=-5", 206, slice(-5, None)),
    ("bytes=0-99999", 206, slice(0, None)), ("bytes= 2 - 4", 206, slice(2, 5)),
    ("bytes=-0", 416, None), ("bytes=1000-", 416, None),
    ("bytes=0-1,3-4", 200, slice(None)), ("bytes=abc", 200, slice(None)), ("bytes=5-2", 200, slice(None)),
    ("items=0-1", 200, slice(None)), ("bytes=-", 200, slice(None)),
])
def test_range_requests_from_the_descriptor(tmp_path, spec, status, part):
    """One range or the whole file (RFC 9110 lets a server ignore several
    ranges or one it cannot parse); past the end is a 416."""
    from pipeline.serve.library import Library

    clip = tmp_path / "clip.mp4"
    data = bytes(range(256)) * 3
    clip.write_bytes(data)
    entry = _input(clip)
    with serving(Library([entry]), tmp_path) as running:
        got, headers, body = request(running, f"/api/video/{entry.id}", headers={"Range": spec})
        assert got == status, (spec, got, body[:100])
        if status == 416:
            assert headers["content-range"] == f"bytes */{len(data)}"
            return
        assert body == data[part] and headers["content-length"] == str(len(body))
        assert headers["content-type"] == "video/mp4" and headers["accept-ranges"] == "bytes"
        if status == 206:
            start = part.start if part.start >= 0 else len(data) + part.start
            assert headers["content-range"] == f"bytes {start}-{start + len(body) - 1}/{len(data)}"
        etag = headers["etag"]
        assert request(running, f"/api/video/{entry.id}", headers={"Range": "bytes=0-9", "If-Range": etag}
                       )[0] == 206
        assert request(running, f"/api/video/{entry.id}", headers={"Range": "bytes=0-9", "If-Range": '"x"'}
                       )[0] == 200


def test_a_stored_input_is_opened_once_and_checked_on_that_descriptor(tmp_path):
    """The library hands out an open, verified file: swapping the path
    after the check changes nothing about what is read."""
    from pipeline.serve.library import Library

    real = tmp_path / "real.mp4"
    real.write_bytes(b"\0real video bytes\0" * 100)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    link = tmp_path / "clip.mp4"
    link.symlink_to(real)
    entry = _input(link)
    library = Library([entry])
    with library.open_file(entry.id) as opened:
        link.unlink()
        link.symlink_to(secret)
        assert os.pread(opened.fd, 1 << 16, 0) == real.read_bytes()
        assert Path(opened.path).read_bytes() == real.read_bytes()  # what a decoder is given
    assert library.open_file(entry.id) is None  # the secret: not the stored file


def test_a_named_pipe_in_place_of_an_input_is_never_opened_for_reading(tmp_path):
    from pipeline.serve.library import Input, Library

    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    link = tmp_path / "clip.mp4"
    link.symlink_to(fifo)
    entry = Input(id="x" * 16, path=str(link), hashes=frozenset({"0" * 32}), duration_s=1, step_s=1)
    try:
        done, opened = finishes(lambda: Library([entry]).open_file(entry.id), 10)
        assert done and opened is None
    finally:
        release_fifo(fifo, 0.2)


# --------------------------------------------------------------------------- 4: report files


def _report(root: Path, clip: Path, name: str = "clip") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "input": str(clip), "status": "ok", "tags": ["cup"], "nsfw_verdict": "safe",
        "segments": [{"label": "cup", "kind": "tag", "start_s": 0.0, "end_s": 1.0}],
        "totals": {"cup": {"kind": "tag"}}}))
    (folder / "frames.csv").write_text("frame_index,time_s,score:cup,smoothed:cup\n0,0.0,0.9,0.9\n"
                                       "1,0.5,0.8,0.8\n")
    (folder / "segments.csv").write_text("label,kind,start_s,end_s,peak\ncup,tag,0.0,1.0,0.9\n")
    (folder / "segments.json").write_text(json.dumps({"labels": [{"name": "cup", "kind": "tag",
                                                                  "threshold": 0.5}]}))
    return folder


def _library_with_reports(tmp_path: Path, *names: str):
    """A library of clips ``names`` (default one) with a report each, found
    under ``tmp_path/reports`` the way ``--reports`` is read."""
    from pipeline.serve.library import Library, find_reports, match_reports

    entries = []
    for name in names or ("clip",):
        clip = tmp_path / f"{name}.mp4"
        clip.write_bytes(os.urandom(1024))
        _report(tmp_path / "reports", clip, name)
        entries.append(_input(clip))
    found = match_reports([e.path for e in entries], find_reports(tmp_path / "reports"))
    for entry in entries:
        entry.report = found[entry.path]
    return Library(entries), entries


@pytest.mark.parametrize("name", ["segments.csv", "frames.csv", "segments.json", "summary.json"])
def test_report_files_behind_symlinks_are_not_read(tmp_path, name):
    """Item 4: a report file symlinked to a file outside is refused (the
    input is still shown, without its report view), never read."""
    library, [entry] = _library_with_reports(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    leak = outside / name
    leak.write_text({"segments.csv": "label,kind,start_s,end_s\nLEAKED,tag,0,1\n",
                     "frames.csv": "frame_index,time_s,score:LEAKED\n0,0.0,1.0\n",
                     "segments.json": json.dumps({"labels": [{"name": "cup", "kind": "LEAKED"}]}),
                     "summary.json": json.dumps({"input": entry.path, "tags": ["LEAKED"],
                                                 "segments": [{"label": "LEAKED", "kind": "tag",
                                                               "start_s": 0, "end_s": 1}]})}[name])
    target = Path(entry.report.folder) / name
    target.unlink()
    target.symlink_to(leak)
    with serving(library, tmp_path) as running:
        status, _, body = request(running, f"/api/inputs/{entry.id}")
    assert status == 200, body[:300]
    assert b"LEAKED" not in body
    detail = json.loads(body)
    assert detail["timeline"] is None and "not a regular file" in detail["report_error"]


@pytest.mark.parametrize("name", ["segments.json", "segments.csv", "frames.csv", "summary.json"])
def test_a_named_pipe_in_a_report_never_blocks_a_request(tmp_path, name):
    """Item 4: a FIFO named like a report file is refused at once (before:
    each request blocked a worker thread until the server stopped answering)."""
    library, [entry] = _library_with_reports(tmp_path)
    fifo = Path(entry.report.folder) / name
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        with serving(library, tmp_path) as running:
            for _ in range(3):
                status, _, body = request(running, f"/api/inputs/{entry.id}", timeout=20)
                assert status == 200 and "not a regular file" in json.loads(body)["report_error"]
            assert request(running, "/api/inputs", timeout=20)[0] == 200
    finally:
        release_fifo(fifo)


def test_find_reports_skips_a_named_pipe_summary_at_once(tmp_path, caplog):
    """Item 4: a FIFO named summary.json used to hang ``serve`` before it listened."""
    from pipeline.serve.library import find_reports

    root = tmp_path / "reports"
    _report(root, tmp_path / "a.mp4", "a")
    (root / "b").mkdir()
    os.mkfifo(root / "b" / "summary.json")
    try:
        done, found = finishes(lambda: find_reports(root), 20)
        assert done, "find_reports blocked on a named pipe"
        assert [r.folder.name for r in found] == ["a"]
        assert any("not a regular file" in r.getMessage() for r in caplog.records)
    finally:
        release_fifo(root / "b" / "summary.json")


def test_report_reads_are_bounded(tmp_path, monkeypatch):
    """Item 4: a report file over the size cap is refused by its size, unread."""
    from pipeline.report import readback
    from pipeline.report.readback import load_result
    from pipeline.types import PipelineError

    folder = _report(tmp_path, tmp_path / "a.mp4")
    monkeypatch.setattr(readback, "MAX_REPORT_FILE_BYTES", 300)
    with open(folder / "frames.csv", "a") as fh:
        fh.write("2,1.0,0.7,0.7\n" * 30)
    with pytest.raises(PipelineError, match=r"frames\.csv.*over"):
        load_result(folder)


# --------------------------------------------------------------------------- 12: malformed reports


MALFORMED = {
    "frames-binary": ("frames.csv", b"\x00\xff\xfe\x00garbage\n\x00\x01"),
    "frames-no-columns": ("frames.csv", b"a,b\n1,2\n"),
    "frames-text-times": ("frames.csv", b"frame_index,time_s,score:cup\nx,y,z\n"),
    "frames-ragged": ("frames.csv", b"frame_index,time_s\n0,0.0,1,2,3\n\"unclosed\n"),
    "segments-no-start": ("segments.csv", b"label,kind,end_s\ncup,tag,1.0\n"),
    "segments-text-start": ("segments.csv", b"label,kind,start_s,end_s\ncup,tag,abc,1.0\n"),
    "segments-empty": ("segments.csv", b""),
    "summary-wrong-types": ("summary.json", json.dumps({
        "input": "clip.mp4", "model": "a string", "video": [1, 2], "totals": 5, "sampling": "x",
        "segments": "not a list", "decode": 3}).encode()),
    "summary-not-object": ("summary.json", b"[1, 2, 3]"),
    "summary-deep": ("summary.json", b"[" * 100_000 + b"]" * 100_000),
    "segments-json-wrong": ("segments.json", json.dumps({"labels": [{"name": 5, "threshold": "hi"}]}
                                                        ).encode()),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_report_is_a_clear_error_and_the_rest_is_served(tmp_path, case):
    """Item 12: a malformed report file gives that input a one-line
    ``report_error`` (no 500, no traceback); other inputs keep their reports."""
    name, data = MALFORMED[case]
    library, [bad, good] = _library_with_reports(tmp_path, "bad", "good")
    (Path(bad.report.folder) / name).write_bytes(data)
    with serving(library, tmp_path) as running, uvicorn_errors() as errors:
        status, _, body = request(running, f"/api/inputs/{bad.id}")
        listed = request(running, "/api/inputs")
        other = request(running, f"/api/inputs/{good.id}")
    assert status == 200, body[:500]
    detail = json.loads(body)
    if name != "segments.json":  # thresholds are optional: a bad segments.json costs only them
        assert detail["timeline"] is None and detail["segments"] == []
        message = detail["report_error"]
        assert name in message and "\n" not in message and len(message) < 400, message
        assert str(tmp_path) not in message  # paths from --reports, not the server's whole tree
    assert listed[0] == 200 and len(json.loads(listed[2])["inputs"]) == 2
    assert other[0] == 200 and json.loads(other[2])["timeline"]["tracks"][0]["name"] == "cup"
    assert not errors.lines(), errors.lines()[:3]


def test_malformed_summary_fields_never_break_listing_or_flags(tmp_path):
    """Item 12: the summary read at start is used for tags, verdicts and NSFW
    flags on every search hit: odd values there are ignored, not raised."""
    from pipeline.serve.library import Report

    report = Report(tmp_path, {"input": "a.mp4", "tags": "not a list", "nsfw_verdict": ["x"],
                               "segments": [{"kind": "nsfw", "start_s": "abc", "end_s": None},
                                            {"kind": "nsfw", "start_s": 1.0, "end_s": 2.0}, 7]})
    assert report.tags == [] and report.nsfw_verdict == "n/a"
    assert report.nsfw_at(1.5) and not report.nsfw_at(0.5)
    assert Report(tmp_path, {"input": "a.mp4", "tags": ["a", 3]}).tags == ["a", "3"]


# --------------------------------------------------------------------------- the real command


@needs_demo
def test_cli_serve_starts_and_answers_over_hostile_reports(demo_run, tmp_path):
    """Items 4 and 12 through ``scenetag serve`` itself: a named pipe as a
    summary.json and as a segments.json, and a malformed report, in
    ``--reports``: it starts, lists every input, and answers each at once."""
    import queue
    import shutil
    import signal
    import subprocess
    import sys

    from demo_assets import ROOT

    _, out = demo_run
    reports = tmp_path / "reports"
    shutil.copytree(out, reports, ignore=shutil.ignore_patterns("store", "store.thumbs"))
    folders = {json.loads(p.read_text())["input"].rsplit("/", 1)[-1]: p.parent
               for p in reports.glob("*/summary.json")}
    kitchen, park = folders["demo_kitchen.mp4"], folders["demo_park.mp4"]
    (kitchen / "segments.csv").write_text("label,kind,end_s\ncup,tag,1.0\n")
    for export in kitchen.glob("*.*"):  # its EDL and VTT no longer match it: not for the export check
        if export.suffix in (".edl", ".vtt"):
            export.unlink()
    summary = json.loads((kitchen / "summary.json").read_text())
    summary["segments"] = [{"kind": "nsfw", "start_s": "abc"}, 7]
    (kitchen / "summary.json").write_text(json.dumps(summary))
    (park / "segments.json").unlink()
    os.mkfifo(park / "segments.json")
    (reports / "zz-pipe").mkdir()
    os.mkfifo(reports / "zz-pipe" / "summary.json")
    cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--store", str(out / "store"), "--reports",
           str(reports), "--port", "0", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    try:
        said, deadline = [], time.monotonic() + 120
        while not any("serving" in line for line in said):
            try:
                said.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"serve did not start listening: {''.join(said)}")
        url = said[-1].split(" at ")[1].split()[0]

        class Here:
            pass

        Here.url = url
        inputs = {i["name"]: i for i in json.loads(request(Here, "/api/inputs", timeout=20)[2])["inputs"]}
        assert set(inputs) == {"demo_kitchen.mp4", "demo_park.mp4", "demo_street.mp4"}
        for name, file in (("demo_park.mp4", "segments.json"), ("demo_kitchen.mp4", "segments.csv"),
                           ("demo_park.mp4", "segments.json")):
            status, _, body = request(Here, f"/api/inputs/{inputs[name]['id']}", timeout=20)
            assert status == 200 and file in json.loads(body)["report_error"], body[:300]
        street = json.loads(request(Here, f"/api/inputs/{inputs['demo_street.mp4']['id']}")[2])
        assert street["timeline"] is not None and street["report_error"] is None
        status, _, body = request(Here, "/api/search?q=a+photo+of+a+coffee+cup.&top=3", timeout=60)
        assert status == 200 and not any(h["nsfw"] for h in json.loads(body)["hits"])
    finally:
        release_fifo(park / "segments.json", 0.5)
        release_fifo(reports / "zz-pipe" / "summary.json", 0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "Traceback" not in "".join(said + rest)
