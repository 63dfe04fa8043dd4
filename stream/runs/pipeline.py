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

    @property
    def by_key(self) -> dict[str, Tally] | None:
        """Each key's tally in first-seen order; None when rows are not keyed."""
        if self._by_key is not None:
            return self._by_key
        return self.engine.tallies() if isinstance(self.engine, KeyedSignal) else None

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
