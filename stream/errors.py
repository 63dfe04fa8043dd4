"""The base of every failure the job knows how to explain: its message is one sentence for a person."""

from __future__ import annotations


class MlopsStreamError(Exception):
    """A failure already phrased for a person (what went wrong, where, and what to do); the command prints it as the
    error document's ``error_message`` and exits 1."""
