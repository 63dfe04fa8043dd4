"""Keyed windows: one RollingSignal per key (rows grouped by a column's value) and its counts, in first-seen order.

The window semantics stay in the engine; this container only routes each row to its key's engine.

>>> k = KeyedSignal(2)
>>> [k.update(key, u, 0) for key, u in [("a", 1), ("b", 5), ("a", 3), ("b", 4), ("a", 2)]]
[0, 0, 1, 0, 0]
>>> {key: t.as_tuple() for key, t in k.tallies().items()}
{'a': (3, 1, 0), 'b': (2, 0, 0)}
"""

from __future__ import annotations

from stream.core.engine import Fed, RollingSignal, WindowState
from stream.core.tally import Tally
from stream.errors import MlopsStreamError
from stream.records import NamedTuple
from stream.text import excerpt

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from stream.core.batch import Batch

MAX_KEYS = 100_000  # the default limit on distinct keys: each holds a window, so memory grows with every new one
UNWATCHED = 1 << 62  # a floor no key's rows pass


class TooManyKeys(MlopsStreamError):
    """A keyed run met more distinct keys than its limit: most likely the key column is the wrong one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @classmethod
    def at(cls, name: str | None, limit: int, key: str) -> TooManyKeys:
        """The error for the key column ``name`` when ``key`` would be one past ``limit``."""
        column = f"the key column {excerpt(name)}" if name is not None else "the key column"
        return cls(
            f"{column} has more than {limit:,} distinct values (the next one: {excerpt(key)}), the limit max_keys: "
            "each value keeps a window of its own, so memory grows with every new one. It is probably not the column "
            "that names each series (a symbol, say): check --key, or raise max_keys in the config if that many "
            "series are meant"
        )


class SeriesState(NamedTuple):
    """One key's window and how many rows and signals it has had."""

    window: WindowState
    rows: int
    signals: int


class KeyedState(NamedTuple):
    """Every key's state, in first-seen order: what a checkpoint of a keyed run keeps."""

    window: int
    keys: dict[str, SeriesState]


class Series:
    """One key's engine and how many rows and signals it has had."""

    __slots__ = ("engine", "hits", "rows")

    def __init__(self, engine: RollingSignal, rows: int = 0, hits: int = 0) -> None:
        self.engine = engine
        self.rows = rows
        self.hits = hits


class KeyedSignal:
    """The engines of every key seen so far; a key's engine starts empty at its first row."""

    __slots__ = ("floor", "last", "max_keys", "name", "rising", "series", "window")

    def __init__(self, window: int, max_keys: int | None = MAX_KEYS, name: str | None = None) -> None:
        """``max_keys``: refuse a key past this many (TooManyKeys; None: no limit); ``name``: the key column, for
        that error."""
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.max_keys = max_keys
        self.name = name
        self.series: dict[str, Series] = {}  # insertion order is first-seen order
        self.last: Series | None = None  # the series of the latest row (progress display)
        # For the metrics server's top keys (stream/sinks/topkeys.py): a key whose rows pass the floor is noted.
        self.floor = UNWATCHED
        self.rising: set[str] = set()

    def add(self, key: str) -> Series:
        """The series of ``key``, created empty if the key is new."""
        found = self.series.get(key)
        if found is None:
            if self.max_keys is not None and len(self.series) >= self.max_keys:
                raise TooManyKeys.at(self.name, self.max_keys, key)
            found = self.series[key] = Series(RollingSignal(self.window))
        return found

    def update(self, key: str, units: int, scale: int) -> int:
        """Take the next value of ``key``; return its signal against that key's own window."""
        x = self.add(key)
        signal = x.engine.update(units, scale)
        x.rows += 1
        x.hits += signal
        self.last = x
        return signal

    def watch(self, floor: int) -> None:
        """From now on note each key whose rows pass ``floor`` (``take_rising`` hands them over); the first call
        notes every key seen so far."""
        if self.floor == UNWATCHED:
            self.rising.update(self.series)
        self.floor = floor

    def take_rising(self) -> set[str]:
        """The keys noted since the last call."""
        got, self.rising = self.rising, set()
        return got

    def _update_noting(self, key: str, units: int, scale: int) -> int:
        """``update``, and the key noted in ``rising`` when its rows pass ``floor``: a copy, so that a run nobody
        watches pays nothing for the check."""
        x = self.add(key)
        signal = x.engine.update(units, scale)
        x.rows += 1
        x.hits += signal
        if x.rows > self.floor:
            self.rising.add(key)
        self.last = x
        return signal

    def feed(self, batch: Batch, rows: bool = False) -> Fed:
        """Take a batch of either kind, each row to its key's engine (keys interleave, so row by row); return how many
        of its rows signal and, with ``rows``, each row's signal and mean (against its own key's window)."""
        units, scales = batch.values()
        update = self.update if self.floor == UNWATCHED else self._update_noting
        if not rows:
            # A list first: running out of memory inside sum(map(...)) surfaces as a SystemError, not a MemoryError.
            return sum(list(map(update, batch.keys, units, scales))), None, None
        mean = self.mean  # the mean of the key just updated
        signals: list[int] = []
        means: list[float | None] = []
        for k, u, s in zip(batch.keys, units, scales):
            signals.append(update(k, u, s))
            means.append(mean())
        return sum(signals), signals, means

    def hold(self, batch: Batch) -> None:
        """Take a batch's values into their keys' windows without giving their signals or counting them: what a block
        of the parallel plan leaves the block after it. Each key's values go to its engine at once."""
        units, scales = batch.values()
        one = batch.array is not None  # one scale for all
        groups: dict[str, tuple[list[int], list[int]]] = {}
        series = self.series
        for k, u, s in zip(batch.keys, units, scales):
            mine = groups.get(k)
            if mine is None:
                if k not in series:
                    self.add(k)  # in row order: past max_keys, the error names the first key too many
                mine = groups[k] = ([], [])
            mine[0].append(u)
            if not one:
                mine[1].append(s)
        for k, (values, marks) in groups.items():
            series[k].engine.hold_values(values, batch.scale if one else marks)

    def __len__(self) -> int:
        return len(self.series)

    def tallies(self) -> dict[str, Tally]:
        return {key: Tally(x.rows, x.hits) for key, x in self.series.items()}

    # What a display shows: the latest row's key.
    def mean(self) -> float | None:
        return self.last.engine.mean() if self.last is not None else None

    def latest(self) -> tuple[int, int, int] | None:
        return self.last.engine.latest() if self.last is not None else None

    # State for checkpoints: every key's window and counts.
    def state(self) -> KeyedState:
        keys = {key: SeriesState(x.engine.state(), x.rows, x.hits) for key, x in self.series.items()}
        return KeyedState(self.window, keys)

    @classmethod
    def from_state(cls, state: KeyedState, max_keys: int | None = MAX_KEYS, name: str | None = None) -> KeyedSignal:
        keyed = cls(state.window, max_keys, name)
        for key, s in state.keys.items():
            keyed.series[key] = Series(RollingSignal.from_state(s.window), s.rows, s.signals)
        return keyed

    @classmethod
    def starting(
        cls, window: int, windows: dict[str, WindowState], max_keys: int | None = MAX_KEYS, name: str | None = None
    ) -> KeyedSignal:
        """Engines that start from each key's window (a block of the parallel plan), their counts at zero."""
        keyed = cls(window, max_keys, name)
        for key, state in windows.items():
            keyed.series[key] = Series(RollingSignal.from_state(state))
        return keyed
