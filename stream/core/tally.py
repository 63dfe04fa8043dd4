"""Counters that merge: the tallies of chunks, workers or partitions add up with ``+``.

>>> Tally(rows=3, signals=1) + Tally(rows=2, signals=2, skipped=1)
Tally(rows=5, signals=3, skipped=1)
>>> Tally(rows=8, signals=3).rate()
0.375
>>> Tally(rows=20000, signals=1).rate()  # 0.00005 is a tie at 4 decimals: half to even
0.0
"""

from __future__ import annotations

from collections.abc import Iterable

from stream.core.batch import BadRow

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Protocol


class Tally:
    __slots__ = ("rows", "signals", "skipped")

    def __init__(self, rows: int = 0, signals: int = 0, skipped: int = 0) -> None:
        self.rows = rows
        self.signals = signals
        self.skipped = skipped

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.rows + other.rows, self.signals + other.signals, self.skipped + other.skipped)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tally) and self.as_tuple() == other.as_tuple()

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __repr__(self) -> str:
        return f"Tally(rows={self.rows}, signals={self.signals}, skipped={self.skipped})"

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.rows, self.signals, self.skipped)

    def rate(self, digits: int = 4) -> float:
        """Signals per processed row, rounded exactly (half to even) to ``digits`` decimals; 0.0 with no rows."""
        if not self.rows:
            return 0.0
        # Integer rounding of signals/rows at 10**digits, so no float ever decides the last digit.
        scale = 10**digits
        q, r = divmod(self.signals * scale, self.rows)
        if 2 * r > self.rows or (2 * r == self.rows and q % 2):
            q += 1
        return q / scale


class Skips:
    """Skipped rows by kind: how many, and the first of each. Merges with ``+`` in input order (workers' counts)."""

    __slots__ = ("counts", "first")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: dict[str, BadRow] = {}

    def add(self, bad: BadRow) -> None:
        self.counts[bad.kind] = self.counts.get(bad.kind, 0) + 1
        self.first.setdefault(bad.kind, bad)

    def __add__(self, later: Skips) -> Skips:
        out = Skips()
        for part in (self, later):
            for kind, n in part.counts.items():
                out.counts[kind] = out.counts.get(kind, 0) + n
            for kind, bad in part.first.items():
                out.first.setdefault(kind, bad)
        return out

    def moved(self, lines: int) -> Skips:
        """The same counts, their first rows ``lines`` further down (see BadRow.moved)."""
        out = Skips()
        out.counts = dict(self.counts)
        out.first = {k: b.moved(lines) for k, b in self.first.items()}
        return out

    def commonest(self) -> tuple[int, BadRow] | None:
        """The count and first row of the commonest kind (the earliest kind on a tie); None when nothing skipped."""
        if not self.counts:
            return None
        kind = max(self.counts, key=lambda k: (self.counts[k], -self.first[k].line))
        return self.counts[kind], self.first[kind]


# Only annotations name these (they are under TYPE_CHECKING where they are imported): nothing to make at run time.
if TYPE_CHECKING:

    class Latest(Protocol):
        """What a display reads of an engine: its newest value and signal, and the mean of its window."""

        def latest(self) -> tuple[int, int, int] | None: ...

        def mean(self) -> float | None: ...

    class Running(Protocol):
        """A run's counters as they stand, as the progress display and the metrics server read them; a keyed run's keys
        are read through the few keys that pass a floor of rows, never by a walk over every key."""

        rows: int
        hits: int
        skipped: int

        @property
        def engine(self) -> Latest: ...

        @property
        def keyed(self) -> bool: ...

        def key_count(self) -> int: ...

        def watch_keys(self) -> None: ...

        def set_floor(self, rows: int) -> None: ...

        def rising_keys(self) -> set[str]: ...

        def counts_of(self, keys: Iterable[str]) -> list[tuple[str, int, int]]: ...
