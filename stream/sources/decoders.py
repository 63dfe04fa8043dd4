"""Stream codecs: gzip, bz2, xz and zstd decompressed as the compressed bytes arrive, with damage said in words."""

from __future__ import annotations

from stream.sources.magic import MAGIC, DecompressError, describe

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# Compressed bytes per read: big enough that a read costs little next to decompressing it, small enough to stay
# far below the memory the rest of a run uses.
RAW_READ = 64 << 10
ZSTD_MISSING = "pip install '.[zstd]' in the mlops-stream checkout (the standard library has zstd from Python 3.14)"


class ByRead1:
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


_CORRUPT: list[tuple[type[BaseException], ...]] = []  # found once: a failed import costs a search of sys.path


def corrupt_errors() -> tuple[type[BaseException], ...]:
    """The exceptions the codecs raise for damaged data."""
    if _CORRUPT:
        return _CORRUPT[0]
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
    _CORRUPT.append(tuple(errors))
    return _CORRUPT[0]


class Decompressing(ByRead1):
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
        self._errors = corrupt_errors()

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
                raise DecompressError(f"input {self.name} is a damaged {self.kind} file: {reason(exc)}") from None
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


def reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # zlib's messages start "Error -3 while decompressing data: ..."; the part after the colon says what.
    return text.split(": ", 1)[1] if text.startswith("Error ") and ": " in text else text
