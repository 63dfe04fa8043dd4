"""The plan's tasks, run by the workers: the first pass (``summarize``) and the second (``process``) over one block,
with the typed records they take and give (plain picklable data, so forked workers and a Dask cluster run the same
tasks)."""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, cast

from stream.core.batch import BadRow, Batch
from stream.core.engine import RollingSignal, WindowState
from stream.core.keyed import KeyedSignal
from stream.core.tally import Skips, Tally
from stream.errors import SourceError
from stream.parsing.framing import InputError
from stream.parsing.layout import LayoutRequest
from stream.parsing.reader import Reader, ReaderState, batches
from stream.parsing.rows import BadRowError
from stream.records import NamedTuple
from stream.runs.pipeline import Pipeline
from stream.runs.plan.cut import Piece, Task, read_at
from stream.runs.plan.meter import FIRST, SECOND, count
from stream.sinks.log import SHOW_BAD_ROWS
from stream.sinks.signals import SignalSink
from stream.sources.chunks import CHUNK, span
from stream.sources.files import NewFile, Spec, text_of
from stream.sources.magic import HEAD, check_text

# Backward context reads go in pieces up to this size, so a long run of bad rows cannot blow up memory.
CONTEXT_PIECE = 1 << 20

# Each key's window (the one key of an unkeyed run is None).
Windows = dict[str | None, WindowState]


class Settings(NamedTuple):
    """What every task needs besides its pieces: the run's settings and the header of the inputs."""

    column: str
    key: str | None
    skip: bool  # --on-bad-row skip
    window: int
    header: str | None  # None: the inputs have no header row
    layout: dict[str, Any]  # Layout.spec(), as the first input's start gave it
    request: LayoutRequest
    signals: bool
    fmt: str
    with_timestamp: bool
    name_files: bool  # several inputs: messages name the file
    block: bool  # parse with the block path
    min_block: int | None = None
    chunk: int = CHUNK
    spill: str | None = None  # a folder for signals on this machine; None: return them as bytes
    context_floor: int | None = None  # set: no first pass, each block reads its context backwards down to here
    one_pass: bool = False  # no first pass: the parent completes each block's start
    max_keys: int | None = None  # a keyed run's limit on distinct keys (per block)


class Block(NamedTuple):
    """A task's argument: a block's pieces and, for the second pass, the rows before it and the windows it starts
    from (None: read them backwards from its start; empty: start empty, the parent completes the start)."""

    job: Settings
    pieces: Task
    row: int = 0
    start: Windows | None = None


class Failure(NamedTuple):
    """A block's first error: the piece it is in, and the bad row (its line local to the piece) or the message."""

    piece: int
    what: BadRow | str


class Summary(NamedTuple):
    """What the first pass learns of a block."""

    rows: int
    lines: list[int]  # lines of each piece
    tails: Windows  # each key's window at the block's end
    error: Failure | None


class Output(NamedTuple):
    """What the second pass returns for a block."""

    tally: Tally
    by_key: dict[str, Tally] | None  # each key's counts, in first-seen order
    lines: list[int]  # lines of each piece
    bad: list[tuple[int, BadRow]]  # the first SHOW_BAD_ROWS + 1 skipped rows: piece index, local line
    error: Failure | None
    signals: bytes | str | None  # the signal lines, or the spill file holding them
    skips: dict[int, Skips]  # piece index -> its skipped rows by kind (local lines)
    heads: Windows | None  # one pass: each key's window after its first window - 1 values, from empty
    tails: Windows  # one pass: each key's window at the block's end


def summarize(arg: Block) -> Summary:
    """First pass over one block: rows, lines, the first error, each key's window at its end."""
    job = arg.job
    ends: RollingSignal | KeyedSignal
    ends = RollingSignal(job.window) if job.key is None else KeyedSignal(job.window, job.max_keys, job.key)
    tracker = _Tracker()
    reader = _reader(job, None, keep_text=False)
    rows = 0
    error = None
    try:
        for batch in _batches(job, arg.pieces, reader, tracker, FIRST):
            if len(batch):
                rows += len(batch)
                ends.hold(batch)
    except (InputError, SourceError) as exc:  # a damaged or binary input too: reported in input order
        error = _failure(exc, tracker.piece)
    return Summary(rows, tracker.lines, _windows(ends), error)


