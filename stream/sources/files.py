"""Byte sources: files, stdin and object-storage URLs as streams of chunks; many inputs as one stream with a
``NewFile`` marker where each next file begins. Sources know nothing of lines or CSV."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence

from stream.errors import SourceError
from stream.sources.chunks import CHUNK, chunks
from stream.sources.globs import is_pattern, matches

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import BinaryIO


class NewFile:
    """In a byte stream, bytes after this marker start another file from its beginning: ``rotated`` (the followed
    name points at another file), ``truncated`` (the same file, cut or rewritten) or ``next`` (the next input)."""

    # Plain slots, not a dataclass: a batch run would pay the dataclasses import for one marker class.
    __slots__ = ("name", "reason")

    def __init__(self, reason: str, name: str | None = None) -> None:
        self.reason = reason
        self.name = name  # the file that begins, when the stream names its files

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NewFile) and (self.reason, self.name) == (other.reason, other.name)

    def __hash__(self) -> int:
        return hash((self.reason, self.name))

    def __repr__(self) -> str:
        return f"NewFile({self.reason!r}" + (f", {self.name!r})" if self.name is not None else ")")


class Input:
    """An opened input: its name for messages, its binary handle, and its size when it is a regular file."""

    def __init__(self, name: str, fh: BinaryIO, size: int | None) -> None:
        self.name = name
        self.fh = fh
        self.size = size  # bytes, for a regular file (progress, parallel splitting); None for pipes and terminals
        self.kind: str | None = None  # its compression, once its first bytes are read; None: plain text

    def position(self, text_offset: int) -> int:
        """How far into the input reading is: ``text_offset`` (bytes of text) for plain text, the compressed bytes
        read for a compressed input (sizes and progress count those)."""
        if self.kind is None:
            return text_offset
        try:
            return int(self.fh.tell())
        except (OSError, ValueError, AttributeError):  # closed (read to its end), or a pipe
            return self.size or 0

    def describe(self) -> str:
        kind = f"regular file, {self.size} bytes" if self.size is not None else "stream"
        return f"{self.name} ({kind})"


def open_failed(exc: OSError, what: str) -> SourceError:
    """Why ``input {what}`` cannot be opened, in words ("file data.csv", or a URL)."""
    name = what.removeprefix("file ")
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"input {what} does not exist")
    if isinstance(exc, IsADirectoryError):
        return SourceError(f"input {name} is a directory, not a CSV file")
    if isinstance(exc, PermissionError):
        return SourceError(f"input {what} cannot be read: permission denied")
    return SourceError(f"input {what} cannot be opened: {exc.strerror or exc}")


def open_input(path: str, stdin: BinaryIO | None = None) -> Input:
    """Open ``path`` (``-`` is ``stdin``, by default the process's) for binary reading."""
    if path == "-":
        fh = stdin if stdin is not None else sys.stdin.buffer
        try:
            st = os.fstat(fh.fileno())
            size = st.st_size if stat.S_ISREG(st.st_mode) else None
        except (OSError, ValueError):
            size = None
        return Input("<stdin>", fh, size)
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - the Input owns it
    except OSError as exc:
        raise open_failed(exc, f"file {path}") from None
    st = os.fstat(fh.fileno())
    if stat.S_ISDIR(st.st_mode):
        fh.close()
        raise SourceError(f"input {path} is a directory, not a CSV file")
    return Input(path, fh, st.st_size if stat.S_ISREG(st.st_mode) else None)


def check_readable(path: str) -> None:
    """Raise SourceError, as opening would, when ``path`` cannot be read; a FIFO is not opened (its writer would
    see this reader go away, die of SIGPIPE, and leave nothing for the real read)."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False
    if fifo:
        if not os.access(path, os.R_OK):
            raise SourceError(f"input file {path} cannot be read: permission denied")
        return
    open_input(path).fh.close()


class Spec:
    """One input file after globs are expanded: a local path (``-`` is stdin) or an fsspec URL."""

    __slots__ = ("base", "known_size", "name", "stdin", "url")

    def __init__(
        self, name: str, url: bool = False, known_size: int | None = None, stdin: BinaryIO | None = None
    ) -> None:
        self.name = name
        self.url = url  # opened through fsspec
        self.known_size = known_size  # from the listing that found it, which saves a request per file
        self.base = 0  # where the input starts in its file: stdin redirected from a file may be past its start
        self.stdin = stdin  # what ``-`` reads (None: the process's stdin)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and (self.name, self.url) == (other.name, other.url)

    def __hash__(self) -> int:
        return hash((self.name, self.url))

    def __repr__(self) -> str:
        return f"Spec({self.name!r}, url={self.url})"

    @property
    def label(self) -> str:
        """The input's name in messages."""
        return "<stdin>" if self.name == "-" and not self.url else self.name

    @property
    def path(self) -> str:
        """A name that opens the input again from any process of this machine (or any machine, for a URL)."""
        if self.url:
            return self.name
        return "/dev/stdin" if self.name == "-" else os.path.abspath(self.name)

    def open(self, ranged: bool = False) -> Input:
        """The input opened; ``ranged`` when it is to be read at offsets (a URL's server must answer byte ranges)."""
        if self.url:
            from stream.sources.remote import open_url

            return Input(self.name, *open_url(self.name, ranged, self.known_size))
        return open_input(self.name, self.stdin)

    def size(self) -> int | None:
        """The size in bytes, or None for a stream (without opening the file)."""
        if self.known_size is not None:
            return self.known_size
        if self.url:
            from stream.sources.remote import size_of

            self.known_size = size_of(self.name)  # opening it then asks no more
            return self.known_size
        try:
            if self.name == "-":
                fd = (self.stdin or sys.stdin).fileno()
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):  # a file redirected into stdin: what is left of it from here
                    self.base = os.lseek(fd, 0, os.SEEK_CUR)
                    return st.st_size - self.base
                return None
            st = os.stat(self.name)
        except (OSError, ValueError, AttributeError):
            return None  # opening it will say why
        return st.st_size if stat.S_ISREG(st.st_mode) else None


