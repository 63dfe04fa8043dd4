"""What a followed name points at: a regular file, told by its device and inode, or nothing that can be followed (a
FIFO, socket, device or folder is said once in a warning, and waited past, as ``tail -F`` does)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable


class Named:
    """The name ``path`` (None: an open file without one); ``warn`` logs a warning for a person."""

    def __init__(self, path: str | None, warn: Callable[..., None]) -> None:
        self.path = path
        self.label = path or "<stdin>"
        self._warn = warn
        self._unfollowed: tuple[int, int] | None = None  # (device, inode) of the last one warned of

    def target(self) -> tuple[int, int, int] | None:
        """(device, inode, size) of the regular file at the name; None when there is none."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            self._unfollowable(st)
            return None
        self._unfollowed = None  # a later FIFO is warned of, even one that reuses the last one's inode
        return st.st_dev, st.st_ino, st.st_size

    def open(self) -> int | None:
        """A descriptor of the regular file at the name; None when there is none."""
        if self.path is None:
            return None
        try:
            # Without O_NONBLOCK, a FIFO put at the name would hold the run in open() until a writer came, deaf to
            # the idle timeout and to stop signals; a regular file reads the same either way.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # a socket cannot be opened at all
                raise
            self.target()  # says what is there
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            self._unfollowable(st)
            return None
        self._unfollowed = None
        return fd

    def _unfollowable(self, st: os.stat_result) -> None:
        if self._unfollowed != (st.st_dev, st.st_ino):
            self._unfollowed = (st.st_dev, st.st_ino)
            self._warn(
                "input %s is now %s, not a regular file, so it cannot be followed; waiting for a regular file "
                "there (a file already open is read meanwhile)",
                self.label, _kind(st.st_mode),
            )  # fmt: skip


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return what
    return "a device"
