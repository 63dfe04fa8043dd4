"""Compressed inputs: gzip, bz2, xz, zip and zstd recognised by their first bytes and decompressed as a stream, so a
source hands on the bytes of the text inside; a zip is its CSV members in name order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

from stream.errors import SourceError

# Compressed bytes per read: big enough that a read costs little next to decompressing it, small enough to stay
# far below the memory the rest of a run uses.
RAW_READ = 64 << 10
# How much of an input is looked at to tell what it is.
HEAD = 512
MAGIC = {
    "gzip": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zip": b"PK\x03\x04",
    "zstd": b"\x28\xb5\x2f\xfd",
}
_EMPTY_ZIP = b"PK\x05\x06"  # an archive of no members is only its directory's end
ZSTD_MISSING = "pip install 'mlops-stream[zstd]' (the standard library has zstd from Python 3.14)"
# Other formats people mistake for CSV, named in the error instead of a row of hex alone.
_OTHER = (
    (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"), (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow IPC file"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\x04\x22\x4d\x18", "an LZ4 frame"), (b"\xd0\xcf\x11\xe0", "an old Office document (xls?)"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"), (b"\x7fELF", "a program (ELF)"),
)  # fmt: skip
# Bytes that plain text does not hold (NUL and the C0 controls but tab, CR, vertical tab and form feed).
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c")


class DecompressError(SourceError):
    """A compressed input that cannot be read (damaged, truncated, an unknown kind, a missing codec)."""


def kind_of(head: bytes) -> str | None:
    """The compression ``head`` (an input's first bytes) starts with; None for anything else."""
    for kind, magic in MAGIC.items():
        if head.startswith(magic):
            # bz2's "BZh" is followed by its block size, a digit: a text that starts "BZh" is not bz2.
            return None if kind == "bz2" and head[3:4] not in b"123456789" else kind
    return "zip" if head.startswith(_EMPTY_ZIP) else None


def _maybe_magic(head: bytes) -> bool:
    """Whether more bytes could still make ``head`` the start of a compressed file."""
    return any(len(head) < len(m) and m.startswith(head) for m in (*MAGIC.values(), _EMPTY_ZIP))


def describe(head: bytes) -> str:
    """What an input's first bytes look like, in words and hex, never the bytes themselves."""
    shown = " ".join(f"{b:02x}" for b in head[:8])
    for magic, what in _OTHER:
        if head.startswith(magic):
            return f"{what}, starting with bytes {shown}"
    if len(head) > 262 and head[257:262] == b"ustar":
        return f"a tar archive, starting with bytes {shown}"
    return f"binary data starting with bytes {shown}"


def binary(head: bytes) -> bool:
    """Whether ``head`` is plainly not text: a known binary format, or control bytes in its first line."""
    if any(head.startswith(magic) for magic, _ in _OTHER):
        return True
    first = head[: head.find(b"\n")] if b"\n" in head else head
    return bool(first) and len(first.translate(None, _CONTROL)) != len(first)


def check_text(name: str, head: bytes) -> None:
    """Refuse an input whose first bytes (not a compressed file's) are plainly not text, saying what they look like."""
    if binary(head):
        raise DecompressError(
            f"input {name} is neither text nor a compressed file this reads (gzip, bz2, xz, zip, zstd): it looks like "
            f"{describe(head)}"
        )


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
    if kind == "zip":
        return Unpacked(kind, _zip_members(name, fh))
    # The stream classes here have the read1/read/close that readers of a BinaryIO use.
    return Unpacked(kind, iter([(name, cast(BinaryIO, Ahead(Decompressing(name, kind, fh))))]))


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
    while not head or _maybe_magic(head):
        more = read(HEAD - len(head))
        if not more:
            break
        head += more
    return head, cast(BinaryIO, _Replay(head, fh))


class _ByRead1:
    """``read`` and ``seekable`` for a stream that reads with ``read1``."""

    def read1(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def read(self, size: int = -1) -> bytes:
        parts = []
        left = size if size >= 0 else 1 << 62
        while left > 0:
            data = self.read1(min(left, 1 << 20))
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def seekable(self) -> bool:
        return False


class _Replay(_ByRead1):
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


def zstd_module() -> Any:
    """The standard library's zstd module (Python 3.14+), else its backport (the ``zstd`` extra); ImportError if
    neither is there."""
    import importlib

    for module in ("compression.zstd", "backports.zstd"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise ImportError("no zstd module: " + ZSTD_MISSING)


def _zstd_decompressor(name: str) -> Any:
    try:
        return zstd_module().ZstdDecompressor()
    except ImportError:
        raise DecompressError(f"input {name} is zstd-compressed, which needs {ZSTD_MISSING}") from None


def _decompressor(name: str, kind: str) -> Any:
    if kind == "gzip":
        return zlib_module().decompressobj(31)
    if kind == "bz2":
        import bz2

        return bz2.BZ2Decompressor()
    if kind == "xz":
        import lzma

        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    return _zstd_decompressor(name)


def zlib_module() -> Any:
    """zlib-ng's drop-in zlib when it is installed (the ``zlib-ng`` extra: gzip inflates about 1.7 times as fast), else
    the standard library's."""
    try:
        from zlib_ng import zlib_ng

        return zlib_ng
    except ImportError:
        import zlib

        return zlib


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    import zlib

    errors: list[type[BaseException]] = [zlib.error, zlib_module().error, OSError, EOFError, ValueError]
    try:
        import lzma

        errors.append(lzma.LZMAError)
    except ImportError:  # pragma: no cover - a Python built without lzma
        pass
    try:
        errors.append(zstd_module().ZstdError)  # a wrong frame checksum, damaged frame data
    except ImportError:
        pass
    return tuple(errors)


class Decompressing(_ByRead1):
    """The decompressed bytes of a gzip, bz2, xz or zstd stream, ``read1(n)`` at a time (at most ``n`` bytes each),
    as the compressed bytes arrive; concatenated members (``cat a.gz b.gz``) are one stream, as gzip reads them."""

    def __init__(self, name: str, kind: str, fh: BinaryIO) -> None:
        self.name = name
        self.kind = kind
        self._fh = fh
        self._read = getattr(fh, "read1", None) or fh.read
        self._zlib = kind == "gzip"
        self._dec: Any = None
        self._buf = b""  # compressed bytes not yet given to a decompressor
        self._members = 0
        self._done = False
        self._errors = _corrupt_errors()

    def _raw(self) -> bytes:
        return self._read(RAW_READ) or b""

    def _start(self) -> bool:
        """Start the next member; False at the clean end of the input."""
        magic = MAGIC[self.kind]
        while True:
            if self._members:
                self._buf = self._buf.lstrip(b"\x00")  # gzip and xz allow zero padding after a member
            if len(self._buf) >= len(magic) or (self._buf and not magic.startswith(self._buf)):
                break
            more = self._raw()
            if not more:
                if not self._buf:
                    return False
                break
            self._buf += more
        if not self._buf.startswith(magic):
            raise DecompressError(
                f"input {self.name} has data after the end of its {self.kind} stream that is not {self.kind} "
                f"({describe(self._buf)})"
            )
        self._dec = _decompressor(self.name, self.kind)
        self._members += 1
        return True

    def read1(self, size: int = -1) -> bytes:
        if size <= 0:
            size = RAW_READ * 4
        while not self._done:
            if self._dec is None and not self._start():
                self._done = True
                break
            dec = self._dec
            try:
                if self._zlib:
                    data = self._buf or self._raw()
                    if not data:
                        raise self._truncated()
                    out = dec.decompress(data, size)
                    self._buf = dec.unconsumed_tail
                else:
                    data = self._buf
                    if not data and dec.needs_input:
                        data = self._raw()
                        if not data:
                            raise self._truncated()
                    out = dec.decompress(data, size)
                    self._buf = b""
            except self._errors as exc:
                raise DecompressError(f"input {self.name} is a damaged {self.kind} file: {_reason(exc)}") from None
            if dec.eof:
                self._buf = dec.unused_data  # zlib leaves the same bytes in unconsumed_tail too
                self._dec = None
            if out:
                return out
        return b""

    def _truncated(self) -> DecompressError:
        return DecompressError(f"input {self.name} is a {self.kind} file that ends early (truncated?)")

    def close(self) -> None:
        pass  # the input's owner closes it


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # zlib's messages start "Error -3 while decompressing data: ..."; the part after the colon says what.
    return text.split(": ", 1)[1] if text.startswith("Error ") and ": " in text else text


def csv_members(names: list[str]) -> list[str]:
    """The members of a zip that are read: the only one, or those named *.csv (not folders or macOS metadata), in
    name order."""
    files = [n for n in names if not n.endswith("/")]
    if len(files) == 1:
        return files
    return sorted(n for n in files if n.lower().endswith(".csv") and not n.startswith("__MACOSX/") and not _hidden(n))


def _hidden(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith(".")


def _zip_members(name: str, fh: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
    import zipfile

    own = None
    if not fh.seekable():  # a zip's directory is at its end: a pipe is kept in a temporary file first
        import shutil
        import tempfile

        own = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        shutil.copyfileobj(fh, own, 1 << 20)
        own.seek(0)
        fh = own
    try:
        try:
            archive = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise DecompressError(
                f"input {name} is a zip file that ends early or is damaged (truncated?): its list of members is missing"
            ) from None
        infos = {i.filename: i for i in archive.infolist()}
        chosen = csv_members(list(infos))
        if not chosen:
            held = [n for n in infos if not n.endswith("/")]
            shown = ", ".join(n[:40] for n in held[:3]) + (", ..." if len(held) > 3 else "")
            raise DecompressError(f"input {name} is a zip without CSV members ({shown or 'it is empty'})")
        for member in chosen:
            label = f"{name}:{member}"
            if infos[member].flag_bits & 0x1:
                raise DecompressError(f"input {label} is encrypted: decrypt it first")
            try:
                inner = archive.open(infos[member])
            except (NotImplementedError, zipfile.BadZipFile, OSError) as exc:
                raise DecompressError(f"input {label} cannot be read: {_reason(exc)}") from None
            try:
                yield label, cast(BinaryIO, Ahead(_Member(label, inner)))
            finally:
                inner.close()
    finally:
        if own is not None:
            own.close()


class _Member:
    """A zip member's bytes, with its read errors (damaged data, a wrong checksum, a cut-off member) said in words."""

    def __init__(self, label: str, inner: Any) -> None:
        self.label = label
        self._inner = inner
        self._errors = (*_corrupt_errors(), _bad_zip())

    def _call(self, fn: Callable[[int], bytes], size: int) -> bytes:
        try:
            return fn(size)
        except EOFError:
            raise DecompressError(f"input {self.label} is a zip member that ends early (truncated?)") from None
        except self._errors as exc:
            raise DecompressError(f"input {self.label} is a damaged zip member: {_reason(exc)}") from None

    def read1(self, size: int = -1) -> bytes:
        return self._call(self._inner.read1, size)

    def read(self, size: int = -1) -> bytes:
        return self._call(self._inner.read, size)

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._inner.close()


def _bad_zip() -> type[BaseException]:
    import zipfile

    return zipfile.BadZipFile


SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}


def compressed_file(path: str) -> str | None:
    """The compression of a local file, by its first bytes, else by its name (a file a feed has yet to write)."""
    import os
    import stat

    kind = None
    try:
        if stat.S_ISREG(os.stat(path).st_mode):  # a FIFO's open would wait for its writer
            with open(path, "rb") as fh:
                kind = kind_of(fh.read(8))
    except OSError:
        pass
    if kind is None:
        for suffix, name in SUFFIXES.items():
            if path.lower().endswith(suffix):
                return name
    return kind


class Ahead(_ByRead1):
    """Decompresses in a thread of its own, a few reads ahead of the reader: zlib, bz2, lzma and zstd let go of the
    GIL while they work, so on a machine with a free core decompressing overlaps parsing. Errors reach the reader in
    order, as they would have without the thread."""

    DEPTH = 4  # reads held ready: with 256 KiB reads, about a MiB
    READ = 256 << 10

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        self._stream = stream
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self.DEPTH)
        self._stop = threading.Event()
        self._piece = b""
        self._at = 0
        self._done = False
        self._thread = threading.Thread(target=self._run, name="mlops-stream-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: bytes | BaseException
        while not self._stop.is_set():
            try:
                item = self._stream.read1(self.READ)
            except BaseException as exc:  # handed to the reader, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except Exception:  # queue.Full: the reader is busy; look again whether it is still wanted
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read1(self, size: int = -1) -> bytes:
        if self._at >= len(self._piece):
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._piece, self._at = item, 0
        if self._at == 0 and (size < 0 or size >= len(self._piece)):
            self._at = len(self._piece)
            return self._piece
        end = len(self._piece) if size < 0 else self._at + size
        out = self._piece[self._at : end]
        self._at += len(out)
        return out

    def close(self) -> None:
        """Stop the thread (it ends after the read in hand) and close the stream it reads."""
        self._stop.set()
        self._thread.join(5)  # a pipe's read may block for longer: the thread is a daemon, left to its read
        if not self._thread.is_alive():
            self._stream.close()
