"""One parallel plan for every executor: the inputs cut into blocks at line starts, each block started with the state
the blocks before it leave, so any number of processes or machines give the one-process output byte for byte.

1. Plan: every input is cut at line starts into blocks of about ``block_size`` bytes; small files are grouped into one
   block. A record is one line (a quote never spans lines in this reader), so no cut can split a record.
2. First pass, per block, in parallel: its rows and lines, its first error, and each key's last ``window - 1`` values
   (one key, ``None``, in unkeyed runs).
3. Prefix combine, in order: a key's values before block k are its values before block k-1 followed by block k-1's
   last ones, cut to ``window - 1``; block k's engines start from those, and its rows are numbered from the sum.
4. Second pass, per block, in parallel: the rows through the engines, signals into a spill file (executors on this
   machine) or returned as bytes (a remote cluster).
5. Tallies merge with ``+``; signals are copied out in input order; skipped rows are reported in order with their
   line numbers in their file; under ``fail`` the first bad row in input order stops the run.

An unkeyed run over one input without signals needs neither row numbers nor keys: it skips the first pass, and each
block reads the ``window - 1`` valid rows before it backwards from its start instead (cheap for small windows).

Any other run without signals needs no row numbers either, and takes one pass: each block starts its engines empty,
so only the first ``window - 1`` values of each key in it lack their context; it returns them with its last ones, and
the parent, in order, counts their signals with engines started from the values before the block.

A compressed input cannot be cut at byte offsets: it is one block of its own, read whole and decompressed by the task
(its first rows seeded from the first pass like any block's); its size is its compressed size.

The task functions (``summarize``, ``process``) take and return plain picklable data, so worker processes on this
machine and a Dask cluster run the same plan; the inputs must be readable by the workers under the same names
(absolute paths on a shared file system, or URLs).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from stream.core.batch import BadRow, Batch
from stream.core.engine import RollingSignal
from stream.core.keyed import KeyedSignal, TooManyKeys
from stream.core.tally import Skips, Tally
from stream.errors import SourceError
from stream.parsing.framing import InputError
from stream.parsing.layout import LayoutRequest
from stream.parsing.reader import Reader, ReaderState, batches
from stream.parsing.rows import BadRowError
from stream.runs.pipeline import Pipeline
from stream.sinks.log import SHOW_BAD_ROWS
from stream.sinks.signals import SignalSink
from stream.sources.chunks import CHUNK
from stream.sources.files import NewFile, Spec, compression, text_of
from stream.sources.magic import HEAD, check_text

if TYPE_CHECKING:
    from stream.runs.executors import Executor

# Blocks of tens of MiB keep task counts low (a 10 GiB history is ~300 blocks) and per-task overheads negligible.
BLOCK_SIZE = 32 << 20
# Where a file's header (or first line) must be found for it to be cut, and the header of the inputs for a plan.
PROBE = 1 << 20
# How many tasks of each pass may be in flight per worker: enough to keep workers busy, few enough to bound memory.
AHEAD_PER_WORKER = 2
# Backward context reads go in pieces up to this size, so a long run of bad rows cannot blow up memory.
CONTEXT_PIECE = 1 << 20


class Piece(NamedTuple):
    """Bytes ``start``..``end`` of one input; ``first``: it starts the file's data, ``last``: it ends the file."""

    name: str  # as given, for messages
    path: str  # what workers open: an absolute path or a URL
    url: bool
    start: int
    end: int
    first: bool
    last: bool
    packed: bool = False  # compressed: the task reads the whole file and decompresses it


Task = tuple[Piece, ...]


