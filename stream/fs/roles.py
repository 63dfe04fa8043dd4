"""One file, one role: before anything is written, no output may be an input, the config, or another output.

Files are compared by device and inode (hard links, symlinks and any spelling of a path are the same file), and by
resolved path for files that do not exist yet (an output about to be created, a followed input that appears later).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence


class Role:
    """A file the run reads or writes: what it is for (``--output``, ``the input``, ...) and its identity."""

    # Plain slots, not a dataclass: every run checks its files, and the dataclasses import costs a batch run more.
    __slots__ = ("ident", "path", "real", "role", "stream")

    def __init__(self, role: str, path: str, ident: tuple[int, int] | None, real: str, stream: bool = False) -> None:
        self.role = role
        self.path = path
        self.ident = ident  # (device, inode) when it exists
        self.real = real  # the resolved path
        self.stream = stream  # a character device (/dev/null, a terminal): a stream that many roles may share

    @classmethod
    def of(cls, role: str, path: str) -> Role:
        try:
            st = os.stat(path)
        except OSError:
            return cls(role, path, None, os.path.realpath(path))
        return cls(role, path, (st.st_dev, st.st_ino), os.path.realpath(path), stat.S_ISCHR(st.st_mode))

    @classmethod
    def of_fd(cls, role: str, fd: int) -> Role | None:
        """The file behind an open descriptor (stdin, stdout) when it is a file or FIFO; None otherwise."""
        try:
            st = os.fstat(fd)
        except (OSError, ValueError):
            return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            return None
        return cls(role, f"<fd {fd}>", (st.st_dev, st.st_ino), f"<fd {fd}>")

    def same_file(self, other: Role) -> bool:
        if self.stream or other.stream:
            return False
        if self.ident is not None and other.ident is not None:
            return self.ident == other.ident
        return self.real == other.real

    def describe(self) -> str:
        return self.role if self.path.startswith("<") else f"{self.role} {self.path}"


class RoleClash(Exception):
    """One file given two roles; the message names both."""


def check(inputs: Sequence[Role], outputs: Sequence[Role]) -> None:
    """Raise RoleClash when an output is one of the ``inputs`` (inputs and the config), another output, or the
    temporary file name of an output (``.NAME.PID...`` beside it), which a later run may delete as a leftover."""
    for i, out in enumerate(outputs):
        for other in [*inputs, *outputs[:i]]:
            if out.same_file(other):
                raise RoleClash(_clash(out, other))
        prefix = os.path.join(os.path.dirname(out.real), f".{os.path.basename(out.real)}.")
        for other in inputs:
            if other.real.startswith(prefix):
                raise RoleClash(
                    f"{other.describe()} is named like a temporary file of {out.describe()}, which a later run "
                    "would remove as a leftover; rename it"
                )


def _clash(out: Role, other: Role) -> str:
    renamed = out.path != other.path and not out.path.startswith("<")
    same = " (the same file under another name)" if renamed else ""
    return (
        f"{out.describe()} is also {other.describe()}{same}: one file cannot have two roles, and writing it would "
        "destroy it; pass another path"
    )
