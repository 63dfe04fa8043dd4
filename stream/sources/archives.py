"""A zip as the streams it holds: its CSV members in name order, with damage said in words.

The list of members at the zip's end is walked entry by entry, never held whole: the standard library's ZipFile keeps
an object per member (68 MB for a zip of 100,000 members), here memory stays flat unless that list is out of name
order, when only the members to read are kept. Each member is decompressed by the standard library's member reader.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from stream.sources.decoders import corrupt_errors, reason
from stream.sources.magic import DecompressError

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# The records of a zip (APPNOTE.TXT 4.3), as the standard library's zipfile spells them.
_END = struct.Struct("<4s4H2LH")  # signature, disks, entries on this disk and in all, list size and offset, comment
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")  # ..., entries on this disk and in all, list size and offset
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # one member in the list
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # the header before a member's data
_READ = 64 << 10  # bytes of the list of members read at a time
_COMPRESSED_CSV = (".csv.gz", ".csv.gzip", ".csv.bz2", ".csv.xz", ".csv.zst")


class Entry:
    """One member as the zip's list of members describes it."""

    __slots__ = ("crc", "flags", "method", "name", "offset", "size", "stored_size")

    def __init__(self, name: str, fields: tuple[Any, ...], offset: int) -> None:
        self.name = name
        self.flags, self.method, self.crc = fields[5], fields[6], fields[9]
        self.stored_size, self.size = fields[10], fields[11]
        self.offset = offset  # of its local header, from the start of the file


def is_csv_member(name: str) -> bool:
    """Whether a zip of several members reads this one: named *.csv (or a compressed *.csv), not a folder, macOS
    metadata or a hidden file."""
    low = name.lower()
    return (
        (low.endswith(".csv") or low.endswith(_COMPRESSED_CSV))
        and not name.startswith("__MACOSX/")
        and not name.rsplit("/", 1)[-1].startswith(".")
    )


def zip_members(name: str, fh: BinaryIO) -> Iterator[tuple[str, Member]]:
    """The members of the zip ``fh`` that are read, in name order, as (``archive:member``, its stream): the only
    one, or those ``is_csv_member`` names."""
    own = None
    if not fh.seekable():  # a zip's directory is at its end: a pipe is kept in a temporary file first
        import shutil
        import tempfile

        own = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        shutil.copyfileobj(fh, own, 1 << 20)
        own.seek(0)
        fh = own
    try:
        for entry in _chosen(name, _Directory(name, fh)):
            label = f"{name}:{entry.name}"
            member = Member(label, _open(fh, entry, label), entry.stored_size)
            try:
                yield label, member
            finally:
                member.close()
    finally:
        if own is not None:
            own.close()


def _chosen(name: str, directory: _Directory) -> Iterator[Entry]:
    """The entries read: the only file, else the CSV members in name order (a second walk of the list gives them
    without holding them when it is in name order, as archivers write it)."""
    files, csv, ordered, last = 0, 0, True, ""
    held: list[Entry] = []
    for entry in directory.entries():
        if entry.name.endswith("/"):
            continue
        files += 1
        if len(held) < 4:
            held.append(entry)
        if is_csv_member(entry.name):
            csv += 1
            ordered = ordered and entry.name >= last
            last = entry.name
    if files == 1:
        return iter(held)
    if not csv:
        shown = ", ".join(e.name[:40] for e in held[:3]) + (", ..." if files > 3 else "")
        raise DecompressError(f"input {name} is a zip without CSV members ({shown or 'it is empty'})")
    picked = (e for e in directory.entries() if not e.name.endswith("/") and is_csv_member(e.name))
    return picked if ordered else iter(sorted(picked, key=lambda e: e.name))


