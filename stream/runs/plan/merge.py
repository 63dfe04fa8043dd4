"""The plan's parent: the tasks submitted in order, each block started from the windows the blocks before it leave
(the prefix combine), and the results merged in input order: counts, signals, skipped rows and the first error."""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from stream.core.batch import BadRow
from stream.core.engine import RollingSignal
from stream.core.keyed import TooManyKeys
from stream.core.tally import Skips, Tally
from stream.parsing.framing import InputError
from stream.parsing.rows import BadRowError
from stream.records import NamedTuple
from stream.runs.plan.cut import Task
from stream.runs.plan.meter import FIRST, SECOND
from stream.runs.plan.tasks import Block, Failure, Output, Settings, Summary, Windows, process, summarize
from stream.sinks.signals import SignalSink

if TYPE_CHECKING:
    from stream.runs.plan.executors import Executor
    from stream.runs.plan.meter import Meter

# How many tasks of each pass may be in flight per worker: enough to keep workers busy, few enough to bound memory.
AHEAD_PER_WORKER = 2
# What a pass over a block costs, for each pass's share of the progress bar (its time left is only as true as this):
# the first pass parses and keeps windows; the second also computes and writes every signal. Worker CPU over the 8
# blocks of `python -m stream generate --rows 2000000` with --signals: 0.40 s first pass, 2.34 s second.
FIRST_PASS_COST = 1
SECOND_PASS_COST = 6


class Result(NamedTuple):
    tally: Tally
    by_key: dict[str, Tally] | None


class Reached(NamedTuple):
    """How far the plan has got: of ``blocks``, how many are through the first pass (of ``passes`` 2) and how many
    are written out, with their bytes (of ``size``); ``meter``: the bytes the workers have read so far, in each pass
    (None: only the finished blocks are known)."""

    blocks: int
    passes: int
    first: int
    written: int
    first_bytes: int
    written_bytes: int
    size: int
    meter: Meter | None

    def work(self) -> tuple[int, int]:
        """The work done as of now and all of it: the bytes through each pass, weighted by what the pass costs."""
        read = self.meter.read() if self.meter is not None else (0, 0)
        first, second = (FIRST_PASS_COST, SECOND_PASS_COST) if self.passes == 2 else (0, 1)
        done = first * max(self.first_bytes, read[FIRST]) + second * max(self.written_bytes, read[SECOND])
        return done, (first + second) * self.size


