"""Line framing: pushed bytes cut into complete lines (the partial line, over-long lines, undecodable ones, byte
offsets and line numbers), records wrapped whole in quotes, and the bounded excerpts of input that messages quote."""

from __future__ import annotations

from collections.abc import Callable

from stream import text as texts
from stream.core.batch import Batch
from stream.errors import MlopsStreamError

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any

# One OHLCV record is about a hundred bytes; anything this long is not a record of such a file, and holding it
# whole would let one missing newline eat memory.
MAX_LINE_BYTES = 64 * 1024
# Characters of an offending line or value shown in an error message.
SHOWN = texts.EXCERPT
# Why an over-long line is a bad row.
TOO_LONG = f"line is longer than {MAX_LINE_BYTES} bytes"


BOM = b"\xef\xbb\xbf"

# Lines of a chunk that cannot be read as text, by index: (kind, reason, the line's bytes); each reads as "".
Flagged = dict[int, tuple[str, str, bytes]]


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


class Framer:
    """Pushed bytes cut at line ends: each run of complete lines goes to ``take(data, first, final)`` (``first``: the
    number of its first line; ``final``: no line of this file follows, so nothing can wait for one), which returns
    their rows, or None to give the lines back until the next line has come (a first line that may be a title). The
    partial line after them waits for its newline; one that grows past ``MAX_LINE_BYTES`` goes to
    ``too_long(batch, line, its first bytes)`` and the rest of it is dropped as it comes.

    ``offset`` (bytes of the current file consumed through the last complete line) and ``line_no`` (its lines
    consumed) are read by the reader; they change only through the methods here."""

    __slots__ = ("_overlong", "_pending", "_take", "_too_long", "line_no", "offset")

    def __init__(
        self,
        take: Callable[[bytes, int, bool], Batch | None],
        too_long: Callable[[Batch, int, bytes], None],
    ) -> None:
        self._take = take
        self._too_long = too_long
        self.offset = 0
        self.line_no = 0
        self._pending = b""
        self._overlong = False  # dropping the rest of an over-long line

    @property
    def pending(self) -> bytes:
        """The bytes of a line whose newline has not arrived yet (with the lines held back before it)."""
        return self._pending

    @property
    def at_line_start(self) -> bool:
        """Whether the next byte pushed starts a line."""
        return not self._pending and not self._overlong

    def feed(self, data: bytes) -> Batch:
        """Take more bytes; return the rows of the lines they complete."""
        if self._overlong:
            cut = data.find(b"\n")
            if cut < 0:
                self.offset += len(data)
                return Batch(end_offset=self.offset)
            self.offset += cut + 1
            data = data[cut + 1 :]
            self._overlong = False
        buf = self._pending + data if self._pending else data
        cut = buf.rfind(b"\n") + 1
        rest = buf[cut:]
        batch = self._lines(buf[:cut]) if cut else Batch()
        if batch is None:  # given back: kept with the partial line, while that line can still come whole
            if len(rest) <= MAX_LINE_BYTES:
                self._pending = buf
                return Batch(end_offset=self.offset)
            batch = self._complete(buf[:cut], cut)  # the next line is over-long: the first cannot wait for it
        if len(rest) > MAX_LINE_BYTES:
            self.line_no += 1
            self._too_long(batch, self.line_no, rest[: SHOWN * 4])
            self._overlong = True
            self.offset += len(rest)
            rest = b""
        self._pending = rest
        batch.end_offset = self.offset
        return batch

    def finish(self, wait: bool) -> Batch:
        """The input is over: a last line without its newline is complete, unless ``wait`` (a followed file's last
        line may still be being written; it stays pending)."""
        batch = self._complete_pending() if self._pending and not wait else Batch()
        batch.end_offset = self.offset
        return batch

    def next_file(self, complete_partial: bool) -> Batch:
        """The current file is over and another begins: its partial line is complete (``complete_partial``) or
        dropped (cut short by a truncation); offsets and line numbers start again."""
        batch = Batch()
        if self._pending:
            if complete_partial:
                batch = self._complete_pending()
            else:
                self._pending = b""  # cut short by a truncation: dropped
        self._overlong = False
        self.line_no = 0
        self.offset = 0
        batch.end_offset = 0
        return batch

    def move_to(self, offset: int) -> None:
        """Go on from byte ``offset``, a line start of the current file; lines are counted from there."""
        self.line_no, self.offset = 0, offset

    def restore(self, offset: int, line_no: int) -> None:
        """Go on from a checkpoint: ``line_no`` lines of the file, through byte ``offset``, are consumed."""
        self.offset, self.line_no = offset, line_no
        self._pending = b""
        self._overlong = False

    def consumed(self, lines: int, nbytes: int) -> None:
        """``lines`` complete lines of ``nbytes`` bytes were read by another parser (the block path)."""
        self.line_no += lines
        self.offset += nbytes

    def _complete_pending(self) -> Batch:
        tail, self._pending = self._pending, b""
        return self._complete(tail if tail.endswith(b"\n") else tail + b"\n", len(tail))

    def _complete(self, data: bytes, count: int) -> Batch:
        batch = self._lines(data, count, final=True)
        assert batch is not None  # with no line to come, nothing waits for one
        return batch

    def _lines(self, data: bytes, count: int | None = None, final: bool = False) -> Batch | None:
        """``data``'s complete lines to ``take``, ``count`` bytes of the file (their length, less an added newline);
        lines given back are not counted."""
        first = self.line_no + 1
        counted = len(data) if count is None else count
        lines = data.count(b"\n")
        self.offset += counted
        self.line_no += lines
        batch = self._take(data, first, final)
        if batch is None:
            self.offset -= counted
            self.line_no -= lines
        return batch


def split_lines(data: bytes, text: str | None) -> tuple[list[str], Flagged]:
    """The complete lines ``data`` (``text`` when it decoded as UTF-8) as strings, with their line breaks' CRs; a
    line that is not UTF-8 reads as "" and is flagged."""
    if text is not None:
        lines = text.split("\n")
        lines.pop()  # data ends with a newline: the last piece is empty
        return lines, {}
    raw = data.split(b"\n")
    raw.pop()
    lines = []
    flagged: Flagged = {}
    for i, b in enumerate(raw):
        try:
            lines.append(b.decode("utf-8"))
        except UnicodeDecodeError as exc:
            flagged[i] = ("encoding", f"bytes that are not UTF-8 at column {exc.start + 1}", b)
            lines.append("")
    return lines, flagged


def flag_long(lines: list[str], flagged: Flagged, size: int) -> None:
    """Flag the lines longer than ``MAX_LINE_BYTES`` among ``lines`` (``size`` bytes in all), and read them as ""."""
    # A character is at most 4 bytes, so only a chunk with a line of over a quarter of the limit needs a look.
    if size > MAX_LINE_BYTES and max(map(len, lines), default=0) * 4 > MAX_LINE_BYTES:
        for i, ln in enumerate(lines):
            if len(ln) * 4 > MAX_LINE_BYTES and i not in flagged:
                b = ln.encode()
                if len(b) > MAX_LINE_BYTES:
                    flagged[i] = ("too_long", TOO_LONG, b)
                    lines[i] = ""