class _Directory:
    """A zip's list of members, found from its end record and read entry by entry."""

    def __init__(self, name: str, fh: BinaryIO) -> None:
        self.name = name
        self.fh = fh
        end = fh.seek(0, 2)
        tail_at = max(end - _END.size - 0xFFFF, 0)  # the end record, then a comment of up to 64 KiB
        fh.seek(tail_at)
        tail = fh.read(end - tail_at)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + _END.size > len(tail):
            raise self.damaged()
        fields = _END.unpack_from(tail, at)
        self.size, offset, record = fields[5], fields[6], tail_at + at
        locator = at - _END64_LOCATOR.size
        if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":  # a zip64 end record before it
            fh.seek(tail_at + locator - _END64.size)
            raw = fh.read(_END64.size)
            if len(raw) == _END64.size and raw[:4] == b"PK\x06\x06":
                big = _END64.unpack(raw)
                self.size, offset, record = big[8], big[9], tail_at + locator - _END64.size
        # Bytes before the zip (a self-extracting archive, a zip appended to a file) shift every offset in it.
        self.shift = record - self.size - offset
        if self.shift < 0:
            raise self.damaged()
        self.start = offset + self.shift

    def damaged(self) -> DecompressError:
        return DecompressError(
            f"input {self.name} is a zip file that ends early or is damaged (truncated?): its list of members is "
            "missing"
        )

    def entries(self) -> Iterator[Entry]:
        """The members in the order of the list, a piece of it in memory at a time."""
        fh, unpack, fixed = self.fh, _ENTRY.unpack_from, _ENTRY.size
        buf, at, read = b"", 0, 0  # the piece in memory, where the next entry starts in it, bytes of the list read
        while read < self.size or at < len(buf):
            fields = None
            if at + fixed <= len(buf):
                fields = unpack(buf, at)
                end = at + fixed + fields[12] + fields[13] + fields[14]
            if fields is None or end > len(buf):  # the entry goes on past the piece: read on from its start
                fh.seek(self.start + read)  # members are read in between
                more = fh.read(min(_READ, self.size - read))
                read += len(more)
                buf, at = buf[at:] + more, 0
                if not more:
                    raise self.damaged()
                continue
            if fields[0] != b"PK\x01\x02":
                raise self.damaged()
            named = at + fixed + fields[12]
            name = buf[at + fixed : named].decode("utf-8" if fields[5] & 0x800 else "cp437")
            fields, offset = _zip64(fields, buf[named : named + fields[13]])
            at = end
            yield Entry(name, fields, offset + self.shift)


def _zip64(fields: tuple[Any, ...], extra: bytes) -> tuple[tuple[Any, ...], int]:
    """The entry's sizes and offset, from its zip64 extra field where the 32-bit ones are full (0xFFFFFFFF)."""
    offset = fields[18]
    if 0xFFFFFFFF not in (fields[10], fields[11], offset):
        return fields, offset
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<2H", extra, at)
        if kind == 1:
            values = list(struct.unpack_from(f"<{size // 8}Q", extra, at + 4))
            new = list(fields)
            for i in (11, 10):  # the original size comes first, then the compressed size
                if fields[i] == 0xFFFFFFFF and values:
                    new[i] = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            return tuple(new), offset
        at += 4 + size
    return fields, offset


def _open(fh: BinaryIO, entry: Entry, label: str) -> Any:
    """The member's decompressed bytes, through the standard library's reader of one member (which checks its CRC)."""
    import zipfile

    if entry.flags & 0x1:
        raise DecompressError(f"input {label} is encrypted: decrypt it first")
    fh.seek(entry.offset)
    header = fh.read(_LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise DecompressError(f"input {label} cannot be read: Bad magic number for file header")
    fields = _LOCAL.unpack(header)
    fh.seek(entry.offset + _LOCAL.size + fields[10] + fields[11])
    info = zipfile.ZipInfo(entry.name)
    info.flag_bits, info.compress_type, info.CRC = entry.flags, entry.method, entry.crc
    info.compress_size, info.file_size, info.header_offset = entry.stored_size, entry.size, entry.offset
    try:
        return zipfile.ZipExtFile(fh, "r", info)
    except (NotImplementedError, zipfile.BadZipFile, OSError) as exc:
        raise DecompressError(f"input {label} cannot be read: {reason(exc)}") from None


class Member:
    """A zip member's bytes, with its read errors (damaged data, a wrong checksum, a cut-off member) said in words;
    ``stored_size``: its size in the zip."""

    def __init__(self, label: str, inner: Any, stored_size: int) -> None:
        import zipfile

        self.label = label
        self.stored_size = stored_size
        self._inner = inner
        self._errors: tuple[type[BaseException], ...] = (*corrupt_errors(), zipfile.BadZipFile)

    def _call(self, fn: Callable[[int], bytes], size: int) -> bytes:
        try:
            return fn(size)
        except EOFError:
            raise DecompressError(f"input {self.label} is a zip member that ends early (truncated?)") from None
        except self._errors as exc:
            raise DecompressError(f"input {self.label} is a damaged zip member: {reason(exc)}") from None

    def read1(self, size: int = -1) -> bytes:
        return self._call(self._inner.read1, size)

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer only at the end of the member), left to be read again."""
        return self._call(self._inner.peek, size)[:size]

    def read(self, size: int = -1) -> bytes:
        return self._call(self._inner.read, size)

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._inner.close()
