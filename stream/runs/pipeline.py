"""Wires one run: batches of exact values through the engine, tallied, with signals passed to their sink."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from stream.core.batch import Batch
from stream.core.engine import RollingSignal
from stream.core.keyed import KeyedSignal
from stream.core.tally import Tally
from stream.sinks.signals import SignalSink


class Pipeline:
    """Feeds batches to one engine (or one per key) and keeps the run's tally; knows nothing of where the bytes came
    from."""

    def __init__(
        self,
        engine: RollingSignal | KeyedSignal,
        signals: SignalSink | None = None,
        many_keys: Callable[[int], None] | None = None,
    ) -> None:
        """``many_keys(n)`` is told once when a keyed run passes a tenth of its key limit (a likely wrong --key)."""
        self.engine = engine
        self.signals = signals
        self.many_keys = many_keys
        self.rows = 0
        self.hits = 0
        self.skipped = 0
        self.last: tuple[str, float | None, int] | None = None  # last close text, mean, signal (progress)
        self._by_key: dict[str, Tally] | None = None  # each key's counts, when they come from a parallel run's blocks
        self._floor: int | None = None  # once keys are watched: the rows a key must pass to be noted in _rising
        self._rising: set[str] = set()  # the keys of finished blocks that passed the floor

    @property
    def tally(self) -> Tally:
        return Tally(self.rows, self.hits, self.skipped)

    def restore(self, tally: Tally) -> None:
        """Continue counting from ``tally``: a checkpoint's (the engine is restored separately, from its state), or
        the rows before a block of the parallel plan."""
        self.rows, self.hits, self.skipped = tally.rows, tally.signals, tally.skipped

    def take_counts(self, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        """Show the counts of a parallel run's finished blocks, which this pipeline does not consume itself, to the
        progress display and the metrics server (``by_key``: each key's, copied)."""
        self.restore(tally)
        if by_key is not None:
            self._by_key = dict(by_key)
            self._count_keys(len(by_key))
            if self._floor is not None:
                floor = self._floor
                self._rising.update(k for k, t in by_key.items() if t.rows > floor)

    @property
    def by_key(self) -> dict[str, Tally] | None:
        """Each key's tally in first-seen order; None when rows are not keyed."""
        if self._by_key is not None:
            return self._by_key
        return self.engine.tallies() if isinstance(self.engine, KeyedSignal) else None

    @property
    def keyed(self) -> bool:
        return self._by_key is not None or isinstance(self.engine, KeyedSignal)

    def key_count(self) -> int:
        """How many distinct keys there are (0 when rows are not keyed)."""
        if self._by_key is not None:
            return len(self._by_key)
        return len(self.engine) if isinstance(self.engine, KeyedSignal) else 0

    # The metrics server's view of the keys (stream/sinks/topkeys.py): the keys whose rows pass a floor (the fewest rows
    # of the keys it shows) are noted as they pass it, so it never needs to look at every key.
    def watch_keys(self) -> None:
        """Note from now on every key that passes the floor (0 until ``set_floor``); every key so far is noted."""
        if isinstance(self.engine, KeyedSignal):
            self.engine.watch(0)
        self._rising.update(self._by_key or ())
        self._floor = 0

    def set_floor(self, rows: int) -> None:
        """From now on, note only the keys whose rows pass ``rows``."""
        self._floor = rows
        if isinstance(self.engine, KeyedSignal):
            self.engine.watch(rows)

    def rising_keys(self) -> set[str]:
        """The keys noted since the last call."""
        got, self._rising = self._rising, set()
        if isinstance(self.engine, KeyedSignal):
            got |= self.engine.take_rising()
        return got

    def counts_of(self, keys: Iterable[str]) -> list[tuple[str, int, int]]:
        """Each of ``keys`` with its rows and signals now."""
        if self._by_key is not None:
            tallies = self._by_key
            return [(k, t.rows, t.signals) for k in keys if (t := tallies.get(k)) is not None]
        series = getattr(self.engine, "series", {})
        return [(k, x.rows, x.hits) for k in keys if (x := series.get(k)) is not None]

    def consume(self, batch: Batch) -> None:
        self.skipped += batch.skipped
        n = len(batch)
        if not n:
            return
        engine = self.engine
        hits, signals, means = engine.feed(batch, rows=self.signals is not None)
        if self.signals is not None:
            assert signals is not None and means is not None
            self.signals.write(self.rows + 1, batch.stamps, batch.closes, means, signals, batch.keys or None)
            if batch.closes:
                self.last = (batch.closes[-1], engine.mean(), signals[-1])
        self.rows += n
        self.hits += hits
        if isinstance(engine, KeyedSignal):
            self._count_keys(len(engine))

    def _count_keys(self, n: int) -> None:
        """Say once (``many_keys``) that a keyed run has passed a tenth of its key limit: a likely wrong --key."""
        limit = getattr(self.engine, "max_keys", None)
        if self.many_keys is not None and limit is not None and n >= max(1, limit // 10):
            warn, self.many_keys = self.many_keys, None
            warn(n)

    def run(self, batches: Iterable[Batch], after_batch: Callable[[], None] | None = None) -> Tally:
        for batch in batches:
            self.consume(batch)
            if self.signals is not None:
                self.signals.flush()
            if after_batch is not None:
                after_batch()
        return self.tally