class Listener(Protocol):
    """What the parent tells of the blocks as it writes them out, in input order."""

    def bad_row(self, bad: BadRow) -> None:
        """A skipped row that the log may show (its line in its file)."""

    def unshown(self, count: int) -> None:
        """More skipped rows than a block returned one by one."""

    def skipped(self, counted: Skips) -> None:
        """A piece's skipped rows by kind (their lines in their file)."""

    def block_done(self, done_bytes: int, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        """The bytes and counts of the blocks written out so far."""

    def reached(self, state: Reached) -> None:
        """How far the passes have got: at the start, and as each block is through each pass."""


def execute(
    executor: Executor, job: Settings, tasks: list[Task], listener: Listener, sink: SignalSink | None = None
) -> Result:
    """Run the passes of ``tasks`` on ``executor``; write signals to ``sink`` in input order; tell ``listener`` of
    each block as it is written out."""
    return _Merge(executor, job, tasks, listener, sink).run()


class _Merge:
    """One run of the plan in the parent: the blocks in flight and what the blocks written out so far add up to."""

    def __init__(
        self, executor: Executor, job: Settings, tasks: list[Task], listener: Listener, sink: SignalSink | None
    ) -> None:
        self.executor, self.job, self.tasks, self.listener, self.sink = executor, job, tasks, listener, sink
        self.ahead = max(2, AHEAD_PER_WORKER * executor.workers)
        self.before: Windows = {}  # each key's window before the next block (of the first pass, or written out)
        self.seconds: deque[tuple[Any, Task]] = deque()  # second passes in flight, in input order
        self.lines = _Lines()
        self.tally = Tally()
        self.by_key: dict[str, Tally] | None = {} if job.key is not None else None
        self.two = job.context_floor is None and not job.one_pass
        self.first, self.first_bytes = 0, 0  # blocks through the first pass, and their bytes
        self.written, self.done_bytes = 0, 0  # blocks written out, and their bytes
        self.size = sum(_size(task) for task in tasks)

    def run(self) -> Result:
        self._report()
        if self.two:
            self._two_passes()
        else:
            # One pass: engines start empty (the parent completes each block's start); else each block reads its
            # context backwards.
            for task in self.tasks:
                self._second(task, 0, {} if self.job.one_pass else None)
        self._flush(everything=True)
        return Result(self.tally, self.by_key)

    def _two_passes(self) -> None:
        """The first pass ahead of the second: each block's rows before it and windows to start from, in order."""
        tasks, executor = self.tasks, self.executor
        firsts: deque[Any] = deque()
        submitted = 0
        row = 0
        for k, task in enumerate(tasks):
            while submitted < len(tasks) and submitted < k + self.ahead:
                firsts.append(executor.submit(summarize, Block(self.job, tasks[submitted])))
                submitted += 1
            summary: Summary = executor.result(firsts.popleft())
            if summary.error is not None:
                self._flush(everything=True)  # the blocks before this one, as far as one process would have got
                _raise(summary.error, self.lines.offsets(task, summary.lines))
            self.first += 1
            self.first_bytes += _size(task)
            self._report()
            before = self.before
            self._second(task, row, {key: before[key] for key in summary.tails if key in before})
            row += summary.rows
            self._remember(summary.tails)

    def _second(self, task: Task, row: int, start: Windows | None) -> None:
        self.seconds.append((self.executor.submit(process, Block(self.job, task, row, start)), task))
        self._flush(everything=False)

    def _flush(self, everything: bool) -> None:
        """Write out finished blocks in order (all of them, or until few enough are in flight)."""
        seconds, executor = self.seconds, self.executor
        while seconds and (everything or len(seconds) > self.ahead or executor.done(seconds[0][0])):
            handle, task = seconds.popleft()
            self._write_out(executor.result(handle), task)

    def _remember(self, tails: Windows) -> None:
        """Each key's window so far, after a block's own last values."""
        before = self.before
        for key, tail in tails.items():
            held = before.get(key)
            before[key] = held.then(tail) if held is not None else tail

    def _write_out(self, output: Output, task: Task) -> None:
        listener = self.listener
        offsets = self.lines.offsets(task, output.lines)
        for index, bad in output.bad:
            listener.bad_row(bad.moved(offsets[index]))
        if output.error is not None:
            _raise(output.error, offsets)
        self.tally += output.tally
        for index, counted in sorted(output.skips.items()):
            listener.skipped(counted.moved(offsets[index]))
        self._count_keys(output, self._heads(output))
        if output.tally.skipped > len(output.bad):
            listener.unshown(output.tally.skipped - len(output.bad))
        if self.sink is not None and output.signals is not None:
            _copy_signals(output, self.sink)
        self.written += 1
        self.done_bytes += _size(task)
        listener.block_done(self.done_bytes, self.tally, self.by_key)
        self._report()

    def _report(self) -> None:
        self.listener.reached(
            Reached(
                len(self.tasks), 2 if self.two else 1, self.first, self.written, self.first_bytes, self.done_bytes,
                self.size, self.executor.meter,
            )
        )  # fmt: skip

    def _heads(self, output: Output) -> dict[str | None, int]:
        """One pass: the signals of each key's first values in the block, which the task could not give (their
        windows reach into the blocks before), from engines started with the key's window before the block."""
        if output.heads is None:
            return {}
        hits: dict[str | None, int] = {}
        for key, head in output.heads.items():
            before = self.before.get(key)
            engine = RollingSignal.from_state(before) if before is not None else RollingSignal(self.job.window)
            hits[key] = engine.count_many(list(head.held), [head.scale] * len(head.held))
        self.tally += Tally(0, sum(hits.values()))
        self._remember(output.tails)
        return hits

    def _count_keys(self, output: Output, extra: dict[str | None, int]) -> None:
        by_key, job = self.by_key, self.job
        if by_key is None or not output.by_key:
            return
        for k, counted in output.by_key.items():
            by_key[k] = by_key.get(k, Tally()) + Tally(counted.rows, counted.signals + extra.get(k, 0))
            if job.max_keys is not None and len(by_key) > job.max_keys:  # each block is within it; all of them
                raise TooManyKeys.at(job.key, job.max_keys, k)


def _size(task: Task) -> int:
    return sum(p.end - p.start for p in task)


class _Lines:
    """Line numbers in each file, from the line counts of the pieces written out so far (in order)."""

    def __init__(self) -> None:
        self.before = 0  # lines of the current file before the next piece

    def offsets(self, task: Task, counts: list[int]) -> list[int]:
        """Each piece's first line (0 for a piece that starts its file); advances past the counted pieces."""
        out = []
        for piece, count in zip(task, [*counts, *[0] * (len(task) - len(counts))]):
            if piece.first:
                self.before = 0
            out.append(self.before)
            self.before += count
        return out


def _raise(error: Failure, offsets: list[int]) -> None:
    if isinstance(error.what, str):
        raise InputError(error.what)  # a header: at its file's start, so its line number is right as it is
    raise BadRowError(error.what.moved(offsets[error.piece]))


def _copy_signals(output: Output, sink: SignalSink) -> None:
    """A block's signal lines after the blocks before it (the header first, once there are rows)."""
    if output.tally.rows:
        sink.header()
    if isinstance(output.signals, str):
        _copy(output.signals, sink.out)
        os.unlink(output.signals)
    elif output.signals is not None:
        sink.out.write(output.signals)
    sink.out.flush()


def _copy(path: str, out: BinaryIO) -> None:
    with open(path, "rb") as fh:
        while True:
            data = fh.read(1 << 20)
            if not data:
                return
            out.write(data)