# The plan's records: plain data, pickled to the workers and back.
class Settings:
    """What every task needs besides its pieces: the run's settings and the header of the inputs."""

    def __init__(self, **fields: Any) -> None:
        self.column: str = fields["column"]
        self.key: str | None = fields["key"]
        self.skip: bool = fields["skip"]
        self.window: int = fields["window"]
        self.header: str | None = fields["header"]  # None: the inputs have no header row
        self.layout: dict[str, Any] = fields["layout"]  # Layout.spec(), as the first input's start gave it
        self.request: LayoutRequest = fields["request"]
        self.signals: bool = fields["signals"]
        self.fmt: str = fields["fmt"]
        self.with_timestamp: bool = fields["with_timestamp"]
        self.name_files: bool = fields["name_files"]  # several inputs: messages name the file
        self.block: bool = fields["block"]  # parse with the block path
        self.min_block: int | None = fields.get("min_block")
        self.chunk: int = fields.get("chunk", CHUNK)
        self.spill: str | None = fields.get("spill")  # a folder for signals on this machine; None: return bytes
        self.context_floor: int | None = fields.get("context_floor")  # set: no first pass, read context backwards
        self.one_pass: bool = fields.get("one_pass", False)  # no first pass: the parent completes each block's start
        self.max_keys: int | None = fields.get("max_keys")  # a keyed run's limit on distinct keys (per block)


class Summary:
    """What the first pass learns of a block."""

    def __init__(self) -> None:
        self.rows = 0
        self.lines: list[int] = []  # lines of each piece
        self.tails: dict[str | None, list[tuple[int, int]]] = {}  # key -> its last window-1 values in the block
        self.error: tuple[int, BadRow | str] | None = None  # piece index and bad row (its line local) or message


class Output:
    """What the second pass returns for a block."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.by_key: dict[str, tuple[int, int]] | None = None  # key -> (rows, signals), in first-seen order
        self.lines: list[int] = []  # lines of each piece
        self.bad: list[tuple[int, BadRow]] = []  # the first SHOW_BAD_ROWS + 1 skipped rows: piece index, local line
        self.error: tuple[int, BadRow | str] | None = None
        self.signals: bytes | str | None = None  # the signal lines, or the spill file holding them
        self.skips: dict[int, Skips] = {}  # piece index -> its skipped rows by kind (local lines)
        self.heads: dict[str | None, list[tuple[int, int]]] | None = None  # one pass: each key's first window-1 values
        self.tails: dict[str | None, list[tuple[int, int]]] = {}  # one pass: each key's last window-1 values


class _Ends:
    """Each key's last ``keep`` values over a block's batches (the one key of an unkeyed run is None), and on request
    its first ``keep`` values too."""

    def __init__(self, keep: int, job: Settings, heads: bool) -> None:
        self.keep = keep
        self.keyed = job.key is not None
        self.key, self.max_keys = job.key, job.max_keys
        self.tails: dict[str | None, deque[tuple[int, int]]] = {}
        self.heads: dict[str | None, list[tuple[int, int]]] | None = {} if heads else None

    def add(self, batch: Batch) -> None:
        keep, heads = self.keep, self.heads
        if not self.keyed:
            tail = self.tails.get(None)
            if tail is None:
                tail = self.tails[None] = deque(maxlen=keep)
            if not keep:
                return
            if heads is not None:
                head = heads.setdefault(None, [])
                need = keep - len(head)
                if need > 0:
                    head.extend(zip(*batch.values(0, need)))
            tail.extend(zip(*batch.values(-keep)))
            return
        units, scales = batch.values()
        for k, u, s in zip(batch.keys, units, scales):
            tail = self.tails.get(k)
            if tail is None:
                if self.max_keys is not None and len(self.tails) >= self.max_keys:  # before memory grows with them
                    raise TooManyKeys.at(self.key, self.max_keys, k)
                tail = self.tails[k] = deque(maxlen=keep)
                if heads is not None:
                    heads[k] = []
            if heads is not None and len(heads[k]) < keep:
                heads[k].append((u, s))
            tail.append((u, s))

    def lists(self) -> dict[str | None, list[tuple[int, int]]]:
        return {k: list(v) for k, v in self.tails.items()}


# ---- planning -----------------------------------------------------------------------------------------------------


def plan(
    specs: list[Spec],
    sizes: list[int],
    block_size: int = BLOCK_SIZE,
    head: int = 1,
    packed: list[bool] | None = None,
) -> list[Task]:
    """Cut the inputs into tasks of about ``block_size`` bytes, at line starts, never within a file's first ``head``
    lines (its header and what the layout found above it: a title line, --skip-lines); empty files are left out. A
    ``packed`` (compressed) input is a task of its own, whatever its size."""
    tasks: list[Task] = []
    current: list[Piece] = []
    room = block_size
    for i, (spec, size) in enumerate(zip(specs, sizes)):
        path = spec.path
        begin = spec.base
        if packed is not None and packed[i]:
            if current:
                tasks.append(tuple(current))
                current, room = [], block_size
            tasks.append((Piece(spec.label, path, spec.url, begin, begin + size, True, True, packed=True),))
            continue
        pos, end = begin, begin + size
        earliest = None  # the first offset a cut may take: after the file's first line
        while pos < end:
            if end - pos <= room:
                current.append(Piece(spec.label, path, spec.url, pos, end, pos == begin, True))
                room -= end - pos
                break
            if earliest is None:
                earliest = _head_end(spec, begin, end, head)
            cut = _line_start(spec, max(pos + room, earliest), end)
            current.append(Piece(spec.label, path, spec.url, pos, cut, pos == begin, cut == end))
            pos = cut
            tasks.append(tuple(current))
            current, room = [], block_size
        if room <= 0:
            tasks.append(tuple(current))
            current, room = [], block_size
    if current:
        tasks.append(tuple(current))
    return tasks


def _read_at(path: str, url: bool, offset: int, size: int) -> bytes:
    """``size`` bytes from ``offset`` (fewer at the end of the file), through a handle of our own."""
    inp = Spec(path, url).open()
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


def _head_end(spec: Spec, begin: int, end: int, head: int) -> int:
    """The end of the file's first ``head`` lines and of its first line that is not blank as the reader sees it (the
    header, or a first row); the file's end when that is not within the first ``PROBE`` bytes."""
    data = _read_at(spec.path, spec.url, begin, min(PROBE, end - begin))
    at = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    lines = 0
    seen = False
    while True:
        nl = data.find(b"\n", at)
        if nl < 0:
            return end
        lines += 1
        # str.strip, as the reader's: NBSP and kin are blank
        seen = seen or bool(data[at:nl].decode("utf-8", "replace").strip())
        if seen and lines >= head:
            return begin + nl + 1
        at = nl + 1


