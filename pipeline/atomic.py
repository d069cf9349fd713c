"""Atomic file writes: readers see the old file or the whole new one, never a
partial file, and a failed write leaves no temporary file behind.

The new content goes to ``.<name>.tmp-<random>`` in the target's folder (the
same file system, so ``os.replace`` is atomic), is fsynced, then renamed over
the target. A process killed mid-write (SIGKILL, power loss) cannot clean up;
the next write of the same target removes such leftovers once they are an
hour old (no live write takes that long).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

STALE_TEMP_S = 3600.0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    The parent folder is created if needed. The temporary file already exists
    (empty, created exclusively with the usual umask permissions) so writers
    may open it for writing. Its name has no meaningful suffix: pass the
    format explicitly to writers that guess it (``savefig(..., format="png")``).

    On an exception inside the block the temporary file is removed, the target
    is left untouched and the exception propagates.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    tmp = _create_temp(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. Returns the target path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def _remove_stale_temps(target: Path) -> None:
    cutoff = time.time() - STALE_TEMP_S
    for leftover in target.parent.glob(f".{_glob_escape(target.name)}.tmp-*"):
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _create_temp(target: Path) -> Path:
    while True:
        tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not supported everywhere (Windows)
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
