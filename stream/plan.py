"""One parallel plan for every executor: the inputs cut into byte blocks at line starts, each block started with the
state the blocks before it leave, so any number of processes or machines give the one-process output byte for byte.

1. Plan: every input is cut at line starts into blocks of about ``block_size`` bytes; small files are grouped into one
   block. A record is one line (a quote never spans lines in this reader), so no cut can split a record.
2. First pass, per block, in parallel: the rows, the lines of each piece, the first error, and each key's last
   ``window - 1`` values (one key, ``None``, in unkeyed runs).
3. Prefix combine, in order: a key's values before block k are its values before block k-1 followed by block k-1's
   last ones, cut to ``window - 1``: block k's engines start from those, row numbers and line numbers from the sums.
4. Second pass, per block, in parallel: the rows through the engines, signals into a spill file or returned bytes.
5. Tallies merge with ``+`` and signals are copied out in input order; bad rows are reported in order, with the same
   line numbers (and file names) as in one process; under ``fail`` the first bad row in input order stops the run.

The task functions (``summarize``, ``process``) take and return plain picklable data, so a local process pool and a
Dask cluster run the same plan; the inputs must be readable by the workers under the same names (absolute paths on a
shared file system, or URLs).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stream.engine import RollingSignal
from stream.keyed import KeyedSignal
from stream.logsink import LOGGER, SHOW_BAD_ROWS
from stream.pipeline import Pipeline
from stream.reader import BadRow, BadRowError, Batch, InputError, Reader
from stream.signals import SignalSink
from stream.source import CHUNK, Spec
from stream.tally import Tally

# Blocks of tens of MiB keep task counts low (a 10 GiB history is ~300 blocks) and per-task overheads negligible.
BLOCK_SIZE = 32 << 20
# Where a file's header (or first line) must be found for it to be cut; a file without one there is one piece.
PROBE = 1 << 20
# How many tasks of each pass may be in flight per worker: enough to keep workers busy, few enough to bound memory.
AHEAD_PER_WORKER = 2


class Piece(NamedTuple):
    """Bytes ``start``..``end`` of one input; ``first``: it starts the file, ``last``: it ends it."""

    name: str  # as given, for messages
    path: str  # what workers open: an absolute path or a URL
    url: bool
    start: int
    end: int
    first: bool
    last: bool


Task = tuple[Piece, ...]


@dataclass(frozen=True)
class Settings:
    """What every task needs besides its pieces: the settings of the run and the header of the inputs."""

    column: str
    key: str | None
    skip: bool
    window: int
    header: str
    signals: bool
    fmt: str
    with_timestamp: bool
    name_files: bool  # several inputs: messages name the file
    spill: str | None = None  # a folder on the workers' machine for signals; None: return them as bytes
    chunk: int = CHUNK


@dataclass
class Summary:
    """What the first pass learns of a block."""

    rows: int = 0
    lines: list[int] = field(default_factory=list)  # lines of each piece
    tails: dict[str | None, list[tuple[int, int]]] = field(default_factory=dict)  # key -> last window-1 values
    error: tuple[int, str, BadRow | None] | None = None  # piece index, message, bad row (line local to the piece)


@dataclass
class Start:
    """What the prefix combine gives a block: its first row number, each piece's first line, its keys' values."""

    row: int
    lines: list[int]
    values: dict[str | None, list[tuple[int, int]]]


@dataclass
class Output:
    """What the second pass returns for a block."""

    tally: Tally
    by_key: dict[str, tuple[int, int]] | None  # key -> (rows, signals), in first-seen order
    bad: list[BadRow]  # the first SHOW_BAD_ROWS + 1 skipped rows
    signals: bytes | str | None  # the signal lines (bytes), or the spill file holding them


# ---- planning -----------------------------------------------------------------------------------------------------


def plan(specs: list[Spec], sizes: list[int], block_size: int = BLOCK_SIZE) -> list[Task]:
    """Cut the inputs into tasks of about ``block_size`` bytes, at line starts; empty files are left out."""
    tasks: list[Task] = []
    current: list[Piece] = []
    room = block_size
    for spec, size in zip(specs, sizes):
        path = spec.name if spec.url else os.path.abspath(spec.name)
        pos = 0
        earliest = None  # the first offset a cut may take: after the file's first line
        while pos < size:
            if size - pos <= room:
                current.append(Piece(spec.label, path, spec.url, pos, size, pos == 0, True))
                room -= size - pos
                break
            if earliest is None:
                earliest = _first_line_end(spec, size)
            cut = _line_start(spec, max(pos + room, earliest), size)
            current.append(Piece(spec.label, path, spec.url, pos, cut, pos == 0, cut == size))
            pos = cut
            tasks.append(tuple(current))
            current, room = [], block_size
        if room <= 0:
            tasks.append(tuple(current))
            current, room = [], block_size
    if current:
        tasks.append(tuple(current))
    return tasks


def _read_at(spec: Spec, offset: int, size: int) -> bytes:
    inp = spec.open()
    try:
        inp.fh.seek(offset)
        parts, left = [], size
        while left > 0:
            data = inp.fh.read(left)
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)
    finally:
        inp.fh.close()


def _first_line_end(spec: Spec, size: int) -> int:
    """The end of the file's first line that is not blank as the reader sees it (the header, or a first row); the
    file's size when it is not within the first ``PROBE`` bytes."""
    data = _read_at(spec, 0, min(PROBE, size))
    at = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while True:
        end = data.find(b"\n", at)
        if end < 0:
            return size
        if data[at:end].decode("utf-8", "replace").strip():  # str.strip, as the reader's: NBSP and kin are blank
            return end + 1
        at = end + 1


