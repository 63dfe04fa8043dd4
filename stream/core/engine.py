"""The signal's single home: an exact rolling mean over the last ``window`` values and the close > mean decision.

Invariants (checked by the property tests against a ``fractions.Fraction`` reference):

- every value held is an integer count of units at the engine's current decimal ``scale``; the scale only grows,
  and growing it multiplies the held values and the sum by the same power of ten, so nothing is ever rounded;
- ``sum`` is exactly the sum of the held values, updated in O(1) per value (add the new one, drop the oldest);
- the comparison ``close * window > sum`` is the comparison ``close > mean`` without a division;
- until ``window`` values have been seen there is no mean and the signal is 0 (pandas' ``rolling(window).mean()``
  with its default ``min_periods``).

>>> e = RollingSignal(3)
>>> [e.update(u, 1) for u in (1001, 1002, 1003, 1001)]
[0, 0, 1, 0]
>>> e.mean()
100.2
>>> e.update(10030, 2)  # 100.30 is above the mean of 100.2, 100.1 and itself
1
>>> e.update(10020, 2)  # 100.20 equals the mean of 100.1, 100.30 and itself: a tie is not a signal
0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import accumulate, repeat
from operator import gt, mul, sub, truediv

from stream.core.exact import MAX_SCALE
from stream.records import NamedTuple

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from stream.core.batch import Batch

# What ``feed`` gives: the batch's signal count and, when its rows were asked for, each row's signal and mean.
Fed = tuple[int, "list[int] | None", "list[float | None] | None"]

_POW10 = [10**k for k in range(MAX_SCALE + 1)]


class WindowState(NamedTuple):
    """A window as it stands: its length, the decimal scale of its values and the values held (units at that scale,
    oldest first, at most ``window`` of them). What a checkpoint keeps, and what a block of the parallel plan starts
    from.

    >>> WindowState(3, 1, (5, 6)).then(WindowState(3, 2, (70, 80)))
    WindowState(window=3, scale=2, held=(60, 70, 80))
    """

    window: int
    scale: int
    held: tuple[int, ...]

    def then(self, later: WindowState) -> WindowState:
        """The window after this one's values and then ``later``'s (of the same length), at the finer of their
        scales: exact, as an engine fed both would hold them."""
        room = self.window - len(later.held)
        if room <= 0 or not self.held:
            return later
        early = self.held[-room:]
        if self.scale == later.scale:
            return WindowState(later.window, later.scale, early + later.held)
        if self.scale < later.scale:
            factor = _POW10[later.scale - self.scale]
            return WindowState(later.window, later.scale, tuple(v * factor for v in early) + later.held)
        factor = _POW10[self.scale - later.scale]
        return WindowState(later.window, self.scale, early + tuple(v * factor for v in later.held))


class RollingSignal:
    """Window + signal for one series, fed one exact value (``units / 10**scale``) at a time."""

    __slots__ = ("_held", "_scale", "_sum", "window")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._held: deque[int] = deque()
        self._sum = 0
        self._scale = 0

    def update(self, units: int, scale: int) -> int:
        """Take the next value; return its signal (1 if it is above the mean of the window ending at it, else 0)."""
        if scale != self._scale:
            if scale < self._scale:
                units *= _POW10[self._scale - scale]
            else:
                self._rescale(scale)
        held = self._held
        if len(held) == self.window:
            self._sum += units - held.popleft()
            held.append(units)
            return 1 if units * self.window > self._sum else 0
        held.append(units)
        self._sum += units
        if len(held) < self.window:
            return 0
        return 1 if units * self.window > self._sum else 0

    def update_block(
        self, units: NDArray[np.int64], scale: int, means: bool = False
    ) -> tuple[NDArray[np.int8], list[float | None] | None]:
        """Feed a numpy int64 array of values at one ``scale``; return their signals (an int8 array) and, on request,
        each row's mean (None in the warm-up) — exactly what ``update`` and ``mean`` give row by row.

        The window sums are a running sum of ``new - dropped``: every partial sum of those differences is a window sum
        minus the first one, so int64 is exact whenever ``window * max|value|`` is below 2**62. When that bound (or
        the rescaling to a common scale) does not hold, the block is fed row by row through ``update``.
        """
        import numpy as np

        w = self.window
        n = len(units)
        top = max(scale, self._scale)
        biggest = max(-min(self._held, default=0), max(self._held, default=0))
        if n:
            biggest = max(biggest, -int(units.min()), int(units.max()))
        # Everything is done at the larger scale: check that scaling and summing stay far inside int64 (the factor
        # itself too, even when every value is 0).
        factor = _POW10[top - min(scale, self._scale)]
        if n == 0 or factor >= 2**62 or w * biggest * factor >= 2**62:
            sigs, row_means = self.update_many(units.tolist(), [scale] * n, means)
            return np.array(sigs, np.int8), row_means
        if scale < top:
            units = units * _POW10[top - scale]
        elif scale > self._scale:
            self._rescale(scale)
        held = self._held
        h = len(held)
        ext = np.concatenate((np.fromiter(held, np.int64, h), units)) if h else units
        signals = np.zeros(n, np.int8)
        total = h + n
        if total < w:  # still warming up: no window is complete yet
            self._held.extend(units.tolist())
            self._sum += int(units.sum())
            return signals, ([None] * n if means else None)
        # sums[k] is the sum of the window ending at ext[w - 1 + k].
        sums = np.empty(total - w + 1, np.int64)
        sums[0] = self._sum if h == w else ext[:w].sum()
        np.cumsum(ext[w:] - ext[:-w], out=sums[1:])
        sums[1:] += sums[0]
        cold = max(0, w - 1 - h)  # block rows still in the warm-up
        np.greater(ext[h + cold :] * w, sums[h + cold - (w - 1) :], out=signals[cold:], casting="unsafe")
        if n >= w:
            self._held = deque(units[-w:].tolist())
        else:  # in place: O(block), not O(window)
            for _ in range(total - w):
                held.popleft()
            held.extend(units.tolist())
        self._sum = int(sums[-1])
        mean_list: list[float | None] | None = None
        if means:
            mine = sums[h + cold - (w - 1) :]
            den = w * _POW10[self._scale]
            # A float64 division of two exactly representable integers is correctly rounded, as int / int is.
            if den <= 2**53 and max(-int(mine.min()), int(mine.max())) <= 2**53:
                mean_list = [None] * cold + (mine / den).tolist()
            else:
                mean_list = [None] * cold + [s / den for s in mine.tolist()]
        return signals, mean_list

    def update_many(
        self, units: list[int], scales: list[int], means: bool = False
    ) -> tuple[list[int], list[float | None] | None]:
        """Feed a list of values with their scales; return their signals and, on request, each row's mean (None in
        the warm-up) — exactly what ``update`` and ``mean`` give row by row, for a fraction of the interpreter's work
        when the values share one scale (a real export's closes do; see ``_run``).
        """
        run = self._run(units, scales)
        if run is None:
            sigs: list[int] = []
            mean_list: list[float | None] | None = [] if means else None
            for u, s in zip(units, scales):
                sigs.append(self.update(u, s))
                if mean_list is not None:
                    mean_list.append(self.mean())
            return sigs, mean_list
        cold, above, sums = run
        sigs = [0] * cold + list(map(int, above))
        if not means:
            return sigs, None
        # int / int is correctly rounded, as in ``mean``.
        return sigs, [None] * cold + list(map(truediv, sums, repeat(self.window * _POW10[self._scale])))

    def feed(self, batch: Batch, rows: bool = False) -> Fed:
        """Take a batch of either kind (lists of values with their scales, or the block path's array at one scale);
        return how many of its rows signal and, with ``rows``, each row's signal and mean."""
        if batch.array is not None:
            sigs, means = self.update_block(batch.array, batch.scale, means=rows)
            return int(sigs.sum()), (sigs.tolist() if rows else None), means
        if not rows:
            return self.count_many(batch.units, batch.scales), None, None
        signals, means = self.update_many(batch.units, batch.scales, means=True)
        return sum(signals), signals, means

    def count_many(self, units: list[int], scales: list[int]) -> int:
        """Feed a list of values with their scales; return how many signal: ``sum(update_many(...)[0])``, without
        building the per-row list a run that writes no signals does not need."""
        run = self._run(units, scales)
        return sum(map(self.update, units, scales)) if run is None else sum(run[1])

    def _run(self, units: list[int], scales: list[int]) -> tuple[int, Iterator[bool], list[int]] | None:
        """Advance over values of one scale at once; return the number of them still in the warm-up, whether each
        later one is above its mean (lazily), and its window sum. None, having done nothing, for mixed scales or
        fewer values than the window: those go row by row, where the cost stays O(rows), not O(window) (a live
        feed's batches of a row or two under a wide window).

        The window sums are the running sum of ``new - dropped`` (as in ``update_block``), in Python integers, so
        exact at any size; each step is one C-level loop (``accumulate``, ``map``) instead of a call per row.
        """
        w = self.window
        if len(units) < w or scales.count(scales[0]) != len(scales):
            return None
        scale = scales[0]
        if scale < self._scale:
            factor = _POW10[self._scale - scale]
            units = [u * factor for u in units]
        elif scale > self._scale:
            self._rescale(scale)
        h = len(self._held)
        ext = [*self._held, *units]
        # sums[k] is the sum of the window ending at ext[w - 1 + k].
        sums = list(accumulate(map(sub, ext[w:], ext), initial=self._sum if h == w else sum(ext[:w])))
        cold = max(0, w - 1 - h)  # values of this run still in the warm-up
        mine = sums[h + cold - (w - 1) :]
        self._held = deque(units[-w:])
        self._sum = sums[-1]
        return cold, map(gt, map(mul, ext[h + cold :], repeat(w)), mine), mine

    @property
    def warm(self) -> bool:
        """True once the window is full and a mean exists."""
        return len(self._held) == self.window

    def mean(self) -> float | None:
        """The exact mean of the current window, rounded once to the nearest float; None during warm-up."""
        if len(self._held) < self.window:
            return None
        # int / int is correctly rounded in Python, so this is the exact mean's nearest float.
        return self._sum / (self.window * _POW10[self._scale])

    def latest(self) -> tuple[int, int, int] | None:
        """The newest value as ``(units, scale)`` and the signal it was given, for displays; None before any value."""
        held = self._held
        if not held:
            return None
        units, scale = held[-1], self._scale
        signal = 1 if len(held) == self.window and units * self.window > self._sum else 0
        return units, scale, signal

    def _rescale(self, scale: int) -> None:
        factor = _POW10[scale - self._scale]
        self._held = deque(v * factor for v in self._held)
        self._sum *= factor
        self._scale = scale

    def hold(self, batch: Batch) -> None:
        """Take a batch's values without giving their signals (what a block of the parallel plan leaves the block after
        it)."""
        units, scales = batch.values(-self.window)
        self.hold_values(units, batch.scale if batch.array is not None else list(scales))

    def hold_values(self, units: list[int], scales: list[int] | int) -> None:
        """Take values with their scales (or one scale for all) without giving their signals: only the last
        ``window`` can stay in the window, so only they are read, and the window is set in one step (at the finest
        scale, as ``update`` keeps it)."""
        w = self.window
        if len(units) > w:
            units = units[-w:]
            if not isinstance(scales, int):
                scales = scales[-w:]
        if not units:
            return
        top = max(self._scale, scales if isinstance(scales, int) else max(scales))
        if top != self._scale:
            self._rescale(top)
        if isinstance(scales, int):
            if scales != top:
                units = [u * _POW10[top - scales] for u in units]
        elif scales.count(top) != len(scales):
            units = [u * _POW10[top - s] for u, s in zip(units, scales)]
        held = self._held
        held.extend(units)
        self._sum += sum(units)
        for _ in range(len(held) - w):
            self._sum -= held.popleft()

    # State for checkpoints and for starting a block of the parallel plan with the values before it.
    def state(self) -> WindowState:
        return WindowState(self.window, self._scale, tuple(self._held))

    @classmethod
    def from_state(cls, state: WindowState) -> RollingSignal:
        engine = cls(state.window)
        held = state.held[-engine.window :]
        engine._held = deque(held)
        engine._sum = sum(held)
        engine._scale = state.scale
        return engine
