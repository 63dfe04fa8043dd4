"""Runs a batch job: one process (row or block path), or the parallel plan (stream/runs/plan/) on worker processes or
a Dask cluster. The output is byte-identical to one process's, whichever runs it.

Worker processes are the default for regular files of ``PARALLEL_MIN_BYTES`` or more (as many as the cores);
``--workers N`` asks for N, ``--cluster local[:N]`` and ``--scheduler ADDRESS`` for Dask. Streams (pipes) and inputs
whose header is not within the first MiB are read by one process, and the log says so.

One process reads as stream/runs/serial.py says (the row or block path, and --reverse).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from stream.core.batch import BadRow
from stream.core.tally import Skips, Tally
from stream.parsing.reader import Reader
from stream.records import NamedTuple
from stream.runs import serial
from stream.runs.pipeline import Pipeline
from stream.sinks.log import log
from stream.sources.files import Spec

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import BinaryIO

    from stream.parsing.layout import Layout
    from stream.runs.plan.cut import Header, Task
    from stream.runs.plan.executors import Executor
    from stream.runs.plan.merge import Reached
    from stream.runs.plan.tasks import Settings
    from stream.sources.files import Input

# Worker processes by default only for regular files at least this big: below, forking and planning cost more.
PARALLEL_MIN_BYTES = 32 << 20
# Byte ranges are at least this big, and there are up to this many per worker (to even out uneven progress).
RANGE_MIN_BYTES = 4 << 20
RANGES_PER_WORKER = 4
# Worker processes on this machine (--workers, --cluster local:N) are at most this many per core: a task is parsing,
# bound by the CPU, and twice the cores leaves room for the time a worker waits on its reads (a URL, a cold disk).
WORKERS_PER_CORE = 2
# However many workers are asked for, blocks are no smaller (unless --block-size says so): below this a block's fixed
# costs (a task's round trip, its context, its keys' state) outweigh its rows.
SMALLEST_BLOCK = 128 << 10


def default_workers(size: int | None) -> int:
    return 1 if size is None or size < PARALLEL_MIN_BYTES else cores()


class Reading(NamedTuple):
    """How a batch run reads its inputs."""

    workers: int | None = None  # worker processes; None: the default for the inputs' size
    cluster: int | bool | None = False  # False: not asked; None or N: an embedded Dask cluster of N (default the cores)
    scheduler: str | None = None  # an existing Dask cluster's address
    block_size: int | None = None  # bytes per block of the plan; None: from the inputs' size and the workers
    reverse: bool = False  # one file, from its last row to its first
    executor: Executor | None = None  # run the plan on one already made (stream.runs.plan.executors.Inline, say)

    @property
    def dask(self) -> bool:
        return self.cluster is not False or self.scheduler is not None


class Hooks(NamedTuple):
    """What a batch run tells its caller as it goes (each may be None): ``stage(label)`` as each stage around the
    reading begins (planning, starting and stopping workers; ``stage(None)``: the reading itself, on every path),
    ``opened(i, input)`` as one process opens each input, ``after_batch()`` after each batch or finished block; when
    the parallel plan runs (the reader then reads nothing), ``layout_found(layout)`` once its probe knows the layout,
    ``blocks_done(bytes, tally, by_key)`` with the counts of the blocks finished so far and ``reached(state)`` at its
    start and as each block is through each pass."""

    after_batch: Callable[[], None] | None = None
    opened: Callable[[int, Input], None] | None = None
    layout_found: Callable[[Layout], None] | None = None
    blocks_done: Callable[[int, Tally, dict[str, Tally] | None], None] | None = None
    stage: Callable[[str | None], None] | None = None
    reached: Callable[[Reached], None] | None = None


DEFAULTS = Reading()
NO_HOOKS = Hooks()


def run(
    specs: list[Spec],
    sizes: list[int | None],
    reader: Reader,
    pipeline: Pipeline,
    options: Reading = DEFAULTS,
    hooks: Hooks = NO_HOOKS,
) -> tuple[Tally, dict[str, Tally] | None]:
    """Process the inputs as ``options`` say (by one process, or the parallel plan on worker processes or Dask),
    telling ``hooks`` of the progress; returns the tally and, in keyed runs, each key's."""
    known = [s for s in sizes if s is not None]
    total = sum(known) if len(known) == len(sizes) else None
    if options.reverse:
        if len(specs) != 1:
            from stream.parsing.framing import InputError

            raise InputError(f"--reverse reads one file backwards; the inputs are {len(specs)} files")
        if options.dask or (options.workers or 1) > 1:
            log.info("--reverse: the file is read backwards by one process (the parallel plan reads forwards)")
        rows = serial.backwards(specs[0], sizes[0], reader, pipeline.engine.window, hooks.opened)
        return pipeline.run(rows, hooks.after_batch), pipeline.by_key
    n = options.workers if options.workers is not None else default_workers(total)
    if options.dask:
        n = options.cluster or cores()
    if options.executor is not None and total is not None and not _unranged(specs):
        done = _parallel(specs, known, reader, pipeline, options, hooks, options.executor.workers)
        if done is not None:
            return done
    elif options.dask or n > 1:
        what = "Dask" if options.dask else f"--workers {n}"
        if total is None:
            streams = ", ".join(s.label for s, size in zip(specs, sizes) if size is None)
            log.info("%s: an input is a stream, not a regular file (%s); reading it with one process", what, streams)
        elif options.dask and any(not s.url and s.name == "-" for s in specs):
            log.info("%s: stdin cannot be read by a cluster's workers; reading it with one process", what)
        elif unranged := _unranged(specs):
            log.info("%s: the server of %s does not answer byte ranges; reading it with one process", what, unranged)
        else:
            done = _parallel(specs, known, reader, pipeline, options, hooks, int(n))
            if done is not None:
                return done
    window = pipeline.engine.window
    _stage(hooks, None)
    tally = pipeline.run(serial.forwards(specs, reader, total, window, hooks.opened), hooks.after_batch)
    return tally, pipeline.by_key


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---- the parallel plan -------------------------------------------------------------------------------------------


