"""Byte sources: a regular file or stdin as a stream of chunks. Sources know nothing of lines or CSV."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20


class SourceError(Exception):
    """An input that cannot be opened; the message says which and why."""


class Input:
    """An opened input: its name for messages, its binary handle, and its size when it is a regular file."""

    def __init__(self, name: str, fh: BinaryIO, size: int | None) -> None:
        self.name = name
        self.fh = fh
        self.size = size  # bytes, for a regular file (progress, parallel splitting); None for pipes and terminals

    def describe(self) -> str:
        kind = f"regular file, {self.size} bytes" if self.size is not None else "stream"
        return f"{self.name} ({kind})"


def open_input(path: str) -> Input:
    """Open ``path`` (``-`` is stdin) for binary reading."""
    if path == "-":
        fh = sys.stdin.buffer
        try:
            st = os.fstat(fh.fileno())
            size = st.st_size if stat.S_ISREG(st.st_mode) else None
        except (OSError, ValueError):
            size = None
        return Input("<stdin>", fh, size)
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - the Input owns it
    except FileNotFoundError:
        raise SourceError(f"input file {path} does not exist") from None
    except IsADirectoryError:
        raise SourceError(f"input {path} is a directory, not a CSV file") from None
    except PermissionError:
        raise SourceError(f"input file {path} cannot be read: permission denied") from None
    except OSError as exc:
        raise SourceError(f"input file {path} cannot be opened: {exc.strerror}") from None
    st = os.fstat(fh.fileno())
    if stat.S_ISDIR(st.st_mode):
        fh.close()
        raise SourceError(f"input {path} is a directory, not a CSV file")
    return Input(path, fh, st.st_size if stat.S_ISREG(st.st_mode) else None)  # type: ignore[arg-type]


def chunks(fh: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    """Yield the stream's bytes as they arrive: a pipe's data is passed on without waiting for a full chunk."""
    # read1 returns what is available after at most one read, so rows written into a pipe are processed at once.
    read = getattr(fh, "read1", None) or fh.read
    while True:
        try:
            data = read(size)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us; kept for odd file objects
            continue
        if not data:
            return
        yield data
