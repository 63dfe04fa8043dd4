"""Compressed inputs: gzip, bz2, xz, zip and zstd recognised by their first bytes and decompressed as a stream, so a
source hands on the bytes of the text inside; a zip is its CSV members in name order."""

from __future__ import annotations

from collections.abc import Iterator

from stream.sources.decoders import ByRead1, Decompressing
from stream.sources.magic import HEAD, DecompressError, check_text, kind_of, maybe_magic

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from stream.sources.archives import Member

# A zip member this big (compressed) or bigger is decompressed by a thread of its own; a smaller one is read at once.
AHEAD_MIN = 1 << 20


class Unpacked:
    """An input as the text it holds: ``kind`` (None for plain text) and its ``parts`` (name, binary stream): the
    input itself, or a zip's members."""

    def __init__(self, kind: str | None, parts: Iterator[tuple[str, BinaryIO]]) -> None:
        self.kind = kind
        self.parts = parts


def unpack(name: str, fh: BinaryIO) -> Unpacked:
    """Look at the input's first bytes and return the streams of the text it holds; plain text comes back as it is
    (the bytes looked at are put back, or re-read)."""
    head, fh = _head(fh)
    kind = kind_of(head)
    if kind is None:
        check_text(name, head)
        return Unpacked(None, iter([(name, fh)]))
    # Compressed inputs only: plain text never loads the zip reader or the decompressing thread.
    from stream.sources.ahead import Ahead
    from stream.sources.archives import zip_members

    if kind == "zip":
        return Unpacked(kind, _unpacked_members(zip_members(name, fh)))
    # The stream classes here have the read1/read/close that readers of a BinaryIO use.
    stream: Any = Ahead(Decompressing(name, kind, fh))
    return Unpacked(kind, iter([(name, stream)]))


def _unpacked_members(members: Iterator[tuple[str, Member]]) -> Iterator[tuple[str, BinaryIO]]:
    """A zip's members as the text they hold: a compressed member decompressed; a zip in a zip refused (its list of
    members is at its end, out of reach of a stream)."""
    from stream.sources.ahead import Ahead

    for label, member in members:
        head = member.peek(HEAD)
        stream: Any = member  # these stream classes have the read1/read/close that readers of a BinaryIO use
        kind = kind_of(head)
        if kind == "zip":
            raise DecompressError(f"input {label} is a zip archive inside a zip; extract it first")
        if kind is not None:
            stream = Decompressing(label, kind, stream)
        else:
            check_text(label, head)
        if member.stored_size >= AHEAD_MIN:  # a thread of its own pays off only for a member big enough to keep it busy
            stream = Ahead(stream)
        yield label, stream


def _head(fh: BinaryIO) -> tuple[bytes, BinaryIO]:
    """The first bytes of ``fh`` and a stream that still starts at them."""
    try:
        seekable = fh.seekable()
    except (OSError, ValueError, AttributeError):
        seekable = False
    if seekable:
        pos = fh.tell()
        head = fh.read(HEAD) or b""
        fh.seek(pos)
        return head, fh
    read = getattr(fh, "read1", None) or fh.read
    head = b""
    # A pipe gives what has arrived: wait for more only while it could still be a compressed file's signature.
    while not head or maybe_magic(head):
        more = read(HEAD - len(head))
        if not more:
            break
        head += more
    replay: Any = _Replay(head, fh)
    return head, replay


class _Replay(ByRead1):
    """A stream that gives ``head`` again before the rest of ``fh`` (a pipe cannot seek back)."""

    def __init__(self, head: bytes, fh: BinaryIO) -> None:
        self._head = head
        self._fh = fh

    def read1(self, size: int = -1) -> bytes:
        if self._head:
            n = len(self._head) if size < 0 else size
            out, self._head = self._head[:n], self._head[n:]
            return out
        return (getattr(self._fh, "read1", None) or self._fh.read)(size)

    def fileno(self) -> int:
        # A select() on the descriptor may miss the replayed bytes; it is only ever asked whether *more* is waiting.
        return self._fh.fileno()

    def close(self) -> None:
        pass  # the input's owner closes it
