"""The keys with the most rows, for the metrics server's per-key series; kept up to date from the keys that passed
the fewest rows shown, so a scrape costs the same with 100,000 keys as with 10.

>>> class Run:  # what TopKeys reads of a pipeline
...     rows, hits, counts, floor = 0, 0, {}, None
...     def watch_keys(self): pass
...     def set_floor(self, rows): self.floor = rows
...     def rising_keys(self): return set(self.counts)
...     def key_count(self): return len(self.counts)
...     def counts_of(self, keys): return [(k, *self.counts[k]) for k in keys]
>>> run = Run()
>>> run.counts = {"a": (5, 1), "b": (2, 0), "c": (9, 4), "other": (1, 1)}
>>> run.rows, run.hits = 17, 6
>>> c = TopKeys(run, 2).take().counts()
>>> c.top, c.other, c.keys, run.floor
([('a', 5, 1), ('c', 9, 4)], (3, 1), 4, 5)
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.core.tally import Running

TOP_KEYS = 1000  # keys with a series of their own; the rest share "other"
OTHER = "other"


class KeyCounts:
    """What one scrape exports per key: the top keys' (key, rows, signals) by name, the sums of every other key
    (None when no key is left out) and how many keys there are."""

    __slots__ = ("keys", "other", "top")

    def __init__(self, top: list[tuple[str, int, int]], other: tuple[int, int] | None, keys: int) -> None:
        self.top = top
        self.other = other
        self.keys = keys


class TopKeys:
    """The ``n`` keys with the most rows (a key already among them keeps its place on a tie). A key named "other" is
    always counted in the other series, never beside it.

    The pipeline notes each key whose rows pass the floor, the fewest rows among a full top (every key while the top
    is not full): a key it did not note has no more rows than any key shown, so the top keys are always among those
    shown and those noted. ``take`` copies the counts of those keys only (under the run's lock, if it has one);
    ``Taken.counts`` merges them, outside the lock. Takes are merged in the order they were taken: one thread
    scrapes."""

    def __init__(self, pipeline: Running, n: int = TOP_KEYS) -> None:
        self.pipeline = pipeline
        self.n = n
        self.top: list[str] = []  # the keys shown, as the last merge found them
        pipeline.watch_keys()

    @classmethod
    def of(cls, pipeline: Running) -> TopKeys | None:
        """The top keys of a keyed run; None when its rows are not keyed."""
        return cls(pipeline) if pipeline.keyed else None

    def take(self) -> Taken:
        p = self.pipeline
        shown = self.top
        rising = p.rising_keys().difference(shown)
        # The keys shown first: nlargest keeps the first of equals, so they win ties.
        return Taken(self, p.counts_of([*shown, *rising]), p.rows, p.hits, p.key_count())

    def merge(self, taken: Taken) -> KeyCounts:
        n = self.n
        found = [c for c in taken.candidates if c[0] != OTHER]
        if len(found) > n:
            found = heapq.nlargest(n, found, key=lambda c: c[1])
        self.top = [key for key, _, _ in found]
        # The floor only rises (counts only grow), so a key not noted before stays below it.
        self.pipeline.set_floor(min(rows for _, rows, _ in found) if len(found) >= n else 0)
        other = None
        if taken.keys > len(found):
            other = (taken.rows - sum(c[1] for c in found), taken.hits - sum(c[2] for c in found))
        return KeyCounts(sorted(found), other, taken.keys)


class Taken:
    """The counts of the keys shown and of those noted since, with the run's totals at the same moment."""

    __slots__ = ("_counts", "candidates", "hits", "keys", "owner", "rows")

    def __init__(self, owner: TopKeys, candidates: list[tuple[str, int, int]], rows: int, hits: int, keys: int) -> None:
        self.owner = owner
        self.candidates = candidates
        self.rows = rows
        self.hits = hits
        self.keys = keys
        self._counts: KeyCounts | None = None

    def counts(self) -> KeyCounts:
        """Merged into the owner's top at the first call; the same counts after."""
        if self._counts is None:
            self._counts = self.owner.merge(self)
            self.candidates = []
        return self._counts
