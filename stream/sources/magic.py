"""What an input is, told by its first bytes: one of the compressions this reads, a format people mistake for CSV,
or text."""

from __future__ import annotations

from stream.errors import SourceError

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
# Other formats people mistake for CSV, named in the error instead of a row of hex alone.
_OTHER = (
    (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"), (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow IPC file"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\x04\x22\x4d\x18", "an LZ4 frame"), (b"\xd0\xcf\x11\xe0", "an old Office document (xls?)"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"), (b"\x7fELF", "a program (ELF)"),
)  # fmt: skip
_OTHER_MAGIC = tuple(magic for magic, _ in _OTHER)
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


def maybe_magic(head: bytes) -> bool:
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
    if head.startswith(_OTHER_MAGIC):
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
