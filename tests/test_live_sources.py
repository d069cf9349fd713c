"""Which inputs are live, how they are named and shown (pipeline.live.sources)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.live.session import live_names
from pipeline.live.sources import LiveSource, display_name, live_kind, open_args, redact, split_live
from pipeline.run.inputs import expand_inputs


@pytest.mark.parametrize(("arg", "kind"), [
    ("rtsp://cam/1", "url"), ("RTSP://cam/1", "url"), ("rtmp://h/app/key", "url"), ("srt://h:9000", "url"),
    ("udp://@239.0.0.1:1234", "url"), ("tcp://127.0.0.1:5000", "url"), ("https://h/a.ts", "url"),
    ("http://h/live.m3u8?x=1", "hls"), ("local/list.m3u8", "hls"), ("-", "stdin"),
    ("/dev/video0", "camera"), ("clip.mp4", None), ("ftp-notes.txt", None), ("/dev/sda", None),
    ("file://x.mp4", None),
])
def test_live_kinds(arg, kind):
    assert live_kind(arg) == kind


def test_urls_are_no_longer_missing_files(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    live, files = split_live(["rtsp://cam/1", str(clip), "-", str(clip)])
    assert [s.kind for s in live] == ["url", "stdin"] and files == [str(clip), str(clip)]
    assert expand_inputs(files)[1] == []  # the file side sees files only
    forced, rest = split_live([str(clip), str(tmp_path)], force=True)
    assert [s.kind for s in forced] == ["file"] and rest == [str(tmp_path)]  # folders stay files


@pytest.mark.parametrize(("arg", "shown", "name"), [
    ("rtsp://admin:hunter22@cam1.local:554/live/ch1?token=abc123&x=1",
     "rtsp://***@cam1.local:554/live/ch1?token=***&x=***", "cam1.local-554-live-ch1"),
    ("http://127.0.0.1:8000/a.ts", "http://127.0.0.1:8000/a.ts", "127.0.0.1-8000-a"),
    ("https://u@h/p.m3u8?sig=zz", "https://***@h/p.m3u8?sig=***", "h-p"),
    ("srt://[::1]:9000?passphrase=secret99", "srt://[::1]:9000?passphrase=***", "1-9000"),
    ("-", "-", "stdin"), ("/dev/video0", "/dev/video0", "video0"),
])
def test_redacted_and_named(arg, shown, name):
    source = LiveSource(arg, live_kind(arg))
    assert source.shown == shown
    assert live_names([source], {}, set())[source] == name


secrets = st.text(string.ascii_letters + string.digits + "-._~!$&'()*+,;=%", min_size=4, max_size=20)


@given(user=secrets, password=secrets, token=secrets)
def test_no_secret_survives_redaction(user, password, token):
    arg = f"rtsp://{user}:{password}@cam.example:554/s?api_key={token}"
    source = LiveSource(arg, "url")
    shown = " ".join([source.shown, display_name(source), source.scrub(f"cannot open {arg}: {password}")])
    for secret in (password, token):
        if secret not in "rtsp://***@cam.example:554/s?api_key=*** cam.example-554-s cannot open":
            assert secret not in shown


def test_names_are_unique_and_respect_other_folders():
    a, b = LiveSource("rtsp://x:y@cam/s", "url"), LiveSource("rtsp://cam/s", "url")
    names = live_names([a, b], {"cam-s": "something else"}, {"cam-s-2"})
    assert names == {a: "cam-s-3", b: "cam-s-4"}
    again = live_names([a], {"cam-s": a.shown}, set())
    assert again == {a: "cam-s"}  # a stream keeps its own folder
    run_file = LiveSource("http://index.csv/", "url")
    assert live_names([run_file], {}, set())[run_file] == "index.csv-2"  # never a run-level name


def test_network_options():
    _, kwargs = open_args(LiveSource("rtsp://cam/s", "url"), 5)
    options = kwargs["container_options"]
    # TCP first, UDP only for a server that refuses it (tests/test_live_protocols.py serves both)
    assert options["rtsp_flags"] == "prefer_tcp" and "rtsp_transport" not in options
    assert options["rw_timeout"] == options["timeout"] == "5000000"
    _, kwargs = open_args(LiveSource("rtmp://host/live/s", "url"), 5)
    # FFmpeg's rtmp "timeout" is how long to *listen* for a publisher: a player would stop connecting
    options = kwargs["container_options"]
    assert "timeout" not in options and options["rw_timeout"] == "5000000"
    _, kwargs = open_args(LiveSource("/dev/video0", "camera"), 5)
    assert kwargs["format"] == "v4l2"


def test_secret_text_in_redact_of_non_urls_is_left():
    assert redact("clip.mp4") == "clip.mp4"


@pytest.mark.parametrize(("arg", "secrets_", "shown"), [
    ("rtsp://cam:554/live?pw=hunter22", ["hunter22"], "rtsp://cam:554/live?pw=***"),
    ("http://h/s.m3u8?user=alice&username=bob", ["alice", "bob"], "http://h/s.m3u8?user=***&username=***"),
    ("https://h/v.m3u8?jwt=eyJhbGciOi.eyJzdWIi.SflKxw", ["eyJhbGciOi.eyJzdWIi.SflKxw"], "https://h/v.m3u8?jwt=***"),
    ("https://h/master.m3u8?hdnts=exp=1700000000~acl=/*~hmac=0a1b2c3d4e5f",
     ["exp=1700000000~acl=/*~hmac=0a1b2c3d4e5f"], "https://h/master.m3u8?hdnts=***"),
    ("http://h/live/stream.m3u8;jsessionid=A1B2C3D4E5", ["A1B2C3D4E5"], "http://h/live/stream.m3u8;jsessionid=***"),
    ("rtmp://live.twitch.tv/app/live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz",
     ["live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz"], "rtmp://live.twitch.tv/app/***"),
    ("rtmp://a.rtmp.youtube.com/live2/abcd-1234-efgh-5678-ijkl", ["abcd-1234-efgh-5678-ijkl"],
     "rtmp://a.rtmp.youtube.com/live2/***"),
    ("https://cdn/9f86d081884c7d659a2feaa0c55ad015/seg/index.m3u8", ["9f86d081884c7d659a2feaa0c55ad015"],
     "https://cdn/***/seg/index.m3u8"),
    ("rtsp://cam/front-door-camera-2/index.m3u8#t=secretfrag", ["t=secretfrag"],
     "rtsp://cam/front-door-camera-2/index.m3u8"),
])
def test_credentials_are_hidden_by_rule_everywhere_they_show(arg, secrets_, shown):
    """``pw=``, ``user=``, ``jwt=``, Akamai tokens, ``;jsessionid=``, keys in
    the path and RTMP stream keys reached summary.json, index.csv, events, the
    EDL, the store and the folder name; none may now."""
    source = LiveSource(arg, live_kind(arg) or "url")
    assert source.shown == shown
    seen = " ".join([source.shown, display_name(source), live_names([source], {}, set())[source],
                     source.scrub(f"[tcp @ 0x1] cannot open {arg}: " + " ".join(secrets_))])
    for secret in secrets_:
        assert secret not in seen, secret


@pytest.mark.parametrize("name", ["cam1", "front-door-camera-2", "index.m3u8", "live", "ch1", "2024-06-01",
                                  "stream_1080p.m3u8", "segment_00042.ts"])
def test_names_in_paths_are_not_taken_for_keys(name):
    from pipeline.live.sources import looks_like_key

    assert not looks_like_key(name)