def local_path(name: str) -> str | None:
    """The path a name stands for when it is local (a path, or a ``file://`` URL); None for another protocol."""
    if "://" not in name:  # a path: the module of URLs is loaded only for a name that may be one
        return name
    from stream.sources.remote import URL

    m = URL.match(name)
    if m is None:
        return name
    if m.group(1).lower() != "file":
        return None
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(name)
    if parts.netloc not in ("", "localhost"):
        raise SourceError(f"{name}: a file:// URL names a file on this machine (file:///path), not on {parts.netloc}")
    return unquote(parts.path)


def expand(names: Sequence[str], stdin: BinaryIO | None = None) -> list[Spec]:
    """The input files the ``--input`` arguments name, in order: each glob expanded in sorted order, each file once
    (see ``globs.matches``); ``-`` reads ``stdin`` (None: the process's)."""
    specs: list[Spec] = []
    for name in names:
        path = local_path(name)
        if path is None:
            from stream.sources.remote import expand_url

            specs.extend(Spec(url, url=True, known_size=size) for url, size in expand_url(name))
        elif path != "-" and is_pattern(path):
            found = matches(path)
            if not found:
                raise SourceError(f"the input pattern {name} matches no file")
            specs.extend(Spec(p) for p in found)
        else:
            specs.append(Spec(path, stdin=stdin if path == "-" else None))
    return specs


def concatenated(
    specs: Sequence[Spec],
    size: int = CHUNK,
    opened: Callable[[int, Input], None] | None = None,
    gulp: Callable[[], int | None] | None = None,
) -> Iterator[bytes | NewFile]:
    """The inputs as one stream: each file's chunks, with ``NewFile("next", name)`` before every file after the first.

    Files are opened one at a time, when their turn comes; ``opened(index, input)`` is told of each. Chunks are
    ``size`` bytes at most, or what ``gulp`` says (see ``chunks``).
    """
    for i, spec in enumerate(specs):
        inp = spec.open()
        if opened is not None:
            opened(i, inp)
        try:
            yield from _text(inp, i > 0, size, gulp)
        finally:
            if spec.url or spec.name != "-":  # stdin stays open: it is the caller's
                inp.fh.close()


def _text(inp: Input, later: bool, size: int, gulp: Callable[[], int | None] | None) -> Iterator[bytes | NewFile]:
    """The text an opened input holds, decompressed, with a ``NewFile`` naming each part that needs a name: every
    file after the first, and every part of a compressed file (so messages name the archive and its member)."""
    from stream.sources.decompress import unpack

    unpacked = unpack(inp.name, inp.fh)
    inp.kind = unpacked.kind
    for j, (name, fh) in enumerate(unpacked.parts):
        try:
            if later or j or unpacked.kind is not None:
                yield NewFile("next", name)
            yield from chunks(fh, size, gulp)
        finally:
            if fh is not inp.fh:
                fh.close()  # a part's own resources (never the input itself: its owner closes that)


def text_of(spec: Spec, name: str, size: int = CHUNK) -> Iterator[bytes | NewFile]:
    """One input's text as ``concatenated`` gives it for a first input, its messages naming it ``name``: a worker's
    way to read a whole file."""

    def rename(index: int, inp: Input) -> None:
        inp.name = name

    return concatenated([spec], size, opened=rename)


def compression(spec: Spec) -> str | None:
    """The compression a regular file or URL starts with (``gzip``, ``bz2``, ``xz``, ``zip``, ``zstd``), None for
    plain text."""
    from stream.sources.magic import HEAD, kind_of

    inp = Spec(spec.path, spec.url).open()  # a handle of its own: stdin redirected from a file is opened anew
    try:
        if spec.base:
            inp.fh.seek(spec.base)
        return kind_of(inp.fh.read(HEAD) or b"")
    finally:
        inp.fh.close()
