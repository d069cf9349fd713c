"""``--token`` (issue 27, item 11): an explicit ``?token=`` wins over a stale
cookie; the cookie is named by the server's port (browsers send cookies to
every port of a host), scoped ``Path=/; SameSite=Strict; HttpOnly``, and
holds a value derived from the token, never the token itself; tokens are
compared as UTF-8 bytes, and a non-ASCII token can be sent percent-encoded
in ``Authorization: Bearer``."""

from __future__ import annotations

import urllib.parse
from http.cookies import SimpleCookie

import pytest
from serve_helpers import request, serving

pytest.importorskip("fastapi")


def _port(running) -> int:
    return urllib.parse.urlsplit(running.url).port


def _cookie(headers: dict) -> SimpleCookie:
    jar = SimpleCookie()
    jar.load(headers.get("set-cookie", ""))
    return jar


def _library():
    from pipeline.serve.library import Input, Library

    return Library([Input(id="0" * 16, path="/nonexistent/a.mp4", hashes=frozenset(), duration_s=1,
                          step_s=1)])


def test_an_explicit_token_wins_over_a_stale_cookie(tmp_path):
    with serving(_library(), tmp_path, token="new-token") as running:
        stale = f"scenetag_token=old-token; scenetag_token_{_port(running)}=old-token"
        status, headers, _ = request(running, "/?token=new-token", headers={"Cookie": stale})
        assert status == 200
        assert request(running, "/?token=wrong", headers={"Cookie": stale})[0] == 401
        jar = _cookie(headers)
        fresh = "; ".join(f"{k}={m.value}" for k, m in jar.items())
        assert request(running, "/api/inputs", headers={"Cookie": fresh})[0] == 200


def test_the_cookie_is_named_by_port_scoped_and_not_the_token(tmp_path):
    with serving(_library(), tmp_path, token="s3cret") as running:
        status, headers, _ = request(running, "/?token=s3cret")
        assert status == 200
        raw = headers["set-cookie"]
        jar = _cookie(headers)
        name = f"scenetag_token_{_port(running)}"
        assert list(jar) == [name], raw
        morsel = jar[name]
        assert morsel["path"] == "/" and morsel["samesite"].lower() == "strict" and morsel["httponly"], raw
        assert "s3cret" not in raw  # other services on this host are sent the cookie too
        assert request(running, "/api/inputs", headers={"Cookie": f"{name}={morsel.value}"})[0] == 200
        assert request(running, "/api/inputs", headers={"Cookie": f"{name}=s3cret"})[0] == 401
        assert request(running, "/api/inputs", headers={"Cookie": f"scenetag_token={morsel.value}"}
                       )[0] == 401
        assert "set-cookie" not in request(running, "/", headers={"Cookie": f"{name}={morsel.value}"})[1]


def test_two_servers_on_one_host_do_not_lock_each_other_out(tmp_path):
    """Cookies ignore ports: a browser keeps one cookie per name and host and
    sends it to both servers. Each server reads the cookie of its own port."""
    jar: dict[str, str] = {}  # the browser's jar for 127.0.0.1: by name only
    with serving(_library(), tmp_path / "a", token="token-a") as a, \
            serving(_library(), tmp_path / "b", token="token-b") as b:
        for running, token in ((a, "token-a"), (b, "token-b")):
            status, headers, _ = request(running, f"/?token={token}")
            assert status == 200
            jar.update({k: m.value for k, m in _cookie(headers).items()})
        cookies = "; ".join(f"{k}={v}" for k, v in jar.items())
        assert request(a, "/api/inputs", headers={"Cookie": cookies})[0] == 200
        assert request(b, "/api/inputs", headers={"Cookie": cookies})[0] == 200


TOKEN = "clé-секрет-🔑"


def test_a_non_ascii_token_can_be_sent_every_way(tmp_path):
    quoted = urllib.parse.quote(TOKEN, safe="")
    with serving(_library(), tmp_path, token=TOKEN) as running:
        assert request(running, "/api/inputs")[0] == 401
        assert request(running, f"/api/inputs?token={quoted}")[0] == 200
        assert request(running, "/api/inputs", headers={"Authorization": f"Bearer {quoted}"})[0] == 200
        raw = b"Bearer " + TOKEN.encode("utf-8")  # raw UTF-8 bytes in the header
        assert request(running, "/api/inputs", headers={"Authorization": raw})[0] == 200
        for wrong in ("cl%C3%A9", urllib.parse.quote(TOKEN[:-1], safe=""), "%ZZ", "", TOKEN.encode()[:-1]):
            header = b"Bearer " + wrong if isinstance(wrong, bytes) else f"Bearer {wrong}"
            assert request(running, "/api/inputs", headers={"Authorization": header})[0] == 401, wrong
        status, headers, _ = request(running, f"/?token={quoted}")
        assert status == 200 and "set-cookie" in headers


def test_a_token_with_url_characters_is_printed_as_a_working_address():
    from pipeline.serve.server import token_url

    assert token_url("http://127.0.0.1:8765/", None) == "http://127.0.0.1:8765/"
    url = token_url("http://127.0.0.1:8765/", "a&b+c#d é")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"] == ["a&b+c#d é"]
