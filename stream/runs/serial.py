"""A batch run's reading by one process: the row path, switching to the numpy block path once the input proves big
enough, or one file from its last row to its first (--reverse).

Knobs for tests and benchmarks: ``MLOPS_STREAM_PATH=row|block|auto`` forces the row path or the block path (default
auto: the block path for inputs of at least ``BLOCK_MIN_BYTES``), ``MLOPS_STREAM_CHUNK`` sets the read size in bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from stream.core.batch import Batch
from stream.parsing.reader import Reader, ReaderState, batches
from stream.sinks.log import log
from stream.sources.chunks import BLOCK_CHUNK, CHUNK, JSON_BLOCK_CHUNK
from stream.sources.files import NewFile, Spec, concatenated

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import BinaryIO

    from stream.parsing.blocks import BlockReader
    from stream.sources.files import Input

# numpy's import pays for itself only on inputs of several MiB; below this the row path is faster.
BLOCK_MIN_BYTES = 8 << 20


def mode() -> str:
    value = os.environ.get("MLOPS_STREAM_PATH", "auto")
    return value if value in ("row", "block") else "auto"


def chunk_size(block: bool = False, json: bool = False) -> int:
    """Bytes per read: ``MLOPS_STREAM_CHUNK``, else the row path's or the block path's size (for JSON Lines, when
    ``json``)."""
    try:
        return max(1, int(os.environ.get("MLOPS_STREAM_CHUNK", "")))
    except ValueError:
        return (JSON_BLOCK_CHUNK if json else BLOCK_CHUNK) if block else CHUNK


def forwards(
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
        return chunk_size(True, block.json) if block is not None and block.started else None

    events = concatenated(specs, chunk_size(), opened=opened, gulp=gulp)
    yield from batches(reader, counted(events), block)
    if block is not None and block.started:
        log.info("block path: %d lines parsed with numpy, the other %d by the row path",
                 block.lines, lines[0] + reader.line_no - block.lines)  # fmt: skip


def backwards(
    spec: Spec, size: int | None, reader: Reader, window: int, opened: Callable[[int, Input], None] | None
) -> Iterator[Batch]:
    """Batches of one regular file from its last row to its first (--reverse): the layout from its top, then its
    lines read backwards from its end, in constant memory; bad rows keep their line numbers in the file."""
    from stream.parsing.framing import InputError
    from stream.runs.plan.cut import find_header
    from stream.sources.chunks import backwards

    if size is None or spec.url or spec.name == "-":
        raise InputError(f"--reverse reads a regular file backwards from its end; {spec.label} is not one")
    from stream.sources.files import compression

    kind = compression(spec)
    if kind is not None:  # a compressed stream can only be read from its start
        raise InputError(f"--reverse reads a file backwards from its end, and {spec.label} is {kind}-compressed")
    scratch = reader.sibling(backwards=True)
    found = find_header([spec], [size], scratch)
    if found is None or found.data_start < 0:
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