def process(arg: Block) -> Output:
    """Second pass over one block: its rows through engines started from the windows before it, rows numbered on
    from ``row``."""
    job, task, row, start = arg
    engine = _engine(job, task[0], start)
    spill, out = _signals_out(job)
    sink = None
    if out is not None:
        sink = SignalSink(out, job.fmt, job.with_timestamp, key=job.key, header_written=True)  # the parent's header
    tracker = _Tracker()
    pipeline = Pipeline(engine, sink)
    pipeline.restore(Tally(row, 0, 0))  # rows are numbered on from the blocks before
    reader = _reader(job, tracker, keep_text=job.signals)
    heads = _Heads(job) if job.one_pass else None
    error = None
    try:
        for batch in _batches(job, task, reader, tracker, SECOND):
            pipeline.consume(batch)
            if heads is not None and len(batch):
                heads.add(batch)
    except (InputError, SourceError) as exc:  # a damaged or binary input too: reported in input order
        error = _failure(exc, tracker.piece)
    finally:
        if out is not None and spill is not None:
            out.close()
    signals = spill if spill is not None else out.getvalue() if isinstance(out, io.BytesIO) else None
    by_key = None
    if isinstance(engine, KeyedSignal):
        by_key = {k: Tally(x.rows, x.hits) for k, x in engine.series.items() if x.rows}
    return Output(
        tally=Tally(pipeline.rows - row, pipeline.hits, pipeline.skipped), by_key=by_key, lines=tracker.lines,
        bad=tracker.bad, error=error, signals=signals, skips=tracker.skips,
        heads=heads.windows() if heads is not None else None, tails={} if heads is None else _windows(engine),
    )  # fmt: skip


def _engine(job: Settings, first: Piece, start: Windows | None) -> RollingSignal | KeyedSignal:
    """The block's engines, started from ``start`` (None: an unkeyed block's context read backwards)."""
    if start is None:
        # Nothing comes before a piece that starts its file; inside a compressed file nothing could be read backwards.
        start = {} if first.first else {None: _context(job, first)}
    if job.key is None:
        before = start.get(None)
        return RollingSignal.from_state(before) if before is not None else RollingSignal(job.window)
    windows = cast("dict[str, WindowState]", start)  # a keyed run's keys are text
    return KeyedSignal.starting(job.window, windows, job.max_keys, job.key)


def _windows(engine: RollingSignal | KeyedSignal) -> Windows:
    if isinstance(engine, RollingSignal):
        return {None: engine.state()}
    return {key: x.engine.state() for key, x in engine.series.items()}


def _signals_out(job: Settings) -> tuple[str | None, BinaryIO | None]:
    """Where a block's signals go: a spill file on this machine (its path), or bytes returned to the parent."""
    if not job.signals:
        return None, None
    if job.spill is None:
        return None, io.BytesIO()
    fd, spill = tempfile.mkstemp(prefix="block-", suffix=".part", dir=job.spill)
    return spill, os.fdopen(fd, "wb")


class _Heads:
    """Each key's first ``window - 1`` values in a block, as the window an engine started empty holds after them: the
    values whose windows reach into the blocks before, which the parent counts in input order."""

    def __init__(self, job: Settings) -> None:
        self.window = job.window
        self.keyed = job.key is not None
        self.engines: dict[str | None, RollingSignal] = {}
        self.left: dict[str | None, int] = {}  # how many values each key still needs

    def add(self, batch: Batch) -> None:
        need = self.window - 1
        if not need:
            return
        engines, left = self.engines, self.left
        if not self.keyed:
            wanted = left.get(None, need)
            if wanted:
                engine = engines.get(None)
                if engine is None:
                    engine = engines[None] = RollingSignal(self.window)
                units, scales = batch.values(0, wanted)
                engine.count_many(units, list(itertools.islice(scales, len(units))))
                left[None] = wanted - len(units)
            return
        units, scales = batch.values()
        for k, u, s in zip(batch.keys, units, scales):
            more = left.get(k)
            if more is None:
                more = need
                engines[k] = RollingSignal(self.window)
            if more:
                engines[k].update(u, s)
                left[k] = more - 1

    def windows(self) -> Windows:
        return {key: engine.state() for key, engine in self.engines.items()}


def _reader(job: Settings, report: Callable[[BadRow], None] | None, keep_text: bool, skip: bool = False) -> Reader:
    reader = Reader(
        job.column, "skip" if job.skip or skip else "fail", report=report, keep_text=keep_text, key=job.key,
        request=job.request,
    )  # fmt: skip
    reader.restore(ReaderState(offset=0, line=0, header=job.header, at_file_start=False, layout=job.layout))
    return reader