def _line_start(spec: Spec, at: int, end: int) -> int:
    """The first line start at or after ``at`` (the file's end if there is none)."""
    pos = at - 1
    while pos < end:
        data = _read_at(spec.path, spec.url, pos, min(1 << 16, end - pos))
        if not data:
            break
        cut = data.find(b"\n")
        if cut >= 0:
            return min(pos + cut + 1, end)
        pos += len(data)
    return end


def find_header(
    specs: list[Spec], sizes: list[int], reader: Reader, packed: list[bool] | None = None
) -> tuple[dict[str, Any], int, float] | None:
    """Read the inputs' first lines with ``reader`` (skipping bad rows: the plan reads the data again) until the
    layout is known: the layout (``Layout.spec()``), where the first input's data starts and the bytes per line of
    the data sampled; None if it is not within the first ``PROBE`` bytes. Errors in the header are the reader's, as
    in one process. ``packed`` tells which inputs are compressed (default: look)."""
    for i, (spec, size) in enumerate(zip(specs, sizes)):
        name, data, whole = _probe(spec, size, packed[i] if packed is not None else compression(spec) is not None)
        if i or name is not None:
            reader.new_file(file=name if name is not None else spec.label if reader.file is not None else None)
        # The header with the lines after it, a chunk at a time as one process reads them (they tell the layout).
        at = 0
        while reader.layout is None and at < len(data):
            end = data.rfind(b"\n", at, at + CHUNK) + 1 or data.find(b"\n", at) + 1
            if not end:
                break
            reader.feed(data[at:end])
            at = end
        if reader.layout is None and whole:
            reader.feed(data[at:])
            reader.finish()
        if reader.layout is not None:
            at = _data_start(data, reader)
            sample = data[at:]
            lines = sample.count(b"\n")
            start = spec.base + at if i == 0 and name is None else -1
            return reader.layout.spec(), start, len(sample) / lines if lines else 100.0
    return None


