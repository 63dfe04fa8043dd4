"""Reading an open handle in pieces: forwards as bytes arrive (files and pipes), a byte range of a file, or backwards
line by line."""

from __future__ import annotations

from collections.abc import Callable, Iterator

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import BinaryIO

# Bytes per read. The row path works best on chunks that fit in the CPU caches: the objects of one chunk's rows are
# freed before the next, so their memory is reused instead of touching fresh pages (docs/performance.md has the
# figures); and a chunk with the rest of a line before it stays within the reader's line limit, so it needs no
# look for over-long lines. The numpy block path wants bigger chunks to spread its per-call costs, but not so big
# that one process with numpy loaded and a chunk's signals in flight passes 40 MiB (as 1 MiB chunks did).
CHUNK = 32 << 10
BLOCK_CHUNK = 256 << 10
# JSON Lines on the block path: a JSON line holds about twice a CSV line's bytes and its checks cost more calls a
# chunk, so four times the bytes (twice the rows): a tenth faster than twice, for a peak of about 54 MiB with signals.
JSON_BLOCK_CHUNK = 4 * BLOCK_CHUNK


def chunks(fh: BinaryIO, size: int = CHUNK, gulp: Callable[[], int | None] | None = None) -> Iterator[bytes]:
    """Yield the stream's bytes as they arrive: a pipe's data is passed on without waiting for a full chunk.

    ``gulp()``, asked before each read, may give a bigger size (the block path has taken over): reads are then that
    big, and a pipe's data already waiting is joined into one chunk, never waiting for more.
    """
    # read1 returns what is available after at most one read, so rows written into a pipe are processed at once.
    read = getattr(fh, "read1", None) or fh.read
    fd: int | None = None
    if gulp is not None:
        try:
            fd = fh.fileno()
        except (OSError, ValueError, AttributeError):
            fd = None
    while True:
        big = gulp() if gulp is not None else None
        want = big or size
        try:
            data = read(want)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us; kept for odd file objects
            continue
        if not data:
            return
        if big and fd is not None and len(data) < want:
            # A fast pipe hands over 64 KiB at a time; take whatever is already waiting.
            import select

            parts = [data]
            have = len(data)
            while have < want and select.select([fd], [], [], 0)[0]:
                more = read(want - have)
                if not more:
                    break
                parts.append(more)
                have += len(more)
            data = b"".join(parts)
        yield data


def span(fh: BinaryIO, start: int, end: int, size: int = CHUNK, name: str | None = None) -> Iterator[bytes]:
    """Bytes ``start``..``end`` of a seekable handle, in reads of up to ``size`` bytes. A file that ends first just
    ends, or, when its ``name`` is given (every byte of the range was promised: a block of a parallel run), is an
    OSError naming it."""
    fh.seek(start)
    left = end - start
    while left > 0:
        data = fh.read(min(size, left))
        if not data:
            if name is not None:
                raise OSError(f"{name} became shorter while it was read (it must not change during a run)")
            return
        left -= len(data)
        yield data


def backwards(fh: BinaryIO, start: int, end: int, size: int = CHUNK, longest: int = 1 << 16) -> Iterator[bytes]:
    """The lines of bytes ``start``..``end`` of a seekable file, last line first, each ending with a newline, in
    chunks of about ``size`` bytes; memory stays bounded: of a line longer than ``longest`` bytes only its last
    ``longest + 1`` or so are kept (enough for a reader to see that it is too long)."""
    pos = end
    carry = b""  # the end of a line whose start lies before ``pos``
    last = True  # the file's last line may lack its newline
    while pos > start:
        n = min(size, pos - start)
        pos -= n
        fh.seek(pos)
        block = fh.read(n) + carry
        if pos > start:
            cut = block.find(b"\n") + 1
            if not cut or cut == len(block):
                carry = block[-(longest + 2) :]  # with its newline
                continue
            carry, block = block[:cut], block[cut:]
        if last and not block.endswith(b"\n"):
            block += b"\n"
        last = False
        lines = block.split(b"\n")
        lines.pop()
        lines.reverse()
        yield b"\n".join(lines) + b"\n"
