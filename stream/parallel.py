"""Runs a batch input through the pipeline: one process (row or block path), or worker processes over byte ranges.

Workers split a regular file at line boundaries; each starts its engine with the ``window - 1`` valid rows before its
range, so every row sees the window the serial run gives it. Counts merge with ``Tally +``, signals are copied back in
order (row numbers come from a first counting pass), bad rows are reported in file order with file line numbers,
and under ``fail`` the first bad row in the file wins. The output is byte-identical to one process's.

Knobs for tests and benchmarks: ``MLOPS_STREAM_PATH=row|block|auto`` forces the row path or the block path (default
auto: the block path for inputs of at least ``BLOCK_MIN_BYTES``), ``MLOPS_STREAM_CHUNK`` sets the read size in bytes.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from stream.engine import RollingSignal
from stream.logsink import LOGGER, SHOW_BAD_ROWS
from stream.pipeline import Pipeline
from stream.reader import BadRow, BadRowError, Batch, Reader
from stream.signals import SignalSink
from stream.source import CHUNK, Input
from stream.tally import Tally

if TYPE_CHECKING:
    from stream.block import BlockReader

# numpy's import (~0.1 s) pays for itself only on inputs of several MiB; below this the row path is faster.
BLOCK_MIN_BYTES = 8 << 20
# Worker processes by default only for regular files at least this big: forking and planning cost ~50 ms.
PARALLEL_MIN_BYTES = 32 << 20
# Byte ranges are at least this big, and there are up to this many per worker (to even out uneven progress).
RANGE_MIN_BYTES = 4 << 20
RANGES_PER_WORKER = 4
# The bytes read before the header is known; an input whose header is not within them runs in one process.
PROBE_BYTES = 1 << 20
# Context scans read backwards in pieces of this size, so a long run of bad rows cannot blow up memory.
CONTEXT_PIECE = 1 << 20

log = logging.getLogger(LOGGER)


def mode() -> str:
    value = os.environ.get("MLOPS_STREAM_PATH", "auto")
    return value if value in ("row", "block") else "auto"


def chunk_size() -> int:
    try:
        return max(1, int(os.environ.get("MLOPS_STREAM_CHUNK", "")))
    except ValueError:
        return CHUNK


def default_workers(size: int | None) -> int:
    if size is None or size < PARALLEL_MIN_BYTES:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run(
    inp: Input,
    reader: Reader,
    pipeline: Pipeline,
    workers: int | None = None,
    after_batch: Callable[[], None] | None = None,
) -> Tally:
    """Process the whole input; ``workers=None`` picks the default for its size."""
    fh = inp.fh
    start = _position(fh) if inp.size is not None else None
    remaining = inp.size - start if inp.size is not None and start is not None else None
    n = workers if workers is not None else default_workers(remaining)
    if n > 1:
        if remaining is None:
            log.info("--workers %d: the input is a stream, not a regular file; reading it with one process", n)
        else:
            assert start is not None
            tally = _parallel(inp, start, reader, pipeline, n, after_batch, explicit=workers is not None)
            if tally is not None:
                return tally
    return pipeline.run(_serial(fh, reader, remaining, pipeline.engine.window), after_batch)


def _position(fh: BinaryIO) -> int | None:
    try:
        return fh.seek(0, os.SEEK_CUR)
    except (OSError, ValueError):
        return None


# ---- one process ------------------------------------------------------------------------------------------------


def _serial(fh: BinaryIO, reader: Reader, size: int | None, window: int) -> Iterator[Batch | Any]:
    """Batches from one process: the row path, switching to the block path once the input proves big enough."""
    m = mode()
    switch_at: int | None  # bytes read before the block path takes over; None: never
    if m == "row":
        switch_at = None
    elif m == "block":
        switch_at = 0
    elif size is not None:
        switch_at = 0 if size >= BLOCK_MIN_BYTES else None  # a small regular file never pays for numpy
    else:
        switch_at = BLOCK_MIN_BYTES  # a stream proves itself big first
    if switch_at is not None:
        from stream.block import MAX_WINDOW, BlockReader

        if m == "auto" and window > MAX_WINDOW:
            switch_at = None
    block: list[BlockReader] = []  # a list, so the chunk source sees the switch
    seen = 0
    for chunk in _chunks(fh, lambda: bool(block)):
        seen += len(chunk)
        if not block and switch_at is not None and seen > switch_at:
            block.append(BlockReader(reader, 1 if m == "block" else None))
            log.info("block path: parsing chunks with numpy from byte %d on", seen - len(chunk))
        for batch in block[0].feed(chunk) if block else (reader.feed(chunk),):
            if len(batch) or batch.skipped:
                yield batch
    last = reader.finish()
    if last.units or last.skipped:
        yield last
    if block:
        log.info("block path: %d lines parsed with numpy, the other %d by the row path",
                 block[0].lines, reader.line_no - block[0].lines)  # fmt: skip


def _chunks(fh: BinaryIO, gulp: Callable[[], bool]) -> Iterator[bytes]:
    """The stream's bytes as they arrive; once ``gulp()`` says so, a pipe's ready data is joined into big chunks."""
    size = chunk_size()
    read = getattr(fh, "read1", None) or fh.read
    try:
        fd: int | None = fh.fileno()
    except (OSError, ValueError, AttributeError):
        fd = None
    while True:
        data = read(size)
        if not data:
            return
        if fd is not None and len(data) < size and gulp():
            # A fast pipe hands over 64 KiB at a time; take whatever is already waiting, never wait for more.
            import select

            parts = [data]
            have = len(data)
            while have < size and select.select([fd], [], [], 0)[0]:
                more = read(size - have)
                if not more:
                    break
                parts.append(more)
                have += len(more)
            data = b"".join(parts)
        yield data


# ---- worker processes -------------------------------------------------------------------------------------------


# Plain classes rather than dataclasses: this module loads on every run, and a dataclass costs ~1 ms to build.
class _Job:
    """What every worker needs; set before the workers fork, so they inherit it instead of unpickling it."""

    def __init__(self, **fields: Any) -> None:
        self.fd: int = fields["fd"]
        self.data_start: int = fields["data_start"]
        self.header: bytes = fields["header"]  # the bytes before the first data line
        self.ranges: list[tuple[int, int]] = fields["ranges"]
        self.column: str = fields["column"]
        self.skip: bool = fields["skip"]
        self.keep_text: bool = fields["keep_text"]
        self.window: int = fields["window"]
        self.fmt: str = fields["fmt"]
        self.with_timestamp: bool = fields["with_timestamp"]
        self.block: bool = fields["block"]
        self.spill: list[int] = []  # one temporary file per range, for its signals


class _Result:
    """What a worker reports for one range."""

    def __init__(self) -> None:
        self.rows = 0
        self.signals = 0
        self.skipped = 0
        self.lines = 0  # lines of the range, for file line numbers
        self.bad: list[BadRow] = []  # the first few skipped rows, line numbers local to the range
        self.error: BadRow | None = None  # the first bad row under `fail`


_JOB: _Job | None = None


def _parallel(
    inp: Input,
    base: int,
    reader: Reader,
    pipeline: Pipeline,
    workers: int,
    after_batch: Callable[[], None] | None,
    explicit: bool = False,
) -> Tally | None:
    """Run over worker processes; None when the input does not suit them (one process then reads on from wherever
    the header probe left the reader and the file)."""
    global _JOB
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        log.info("worker processes need the fork start method, which this platform lacks; using one process")
        return None
    fd = inp.fh.fileno()
    end = base + (inp.size or 0)
    probe = os.pread(fd, PROBE_BYTES, base)
    consumed = 0
    while not reader.at_line_start:
        cut = probe.find(b"\n", consumed) + 1
        if not cut:
            break
        reader.feed(probe[consumed:cut])
        consumed = cut
    if not reader.at_line_start or reader.layout is None:
        # The header is not in the first MiB: let one process read on from where the probe stopped.
        inp.fh.seek(base + consumed)
        return None
    data_start = base + consumed
    header = os.pread(fd, data_start - base, base)
    sample = probe[consumed:]
    lines = sample.count(b"\n")
    line_bytes = len(sample) / lines if lines else 100.0
    # Asked for explicitly, the workers run whatever the window; by default only where the context rows are cheap.
    window = 1 if explicit else pipeline.engine.window
    ranges = _plan(fd, data_start, end, workers, window, line_bytes)
    if len(ranges) < 2:
        log.info("the input is too small for %d workers over a window of %d rows; using one process",
                 workers, pipeline.engine.window)  # fmt: skip
        inp.fh.seek(data_start)
        return None
    sink = pipeline.signals
    layout = reader.layout
    from stream.block import MAX_WINDOW

    job = _Job(
        fd=fd, data_start=data_start, header=header, ranges=ranges, column=reader.column,
        skip=reader.skip, keep_text=sink is not None, window=pipeline.engine.window,
        fmt=sink.fmt if sink is not None else "csv", with_timestamp=layout.timestamp_index is not None,
        block=mode() == "block" or (mode() == "auto" and pipeline.engine.window <= MAX_WINDOW),
    )  # fmt: skip
    spills: list[Any] = []
    if sink is not None:
        import tempfile

        folder = _folder_of(sink.out)
        spills = [tempfile.TemporaryFile(dir=folder) for _ in ranges]  # noqa: SIM115 - closed in the finally below
        job.spill = [f.fileno() for f in spills]
    log.info("worker processes: %d over %d byte ranges of about %d bytes (%s path)",
             min(workers, len(ranges)), len(ranges), (end - data_start) // len(ranges),
             "block" if job.block else "row")  # fmt: skip
    if after_batch is not None:
        after_batch()
    if job.block:
        from stream import seeding

        # Imported once here, numpy is shared copy-on-write; each worker importing it would cost more, all at once.
        seeding.numpy()
    _JOB = job
    try:
        pool = _Workers(min(workers, len(ranges)))
    finally:
        _JOB = None
    try:
        offsets = [0] * len(ranges)
        if sink is not None:
            counted = list(pool.map(_count, list(range(len(ranges)))))
            _raise_first_error(counted, reader.line_no)
            total = 0
            for k, res in enumerate(counted):
                offsets[k] = total
                total += res.rows
            if total:
                sink.with_timestamp = job.with_timestamp
                sink.header()
        tally = Tally()
        lines = reader.line_no
        done: list[_Result] = []
        for k, res in enumerate(pool.map(_work, list(enumerate(offsets)))):
            done.append(res)
            _raise_first_error(done, reader.line_no)
            tally += Tally(res.rows, res.signals, res.skipped)
            _replay(reader, res, lines)
            lines += res.lines
            # What a progress display reads: rows so far and bytes consumed.
            pipeline.restore(tally)
            reader.offset = job.ranges[k][1] - base
            if sink is not None:
                sink.out.flush()
                _copy(spills[k].fileno(), sink.out)
            if after_batch is not None:
                after_batch()
        reader.line_no = lines
        return tally
    finally:
        pool.stop()
        for f in spills:
            f.close()


class WorkerError(Exception):
    """A worker process ended without an answer (killed, or out of memory); the message says what to do."""


class _Workers:
    """Forked processes, each serving tasks in the order it gets them, over its own pipe.

    Unlike a pool, a worker that dies is noticed at once (its sentinel), and stopping kills the others right away.
    """

    def __init__(self, count: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for _ in range(count):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs, [*self.conns, mine]), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    def map(self, fn: Callable[[Any], _Result], tasks: list[Any]) -> Iterator[_Result]:
        """Results in task order. Each worker holds two tasks at a time and gets the next one as it answers, so a
        worker slowed down by the rest of the machine takes fewer ranges instead of holding the others up."""
        from multiprocessing.connection import wait

        todo = deque(enumerate(tasks))
        queued: dict[int, deque[int]] = {i: deque() for i in range(len(self.procs))}  # task numbers, per worker
        done: dict[int, _Result] = {}

        def give(i: int) -> None:
            if todo:
                j, task = todo.popleft()
                try:
                    self.conns[i].send((fn, task))
                except OSError:  # BrokenPipeError too: that is the worker's pipe, not the signals output
                    raise self._died(self.procs[i]) from None
                queued[i].append(j)

        for _ in range(2):
            for i in queued:
                give(i)
        for j in range(len(tasks)):
            while j not in done:
                busy = [i for i in queued if queued[i]]
                ready = wait([self.conns[i] for i in busy] + [self.procs[i].sentinel for i in busy])
                for i in busy:
                    if self.conns[i] not in ready and self.procs[i].sentinel not in ready:
                        continue
                    try:
                        status, value = self.conns[i].recv()
                    except (EOFError, OSError):
                        raise self._died(self.procs[i]) from None
                    if status == "error":
                        raise value
                    done[queued[i].popleft()] = value
                    give(i)
            yield done.pop(j)

    @staticmethod
    def _died(proc: Any) -> WorkerError:
        proc.join(1)
        return WorkerError(
            f"worker process {proc.pid} ended without finishing its part (exit code {proc.exitcode}; "
            "killed or out of memory?); run again, or with --workers 1"
        )

    def stop(self) -> None:
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join()


def _serve(conn: Any, parent_ends: list[Any]) -> None:
    """A worker's loop: run tasks until the parent closes its end (or goes away)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: a terminated worker just ends
    for other in parent_ends:
        other.close()  # inherited from the fork: holding them would hide the parent's going away
    while True:
        try:
            fn, task = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(task))
        except Exception as exc:
            reply = ("error", exc)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # an exception that does not pickle
            conn.send(("error", WorkerError(f"a worker process failed: {type(exc).__name__}: {exc}")))