def _probe(spec: Spec, size: int, packed: bool) -> tuple[str | None, bytes, bool]:
    """The first ``PROBE`` bytes of an input's text, and whether that is all of it (of its first member); the name
    its messages go by when it is compressed (None for plain text)."""
    if not packed:
        data = _read_at(spec.path, spec.url, spec.base, min(PROBE, size))
        check_text(spec.label, data[:HEAD])
        return None, data, len(data) >= size
    name: str | None = None
    parts: list[bytes] = []
    have = 0
    for event in text_of(Spec(spec.path, spec.url), spec.label):
        if isinstance(event, NewFile):
            if name is not None:
                return name, b"".join(parts), True  # the first member is all there is to sample
            name = event.name
            continue
        parts.append(event)
        have += len(event)
        if have >= PROBE:
            return name, b"".join(parts)[:PROBE], False
    return name, b"".join(parts), True


def _data_start(data: bytes, reader: Reader) -> int:
    """The byte where the data of a file starts: after its header (and whatever came above it), or at its first
    line when it has none."""
    assert reader.layout is not None
    line = reader.layout.header_line - (0 if reader.layout.header else 1)  # lines before the data
    at = 0
    for _ in range(line):
        at = data.find(b"\n", at) + 1
    return at


# ---- inside a worker --------------------------------------------------------------------------------------------


def _reader(job: Settings, report: Callable[[BadRow], None] | None, keep_text: bool, skip: bool = False) -> Reader:
    reader = Reader(
        job.column, "skip" if job.skip or skip else "fail", report=report, keep_text=keep_text, key=job.key,
        request=job.request,
    )  # fmt: skip
    reader.restore(ReaderState(offset=0, line=0, header=job.header, at_file_start=False, layout=job.layout))
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


class _Tracker:
    """Tells which piece a bad row or an error belongs to while a task's pieces are read."""

    def __init__(self, report: Callable[[tuple[int, BadRow]], None] | None = None) -> None:
        self.piece = 0
        self.lines: list[int] = []
        self._report = report

    def __call__(self, bad: BadRow) -> None:
        if self._report is not None:
            self._report((self.piece, bad))


def _batches(job: Settings, task: Task, reader: Reader, tracker: _Tracker) -> Iterator[Batch]:
    """The batches of a task's pieces, read as one process would read them; line numbers are local to each piece
    that does not start its file (the parent adds the lines before it)."""
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
            check_text(piece.name, _read_at(piece.path, piece.url, piece.start, HEAD))  # as one process does
            events = itertools.chain((NewFile("next", name),), _chunks(piece, job.chunk))
        else:
            reader.start_piece(piece.start, name)
            events = _chunks(piece, job.chunk)
        # A last line without a newline is complete where its file ends.
        yield from batches(reader, events, block, finish=piece.packed or piece.last)
        tracker.lines.append(reader.line_no)


def _failure(exc: InputError | SourceError, piece: int) -> tuple[int, BadRow | str]:
    # Exceptions do not travel well between processes (BadRowError's own arguments are lost): send the parts.
    return (piece, exc.bad if isinstance(exc, BadRowError) else str(exc))


def summarize(arg: tuple[Settings, Task]) -> Summary:
    """First pass over one block: rows, lines, the first error, each key's last ``window - 1`` values."""
    job, task = arg
    summary = Summary()
    ends = _Ends(job.window - 1, job, heads=False)
    tracker = _Tracker()
    reader = _reader(job, None, keep_text=False)
    try:
        for batch in _batches(job, task, reader, tracker):
            n = len(batch)
            if n:
                summary.rows += n
                ends.add(batch)
    except (InputError, SourceError) as exc:  # a damaged or binary input too: reported in input order
        summary.error = _failure(exc, tracker.piece)
    summary.lines = tracker.lines
    summary.tails = ends.lists()
    return summary