def _line_start(spec: Spec, at: int, size: int) -> int:
    """The first line start at or after ``at`` (the file's size if there is none)."""
    pos = at - 1
    inp = spec.open()
    try:
        while pos < size:
            inp.fh.seek(pos)
            data = inp.fh.read(1 << 16)
            if not data:
                break
            cut = data.find(b"\n")
            if cut >= 0:
                return min(pos + cut + 1, size)
            pos += len(data)
    finally:
        inp.fh.close()
    return size


def find_header(specs: list[Spec], sizes: list[int], reader: Reader) -> str | None:
    """Read the inputs' first lines with ``reader`` until the header is known; its text, or None if it is not within
    the first ``PROBE`` bytes. Errors in the header are the reader's, as in one process."""
    for i, (spec, size) in enumerate(zip(specs, sizes)):
        if i:
            reader.new_file(file=spec.label if reader.file is not None else None)
        data = _read_at(spec, 0, min(PROBE, size))
        at = 0
        while reader.layout is None:
            end = data.find(b"\n", at) + 1
            if not end:
                if len(data) < size:
                    return None  # no header in the first PROBE bytes: leave this input to one process
                end = len(data)
                reader.feed(data[at:end])
                reader.finish()
                break
            reader.feed(data[at:end])
            at = end
        if reader.layout is not None:
            return reader.header_text
    return None


# ---- inside a worker --------------------------------------------------------------------------------------------


def _reader(job: Settings, report: Callable[[BadRow], None] | None, keep_text: bool) -> Reader:
    reader = Reader(job.column, "skip" if job.skip else "fail", report=report, keep_text=keep_text, key=job.key)
    reader.restore({"offset": 0, "line": 0, "header": job.header, "at_file_start": False})
    return reader


def _chunks(piece: Piece, chunk: int) -> Iterator[bytes]:
    inp = Spec(piece.path, piece.url).open()
    try:
        inp.fh.seek(piece.start)
        left = piece.end - piece.start
        while left > 0:
            data = inp.fh.read(min(chunk, left))
            if not data:
                raise OSError(f"{piece.name} became shorter while it was read (it must not change during a run)")
            left -= len(data)
            yield data
    finally:
        inp.fh.close()


def _batches(job: Settings, task: Task, reader: Reader, first_lines: list[int], lines: list[int]) -> Iterator[Batch]:
    """The batches of a task's pieces, read as one process would read them; appends each piece's line count."""
    for piece, first_line in zip(task, first_lines):
        name = piece.name if job.name_files else None
        if piece.first:
            yield reader.new_file(file=name)
        else:
            reader.line_no, reader.offset, reader.file = first_line, piece.start, name
        for data in _chunks(piece, job.chunk):
            yield reader.feed(data)
        if piece.last:
            yield reader.finish()  # a last line without a newline is complete: its file ends here
        lines.append(reader.line_no - first_line)


