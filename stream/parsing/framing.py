"""Line framing: bytes to lines (over-long lines, records wrapped whole in quotes) and the bounded excerpts of input
that messages quote."""

from __future__ import annotations

from typing import Any

from stream import text as texts
from stream.errors import MlopsStreamError

# One OHLCV record is about a hundred bytes; anything this long is not a record of such a file, and holding it
# whole would let one missing newline eat memory.
MAX_LINE_BYTES = 64 * 1024
# Characters of an offending line or value shown in an error message.
SHOWN = texts.EXCERPT


class InputError(MlopsStreamError):
    """The input cannot be processed at all (no header, missing column, ...); the message says what to do."""


def excerpt(text: str, limit: int = SHOWN) -> str:
    """A line's text quoted for a message (its line ending aside): whole when short, else its first ``limit``
    characters and its full size."""
    return texts.excerpt(text.rstrip("\r\n"), limit)


def show_line(text: str) -> str:
    """An offending line as a bad-row message shows it: quoted, cut to ``SHOWN`` characters."""
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def dialect(delimiter: str) -> dict[str, Any]:
    """The csv module's settings for a file with this delimiter: spaces after a delimiter are not part of a field,
    so `1, "a,b"` is two fields."""
    return {"skipinitialspace": True, "delimiter": delimiter}


def plain_line(line: str) -> bool:
    """Whether the csv module would split ``line`` at its delimiters and nowhere else: no quotes, no line breaks (and
    no NUL, which the csv module of Python 3.10 refuses)."""
    return '"' not in line and "\r" not in line and "\x00" not in line


def unwrap(line: str, delimiter: str) -> str | None:
    """The inside of a record wrapped whole in double quotes (``"a,b,c"``, or ``"a<TAB>b"``, as some exporters write
    every line): a line, spaces and a CR around it aside, that is one quoted field holding the delimiter and no other
    quote. None for any other line. This is the one rule; ``unwrapped_chunk`` applies it to a chunk at once."""
    s = line.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"' and s.count('"') == 2 and delimiter in s:
        return s[1:-1]
    return None


_NOT_QUOTE_OR_NEWLINE = bytes(b for b in range(256) if b not in b'"\n')


def unwrapped_chunk(data: bytes, text: str, n: int) -> str | None:
    """The ``n`` lines of ``text`` (``data`` decoded) without their quotes and final newline, when each line is one
    record wrapped whole in double quotes, with its quotes first and last (a CR aside) and no other quote; else None.
    Lines that ``unwrap`` would refuse (no delimiter inside) fail the plain chunk's delimiter count instead, so both
    give the same rows."""
    if (
        text[:1] == '"'
        and text.count('\n"') == n - 1  # every line starts with a quote
        and text.count('"\n') + text.count('"\r\n') == n  # and ends with one
        and data.translate(None, _NOT_QUOTE_OR_NEWLINE) == b'""\n' * n  # and has no other
    ):
        return text[:-1].replace('"', "")
    return None


def spans_lines(line: str, delimiter: str) -> bool:
    """True when the csv module, reading ``line``, would still be inside a quoted field at its end.

    Counting quotes is not enough: a quote inside an unquoted field is a literal character to the csv module.
    """
    import csv

    rdr = csv.reader([line, ""], **dialect(delimiter))
    try:
        next(rdr, None)
    except csv.Error:
        return False  # a malformed line that ends where it should: reported as such by the row parser
    return rdr.line_num > 1
