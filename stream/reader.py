"""CSV bytes to exact close values: line framing, header and layout, real-export quirks, and the bad-row policy.

The reader is pushed bytes (``feed``), told where one file ends and another begins (``new_file``) and when the
input is over (``finish``); each call returns a Batch of the rows it completed. It knows nothing of windows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING, Any

from stream.errors import MlopsStreamError
from stream.exact import MAX_INT_DIGITS, MAX_SCALE, BadValue, parse_decimal
from stream.source import NewFile

if TYPE_CHECKING:  # the csv module loads only when a line needs it: a plain file's never do
    import csv

# One OHLCV record is about a hundred bytes; anything this long is not a record of such a file, and holding it
# whole would let one missing newline eat memory.
MAX_LINE_BYTES = 64 * 1024
# Bytes of an offending line shown in an error message.
SHOWN = 80
TIMESTAMP_COLUMN = "timestamp"
_FAST_DIGITS = min(MAX_SCALE, MAX_INT_DIGITS)
# Spaces after a comma are not part of a field, so `1, "a,b"` is two fields.
DIALECT: dict[str, Any] = {"skipinitialspace": True}


class InputError(MlopsStreamError):
    """The input cannot be processed at all (no header, missing column, ...); the message says what to do."""


class BadRow:
    """A data row that cannot be used: where it is (the file, when the run reads several), why, and what it looked
    like (shortened)."""

    __slots__ = ("file", "line", "reason", "text")

    def __init__(self, line: int, reason: str, text: str, file: str | None = None) -> None:
        self.line = line
        self.reason = reason
        self.text = text
        self.file = file

    def __repr__(self) -> str:
        where = f", file={self.file!r}" if self.file is not None else ""
        return f"BadRow(line={self.line}, reason={self.reason!r}, text={self.text!r}{where})"

    def _key(self) -> tuple[int, str, str, str | None]:
        return (self.line, self.reason, self.text, self.file)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadRow) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def describe(self) -> str:
        return f"{_where(self.file, self.line)}: {self.reason}: {self.text}"


def _where(file: str | None, line: int) -> str:
    return f"{file} line {line}" if file is not None else f"line {line}"


class BadRowError(InputError):
    def __init__(self, bad: BadRow) -> None:
        super().__init__(
            f"bad row at {bad.describe()} (fix the row, or run with --on-bad-row skip to leave such rows out)"
        )
        self.bad = bad


class Batch:
    """The rows completed by one push of bytes, as parallel lists (cheap to build, cheap to walk)."""

    # Plain slots, not a dataclass: dataclasses cost more import time than a 10,000-row run spends on its rows.
    __slots__ = ("closes", "end_offset", "keys", "scales", "skipped", "stamps", "units")

    def __init__(self, end_offset: int = 0) -> None:
        self.units: list[int] = []
        self.scales: list[int] = []
        self.closes: list[str] = []  # the close as written; kept only when asked for
        self.stamps: list[str] = []  # the timestamp column, when the input has one and text is kept
        self.keys: list[str] = []  # the key column of every row, in keyed runs
        self.skipped = 0
        self.end_offset = end_offset  # bytes of the current file consumed through the last complete line

    def __repr__(self) -> str:
        return f"Batch(rows={len(self.units)}, skipped={self.skipped}, end_offset={self.end_offset})"

    def __len__(self) -> int:
        return len(self.units)


class Layout:
    """What the header said: the columns, where the close, timestamp and key are, and how the file is written."""

    def __init__(
        self,
        columns: list[str],
        close_index: int,
        timestamp_index: int | None,
        quoted_lines: bool,
        bom: bool,
        header_line: int,
        key_index: int | None = None,
    ) -> None:
        self.columns = columns
        self.close_index = close_index
        self.timestamp_index = timestamp_index
        self.key_index = key_index
        self.quoted_lines = quoted_lines
        self.bom = bom
        self.header_line = header_line

    def describe(self) -> str:
        ts = self.columns[self.timestamp_index] if self.timestamp_index is not None else "none"
        return (
            f"{len(self.columns)} columns {self.columns}; close column {self.columns[self.close_index]!r} "
            f"(#{self.close_index + 1}); timestamp column {ts!r}; "
            + (f"key column {self.columns[self.key_index]!r}; " if self.key_index is not None else "")
            + f"whole-line quoted header: {self.quoted_lines}; BOM: {self.bom}"
        )


def _show(text: str) -> str:
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def _spans_lines(line: str) -> bool:
    """True when the csv module, reading ``line``, would still be inside a quoted field at its end.

    Counting quotes is not enough: a quote inside an unquoted field is a literal character to the csv module.
    """
    import csv

    rdr = csv.reader([line, ""], **DIALECT)
    try:
        next(rdr, None)
    except csv.Error:
        return False  # a malformed line that ends where it should: reported as such by the row parser
    return rdr.line_num > 1


def _numeric(text: str) -> bool:
    try:
        parse_decimal(text)
    except BadValue:
        return False
    return True


def _csv_reason(exc: csv.Error) -> str:
    """The csv module's complaint in words about the input (its own text suggests opening files differently)."""
    if "new-line" in str(exc):
        return "a carriage return inside an unquoted field"
    return str(exc)


