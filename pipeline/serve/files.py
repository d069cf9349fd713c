"""Input files read from one open descriptor.

A path is looked up once (:func:`open_regular`): the check that it is the
stored file (:meth:`pipeline.serve.library.Library.open_file`) and every
byte sent (:class:`pipeline.serve.file_response.FileRangeResponse`) or
decoded (thumbnails, through :attr:`OpenedFile.path`, the descriptor's own
name) come from that one descriptor, so re-pointing the path meanwhile
changes nothing that is read. Standard library only: ``scenetag search``
reads the library without the serve extra.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
# Where an open descriptor has a name of its own: opening it opens the same
# file (Linux), or a duplicate of the descriptor (macOS, BSD).
_FD_FOLDER = "/proc/self/fd" if Path("/proc/self/fd").is_dir() else "/dev/fd"


class OpenedFile:
    """A regular file open for reading, with the ``fstat`` of its descriptor."""

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.fd, self.stat = fd, st
        self._closed = False

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def path(self) -> str:
        """A name of this descriptor, for code that opens by name (decoders, hashing)."""
        return f"{_FD_FOLDER}/{self.fd}"

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (no shared file position)."""
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_regular(path: str) -> OpenedFile | None:
    """``path`` open for reading when it is a regular file, else None.

    A symlink is followed (an input may be one); a named pipe is opened
    without blocking, seen for what it is, and closed.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return OpenedFile(fd, st)
