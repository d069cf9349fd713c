"""The FastAPI app: the page (shipped files, no CDN), the API, and the
safety wrapping every response gets: a Content-Security-Policy that lets the
page load only from this server, a Host check against DNS rebinding, and the
optional access token.
"""

from __future__ import annotations

import contextlib
import hmac
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
TOKEN_COOKIE = "scenetag_token"
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
            sets a cookie, or ``Authorization: Bearer``).
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


def _add_guards(app: FastAPI, token: str | None, allowed_hosts: list[str]) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next):
        given = _token_of(request)
        if token and not hmac.compare_digest(given.encode(), token.encode()):
            response: Response = JSONResponse(
                {"detail": "this server needs its token: open it as http://HOST:PORT/?token=..."},
                status_code=401)
        else:
            response = await call_next(request)
            if token and request.query_params.get("token"):  # the page's own requests carry the cookie
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    if "*" not in allowed_hosts:  # added last: runs first, before the token is even looked at
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)


def _token_of(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token") or ""


def _read(name: str) -> bytes:
    return resources.files("pipeline.serve").joinpath("static", name).read_bytes()