def _plan(fd: int, start: int, end: int, workers: int, window: int, line_bytes: float) -> list[tuple[int, int]]:
    """Byte ranges starting at line starts; fewer when each would spend too long on its context rows."""
    total = end - start
    count = max(workers, min(workers * RANGES_PER_WORKER, total // RANGE_MIN_BYTES))
    # Each range re-reads about window - 1 lines before it: keep that well below the range itself.
    count = min(count, max(1, int(total / (8 * max(1.0, (window - 1) * line_bytes)))))
    cuts = [start]
    for i in range(1, count):
        at = _line_start(fd, start + total * i // count, end)
        if cuts[-1] < at < end:
            cuts.append(at)
    cuts.append(end)
    return list(itertools.pairwise(cuts))


def _line_start(fd: int, at: int, end: int) -> int:
    """The first line start at or after ``at`` (``at`` itself when a newline precedes it)."""
    pos = at - 1
    while pos < end:
        data = os.pread(fd, 1 << 16, pos)
        if not data:
            break
        cut = data.find(b"\n")
        if cut >= 0:
            return pos + cut + 1
        pos += len(data)
    return end


def _folder_of(out: BinaryIO) -> str | None:
    name = getattr(out, "name", None)
    return os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None


def _copy(src: int, out: BinaryIO) -> None:
    pos = 0
    while True:
        data = os.pread(src, 1 << 20, pos)
        if not data:
            return
        out.write(data)
        pos += len(data)


def _raise_first_error(results: list[_Result], header_lines: int) -> None:
    """Under `fail`, the first bad row in file order stops the run, with its line number in the file."""
    lines = header_lines
    for res in results:
        if res.error is not None:
            bad = res.error
            raise BadRowError(BadRow(bad.line + lines, bad.reason, bad.text))
        lines += res.lines


def _replay(reader: Reader, res: _Result, lines: int) -> None:
    """Report a range's skipped rows with file line numbers, in order, as one process would have."""
    for bad in res.bad:
        reader.report(BadRow(bad.line + lines, bad.reason, bad.text))
    unshown = res.skipped - len(res.bad)
    if unshown:
        add = getattr(reader.report, "add_unshown", None)
        if add is not None:
            add(unshown)


# ---- inside a worker --------------------------------------------------------------------------------------------


class _Collect:
    def __init__(self) -> None:
        self.bad: list[BadRow] = []

    def __call__(self, bad: BadRow) -> None:
        if len(self.bad) <= SHOW_BAD_ROWS:
            self.bad.append(bad)


class _Renumber:
    """A signals sink that numbers rows from where the range starts in the whole input."""

    def __init__(self, sink: SignalSink, offset: int) -> None:
        self.sink = sink
        self.offset = offset

    def write(self, first_row: int, *rest: Any) -> None:
        self.sink.write(first_row + self.offset, *rest)

    def flush(self) -> None:
        self.sink.flush()


def _range_reader(job: _Job, keep_text: bool, collect: _Collect | None = None) -> Reader:
    """A Reader that has read the header, counting lines from the range start."""
    reader = Reader(job.column, "skip" if job.skip else "fail", report=collect, keep_text=keep_text)
    reader.feed(job.header)
    reader.line_no = 0
    reader.offset = 0
    return reader


def _range_batches(job: _Job, k: int, reader: Reader) -> Iterator[Any]:
    lo, hi = job.ranges[k]
    size = chunk_size()

    def chunks() -> Iterator[bytes]:
        pos = lo
        while pos < hi:
            data = os.pread(job.fd, min(size, hi - pos), pos)
            if not data:
                return
            pos += len(data)
            yield data

    from stream.block import BlockReader

    source = BlockReader(reader, 1 if mode() == "block" else None) if job.block else reader
    return source.rows(chunks())


def _count(k: int) -> _Result:
    """First pass with signals: how many rows the range has (and its first bad row under fail)."""
    job = _JOB
    assert job is not None
    reader = _range_reader(job, keep_text=False)
    res = _Result()
    try:
        for batch in _range_batches(job, k, reader):
            res.rows += len(batch)
    except BadRowError as exc:
        res.error = exc.bad
    res.lines = reader.line_no
    return res


def _work(task: tuple[int, int]) -> _Result:
    k, row_offset = task
    job = _JOB
    assert job is not None
    collect = _Collect()
    reader = _range_reader(job, job.keep_text, collect)
    engine = RollingSignal(job.window)
    for units, scale in _context(job, k):
        engine.update(units, scale)
    sink: Any = None
    out = None
    if job.spill:
        out = open(job.spill[k], "wb", closefd=False)  # noqa: SIM115 - closed below
        inner = SignalSink(out, job.fmt, job.with_timestamp)
        inner.header_written = True  # the parent writes the one header
        sink = _Renumber(inner, row_offset)
    pipeline = Pipeline(engine, sink)
    res = _Result()
    try:
        tally = pipeline.run(_range_batches(job, k, reader))
        res.rows, res.signals, res.skipped = tally.rows, tally.signals, tally.skipped
    except BadRowError as exc:
        res.error = exc.bad
    finally:
        if out is not None:
            out.close()
    res.lines = reader.line_no
    res.bad = collect.bad
    return res


def _context(job: _Job, k: int) -> list[tuple[int, int]]:
    """The last ``window - 1`` valid rows before range ``k``, found by reading backwards from its start."""
    need = job.window - 1
    found: list[tuple[int, int]] = []
    end = job.ranges[k][0]  # always a line start
    piece = min(CONTEXT_PIECE, max(4096, need * 256))
    while need and len(found) < need and end > job.data_start:
        start = max(job.data_start, end - piece)
        data = os.pread(job.fd, end - start, start)
        if start > job.data_start:
            # The first line may have begun before `start`: leave it to the next piece back.
            cut = data.find(b"\n") + 1
            if cut == len(data):  # the piece lies inside the line that ends at `end`
                if piece < CONTEXT_PIECE:
                    piece = min(CONTEXT_PIECE, piece * 2)
                else:  # a line longer than MAX_LINE_BYTES is a bad row, never context
                    end = _after_previous_newline(job.fd, start, job.data_start)
                continue
            data = data[cut:]
            start += cut
        reader = _range_reader(job, keep_text=False)
        reader.skip = True
        batch = reader.feed(data)
        found = list(zip(batch.units, batch.scales))[-(need - len(found)) :] + found
        end = start
        piece = min(CONTEXT_PIECE, piece * 2)
    return found[-need:] if need else []


def _after_previous_newline(fd: int, pos: int, floor: int) -> int:
    """The start of the line that contains byte ``pos - 1``."""
    while pos > floor:
        start = max(floor, pos - (1 << 16))
        cut = os.pread(fd, pos - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return floor