def _chunks(piece: Piece, chunk: int, kind: int) -> Iterator[bytes]:
    """The piece's bytes, each read counted for pass ``kind``'s progress."""
    inp = Spec(piece.path, piece.url).open(ranged=True)
    try:
        for data in span(inp.fh, piece.start, piece.end, chunk, name=piece.name):
            count(kind, len(data))
            yield data
    finally:
        inp.fh.close()


class _Tracker:
    """Tells which piece a bad row or an error belongs to while a task's pieces are read, and keeps the skipped rows
    for the parent: one more than can be shown (its log says "more bad rows..." at the same row as one process), and
    each piece's counts of them by kind."""

    def __init__(self) -> None:
        self.piece = 0
        self.lines: list[int] = []
        self.bad: list[tuple[int, BadRow]] = []
        self.skips: dict[int, Skips] = {}

    def __call__(self, bad: BadRow) -> None:
        if len(self.bad) <= SHOW_BAD_ROWS:
            self.bad.append((self.piece, bad))
        self.skips.setdefault(self.piece, Skips()).add(bad)


def _batches(job: Settings, task: Task, reader: Reader, tracker: _Tracker, kind: int) -> Iterator[Batch]:
    """The batches of a task's pieces in pass ``kind``, read as one process would read them; line numbers are local
    to each piece that does not start its file (the parent adds the lines before it)."""
    block = None
    if job.block:
        from stream.parsing.blocks import BlockReader

        block = BlockReader(reader, job.min_block)
    for i, piece in enumerate(task):
        tracker.piece = i
        name = piece.name if job.name_files else None
        events: Iterable[bytes | NewFile]
        if piece.packed:
            # The archive (and member) names its messages; its end completes a last line.
            events = text_of(Spec(piece.path, piece.url), piece.name, job.chunk)
        elif piece.first:
            check_text(piece.name, read_at(piece.path, piece.url, piece.start, HEAD))  # as one process does
            events = itertools.chain((NewFile("next", name),), _chunks(piece, job.chunk, kind))
        else:
            reader.start_piece(piece.start, name)
            events = _chunks(piece, job.chunk, kind)
        # A last line without a newline is complete where its file ends.
        yield from batches(reader, events, block, finish=piece.packed or piece.last)
        tracker.lines.append(reader.line_no)


def _failure(exc: InputError | SourceError, piece: int) -> Failure:
    # Exceptions do not travel well between processes (BadRowError's own arguments are lost): send the parts.
    return Failure(piece, exc.bad if isinstance(exc, BadRowError) else str(exc))


def _context(job: Settings, piece: Piece) -> WindowState:
    """The window of the last ``window - 1`` valid rows before ``piece`` in its file (an unkeyed run over one input),
    found by reading backwards from its start down to where the file's data begins."""
    need = job.window - 1
    floor = job.context_floor
    assert floor is not None
    found: list[tuple[int, int]] = []
    end = piece.start  # always a line start
    size = min(CONTEXT_PIECE, max(4096, need * 256))
    while need and len(found) < need and end > floor:
        start = max(floor, end - size)
        data = read_at(piece.path, piece.url, start, end - start)
        if start > floor:
            # The first line may have begun before `start`: leave it to the next piece back.
            cut = data.find(b"\n") + 1
            if cut == len(data):  # the piece lies inside the line that ends at `end`
                if size < CONTEXT_PIECE:
                    size = min(CONTEXT_PIECE, size * 2)
                else:  # a line longer than MAX_LINE_BYTES is a bad row, never context
                    end = _after_previous_newline(piece, start, floor)
                continue
            data = data[cut:]
            start += cut
        reader = _reader(job, None, keep_text=False, skip=True)
        batch = reader.feed(data)
        found = list(zip(batch.units, batch.scales))[-(need - len(found)) :] + found
        end = start
        size = min(CONTEXT_PIECE, size * 2)
    engine = RollingSignal(job.window)
    for units, scale in found[-need:] if need else ():
        engine.update(units, scale)
    return engine.state()


def _after_previous_newline(piece: Piece, pos: int, floor: int) -> int:
    """The start of the line that contains byte ``pos - 1``."""
    while pos > floor:
        start = max(floor, pos - (1 << 16))
        cut = read_at(piece.path, piece.url, start, pos - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return floor
