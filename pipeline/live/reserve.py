"""Room kept on the disk for a live run's last writes.

A live run appends to its tables until its streams end; when the disk fills,
each stream ends as ``error: disk full`` and still has to write its final
``summary.json`` (atomically: a whole new copy beside the old one), and the
run its ``index.csv`` (and ``index.html``). :class:`SpaceReserve` keeps a
pre-allocated, hidden file in the run's output folder,
``.scenetag-reserve-<pid>``, sized for those writes: a share per stream,
given back (the file shrinks) right before that stream's final summary, and
the index's share, given back (the file deleted) when the streams are done,
right before the index is written. The file is never an output: it is
deleted at every end, and a leftover of a run that was killed is deleted by
the next run of that folder (:func:`discard_reserves`).

The space is really allocated (``os.posix_fallocate``, or zeros written
where that is not supported), not a sparse file that would free nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = ".scenetag-reserve-"
# A stream's final summary.json weighs about 2 KB, plus ~260 B per segment
# and ~80 B per gap (measured on live runs of the test suite): 256 KiB covers
# a stream of about a thousand segments; a larger summary grows its share to
# twice its size as it is written (:meth:`SpaceReserve.need`), so the last
# one (larger still) fits.
STREAM_SHARE = 256 * 1024
# index.html is ~7 KB of page plus ~300 B a row, index.csv ~150 B a row:
# 64 KiB covers the index of about a hundred and fifty inputs.
INDEX_SHARE = 64 * 1024
INDEX_KEY = ""

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(ex: BaseException) -> bool:
    """Whether ``ex`` says the disk (or the user's quota, or the largest
    file the file system takes) has no room for the write."""
    return isinstance(ex, OSError) and ex.errno in DISK_FULL


class SpaceReserve:
    """The reserve file of one live run in ``folder`` (created now: see the
    module). Where it cannot be made (the disk is full already, a file
    system without the room), the run goes on without one."""

    def __init__(self, folder: Path):
        discard_reserves(folder)
        self.path = folder / f"{PREFIX}{os.getpid()}"
        self.shares: dict[str, int] = {INDEX_KEY: INDEX_SHARE}
        self._fd: int | None = None
        self._size = 0
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as ex:
            log.debug("no space reserve in %s: %s", folder, ex)
            return
        self._fit()

    def add(self, key: str) -> None:
        """A stream's share, under ``key`` (its folder name)."""
        self.shares[key] = STREAM_SHARE
        self._fit()

    def need(self, key: str, size: int) -> None:
        """The stream's summary weighs ``size`` bytes now: its share
        grows to twice that (never below ``STREAM_SHARE``)."""
        if key in self.shares and 2 * size > self.shares[key]:
            self.shares[key] = 2 * size
            self._fit()

    def release(self, key: str) -> None:
        """Give the share of ``key`` back to the disk (right before the
        write it was kept for)."""
        if self.shares.pop(key, None) is not None:
            self._fit()

    def close(self) -> None:
        """Delete the file: every share is given back."""
        self.shares.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def _fit(self) -> None:
        if self._fd is None:
            return
        total = sum(self.shares.values())
        try:
            if total < self._size:
                os.ftruncate(self._fd, total)  # the cut blocks are free again
            elif total > self._size:
                _allocate(self._fd, self._size, total - self._size)
            self._size = total
        except OSError as ex:  # no room to grow: what is held stays held
            log.debug("space reserve %s stays at %d bytes: %s", self.path, self._size, ex)
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)


def _allocate(fd: int, offset: int, length: int) -> None:
    """Blocks for ``length`` bytes at ``offset``, really taken from the disk."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, offset, length)
            return
        except OSError as ex:
            if ex.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    os.lseek(fd, offset, os.SEEK_SET)
    zeros = bytes(min(length, 64 * 1024))
    while length > 0:
        length -= os.write(fd, zeros[:length])


def discard_reserves(folder: Path) -> None:
    """Delete reserve files in ``folder`` left by runs no longer running
    (killed: they could not delete their own)."""
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{PREFIX}*"):
            pid = path.name[len(PREFIX):]
            if pid.isdigit() and int(pid) != os.getpid() and _running(int(pid)):
                continue  # another run's, in the same folder now
            with contextlib.suppress(OSError):
                path.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True
