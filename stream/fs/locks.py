"""Exclusive locks (``fcntl.flock``) that keep two runs from writing one checkpoint or signals file; a refusal names
the process that holds the lock."""

from __future__ import annotations

import fcntl
import os

from stream.errors import MlopsStreamError


class LockedError(MlopsStreamError):
    """Another process holds the lock; the message names the file, its role and the process."""


def lock(fd: int, path: str, role: str) -> None:
    """Take an exclusive lock on the open file ``fd`` without waiting; LockedError when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = holder(fd)
        who = f"process {pid}" if pid is not None else "another process"
        raise LockedError(
            f"the {role} {path} is in use by another mlops-stream run ({who}); two runs cannot share it: stop that "
            "run first, or pass another path"
        ) from None


def holder(fd: int) -> int | None:
    """The pid that holds a flock on the file ``fd`` is open on, from /proc/locks (Linux); None when unknown."""
    st = os.fstat(fd)
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for entry in lines:
        fields = entry.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF" ("->" marks a waiter, with one more field)
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == wanted and fields[4].isdigit() and int(fields[4]) != os.getpid():
            return int(fields[4])
    return None
