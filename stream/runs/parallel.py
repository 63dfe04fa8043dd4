"""Runs a batch job: one process (row or block path), or the parallel plan (stream/plan.py) on worker processes or a
Dask cluster. The output is byte-identical to one process's, whichever runs it.

Worker processes are the default for regular files of ``PARALLEL_MIN_BYTES`` or more (as many as the cores);
``--workers N`` asks for N, ``--cluster local[:N]`` and ``--scheduler ADDRESS`` for Dask. Streams (pipes) and inputs
whose header is not within the first MiB are read by one process, and the log says so.

Knobs for tests and benchmarks: ``MLOPS_STREAM_PATH=row|block|auto`` forces the row path or the block path (default
auto: the block path for inputs of at least ``BLOCK_MIN_BYTES``), ``MLOPS_STREAM_CHUNK`` sets the read size in bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from stream.core.batch import Batch
from stream.core.tally import Tally
from stream.parsing.reader import Reader, ReaderState, batches
from stream.runs.pipeline import Pipeline
from stream.sinks.log import log
from stream.sources.chunks import BLOCK_CHUNK, CHUNK
from stream.sources.files import NewFile, Spec, concatenated

if TYPE_CHECKING:
    from stream.parsing.blocks import BlockReader
    from stream.parsing.layout import Layout
    from stream.runs.executors import Executor
    from stream.sources.files import Input

# numpy's import pays for itself only on inputs of several MiB; below this the row path is faster.
BLOCK_MIN_BYTES = 8 << 20
# Worker processes by default only for regular files at least this big: below, forking and planning cost more.
PARALLEL_MIN_BYTES = 32 << 20
# Byte ranges are at least this big, and there are up to this many per worker (to even out uneven progress).
RANGE_MIN_BYTES = 4 << 20
RANGES_PER_WORKER = 4
# However many workers are asked for, blocks are no smaller (unless --block-size says so): below this a block's fixed
# costs (a task's round trip, its context, its keys' state) outweigh its rows.
SMALLEST_BLOCK = 128 << 10


def mode() -> str:
    value = os.environ.get("MLOPS_STREAM_PATH", "auto")
    return value if value in ("row", "block") else "auto"


def chunk_size(block: bool = False) -> int:
    """Bytes per read: ``MLOPS_STREAM_CHUNK``, else the row path's or the block path's size."""
    try:
        return max(1, int(os.environ.get("MLOPS_STREAM_CHUNK", "")))
    except ValueError:
        return BLOCK_CHUNK if block else CHUNK


def default_workers(size: int | None) -> int:
    return 1 if size is None or size < PARALLEL_MIN_BYTES else cores()


def run(
    specs: list[Spec],
    sizes: list[int | None],
    reader: Reader,
    pipeline: Pipeline,
    workers: int | None = None,
    after_batch: Callable[[], None] | None = None,
    *,
    cluster: int | bool | None = False,
    scheduler: str | None = None,
    block_size: int | None = None,
    opened: Callable[[int, Input], None] | None = None,
    executor: Executor | None = None,
    reverse: bool = False,
    layout_found: Callable[[Layout], None] | None = None,
    blocks_done: Callable[[int, Tally, dict[str, Tally] | None], None] | None = None,
) -> tuple[Tally, dict[str, Tally] | None]:
    """Process the inputs; returns the tally and, in keyed runs, each key's. ``workers=None`` picks the default for
    the inputs' size; ``cluster`` (False: not asked; None or N: an embedded cluster of N workers, default the cores)
    and ``scheduler`` run on Dask; ``executor`` runs the plan on one already made (stream.runs.executors.Inline, say).

    The caller hears of the run's progress through its callbacks: ``opened(i, input)`` as one process opens each
    input, ``after_batch()`` after each batch or finished block; when the parallel plan runs (``reader`` then reads
    nothing), ``layout_found(layout)`` once its probe knows the layout and ``blocks_done(bytes, tally, by_key)`` with
    the counts of the blocks finished so far."""
    known = [s for s in sizes if s is not None]
    total = sum(known) if len(known) == len(sizes) else None
    dask = cluster is not False or scheduler is not None
    if reverse:
        if len(specs) != 1:
            from stream.parsing.framing import InputError

            raise InputError(f"--reverse reads one file backwards; the inputs are {len(specs)} files")
        if dask or (workers or 1) > 1:
            log.info("--reverse: the file is read backwards by one process (the parallel plan reads forwards)")
        rows = _backwards(specs[0], sizes[0], reader, pipeline.engine.window, opened)
        return pipeline.run(rows, after_batch), pipeline.by_key
    hooks = _Hooks(after_batch, layout_found, blocks_done)
    n = (cluster or cores()) if dask else (workers if workers is not None else default_workers(total))
    if executor is not None and total is not None:
        done = _parallel(
            specs, known, reader, pipeline, executor.workers, hooks, dask=False, scheduler=None,
            block_size=block_size, explicit=True, executor=executor,
        )  # fmt: skip
        if done is not None:
            return done
    elif dask or n > 1:
        what = "Dask" if dask else f"--workers {n}"
        if total is None:
            streams = ", ".join(s.label for s, size in zip(specs, sizes) if size is None)
            log.info("%s: an input is a stream, not a regular file (%s); reading it with one process", what, streams)
        elif dask and any(not s.url and s.name == "-" for s in specs):
            log.info("%s: stdin cannot be read by a cluster's workers; reading it with one process", what)
        else:
            done = _parallel(
                specs, known, reader, pipeline, int(n), hooks, dask=dask, scheduler=scheduler,
                block_size=block_size, explicit=dask or workers is not None,
            )  # fmt: skip
            if done is not None:
                return done
    window = pipeline.engine.window
    tally = pipeline.run(_serial(specs, reader, total, window, opened), after_batch)
    return tally, pipeline.by_key


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---- one process ------------------------------------------------------------------------------------------------


def _serial(
    specs: list[Spec],
    reader: Reader,
    size: int | None,
    window: int,
    opened: Callable[[int, Input], None] | None,
) -> Iterator[Batch]:
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
    block: BlockReader | None = None
    if switch_at is not None:
        from stream.parsing.blocks import MAX_WINDOW, BlockReader

        if m == "block" or window <= MAX_WINDOW:
            block = BlockReader(reader, 1 if m == "block" else None, after=switch_at, started=_numpy_from)
    lines = [0]  # lines of the inputs before the current one

    def counted(events: Iterable[bytes | NewFile]) -> Iterator[bytes | NewFile]:
        for event in events:
            if isinstance(event, NewFile):
                lines[0] += reader.line_no + (1 if reader.pending else 0)  # new_file completes a last line
            yield event

    def gulp() -> int | None:
        return chunk_size(True) if block is not None and block.started else None

    events = concatenated(specs, chunk_size(), opened=opened, gulp=gulp)
    yield from batches(reader, counted(events), block)
    if block is not None and block.started:
        log.info("block path: %d lines parsed with numpy, the other %d by the row path",
                 block.lines, lines[0] + reader.line_no - block.lines)  # fmt: skip


def _backwards(
    spec: Spec, size: int | None, reader: Reader, window: int, opened: Callable[[int, Input], None] | None
) -> Iterator[Batch]:
    """Batches of one regular file from its last row to its first (--reverse): the layout from its top, then its
    lines read backwards from its end, in constant memory; bad rows keep their line numbers in the file."""
    from stream.parsing.framing import InputError
    from stream.runs import plan
    from stream.sources.chunks import backwards

    if size is None or spec.url or spec.name == "-":
        raise InputError(f"--reverse reads a regular file backwards from its end; {spec.label} is not one")
    from stream.sources.files import compression

    kind = compression(spec)
    if kind is not None:  # a compressed stream can only be read from its start
        raise InputError(f"--reverse reads a file backwards from its end, and {spec.label} is {kind}-compressed")
    scratch = reader.sibling(backwards=True)
    found = plan.find_header([spec], [size], scratch)
    if found is None or found[1] < 0:
        raise InputError(f"--reverse: the header of {spec.label} is not within its first MiB")
    layout, data_start, _ = found
    above = scratch.layout.header_line - (0 if scratch.layout.header else 1) if scratch.layout else 0
    reader.restore(ReaderState(offset=data_start, line=above, header=scratch.header_text, at_file_start=False,
                               layout=layout))  # fmt: skip
    m = mode()
    block = None
    if m == "block" or (m == "auto" and size >= BLOCK_MIN_BYTES):
        from stream.parsing.blocks import MAX_WINDOW, BlockReader

        if m == "block" or window <= MAX_WINDOW:
            block = BlockReader(reader, 1 if m == "block" else None)
    inp = spec.open()
    try:
        if opened is not None:
            opened(0, inp)
        reader.count_backwards(_lines_after(inp.fh, data_start, size))
        log.info("--reverse: reading %s from its last row to its first", spec.label)
        yield from batches(reader, backwards(inp.fh, data_start, size, chunk_size(block is not None)), block)
    finally:
        inp.fh.close()


def _numpy_from(offset: int) -> None:
    log.info("block path: parsing chunks with numpy from byte %d on", offset)


def _lines_after(fh: BinaryIO, start: int, end: int) -> int:
    """Lines from byte ``start`` to ``end`` (a last one without a newline counts), read in constant memory."""
    fh.seek(start)
    count, left, tail = 0, end - start, b"\n"
    while left > 0:
        data = fh.read(min(1 << 20, left))
        if not data:
            break
        count += data.count(b"\n")
        left -= len(data)
        tail = data[-1:]
    return count + (tail != b"\n")


# ---- the parallel plan -------------------------------------------------------------------------------------------


def _parallel(
    specs: list[Spec],
    sizes: list[int],
    reader: Reader,
    pipeline: Pipeline,
    workers: int,
    hooks: _Hooks,
    *,
    dask: bool,
    scheduler: str | None,
    block_size: int | None,
    explicit: bool,
    executor: Executor | None = None,
) -> tuple[Tally, dict[str, Tally] | None] | None:
    """Run the parallel plan; None, with nothing consumed, when the inputs do not suit it (one process then reads
    them from the start)."""
    import multiprocessing

    from stream.runs import plan

    if not dask and executor is None and "fork" not in multiprocessing.get_all_start_methods():
        log.info("worker processes need the fork start method, which this platform lacks; using one process")
        return None
    from stream.sources.files import compression

    kinds = [compression(spec) for spec in specs]
    packed = [kind is not None for kind in kinds]
    if len(specs) == 1 and packed[0]:
        log.info(
            "%s is %s-compressed: a compressed file cannot be cut into blocks, so one process reads it",
            specs[0].label, kinds[0],
        )  # fmt: skip
        return None
    scratch = reader.sibling()
    found = plan.find_header(specs, sizes, scratch, packed)
    if found is None:
        log.info("the header is not within the first MiB of the input; reading it with one process")
        return None
    layout, data_start, line_bytes = found
    if scratch.decimal is None or scratch.undecided:
        # Workers read every value with the mark one process reads it with: the one the first rows told.
        log.info("the first rows do not tell the values' decimal mark (--decimal); reading the input with one process")
        return None
    layout = layout | {"decimal": scratch.decimal}
    total = sum(sizes)
    window = pipeline.engine.window
    if block_size is None:
        count = max(workers, min(workers * RANGES_PER_WORKER, total // RANGE_MIN_BYTES))
        if not explicit:
            # Each block carries about window - 1 rows of context: keep that well below the block itself.
            count = min(count, max(1, int(total / (8 * max(1.0, (window - 1) * line_bytes)))))
        block_size = min(plan.BLOCK_SIZE, max(SMALLEST_BLOCK, -(-total // count)))
    first = scratch.layout
    head = first.header_line if first is not None and first.header else 1  # the header and what is above it
    tasks = plan.plan(specs, sizes, block_size, head, packed)
    if any(packed):
        log.info("%d of the inputs are compressed: each is one task (a compressed file cannot be cut at byte offsets)",
                 sum(packed))  # fmt: skip
    if len(tasks) < 2 and not dask and executor is None:
        log.info("the input is too small for %d workers over a window of %d rows; using one process", workers, window)
        return None
    if executor is None and scheduler is None and workers > len(tasks):
        log.info(
            "the input makes %d blocks, fewer than the %d workers; starting %d (blocks are at least %d KiB unless "
            "--block-size says otherwise)", len(tasks), workers, len(tasks), SMALLEST_BLOCK >> 10,
        )  # fmt: skip
        workers = len(tasks)
    sink = pipeline.signals
    from stream.parsing.blocks import MAX_WINDOW

    m = mode()
    block = m == "block" or (m == "auto" and window <= MAX_WINDOW)
    single = len(specs) == 1 and data_start >= 0
    spill = None
    try:
        if executor is None:
            executor = _start(dask, workers, scheduler, block)
        if sink is not None and executor.local:
            spill = tempfile.mkdtemp(prefix=".mlops-stream-", dir=_folder_of(sink.out))
        job = plan.Settings(
            column=reader.column, key=reader.key, skip=reader.skip, window=window, header=scratch.header_text,
            layout=layout, request=reader.request,
            signals=sink is not None, fmt=sink.fmt if sink is not None else "csv",
            with_timestamp=first is not None and first.timestamp_index is not None,
            name_files=reader.file is not None, block=block, min_block=1 if m == "block" else None,
            chunk=chunk_size(block), spill=spill,
            context_floor=data_start if single and reader.key is None and sink is None else None,
            one_pass=sink is None and not (single and reader.key is None),
            max_keys=getattr(pipeline.engine, "max_keys", None),
        )  # fmt: skip
        if sink is not None:
            sink.fix_timestamp(job.with_timestamp)  # the parent writes the header before any block's rows
        log.info("%s over %d blocks of about %d bytes (%s path)", executor.describe, len(tasks),
                 total // len(tasks), "block" if block else "row")  # fmt: skip
        if hooks.layout_found is not None and first is not None:
            hooks.layout_found(first)
        if hooks.after_batch is not None:
            hooks.after_batch()

        def after_block(done_bytes: int, tally: Tally, by_key: dict[str, Tally] | None) -> None:
            if hooks.blocks_done is not None:
                hooks.blocks_done(done_bytes, tally, by_key)
            if hooks.after_batch is not None:
                hooks.after_batch()

        report = reader.report
        add = getattr(report, "add_unshown", None)
        result = plan.execute(
            executor,
            job,
            tasks,
            report,
            add if add is not None else (lambda n: None),
            reader.add_skips,
            sink,
            after_block,
        )
        executor.close()
        executor = None
        return result.tally, result.by_key
    finally:
        if executor is not None:
            executor.close(abort=True)
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


class _Hooks(NamedTuple):
    after_batch: Callable[[], None] | None
    layout_found: Callable[[Layout], None] | None
    blocks_done: Callable[[int, Tally, dict[str, Tally] | None], None] | None


def _start(dask: bool, workers: int, scheduler: str | None, block: bool) -> Executor:
    if dask:
        from stream.runs.executors import Dask

        return Dask(workers, scheduler)
    from stream.runs.executors import Processes

    if block:
        from stream import seeding

        # Imported once here, numpy is shared copy-on-write; each worker importing it would cost more.
        seeding.numpy()
    return Processes(workers)


def _folder_of(out: BinaryIO) -> str | None:
    name = getattr(out, "name", None)
    return os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