def summarize(arg: tuple[Settings, Task]) -> Summary:
    """First pass over one block: rows, lines, the first error, each key's last ``window - 1`` values."""
    job, task = arg
    keep = job.window - 1
    summary = Summary()
    tails: dict[str | None, deque[tuple[int, int]]] = {}
    reader = _reader(job, None, keep_text=False)
    try:
        for batch in _batches(job, task, reader, [0] * len(task), summary.lines):
            summary.rows += len(batch.units)
            if job.key is None:
                tail = tails.get(None)
                if tail is None:
                    tail = tails[None] = deque(maxlen=keep)
                tail.extend(zip(batch.units, batch.scales))
                continue
            for k, u, s in zip(batch.keys, batch.units, batch.scales):
                tail = tails.get(k)
                if tail is None:
                    tail = tails[k] = deque(maxlen=keep)
                tail.append((u, s))
    except InputError as exc:
        # Exceptions do not travel well between processes (BadRowError's own arguments are lost): send the parts.
        summary.error = (len(summary.lines), str(exc), exc.bad if isinstance(exc, BadRowError) else None)
    summary.tails = {k: list(v) for k, v in tails.items()}
    return summary


class _Collect:
    """Keeps the first skipped rows of a block for the parent to report in order."""

    def __init__(self) -> None:
        self.bad: list[BadRow] = []

    def __call__(self, bad: BadRow) -> None:
        # One more than can be shown: the parent's log says "more bad rows..." at the same row as one process.
        if len(self.bad) <= SHOW_BAD_ROWS:
            self.bad.append(bad)


def process(arg: tuple[Settings, Task, Start]) -> Output:
    """Second pass over one block: its rows through engines started from the values before it."""
    job, task, start = arg
    engine: RollingSignal | KeyedSignal
    if job.key is None:
        engine = RollingSignal(job.window)
        for u, s in start.values.get(None, ()):
            engine.update(u, s)
    else:
        engine = KeyedSignal(job.window)
        for k, values in start.values.items():
            series = engine.add(k)  # type: ignore[arg-type]
            for u, s in values:
                series.engine.update(u, s)
    out: Any = None
    spill = None
    sink = None
    if job.signals:
        if job.spill is not None:
            fd, spill = tempfile.mkstemp(prefix="block-", suffix=".part", dir=job.spill)
            out = os.fdopen(fd, "wb")
        else:
            import io

            out = io.BytesIO()
        sink = SignalSink(out, job.fmt, job.with_timestamp, key=job.key)
        sink.header_written = True  # the parent writes the one header
    collect = _Collect()
    pipeline = Pipeline(engine, sink)
    pipeline.restore(Tally(start.row, 0, 0))  # rows are numbered on from the blocks before
    reader = _reader(job, collect, keep_text=job.signals)
    try:
        for batch in _batches(job, task, reader, start.lines, []):
            pipeline.consume(batch)
    finally:
        if out is not None and spill is not None:
            out.close()
    signals: bytes | str | None = spill if spill is not None else (out.getvalue() if out is not None else None)
    by_key = None
    if isinstance(engine, KeyedSignal):
        by_key = {k: (x.rows, x.hits) for k, x in engine.series.items() if x.rows}
    tally = Tally(pipeline.rows - start.row, pipeline.hits, pipeline.skipped)
    return Output(tally, by_key, collect.bad, signals)


# ---- the parent -------------------------------------------------------------------------------------------------


class Result(NamedTuple):
    tally: Tally
    by_key: dict[str, Tally] | None


