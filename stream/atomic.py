"""Replace a file atomically: a reader sees the old document or the new one, never a half-written one."""

from __future__ import annotations

import itertools
import os

_serial = itertools.count()


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush and fsync it, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create(folder, os.path.basename(path), "tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems do not allow opening folders
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def check_writable(path: str) -> None:
    """Fail early, before any work, when ``path`` could not be replaced at the end; raise OSError with a reason."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder {folder} does not exist")
    fd, tmp = _create(folder, os.path.basename(path), "probe")
    os.close(fd)
    os.unlink(tmp)


def remove_leftovers(path: str) -> list[str]:
    """Delete the temporary files that runs killed mid-write (kill -9, a power cut) left beside ``path``: ours by
    name, of a process that no longer exists. Returns their names. For long runs that rewrite ``path`` often; a
    short run does not scan folders."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    removed: list[str] = []
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        pid, _, rest = name[len(prefix) :].partition(".")
        serial, _, kind = rest.partition(".")
        if not (pid.isdigit() and serial.isdigit() and kind in ("tmp", "probe")) or _running(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, as another user's process
        return True
    return True


def _create(folder: str, name: str, kind: str) -> tuple[int, str]:
    """A new private file beside the target (tempfile's import costs more start-up time than this whole job)."""
    while True:
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{next(_serial)}.{kind}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), tmp
        except FileExistsError:  # pragma: no cover - a leftover from a killed process with a recycled pid
            continue