_NOT_COMMA_OR_NEWLINE = bytes(b for b in range(256) if b not in b",\n")
_NOT_QUOTE_OR_NEWLINE = bytes(b for b in range(256) if b not in b'"\n')


def _unwrapped(data: bytes, text: str, n: int) -> str | None:
    """The ``n`` lines of ``text`` (``data`` decoded) without their quotes and final newline, when each line is
    one record wrapped whole in double quotes (``"a,b,c"`` then LF or CRLF, as some exporters write every line) and
    has no other quote; else None. The row loop unwraps such lines one by one to the same text (a CR before the
    newline aside, which Reader._plain reads as the csv module does)."""
    if (
        text[:1] == '"'
        and text.count('\n"') == n - 1  # every line starts with a quote
        and text.count('"\n') + text.count('"\r\n') == n  # and ends with one
        and data.translate(None, _NOT_QUOTE_OR_NEWLINE) == b'""\n' * n  # and has no other
    ):
        return text[:-1].replace('"', "")
    return None


def _column(fields: list[str], c: int, m: int) -> list[str]:
    """Column ``c`` of a plain chunk of lines of ``m`` commas each, split at its commas (see Reader._plain)."""
    if 0 < c < m:
        return fields[c::m]
    ends = fields[m : len(fields) - 1 : m]  # each the last field of one line, a newline, and the first of the next
    if c == 0:
        return [fields[0], *[f.partition("\n")[2] for f in ends]]
    return [*[f.partition("\n")[0].rstrip("\r") for f in ends], fields[-1].rstrip("\r")]


def _closes(scale: int, exact: bool) -> str:
    """A regular expression for closes, one per line: unsigned ASCII digits within the inline fast path's digit
    limit, with exactly ``scale`` decimals, or (not exact) at most that many, the dot optional."""
    one = f"[0-9]{{1,{_FAST_DIGITS - scale}}}"
    if not exact:
        one += rf"(?:\.[0-9]{{0,{scale}}})?"
    elif scale:
        one += rf"\.[0-9]{{{scale}}}"
    return f"{one}(?:\n{one})*"


def _one_scale(joined: str) -> tuple[str, int] | None:
    """The closes of a plain chunk (``joined``, one per line) as digits at one scale, and that scale: the most
    decimals any of them has, the others padded with zeros (``45219.5`` is 4521950 at scale 2, as exports that drop
    trailing zeros write it). None unless every close is unsigned ASCII digits with at most one dot, within the
    digit limit. The regular expressions are compiled once per run (re caches them)."""
    first = joined.partition("\n")[0]
    dot = first.find(".")
    scale = 0 if dot < 0 else len(first) - dot - 1
    if scale >= _FAST_DIGITS:
        return None
    if re.fullmatch(_closes(scale, exact=True), joined):  # the usual chunk: every close has the same decimals
        return joined.replace(".", ""), scale
    while scale < _FAST_DIGITS - 1 and re.search(rf"\.[0-9]{{{scale + 1}}}", joined):
        scale += 1
    if not re.fullmatch(_closes(scale, exact=False), joined):
        return None
    if joined.count(".") < joined.count("\n") + 1:  # closes without a dot: whole numbers
        joined = re.sub(r"^([0-9]+)$", rf"\g<1>{'0' * scale}", joined, flags=re.M)
    for d in range(scale):  # closes with d decimals
        joined = re.sub(rf"\.([0-9]{{{d}}})$", rf"\g<1>{'0' * (scale - d)}", joined, flags=re.M)
    return joined.replace(".", ""), scale


def _plain_line(line: str) -> bool:
    """Whether the csv module would split ``line`` at its commas and nowhere else: no quotes, no line breaks (and no
    NUL, which the csv module of Python 3.10 refuses)."""
    return '"' not in line and "\r" not in line and "\x00" not in line


