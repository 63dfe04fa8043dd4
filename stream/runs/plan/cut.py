"""The plan's cuts: the inputs in blocks of whole lines, and the probe of their first lines that finds the header (and
the layout) the blocks are read with."""

from __future__ import annotations

from typing import Any

from stream.parsing.reader import Reader
from stream.records import NamedTuple
from stream.sources.chunks import CHUNK, span
from stream.sources.files import NewFile, Spec, compression, text_of
from stream.sources.magic import HEAD, check_text

# Blocks of tens of MiB keep task counts low (a 10 GiB history is ~300 blocks) and per-task overheads negligible.
BLOCK_SIZE = 32 << 20
# Where a file's header (or first line) must be found for it to be cut, and the header of the inputs for a plan.
PROBE = 1 << 20


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


class Header(NamedTuple):
    """What the probe of the inputs' first lines found."""

    layout: dict[str, Any]  # Layout.spec()
    data_start: int  # where the first input's data starts (-1: not in the first input, or it is compressed)
    line_bytes: float  # bytes per line of the data sampled


def blocks(
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


def read_at(path: str, url: bool, offset: int, size: int) -> bytes:
    """``size`` bytes from ``offset`` (fewer at the end of the file), through a handle of our own."""
    inp = Spec(path, url).open(ranged=True)
    try:
        return b"".join(span(inp.fh, offset, offset + size, size))
    finally:
        inp.fh.close()


def _head_end(spec: Spec, begin: int, end: int, head: int) -> int:
    """The end of the file's first ``head`` lines and of its first line that is not blank as the reader sees it (the
    header, or a first row); the file's end when that is not within the first ``PROBE`` bytes."""
    data = read_at(spec.path, spec.url, begin, min(PROBE, end - begin))
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
        data = read_at(spec.path, spec.url, pos, min(1 << 16, end - pos))
        if not data:
            break
        cut = data.find(b"\n")
        if cut >= 0:
            return min(pos + cut + 1, end)
        pos += len(data)
    return end


def find_header(specs: list[Spec], sizes: list[int], reader: Reader, packed: list[bool] | None = None) -> Header | None:
    """Read the inputs' first lines with ``reader`` (skipping bad rows: the plan reads the data again) until the
    layout is known; None if it is not within the first ``PROBE`` bytes. Errors in the header are the reader's, as in
    one process. ``packed`` tells which inputs are compressed (default: look)."""
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
            return Header(reader.layout.spec(), start, len(sample) / lines if lines else 100.0)
    return None


def _probe(spec: Spec, size: int, packed: bool) -> tuple[str | None, bytes, bool]:
    """The first ``PROBE`` bytes of an input's text, and whether that is all of it (of its first member); the name
    its messages go by when it is compressed (None for plain text)."""
    if not packed:
        data = read_at(spec.path, spec.url, spec.base, min(PROBE, size))
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
