"""The embedding store's writer lock: one writer at a time, across processes.

LanceDB has no multi-writer lock of its own: two processes creating tables or
replacing an input's rows at once corrupt a store (DESIGN.md). Every write
to a store (creating it, adding or replacing an input, caching prompts,
compacting, indexing) holds an exclusive ``fcntl.flock`` on a lock file in
the store folder. The kernel drops the lock when its holder exits, killed or
not, so a crashed run never leaves a store locked. Readers take no lock.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.types import StoreError

log = logging.getLogger(__name__)

LOCK_FILE = ".scenetag-write.lock"
STORE_WAIT_S = 300.0  # default wait for another writer (an index build at 1M frames takes ~80 s)
_POLL_S = (0.02, 0.25)  # first and longest pause between tries


class StoreBusyError(StoreError):
    """Another process held the store's write lock for longer than the wait."""


class WriteLock:
    """An exclusive lock on one store folder, re-entrant within its owner.

    Args:
        root: the store folder (created when missing).
        wait_s: how long :meth:`held` waits for another writer by default.
    """

    def __init__(self, root: Path, wait_s: float = STORE_WAIT_S) -> None:
        self.root = root
        self.wait_s = wait_s
        self._file = None
        self._depth = 0

    @property
    def path(self) -> Path:
        return self.root / LOCK_FILE

    @contextlib.contextmanager
    def held(self, action: str, wait_s: float | None = None) -> Iterator[bool]:
        """Hold the lock for the block; yields True when this call took it
        (False when an enclosing block of the same owner already held it).

        Raises:
            StoreBusyError: another process kept it for ``wait_s`` seconds.
            StoreError: the lock file cannot be written (read-only store).
        """
        if self._depth:
            self._depth += 1
            try:
                yield False
            finally:
                self._depth -= 1
            return
        self._acquire(action, self.wait_s if wait_s is None else wait_s)
        self._depth = 1
        try:
            yield True
        finally:
            self._depth = 0
            self._release()

    def _acquire(self, action: str, wait_s: float) -> None:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: writers are not serialised
            log.debug("no fcntl: the embedding store's write lock is not enforced")
            return
        fh = self._open()
        deadline, pause, told = time.monotonic() + max(0.0, wait_s), _POLL_S[0], False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    raise StoreBusyError(
                        f"embedding store {self.root} is busy: {_holder(self.path)} is writing it; "
                        f"gave up after {wait_s:g} s (raise --store-wait, or use another --store)"
                    ) from None
                if not told and wait_s > 0:
                    log.warning("embedding store %s is being written by %s; waiting up to %g s "
                                "for its write lock before this %s (--store-wait sets the wait)",
                                self.root, _holder(self.path), wait_s, action)
                    told = True
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, _POLL_S[1])
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._file = fh

    def _open(self):
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held across calls
        except OSError as ex:
            if ex.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise StoreError(f"embedding store {self.root} is read-only (cannot write its lock "
                                 f"file: {ex.strerror or ex})") from ex
            raise StoreError(f"embedding store {self.root}: cannot write its lock file "
                             f"({ex.strerror or ex})") from ex

    def _release(self) -> None:
        fh, self._file = self._file, None
        if fh is None:
            return
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def _holder(path: Path) -> str:
    """Who holds the lock, as far as its file says (the holder writes its pid)."""
    try:
        pid = path.read_text(encoding="ascii").strip()
    except OSError:
        pid = ""
    return f"another scenetag process (pid {pid})" if pid.isdigit() else "another scenetag process"
