"""Exclusive locks (``fcntl.flock``) that keep two runs from writing one checkpoint or signals file; a refusal names
the process that holds the lock."""

from __future__ import annotations

import fcntl
import os
import time

from stream.errors import MlopsStreamError

# A run's worker processes end with it (at once on Linux), but a lock they hold outlives the run by that moment.
ORPHANS_WAIT = 3.0


class LockedError(MlopsStreamError):
    """Another process holds the lock; the message names the file, its role and the process."""


def lock(fd: int, path: str, role: str) -> None:
    """Take an exclusive lock on the open file ``fd`` without waiting; LockedError when another process holds it.
    When the process that took the lock has ended and only processes it left behind hold it (its workers, ending with
    it), the lock is waited for, up to ``ORPHANS_WAIT`` seconds."""
    if _try(fd):
        return
    pid = holder(fd)
    if pid is not None and _ended(pid):
        deadline = time.monotonic() + ORPHANS_WAIT
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if _try(fd):
                return
        raise LockedError(
            f"the {role} {path} is held by processes left by an mlops-stream run (process {pid}) that has ended; "
            "stop them first, or pass another path"
        )
    who = f"process {pid}" if pid is not None else "another process"
    raise LockedError(
        f"the {role} {path} is in use by another mlops-stream run ({who}); two runs cannot share it: stop that run "
        "first, or pass another path"
    )


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie has: it holds no files any more), from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


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