def process(arg: tuple[Settings, Task, int, dict[str | None, list[tuple[int, int]]] | None]) -> Output:
    """Second pass over one block: its rows through engines started from the values before it (``values``; None:
    read them backwards from the block's start), rows numbered on from ``row``."""
    job, task, row, values = arg
    if values is None:
        # Nothing comes before a piece that starts its file; inside a compressed file nothing could be read backwards.
        values = {None: [] if task[0].first else _context(job, task[0])}
    engine: RollingSignal | KeyedSignal
    if job.key is None:
        engine = RollingSignal(job.window)
        for u, s in values.get(None, ()):
            engine.update(u, s)
    else:
        engine = KeyedSignal(job.window, job.max_keys, job.key)
        for k, held in values.items():
            series = engine.add(k)  # type: ignore[arg-type]
            for u, s in held:
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
        sink = SignalSink(out, job.fmt, job.with_timestamp, key=job.key, header_written=True)  # the parent's header
    result = Output()

    def keep_bad(bad: tuple[int, BadRow]) -> None:
        # One more than can be shown: the parent's log says "more bad rows..." at the same row as one process.
        if len(result.bad) <= SHOW_BAD_ROWS:
            result.bad.append(bad)
        result.skips.setdefault(bad[0], Skips()).add(bad[1])

    tracker = _Tracker(keep_bad)
    pipeline = Pipeline(engine, sink)
    pipeline.restore(Tally(row, 0, 0))  # rows are numbered on from the blocks before
    reader = _reader(job, tracker, keep_text=job.signals)
    ends = _Ends(job.window - 1, job, heads=True) if job.one_pass else None
    try:
        for batch in _batches(job, task, reader, tracker):
            pipeline.consume(batch)
            if ends is not None and len(batch):
                ends.add(batch)
    except (InputError, SourceError) as exc:  # a damaged or binary input too: reported in input order
        result.error = _failure(exc, tracker.piece)
    finally:
        if out is not None and spill is not None:
            out.close()
    result.signals = spill if spill is not None else (out.getvalue() if out is not None else None)
    if isinstance(engine, KeyedSignal):
        result.by_key = {k: (x.rows, x.hits) for k, x in engine.series.items() if x.rows}
    result.tally = Tally(pipeline.rows - row, pipeline.hits, pipeline.skipped)
    result.lines = tracker.lines
    if ends is not None:
        result.heads, result.tails = ends.heads, ends.lists()
    return result


def _head_hits(
    values: dict[str | None, deque[tuple[int, int]]], heads: dict[str | None, list[tuple[int, int]]], window: int
) -> dict[str | None, int]:
    """The signals of each key's first values in a block that a one-pass task could not give (their windows reach
    into the blocks before): from engines started with the key's values before the block."""
    hits: dict[str | None, int] = {}
    for key, head in heads.items():
        engine = RollingSignal(window)
        for u, s in values.get(key, ()):
            engine.update(u, s)
        hits[key] = sum(engine.update(u, s) for u, s in head)
    return hits


def _context(job: Settings, piece: Piece) -> list[tuple[int, int]]:
    """The last ``window - 1`` valid rows before ``piece`` in its file (an unkeyed run over one input), found by
    reading backwards from its start down to where the file's data begins."""
    need = job.window - 1
    floor = job.context_floor
    assert floor is not None
    found: list[tuple[int, int]] = []
    end = piece.start  # always a line start
    size = min(CONTEXT_PIECE, max(4096, need * 256))
    while need and len(found) < need and end > floor:
        start = max(floor, end - size)
        data = _read_at(piece.path, piece.url, start, end - start)
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
    return found[-need:] if need else []


