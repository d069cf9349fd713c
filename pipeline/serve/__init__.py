"""``scenetag serve``: search and browse a store in the browser.

A local web app over one embedding store (and, optionally, the report
folders of the runs that filled it):

* :mod:`~pipeline.serve.library` - the allow-list: which input files and
  reports may be served, each known by an opaque id; no request path ever
  reaches the file system.
* :mod:`~pipeline.serve.files`, :mod:`~pipeline.serve.file_response` - an
  input opened once and served (ranges included) from that descriptor, so
  the file checked is the file sent.
* :mod:`~pipeline.serve.thumb_cache` - thumbnails made once, off the request
  threads, and cached on disk beside the store.
* :mod:`~pipeline.serve.app` - the FastAPI app: the page and its API.
* :mod:`~pipeline.serve.server` - uvicorn on a socket bound here, with the
  safety checks (loopback by default, ``--token``).

FastAPI and uvicorn are the optional ``serve`` extra, imported only when a
server is built, so importing this package costs nothing.
"""

from __future__ import annotations

from pipeline.types import PipelineError

INSTALL_HINT = "scenetag serve needs the serve extra: pip install 'scenetag[serve]'"


def require_web() -> None:
    """Raise a one-line :class:`PipelineError` when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401  (image uploads)
        import uvicorn  # noqa: F401
    except ImportError as ex:
        raise PipelineError(f"{INSTALL_HINT} ({ex.name or 'a package'} is not installed)") from ex
