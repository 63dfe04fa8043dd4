"""The base of every failure the job knows how to explain: its message is one sentence for a person."""

from __future__ import annotations


class MlopsStreamError(Exception):
    """A failure already phrased for a person (what went wrong, where, and what to do); the command prints it as the
    error document's ``error_message`` and exits 1."""


class JobError(MlopsStreamError):
    """A failure of the run as a whole (an empty input, an unusable option); the message says what to do."""


def reason(exc: OSError) -> str:
    """An OS error's reason as a message says it: ``no such file or directory``."""
    return exc.strerror.lower() if exc.strerror else str(exc)


class SourceError(MlopsStreamError):
    """An input that cannot be opened or read as bytes; the message says which and why."""