def _unranged(specs: list[Spec]) -> str:
    """The label of the first web address whose server does not answer byte ranges (the plan reads blocks by them)."""
    from stream.sources.remote import answers_ranges

    return next((s.label for s in specs if s.url and not answers_ranges(s.name)), "")


def _parallel(
    specs: list[Spec],
    sizes: list[int],
    reader: Reader,
    pipeline: Pipeline,
    options: Reading,
    hooks: Hooks,
    workers: int,
) -> tuple[Tally, dict[str, Tally] | None] | None:
    """Run the parallel plan on ``workers`` (asked for, or the executor's); None, with nothing consumed, when the
    inputs do not suit it (one process then reads them from the start)."""
    from stream.runs.plan import merge

    _stage(hooks, "planning: reading the header")
    probed = _probe(specs, sizes, reader, options)
    if probed is None:
        return None
    header, packed, scratch = probed
    window = pipeline.engine.window
    _stage(hooks, "planning: cutting the input into blocks")
    tasks = _cut(specs, sizes, header, packed, scratch, options, workers, window)
    if tasks is None:
        return None
    workers = _workers(options, workers, len(tasks))
    sink = pipeline.signals
    executor = options.executor
    spill = None
    try:
        if executor is None:
            _stage(hooks, _starting(options, workers))
            executor = _start(options, workers, _block_path(window))
        if sink is not None and executor.local:
            import tempfile  # only a parallel run with signals spills: one process never needs it

            spill = tempfile.mkdtemp(prefix=".mlops-stream-", dir=_folder_of(sink.out))
        job = _settings(specs, reader, pipeline, header, scratch, spill)
        if sink is not None:
            sink.fix_timestamp(job.with_timestamp)  # the parent writes the header before any block's rows
        log.info("%s over %d blocks of about %d bytes (%s path)", executor.describe, len(tasks),
                 sum(sizes) // len(tasks), "block" if job.block else "row")  # fmt: skip
        if hooks.layout_found is not None and scratch.layout is not None:
            hooks.layout_found(scratch.layout)
        if hooks.after_batch is not None:
            hooks.after_batch()
        _stage(hooks, None)
        result = merge.execute(executor, job, tasks, _Relay(reader, hooks), sink)
        _stage(hooks, "stopping the workers")  # a Dask cluster takes a while
        executor.close()
        executor = None
        return result.tally, result.by_key
    finally:
        if executor is not None:
            executor.close(abort=True)
        if spill is not None:
            import shutil

            shutil.rmtree(spill, ignore_errors=True)


def _probe(
    specs: list[Spec], sizes: list[int], reader: Reader, options: Reading
) -> tuple[Header, list[bool], Reader] | None:
    """The inputs' header, which of them are compressed, and the reader that read the header; None (the log says
    why) when the inputs do not suit the plan."""
    import multiprocessing

    from stream.runs.plan.cut import find_header
    from stream.sources.files import compression

    if not options.dask and options.executor is None and "fork" not in multiprocessing.get_all_start_methods():
        log.info("worker processes need the fork start method, which this platform lacks; using one process")
        return None
    kinds = [compression(spec) for spec in specs]
    packed = [kind is not None for kind in kinds]
    if len(specs) == 1 and packed[0]:
        log.info(
            "%s is %s-compressed: a compressed file cannot be cut into blocks, so one process reads it",
            specs[0].label, kinds[0],
        )  # fmt: skip
        return None
    scratch = reader.sibling()
    found = find_header(specs, sizes, scratch, packed)
    if found is None:
        log.info("the header is not within the first MiB of the input; reading it with one process")
        return None
    if scratch.decimal is None or scratch.undecided:
        # Workers read every value with the mark one process reads it with: the one the first rows told.
        log.info("the first rows do not tell the values' decimal mark (--decimal); reading the input with one process")
        return None
    return found._replace(layout=found.layout | {"decimal": scratch.decimal}), packed, scratch


def _cut(
    specs: list[Spec],
    sizes: list[int],
    header: Header,
    packed: list[bool],
    scratch: Reader,
    options: Reading,
    workers: int,
    window: int,
) -> list[Task] | None:
    """The blocks of the inputs; None (the log says why) when they are too few for the plan to pay."""
    from stream.runs.plan.cut import BLOCK_SIZE, blocks

    total = sum(sizes)
    block_size = options.block_size
    if block_size is None:
        count = max(workers, min(workers * RANGES_PER_WORKER, total // RANGE_MIN_BYTES))
        if not (options.dask or options.workers is not None or options.executor is not None):
            # Each block carries about window - 1 rows of context: keep that well below the block itself.
            count = min(count, max(1, int(total / (8 * max(1.0, (window - 1) * header.line_bytes)))))
        block_size = min(BLOCK_SIZE, max(SMALLEST_BLOCK, -(-total // count)))
    first = scratch.layout
    head = first.header_line if first is not None and first.header else 1  # the header and what is above it
    tasks = blocks(specs, sizes, block_size, head, packed)
    if any(packed):
        log.info("%d of the inputs are compressed: each is one task (a compressed file cannot be cut at byte offsets)",
                 sum(packed))  # fmt: skip
    if len(tasks) < 2 and not options.dask and options.executor is None:
        log.info("the input is too small for %d workers over a window of %d rows; using one process", workers, window)
        return None
    return tasks


def _workers(options: Reading, workers: int, blocks: int) -> int:
    """How many worker processes to start on this machine: no more than the blocks, nor than ``WORKERS_PER_CORE``
    per core; the log says when fewer than asked."""
    if options.executor is not None or options.scheduler is not None:
        return workers
    most = WORKERS_PER_CORE * cores()
    if blocks < workers and blocks <= most:
        log.info(
            "the input makes %d blocks, fewer than the %d workers; starting %d (blocks are at least %d KiB unless "
            "--block-size says otherwise)", blocks, workers, blocks, SMALLEST_BLOCK >> 10,
        )  # fmt: skip
        return blocks
    if workers > most:
        log.info("%d workers asked for on %d cores; starting %d (at most %d per core: more only wait for one another, "
                 "each holding its memory)", workers, cores(), most, WORKERS_PER_CORE)  # fmt: skip
        return most
    return workers


def _block_path(window: int) -> bool:
    from stream.parsing.blocks import MAX_WINDOW

    m = serial.mode()
    return m == "block" or (m == "auto" and window <= MAX_WINDOW)


def _settings(
    specs: list[Spec], reader: Reader, pipeline: Pipeline, header: Header, scratch: Reader, spill: str | None
) -> Settings:
    """What every task of the plan needs to know of the run."""
    from stream.runs.plan.tasks import Settings

    sink = pipeline.signals
    window = pipeline.engine.window
    block = _block_path(window)
    single = len(specs) == 1 and header.data_start >= 0
    first = scratch.layout
    return Settings(
        column=reader.column, key=reader.key, skip=reader.skip, window=window, header=scratch.header_text,
        layout=header.layout, request=reader.request,
        signals=sink is not None, fmt=sink.fmt if sink is not None else "csv",
        with_timestamp=first is not None and first.timestamp_index is not None,
        name_files=reader.file is not None, block=block, min_block=1 if serial.mode() == "block" else None,
        chunk=serial.chunk_size(block, first is not None and first.format == "jsonl"), spill=spill,
        context_floor=header.data_start if single and reader.key is None and sink is None else None,
        one_pass=sink is None and not (single and reader.key is None),
        max_keys=getattr(pipeline.engine, "max_keys", None),
    )  # fmt: skip


class _Relay:
    """What the plan tells as it writes blocks out, passed on: skipped rows to the reader's report and counts, the
    blocks' counts to the caller's hooks."""

    def __init__(self, reader: Reader, hooks: Hooks) -> None:
        self.reader = reader
        self.hooks = hooks

    def bad_row(self, bad: BadRow) -> None:
        self.reader.report(bad)

    def skipped(self, counted: Skips) -> None:
        self.reader.add_skips(counted)

    def unshown(self, count: int) -> None:
        add = getattr(self.reader.report, "add_unshown", None)
        if add is not None:
            add(count)

    def block_done(self, done_bytes: int, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        if self.hooks.blocks_done is not None:
            self.hooks.blocks_done(done_bytes, tally, by_key)
        if self.hooks.after_batch is not None:
            self.hooks.after_batch()

    def reached(self, state: Reached) -> None:
        if self.hooks.reached is not None:
            self.hooks.reached(state)


def _stage(hooks: Hooks, label: str | None) -> None:
    if hooks.stage is not None:
        hooks.stage(label)


def _starting(options: Reading, workers: int) -> str:
    if options.scheduler is not None:
        return "connecting to the Dask scheduler"
    if options.dask:
        return f"starting a Dask cluster of {workers} workers"
    return f"starting {workers} worker processes"


def _start(options: Reading, workers: int, block: bool) -> Executor:
    if options.dask:
        from stream.runs.plan.executors import Dask

        return Dask(workers, options.scheduler)
    from stream.runs.plan.executors import Processes

    if block:
        from stream import seeding

        # Imported once here, numpy is shared copy-on-write; each worker importing it would cost more.
        seeding.numpy()
    return Processes(workers)


def _folder_of(out: BinaryIO) -> str | None:
    name = getattr(out, "name", None)
    return os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