def _after_previous_newline(piece: Piece, pos: int, floor: int) -> int:
    """The start of the line that contains byte ``pos - 1``."""
    while pos > floor:
        start = max(floor, pos - (1 << 16))
        cut = _read_at(piece.path, piece.url, start, pos - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return floor


# ---- the parent -------------------------------------------------------------------------------------------------


class Result(NamedTuple):
    tally: Tally
    by_key: dict[str, Tally] | None


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


def _raise(error: tuple[int, BadRow | str], offsets: list[int]) -> None:
    index, what = error
    if isinstance(what, str):
        raise InputError(what)  # a header: at its file's start, so its line number is right as it is
    raise BadRowError(what.moved(offsets[index]))


def execute(
    executor: Executor,
    job: Settings,
    tasks: list[Task],
    report: Callable[[BadRow], None],
    add_unshown: Callable[[int], None],
    add_skips: Callable[[Skips], None],
    sink: SignalSink | None = None,
    after_block: Callable[[int, Tally, dict[str, Tally] | None], None] | None = None,
) -> Result:
    """Run the passes of ``tasks`` on ``executor`` (``submit(fn, arg)`` -> handle, ``result(handle)``,
    ``done(handle)``, ``workers``); write signals to ``sink`` in input order; report skipped rows in order, and each
    block's counts of them by kind (``add_skips``) as it is written out."""
    ahead = max(2, AHEAD_PER_WORKER * executor.workers)
    keep = job.window - 1
    first_pass = job.context_floor is None and not job.one_pass
    values: dict[str | None, deque[tuple[int, int]]] = {}
    firsts: deque[Any] = deque()
    seconds: deque[tuple[Any, Task]] = deque()
    submitted = 0
    row = 0
    lines = _Lines()
    tally = Tally()
    by_key: dict[str, Tally] | None = {} if job.key is not None else None
    done_bytes = 0

    def write_out(output: Output, task: Task) -> None:
        nonlocal tally, done_bytes
        offsets = lines.offsets(task, output.lines)
        for index, bad in output.bad:
            report(bad.moved(offsets[index]))
        if output.error is not None:
            _raise(output.error, offsets)
        tally += output.tally
        for index, counted in sorted(output.skips.items()):
            add_skips(counted.moved(offsets[index]))
        extra: dict[str | None, int] = {}
        if output.heads is not None:  # one pass: the block's first values get their context here, in order
            extra = _head_hits(values, output.heads, job.window)
            tally += Tally(0, sum(extra.values()))
            remember(output.tails)
        if by_key is not None and output.by_key:
            for k, (rows, hits) in output.by_key.items():
                by_key[k] = by_key.get(k, Tally()) + Tally(rows, hits + extra.get(k, 0))
                if job.max_keys is not None and len(by_key) > job.max_keys:  # each block is within it; all of them
                    raise TooManyKeys.at(job.key, job.max_keys, k)
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
            after_block(done_bytes, tally, by_key)

    def flush(everything: bool) -> None:
        """Write out finished blocks in order (all of them, or until few enough are in flight)."""
        while seconds and (everything or len(seconds) > ahead or executor.done(seconds[0][0])):
            handle, done_task = seconds.popleft()
            write_out(executor.result(handle), done_task)

    def remember(tails: dict[str | None, list[tuple[int, int]]]) -> None:
        """Each key's last ``window - 1`` values so far, after a block's own last ones."""
        if keep:
            for key, tail in tails.items():
                held = values.get(key)
                if held is None:
                    held = values[key] = deque(maxlen=keep)
                held.extend(tail)

    for k, task in enumerate(tasks):
        if not first_pass:
            # One pass: engines start empty; else each block reads its context backwards.
            empty: dict[str | None, list[tuple[int, int]]] | None = {} if job.one_pass else None
            seconds.append((executor.submit(process, (job, task, 0, empty)), task))
            flush(everything=False)
            continue
        while submitted < len(tasks) and submitted < k + ahead:
            firsts.append(executor.submit(summarize, (job, tasks[submitted])))
            submitted += 1
        summary: Summary = executor.result(firsts.popleft())
        if summary.error is not None:
            flush(everything=True)  # the blocks before this one, as far as one process would have got
            _raise(summary.error, lines.offsets(task, summary.lines))
        start = {key: list(values[key]) for key in summary.tails if key in values}
        seconds.append((executor.submit(process, (job, task, row, start)), task))
        row += summary.rows
        remember(summary.tails)
        flush(everything=False)
    flush(everything=True)
    return Result(tally, by_key)


def _copy(path: str, out: BinaryIO) -> None:
    with open(path, "rb") as fh:
        while True:
            data = fh.read(1 << 20)
            if not data:
                return
            out.write(data)
