"""Counters that merge: the tallies of chunks, workers or partitions add up with ``+``.

>>> Tally(rows=3, signals=1) + Tally(rows=2, signals=2, skipped=1)
Tally(rows=5, signals=3, skipped=1)
>>> (Tally(rows=8, signals=3)).rate()
0.375
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Tally:
    rows: int = 0
    signals: int = 0
    skipped: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.rows + other.rows, self.signals + other.signals, self.skipped + other.skipped)

    def rate(self, digits: int = 4) -> float:
        """Signals per processed row, rounded exactly (half to even) to ``digits`` decimals; 0.0 with no rows."""
        if not self.rows:
            return 0.0
        return float(round(Fraction(self.signals, self.rows), digits))
