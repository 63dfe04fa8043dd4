"""A zip as the text it holds: its CSV members in name order, each read as a stream, with damage said in words."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

from stream.sources.ahead import Ahead
from stream.sources.decoders import corrupt_errors, reason
from stream.sources.magic import DecompressError


def csv_members(names: list[str]) -> list[str]:
    """The members of a zip that are read: the only one, or those named *.csv (not folders or macOS metadata), in
    name order."""
    files = [n for n in names if not n.endswith("/")]
    if len(files) == 1:
        return files
    return sorted(n for n in files if n.lower().endswith(".csv") and not n.startswith("__MACOSX/") and not _hidden(n))


def _hidden(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith(".")


def zip_members(name: str, fh: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
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
                raise DecompressError(f"input {label} cannot be read: {reason(exc)}") from None
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
        self._errors = (*corrupt_errors(), _bad_zip())

    def _call(self, fn: Callable[[int], bytes], size: int) -> bytes:
        try:
            return fn(size)
        except EOFError:
            raise DecompressError(f"input {self.label} is a zip member that ends early (truncated?)") from None
        except self._errors as exc:
            raise DecompressError(f"input {self.label} is a damaged zip member: {reason(exc)}") from None

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
