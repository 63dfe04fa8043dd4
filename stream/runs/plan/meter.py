"""The bytes the plan's tasks have read so far in each pass, which the parent reads while they run (its progress bar
moves within blocks, not only as they finish): counters in memory that forked worker processes share with it."""

from __future__ import annotations

from typing import Any

FIRST, SECOND = 0, 1  # the passes: the first (summarize), and the second or only one (process)

_mine: tuple[Any, int] | None = None  # in a worker: the shared counters and where its own pair starts


class Meter:
    """A pair of counters (first pass, second pass) per worker, made before the workers fork: each worker adds to its
    own pair only, so no lock is needed, and the parent reads the sums."""

    def __init__(self, workers: int) -> None:
        import multiprocessing

        self.counts = multiprocessing.RawArray("q", 2 * workers)

    def adopt(self, worker: int) -> None:
        """In worker ``worker`` (from 0): this process's reads count in its own pair."""
        global _mine
        _mine = (self.counts, 2 * worker)

    def read(self) -> tuple[int, int]:
        """The bytes read so far by all the workers in the first pass and in the second."""
        counts = self.counts[:]
        return sum(counts[FIRST::2]), sum(counts[SECOND::2])


def count(kind: int, size: int) -> None:
    """A task of pass ``kind`` read ``size`` more bytes (counted only in a worker that adopted a meter)."""
    if _mine is not None:
        counts, at = _mine
        counts[at + kind] += size
