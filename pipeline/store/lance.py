"""The store's boundary with its libraries: lancedb and pyarrow imported on
first use (so ``--help`` and config loading never pay for them), every
library failure turned into one :class:`~pipeline.types.StoreError` line that
names the store, SQL literals quoted, vectors packed as Arrow arrays.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.types import StoreError

_PERMISSION_WORDS = ("permission denied", "read-only file system", "os error 13", "os error 30")


def lancedb():
    """The lancedb module, imported now; a missing install is a StoreError."""
    try:
        import lancedb
    except ImportError as ex:
        raise StoreError("the embedding store needs lancedb: pip install 'scenetag[store]'") from ex
    return lancedb


def pyarrow():
    """The pyarrow module, imported now (lancedb depends on it)."""
    import pyarrow

    return pyarrow


@contextlib.contextmanager
def guard(root: Path, action: str) -> Iterator[None]:
    """Library failures become one StoreError line naming the store."""
    try:
        yield
    except StoreError:
        raise
    except Exception as ex:
        first = (str(ex).strip().splitlines() or [type(ex).__name__])[0]
        state = "read-only (permission denied)" if _is_permission(ex) else "unreadable or corrupt"
        raise StoreError(f"embedding store {root} is {state} ({action} failed: {first[:300]})") from ex


def _is_permission(ex: BaseException) -> bool:
    """A refused write (file mode, read-only mount), however LanceDB wraps it:
    its Rust errors arrive as text, not as PermissionError."""
    if isinstance(ex, PermissionError) or getattr(ex, "errno", None) in (errno.EACCES, errno.EROFS):
        return True
    return any(word in str(ex).lower() for word in _PERMISSION_WORDS)


def sql(text: str) -> str:
    """``text`` as a quoted SQL string literal (for LanceDB ``where`` filters)."""
    return "'" + str(text).replace("'", "''") + "'"


def vector_array(vectors: np.ndarray):
    """An N x dim float32 array as an Arrow fixed-size-list column."""
    pa = pyarrow()
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1])
