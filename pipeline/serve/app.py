"""The FastAPI app: the page (shipped files, no CDN), the API, and the
safety wrapping every response gets: a Content-Security-Policy that lets the
page load only from this server, a Host check against DNS rebinding, and the
optional access token.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import urllib.parse
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pipeline.about import version
from pipeline.serve.api import QueryVectors, State, build_router
from pipeline.serve.library import Library
from pipeline.serve.thumb_cache import ThumbCache, cache_folder
from pipeline.store.db import EmbeddingStore

# Scripts and styles from this server only, as files (no inline code); the
# page fetches only from here; blob: shows a dropped picture before upload.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
       "base-uri 'none'")
TOKEN_COOKIE = "scenetag_token"  # the cookie is named TOKEN_COOKIE_<port>: see token_cookie_name
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
# The page's files: a name not listed here is a 404, whatever it spells.
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
           "docs.js": "text/javascript; charset=utf-8"}
_PAGES = {"/": "index.html", "/docs": "docs.html"}


def create_app(store: EmbeddingStore, embedder: Any, *, reports: Path | None = None,
               token: str | None = None, allowed_hosts: list[str] | None = None,
               thumbs: Path | None = None, prompt_cache: bool = True,
               library: Library | None = None) -> FastAPI:
    """The web app over ``store``.

    Args:
        embedder: the loaded model queries are embedded with.
        reports: a folder of ``scenetag run`` reports to show with the inputs.
        token: when set, every request must carry it (``?token=``, which also
            sets a cookie, or ``Authorization: Bearer``; see :class:`TokenGuard`).
        allowed_hosts: ``Host`` header values accepted (default: loopback
            names only, so a web page elsewhere cannot reach this server by
            re-pointing its own name at 127.0.0.1).
        thumbs: the thumbnail cache folder (default ``<store>.thumbs``).
        prompt_cache: look text queries up in the store's prompt cache
            (False when ``embedder`` is not the store's own model).
    """
    library = library if library is not None else Library.load(store, reports)
    cache = ThumbCache(thumbs or cache_folder(store.root), library.open_file)
    state = State(store=store, library=library, thumbs=cache,
                  queries=QueryVectors(store, embedder, prompt_cache=prompt_cache))
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        cache.close()  # pending thumbnail jobs are dropped; made ones stay cached

    app = FastAPI(title="scenetag serve", version=version(), docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", lifespan=lifespan,
                  description="Search stored frames by text or picture; browse inputs and reports.")
    app.state.scenetag = state
    app.include_router(build_router(state))
    _add_pages(app)
    _add_guards(app, token, allowed_hosts or LOOPBACK_HOSTS)
    return app


def _add_pages(app: FastAPI) -> None:
    def page(name: str):
        def serve() -> Response:
            return Response(_read(name), media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})
        return serve

    for route, name in _PAGES.items():
        app.add_api_route(route, page(name), methods=["GET"], include_in_schema=False)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(_read(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


def token_cookie_name(port: int | None) -> str:
    """The token cookie of the server on ``port``. Browsers send a host's
    cookies to every port of it, and keep one cookie per name: named by
    port, two servers on one host each find their own."""
    return f"{TOKEN_COOKIE}_{port}" if port else TOKEN_COOKIE


class TokenGuard:
    """Whether a request carries the server's token.

    The first of these a request has decides, so an explicit token is never
    overruled by a stale cookie: ``?token=`` (percent-encoded UTF-8, as a
    browser sends it), then ``Authorization: Bearer`` (the token as UTF-8
    bytes, or percent-encoded: a header cannot carry every character), then
    the cookie. Tokens are compared as bytes with :func:`hmac.compare_digest`.
    The cookie holds an HMAC of the token keyed by the port, never the token
    itself (other services on this host are sent it too).
    """

    def __init__(self, token: str) -> None:
        self.token = token.encode("utf-8", "surrogateescape")

    def cookie_value(self, port: int | None) -> str:
        return hmac.new(self.token, f"scenetag serve cookie {port}".encode(), hashlib.sha256).hexdigest()

    def allows(self, request: Request) -> bool:
        query = _query_token(request.scope.get("query_string", b""))
        if query is not None:
            return hmac.compare_digest(query, self.token)
        auth = _bearer(request.scope.get("headers", []))
        if auth is not None:
            plain = hmac.compare_digest(auth, self.token)
            decoded = hmac.compare_digest(urllib.parse.unquote_to_bytes(auth), self.token)
            return plain or decoded
        cookie = request.cookies.get(token_cookie_name(_port(request)))
        return cookie is not None and hmac.compare_digest(cookie.encode("utf-8", "replace"),
                                                          self.cookie_value(_port(request)).encode())

    def sets_cookie(self, request: Request) -> bool:
        """True when the request came with ``?token=``: the page's own requests then carry the cookie."""
        return _query_token(request.scope.get("query_string", b"")) is not None


def _query_token(query_string: bytes) -> bytes | None:
    """The raw bytes of ``?token=`` (percent-decoded; ``+`` is a space), or None."""
    for pair in query_string.split(b"&"):
        key, eq, value = pair.partition(b"=")
        if eq and urllib.parse.unquote_to_bytes(key.replace(b"+", b" ")) == b"token":
            return urllib.parse.unquote_to_bytes(value.replace(b"+", b" "))
    return None


def _bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for key, value in headers:
        if key.lower() == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None


def _port(request: Request) -> int | None:
    server = request.scope.get("server")  # the socket's own address, whatever Host says
    return server[1] if server and len(server) > 1 else None


def _add_guards(app: FastAPI, token: str | None, allowed_hosts: list[str]) -> None:
    tokens = TokenGuard(token) if token else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if tokens is not None and not tokens.allows(request):
            response: Response = JSONResponse(
                {"detail": "this server needs its token: open it as http://HOST:PORT/?token=..."},
                status_code=401)
        else:
            response = await call_next(request)
            if tokens is not None and tokens.sets_cookie(request):
                port = _port(request)
                response.set_cookie(token_cookie_name(port), tokens.cookie_value(port), path="/",
                                    httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    if "*" not in allowed_hosts:  # added last: runs first, before the token is even looked at
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)


def _read(name: str) -> bytes:
    return resources.files("pipeline.serve").joinpath("static", name).read_bytes()


