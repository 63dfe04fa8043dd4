"""Replace a file atomically: a reader sees the old document or the new one, never a half-written one."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush and fsync it, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
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
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".probe", dir=folder)
    os.close(fd)
    os.unlink(tmp)