class _NotCsv(ValueError):
    """A line the csv module cannot read; the message says why, in words about the input."""


def _record(line: str) -> list[str]:
    """The csv module's fields of one line; raises csv.Error."""
    import csv

    return next(csv.reader([line]), [])


def _wrapped(line: str) -> bool:
    """Whether ``line`` is one plain record wrapped whole in double quotes (``"a,b,c"``), with no other quote."""
    return len(line) >= 2 and line[0] == line[-1] == '"' and line.count('"') == 2 and _plain_line(line[1:-1])


def _fields(line: str) -> list[str]:
    """Parse one line on its own (header, unusual rows): csv fields, with a whole-line quoted record unwrapped.
    Raises _NotCsv."""
    if _plain_line(line):
        return line.split(",") if line else []
    if _wrapped(line):  # the csv module would give its inside as one field, then split that at its commas
        return line[1:-1].split(",")
    import csv

    try:
        rec = _record(line)
        if len(rec) == 1 and "," in rec[0]:
            rec = _record(rec[0])
    except csv.Error as exc:
        raise _NotCsv(_csv_reason(exc)) from None
    return rec


class Reader:
    """Turns pushed bytes into Batches of exact close values; see the module docstring."""

    def __init__(
        self,
        column: str = "close",
        on_bad_row: str = "fail",
        report: Callable[[BadRow], None] | None = None,
        keep_text: bool = False,
        final_line_needs_newline: bool = False,
        key: str | None = None,
        file: str | None = None,
    ) -> None:
        self.column = column
        self.key = key  # rows are grouped by this column's value (Batch.keys); None: one series
        self.file = file  # the current file's name, for messages when a run reads several files
        self.skip = on_bad_row == "skip"
        self.report = report or (lambda bad: None)
        self.keep_text = keep_text
        # In follow mode a line without its newline may still be being written; in batch mode EOF completes it.
        self.final_line_needs_newline = final_line_needs_newline
        self.layout: Layout | None = None
        self.line_no = 0  # lines of the current file consumed so far
        self.offset = 0  # bytes of the current file consumed through the last complete line
        self.at_file_start = True
        self.header_text: str | None = None
        self._pending = b""
        self._overlong = False  # discarding the rest of an over-long line
        self._bom = False

    # ---- pushing bytes -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> Batch:
        """Take more bytes; return the rows whose lines are now complete."""
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
        batch = self._lines(buf[:cut]) if cut else Batch()
        rest = buf[cut:]
        if len(rest) > MAX_LINE_BYTES:
            self.line_no += 1
            self._bad(batch, self.line_no, f"line is longer than {MAX_LINE_BYTES} bytes", rest[: SHOWN * 4])
            self._overlong = True
            self.offset += len(rest)
            rest = b""
        self._pending = rest
        batch.end_offset = self.offset
        return batch

    def finish(self) -> Batch:
        """The input is over: a last line without a newline is complete (unless following; then it is kept)."""
        if self.final_line_needs_newline or not self._pending:
            return Batch(end_offset=self.offset)
        tail, self._pending = self._pending, b""
        batch = self._lines(tail + b"\n", count_bytes=len(tail))
        batch.end_offset = self.offset
        return batch

    def new_file(self, complete_partial: bool = True, file: str | None = None) -> Batch:
        """The current file is over and another begins (rotation, truncation, the next input): a header may follow.

        A held partial line is complete when its file will not grow any more (the next input, a rotated file); after
        a truncation it was cut short, so the caller passes ``complete_partial=False`` and the line is dropped.
        ``file`` names the next file in messages (runs over several inputs).
        """
        batch = Batch()
        if self._pending:
            tail, self._pending = self._pending, b""
            if complete_partial:
                batch = self._lines(tail + b"\n", count_bytes=len(tail))
        if file is not None:
            self.file = file
        self._overlong = False
        self.line_no = 0
        self.offset = 0
        self.at_file_start = True
        batch.end_offset = 0
        return batch

    def state(self) -> dict[str, Any]:
        """Where the reader stands in the current file, for a checkpoint (valid between pushes of bytes)."""
        return {
            "offset": self.offset,
            "line": self.line_no,
            "header": self.header_text,
            "at_file_start": self.at_file_start,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state()``: the layout comes back from the header text, the bytes from ``offset`` on."""
        self.offset = int(state["offset"])
        self.line_no = int(state["line"])
        self.at_file_start = bool(state["at_file_start"])
        self._pending = b""
        self._overlong = False
        header = state["header"]
        if header is not None:
            self.header_text = header
            self.layout = self._layout([c.strip() for c in _fields(header)], header, 1)

    @property
    def pending(self) -> bytes:
        """The bytes of a line whose newline has not arrived yet."""
        return self._pending

    @property
    def at_line_start(self) -> bool:
        """True when the next byte fed starts a line of a file whose header has been read."""
        return not self._pending and not self._overlong and not self.at_file_start and self.layout is not None

    def consumed(self, lines: int, nbytes: int) -> None:
        """Account for complete lines another parser (the block path) turned into rows, so line numbers carry on."""
        self.line_no += lines
        self.offset += nbytes

    def rows(self, chunks: Iterable[bytes | NewFile]) -> Iterator[Batch]:
        """Generator form for a byte stream: feed every chunk (a NewFile marker starts the next file), then finish."""
        for chunk in chunks:
            batch = self.new_file(file=chunk.name) if isinstance(chunk, NewFile) else self.feed(chunk)
            if batch.units or batch.skipped:
                yield batch
        last = self.finish()
        if last.units or last.skipped:
            yield last

    # ---- lines to rows ------------------------------------------------------------------------------------------

    def _lines(self, data: bytes, count_bytes: int | None = None) -> Batch:
        batch = Batch()
        first = self.line_no + 1
        self.offset += len(data) if count_bytes is None else count_bytes
        if self.at_file_start and data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
            self._bom = True
        else:
            self._bom = False
        flagged: dict[int, tuple[str, bytes]] = {}
        try:
            text = data.decode("utf-8")
            has_quotes = '"' in text
            if not self.at_file_start and self.key is None and len(data) <= MAX_LINE_BYTES:
                # The usual chunk (no line in it can be over-long): read it whole, not even split into lines, when
                # it is plain, or plain once each line's wrapping quotes are gone.
                n = text.count("\n")
                body = _unwrapped(data, text, n) if has_quotes else text[:-1]
                if body is not None and self._plain(body, n, batch):
                    self.line_no += n
                    return batch
            lines = text.split("\n")
            lines.pop()  # data ends with a newline: the last piece is empty
        except UnicodeDecodeError:
            raw = data.split(b"\n")
            raw.pop()
            lines = []
            for i, b in enumerate(raw):
                try:
                    lines.append(b.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    flagged[i] = (f"bytes that are not UTF-8 at column {exc.start + 1}", b)
                    lines.append("")
            has_quotes = any('"' in ln for ln in lines)
        self.line_no += len(lines)
        if self.at_file_start:
            start = self._header(lines, first, flagged)
            if start is None:
                return batch
        else:
            start = 0
        if start:
            lines = lines[start:]
            flagged = {i - start: v for i, v in flagged.items() if i >= start}
            first += start
        # A character is at most 4 bytes, so only a chunk with a line of over a quarter of the limit needs a look.
        if len(data) > MAX_LINE_BYTES and max(map(len, lines), default=0) * 4 > MAX_LINE_BYTES:
            for i, ln in enumerate(lines):
                if len(ln) * 4 > MAX_LINE_BYTES and i not in flagged:
                    b = ln.encode()
                    if len(b) > MAX_LINE_BYTES:
                        flagged[i] = (f"line is longer than {MAX_LINE_BYTES} bytes", b)
                        lines[i] = ""
        ncols = len(self.layout.columns) if self.layout else 0
        plain = not has_quotes
        if has_quotes:
            lines, plain = self._unquote(lines, flagged, ncols)
        if not (plain and not flagged and self.key is None and self._plain("\n".join(lines), len(lines), batch)):
            self._parse(lines, first, flagged, batch)
        return batch

    def _unquote(self, lines: list[str], flagged: dict[int, tuple[str, bytes]], ncols: int) -> tuple[list[str], bool]:
        """Unwrap whole-line quoted records and flag lines whose quotes do not close on the same line; say whether
        the lines are quote-free now (every quoted line was a wrapped record)."""
        out = []
        plain = True
        for i, ln in enumerate(lines):
            if '"' in ln:
                if ncols > 1 and ln.count('"') == 2:
                    s = ln.strip()
                    if s[:1] == '"' and s[-1:] == '"' and "," in s:
                        out.append(s[1:-1])
                        continue
                plain = False
                if _spans_lines(ln):
                    flagged[i] = ("a quoted field is not closed on this line", ln.encode())
                    ln = ""
            out.append(ln)
        return out, plain

    def _plain(self, body: str, n: int, batch: Batch) -> bool:
        """Read ``n`` plain lines (``body``, without its final newline) with a few whole-chunk string operations
        instead of a loop over rows. The caller has made sure that no line is over-long.

        It applies when no line has a quote, a stray carriage return or a NUL, every line has exactly the header's
        field count, and every close is unsigned digits with at most one dot (``42005.96``, ``45219.5``): what
        nearly every chunk of a real export is. Then the csv module would split each line at its commas, so
        splitting the joined chunk at its commas gives the same fields, and the closes convert in one pass, at the
        chunk's largest scale (the same values; the engine works at the largest scale it has seen anyway).
        Anything else returns False having added nothing, and the row loop reads the chunk (with line numbers for
        its bad rows, which a plain chunk has none of).
        """
        assert self.layout is not None
        m = len(self.layout.columns) - 1  # commas per line
        if not n or not m:
            return False
        if "\x00" in body or ("\r" in body and body.count("\r") != body.count("\r\n") + body.endswith("\r")):
            return False
        # Every line holds exactly m commas when the chunk's commas and newlines, in order, are m commas and a
        # newline, n times over (no other UTF-8 byte is a comma's or a newline's).
        if body.encode().translate(None, _NOT_COMMA_OR_NEWLINE) != (b"," * m + b"\n") * (n - 1) + b"," * m:
            return False
        fields = body.split(",")
        closes = _column(fields, self.layout.close_index, m)
        found = _one_scale("\n".join(closes))
        if found is None:
            return False
        digits, scale = found
        batch.units.extend(map(int, digits.split("\n")))
        batch.scales.extend(repeat(scale, n))
        if self.keep_text:
            batch.closes.extend(closes)
            ti = self.layout.timestamp_index
            if ti is not None:
                batch.stamps.extend([s.strip() for s in _column(fields, ti, m)])
        return True

    def _header(self, lines: list[str], first: int, flagged: dict[int, tuple[str, bytes]]) -> int | None:
        """Find the header among the first lines of a file; return the index of the first data line."""
        for i, ln in enumerate(lines):
            if i in flagged:
                # An undecodable line reads as "" but is not blank: it is the header, or in a later file a bad row.
                if self.layout is None:
                    reason, raw = flagged[i]
                    shown = _show(raw[: SHOWN * 4].decode("utf-8", "replace"))
                    raise InputError(f"the header ({_where(self.file, first + i)}) cannot be read: {reason}: {shown}")
                self.at_file_start = False
                return i
            if not ln.strip():
                continue
            self.at_file_start = False
            stripped = ln.lstrip("\ufeff").strip()
            try:
                names = [c.strip() for c in _fields(stripped)]
            except _NotCsv as exc:
                if self.layout is not None:
                    return i  # a later file's first line: an ordinary bad row
                raise InputError(
                    f"the header ({_where(self.file, first + i)}) is not a CSV record ({exc}): " + _show(stripped)
                ) from None
            if self.layout is not None:
                # A later file (rotation, truncation, another input): its header must be ours, or absent.
                if names == self.layout.columns:  # compared as fields: quoting and spacing may differ
                    return i + 1
                if self._header_like(names):
                    raise InputError(
                        f"{_where(self.file, first + i)}: a new header {_show(stripped)} differs from the first one "
                        f"{_show(self.header_text or '')}; the inputs do not share one layout"
                    )
                return i
            self.header_text = stripped
            self.layout = self._layout(names, stripped, first + i)
            return i + 1
        return None

    def _header_like(self, names: list[str]) -> bool:
        """Whether the first line of a later file is a header rather than data: it names our close or timestamp
        column, or none of its several fields is a number (a data row of OHLCV has numbers beside its timestamp)."""
        assert self.layout is not None
        if self.layout.columns[self.layout.close_index] in names or TIMESTAMP_COLUMN in names:
            return True
        return len(names) >= 2 and not any(_numeric(n) for n in names)

    def _layout(self, names: list[str], line: str, line_no: int) -> Layout:
        where = _where(self.file, line_no)
        if self.column not in names:
            found = ", ".join(repr(n) for n in names)
            hint = [n for n in names if n.lower() == self.column.lower()]
            tip = (
                f"; did you mean {hint[0]!r}? (names match exactly: set 'column: {hint[0]}' in the config)"
                if hint
                else ""
            )
            if not hint and sum(_numeric(n) for n in names) * 2 >= len(names):
                tip = "; the first line looks like data: the input needs a header row naming its columns"
            raise InputError(f"the header ({where}) has no column {self.column!r}; columns found: {found}{tip}")
        if names.count(self.column) > 1:
            raise InputError(f"the header ({where}) names the column {self.column!r} more than once")
        key_index = None
        if self.key is not None:
            if self.key not in names:
                found = ", ".join(repr(n) for n in names)
                hint = [n for n in names if n.lower() == self.key.lower()]
                tip = f"; did you mean {hint[0]!r}? (names match exactly)" if hint else ""
                raise InputError(
                    f"the header ({where}) has no key column {self.key!r} (--key); columns found: {found}{tip}"
                )
            if names.count(self.key) > 1:
                raise InputError(f"the header ({where}) names the key column {self.key!r} more than once")
            key_index = names.index(self.key)
        ts = names.index(TIMESTAMP_COLUMN) if TIMESTAMP_COLUMN in names else None
        quoted = line.startswith('"') and (_wrapped(line) or len(_record(line)) == 1) and len(names) > 1
        return Layout(names, names.index(self.column), ts, quoted, self._bom, line_no, key_index)

    def _parse(self, lines: list[str], first: int, flagged: dict[int, tuple[str, bytes]], batch: Batch) -> None:
        assert self.layout is not None
        ncols = len(self.layout.columns)
        ci = self.layout.close_index
        ti = self.layout.timestamp_index
        ki = self.layout.key_index
        keep = self.keep_text
        units, scales, closes, stamps, keys = batch.units, batch.scales, batch.closes, batch.stamps, batch.keys
        key = ""
        import csv

        rdr = csv.reader(lines, **DIALECT)
        i = -1
        while True:
            try:
                for rec in rdr:
                    i += 1
                    if len(rec) != ncols:
                        fixed = self._odd(rec, i, first, flagged, lines, batch, ncols)
                        if fixed is None:
                            continue
                        rec = fixed
                    if ki is not None:
                        key = rec[ki].strip()
                        if not key:
                            self._bad(batch, first + i, f"empty {self.key} value (the key column)", lines[i])
                            continue
                    text = rec[ci]
                    # Inlined fast path of parse_decimal: plain ASCII "123.45" (the common case) skips the regex.
                    whole, _, frac = text.partition(".")
                    digits = whole + frac
                    # Within both digit limits whatever the split; longer literals take parse_decimal's full check.
                    if len(digits) <= _FAST_DIGITS and digits.isdigit() and digits.isascii():
                        units.append(int(digits))
                        scales.append(len(frac))
                    else:
                        if ncols == 1 and not lines[i].strip():
                            continue  # in a one-column file a whitespace-only line parses as one empty field
                        try:
                            u, s = parse_decimal(text.strip())
                        except BadValue as exc:
                            self._bad(batch, first + i, f"bad {self.column} value: {exc}", lines[i])
                            continue
                        units.append(u)
                        scales.append(s)
                        text = text.strip()
                    if ki is not None:
                        keys.append(key)
                    if keep:
                        closes.append(text)
                        if ti is not None:
                            stamps.append(rec[ti].strip())
                break
            except csv.Error as exc:
                i += 1
                self._bad(batch, first + i, f"not a CSV record ({_csv_reason(exc)})", lines[i])

    def _odd(
        self,
        rec: list[str],
        i: int,
        first: int,
        flagged: dict[int, tuple[str, bytes]],
        lines: list[str],
        batch: Batch,
        ncols: int,
    ) -> list[str] | None:
        """A record whose field count differs from the header's: a blank line, a flagged line, or a bad row."""
        if i in flagged:
            reason, raw = flagged[i]
            self._bad(batch, first + i, reason, raw)
            return None
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            return None  # blank or whitespace-only line
        if len(rec) == 1 and ncols > 1 and "," in rec[0]:
            import csv

            try:
                inner = next(csv.reader([rec[0]], **DIALECT), [])
            except csv.Error as exc:
                # Reported here: the caller's csv.Error handler would blame the next line.
                self._bad(batch, first + i, f"not a CSV record ({_csv_reason(exc)})", lines[i])
                return None
            if len(inner) == ncols:
                return inner
            rec = inner
        self._bad(batch, first + i, f"expected {ncols} fields, found {len(rec)}", lines[i])
        return None

    def _bad(self, batch: Batch, line: int, reason: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text[: SHOWN * 4].decode("utf-8", "replace")
        bad = BadRow(line, reason, _show(text), self.file)
        if not self.skip:
            raise BadRowError(bad)
        batch.skipped += 1
        self.report(bad)
