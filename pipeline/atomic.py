"""Atomic file and folder writes: readers see the old file (folder) or the
whole new one, never a partial one, and a failed write leaves no temporary
behind.

The new content goes to ``.<name>.tmp-<random>`` in the target's folder (the
same file system, so ``os.replace`` is atomic), is fsynced, then renamed over
the target. A process killed mid-write (SIGKILL, power loss) cannot clean up;
the next write of the same target removes such leftovers once they are an
hour old (no live write takes that long).

File systems limit a name to 255 *bytes*: temporary names are cut to fit, and
:func:`bounded_name` makes names from user text (labels, file names) that fit.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

STALE_TEMP_S = 3600.0
NAME_MAX_BYTES = 255  # ext4, XFS, APFS, NTFS (in UTF-16 units, more room)
_TEMP_SUFFIX_BYTES = len(".tmp-") + 8


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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh, empty temporary folder; on success it replaces ``path``
    as a whole, so ``path`` never mixes files of two writes.

    The swap is two renames (the old folder is moved away, the new one moved
    in) and then the old one is deleted: a reader sees the old folder or the
    new one (or, for an instant, none), never a mixture. On an exception
    inside the block the temporary folder is deleted, ``path`` is left
    untouched and the exception propagates.

    Raises:
        FileExistsError: ``path`` exists and is not a folder (never replaced).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    tmp = _create_temp(target, folder=True)
    try:
        yield tmp
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FileExistsError(f"{target} exists and is not a folder")
    old = None
    if target.exists():
        old = _unused_temp(target)
        os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        if old is not None:
            os.rename(old, target)  # put the previous folder back
        raise
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_dir(path: str | os.PathLike) -> None:
    """Delete folder ``path`` (if present) by first renaming it to a temporary
    name, so no reader ever sees it half deleted."""
    target = Path(path)
    if not target.is_dir() or target.is_symlink():
        return
    gone = _unused_temp(target)
    os.rename(target, gone)  # needs no free space, unlike creating anything
    shutil.rmtree(gone, ignore_errors=True)


def bounded_name(text: str, max_bytes: int, *, dots: bool = False) -> str:
    """``text`` as a safe file-name part of at most ``max_bytes`` UTF-8 bytes.

    Letters and digits of any script, ``-`` and ``_`` are kept (and ``.``
    when ``dots``); every other run of characters becomes one ``_``; leading
    and trailing ``_`` (and ``.``) are dropped, so the result never starts
    with a dot. The cut never splits a character. May return ``""``.
    """
    text = unicodedata.normalize("NFC", text)
    unsafe = r"[^\w.\-]+" if dots else r"[^\w\-]+"
    strip = "._" if dots else "_"
    text = re.sub(unsafe, "_", text, flags=re.UNICODE).strip(strip)
    return fit_bytes(text, max_bytes).rstrip(strip)


def fit_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding has at most
    ``max_bytes`` bytes (never cut inside a character)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. Returns the target path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def _temp_prefix(target: Path) -> str:
    # cut long names so the temporary name itself stays within NAME_MAX_BYTES
    return "." + fit_bytes(target.name, NAME_MAX_BYTES - 1 - _TEMP_SUFFIX_BYTES)


def _remove_stale_temps(target: Path) -> None:
    cutoff = time.time() - STALE_TEMP_S
    for leftover in target.parent.glob(f"{_glob_escape(_temp_prefix(target))}.tmp-*"):
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if leftover.lstat().st_mtime >= cutoff:
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _create_temp(target: Path, *, folder: bool = False) -> Path:
    while True:
        tmp = target.with_name(f"{_temp_prefix(target)}.tmp-{secrets.token_hex(4)}")
        try:
            if folder:
                tmp.mkdir()
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _unused_temp(target: Path) -> Path:
    """A temporary name next to ``target`` that nothing uses (not created)."""
    while True:
        tmp = target.with_name(f"{_temp_prefix(target)}.tmp-{secrets.token_hex(4)}")
        if not os.path.lexists(tmp):
            return tmp


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
