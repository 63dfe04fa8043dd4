"""Wires one run: batches of exact values through the engine, tallied, with signals passed to their sink."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from stream.engine import RollingSignal
from stream.keyed import KeyedSignal
from stream.reader import Batch
from stream.signals import SignalSink
from stream.tally import Tally

if TYPE_CHECKING:  # the block path's module (and numpy) load only when a run needs them
    from stream.block import Block


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

    def consume(self, batch: Batch | Block) -> None:
        self.skipped += batch.skipped
        n = len(batch.units)
        if not n:
            return
        if isinstance(self.engine, KeyedSignal):
            self._consume_keyed(batch, self.engine)
            return
        if not isinstance(batch, Batch):
            self._consume_block(batch, self.engine)
            return
        self.rows += n
        if self.signals is None:
            self.hits += self.engine.count_many(batch.units, batch.scales)
            return
        sigs, means = self.engine.update_many(batch.units, batch.scales, means=True)
        assert means is not None
        self.signals.write(self.rows - n + 1, batch.stamps, batch.closes, means, sigs)
        self.hits += sum(sigs)
        if batch.closes:
            self.last = (batch.closes[-1], self.engine.mean(), sigs[-1])

    def _consume_keyed(self, batch: Batch | Block, keyed: KeyedSignal) -> None:
        # Keys interleave, so rows go one by one to their key's engine, from the row path and the block path alike.
        if isinstance(batch, Batch):
            units, scales = batch.units, batch.scales
        else:
            units, scales = batch.units.tolist(), [batch.scale] * len(batch.units)
        update = keyed.update
        if self.signals is None:
            sigs = list(map(update, batch.keys, units, scales))
        else:
            mean = keyed.mean  # the mean of the key just updated
            sigs = []
            means: list[float | None] = []
            for k, u, s in zip(batch.keys, units, scales):
                sigs.append(update(k, u, s))
                means.append(mean())
            self.signals.write(self.rows + 1, batch.stamps, batch.closes, means, sigs, batch.keys)
        self.rows += len(sigs)
        self.hits += sum(sigs)
        if batch.closes:
            self.last = (batch.closes[-1], keyed.mean(), sigs[-1])
        self._count_keys(len(keyed))

    def _count_keys(self, n: int) -> None:
        """Say once (``many_keys``) that a keyed run has passed a tenth of its key limit: a likely wrong --key."""
        limit = getattr(self.engine, "max_keys", None)
        if self.many_keys is not None and limit is not None and n >= max(1, limit // 10):
            warn, self.many_keys = self.many_keys, None
            warn(n)

    def _consume_block(self, block: Block, engine: RollingSignal) -> None:
        sigs, means = engine.update_block(block.units, block.scale, means=self.signals is not None)
        hits = int(sigs.sum())
        if self.signals is not None:
            assert means is not None
            self.signals.write(self.rows + 1, block.stamps, block.closes, means, sigs.tolist())
        self.rows += len(block.units)
        self.hits += hits
        if block.closes:
            self.last = (block.closes[-1], engine.mean(), int(sigs[-1]))

    def run(self, batches: Iterable[Batch | Block], after_batch: Callable[[], None] | None = None) -> Tally:
        for batch in batches:
            self.consume(batch)
            if self.signals is not None:
                self.signals.flush()
            if after_batch is not None:
                after_batch()
        return self.tally