def execute(
    executor: Any,
    job: Settings,
    tasks: list[Task],
    report: Callable[[BadRow], None],
    add_unshown: Callable[[int], None],
    sink: SignalSink | None = None,
    after_block: Callable[[int, Tally], None] | None = None,
) -> Result:
    """Run both passes of ``tasks`` on ``executor`` (``submit(fn, arg)`` -> handle, ``result(handle)``, ``done``,
    ``workers``); write signals to ``sink`` in input order; report skipped rows in order. Spill files are removed
    as they are copied; the caller removes the spill folder."""
    ahead = max(2, AHEAD_PER_WORKER * executor.workers)
    keep = job.window - 1
    values: dict[str | None, deque[tuple[int, int]]] = {}
    firsts: deque[Any] = deque()
    seconds: deque[Any] = deque()
    submitted = 0
    row = 0
    file_lines = 0  # lines of the current file before the next piece
    tally = Tally()
    by_key: dict[str, Tally] | None = {} if job.key is not None else None
    done_bytes = 0

    def write_out(output: Output, task: Task) -> None:
        nonlocal tally, done_bytes
        tally += output.tally
        if by_key is not None and output.by_key:
            for k, (rows, hits) in output.by_key.items():
                by_key[k] = by_key.get(k, Tally()) + Tally(rows, hits)
        for bad in output.bad:
            report(bad)
        if output.tally.skipped > len(output.bad):
            add_unshown(output.tally.skipped - len(output.bad))
        if sink is not None and output.signals is not None:
            if output.tally.rows:
                sink.header()
            if isinstance(output.signals, str):
                _copy(output.signals, sink.out)
                os.unlink(output.signals)
            else:
                sink.out.write(output.signals)
            sink.out.flush()
        done_bytes += sum(p.end - p.start for p in task)
        if after_block is not None:
            after_block(done_bytes, tally)

    def flush(everything: bool) -> None:
        """Write out finished blocks in order (all of them, or until few enough are in flight)."""
        while seconds and (everything or len(seconds) > ahead or executor.done(seconds[0][0])):
            handle, done_task = seconds.popleft()
            write_out(executor.result(handle), done_task)

    for k, task in enumerate(tasks):
        while submitted < len(tasks) and submitted < k + ahead:
            firsts.append(executor.submit(summarize, (job, tasks[submitted])))
            submitted += 1
        summary: Summary = executor.result(firsts.popleft())
        lines = []
        for piece, count in zip(task, summary.lines + [0] * (len(task) - len(summary.lines))):
            if piece.first:
                file_lines = 0
            lines.append(file_lines)
            file_lines += count
        if summary.error is not None:
            flush(everything=True)  # the blocks before this one, as far as one process would have got
            index, message, bad = summary.error
            if bad is None:
                raise InputError(message)
            raise BadRowError(BadRow(bad.line + lines[index], bad.reason, bad.text, bad.file))
        start = Start(row, lines, {key: list(values[key]) for key in summary.tails if key in values})
        seconds.append((executor.submit(process, (job, task, start)), task))
        row += summary.rows
        if keep:
            for key, tail in summary.tails.items():
                held = values.get(key)
                if held is None:
                    held = values[key] = deque(maxlen=keep)
                held.extend(tail)
        flush(everything=False)
    flush(everything=True)
    return Result(tally, by_key)


def _copy(path: str, out: Any) -> None:
    with open(path, "rb") as fh:
        while True:
            data = fh.read(1 << 20)
            if not data:
                return
            out.write(data)


def run(
    executor: Any,
    specs: list[Spec],
    sizes: list[int],
    reader: Reader,
    sink: SignalSink | None,
    fmt: str,
    block_size: int = BLOCK_SIZE,
    window: int = 5,
    after_block: Callable[[int, Tally], None] | None = None,
) -> Result | None:
    """Run the whole job over ``executor``; ``reader`` (fresh, with the run's settings and its bad-row report) reads
    the header and reports the skipped rows. None, with nothing read but the header, when the plan does not fit."""
    header = find_header(specs, sizes, reader)
    if header is None or reader.layout is None:
        return None
    tasks = plan(specs, sizes, block_size)
    log = logging.getLogger(LOGGER)
    log.info(
        "parallel plan: %d blocks of about %d bytes over %d inputs, on %s",
        len(tasks), sum(sizes) // max(1, len(tasks)), len(specs), executor.describe,
    )  # fmt: skip
    spill = None
    if sink is not None and executor.local:
        name = getattr(sink.out, "name", None)
        folder = os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
        spill = tempfile.mkdtemp(prefix=".mlops-stream-", dir=folder)
    job = Settings(
        column=reader.column, key=reader.key, skip=reader.skip, window=window, header=header, signals=sink is not None,
        fmt=fmt, with_timestamp=reader.layout.timestamp_index is not None, name_files=reader.file is not None,
        spill=spill,
    )  # fmt: skip
    if sink is not None:
        sink.with_timestamp = job.with_timestamp
    try:
        return execute(executor, job, tasks, reader.report, _unshown(reader.report), sink, after_block)
    finally:
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


def _unshown(report: Any) -> Callable[[int], None]:
    add = getattr(report, "add_unshown", None)
    return add if add is not None else (lambda n: None)
