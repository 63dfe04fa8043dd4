"""The reader: pushed bytes become Batches of exact close values, through line framing (stream/framing.py), the
layout found at each file's start (stream/layout.py) and row parsing with the bad-row policy (stream/rows.py).

The reader is pushed bytes (``feed``), told where one file ends and another begins (``new_file``) and when the
input is over (``finish``); each call returns a Batch of the rows it completed. It knows nothing of windows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any, Protocol

from stream.core.batch import BadRow, Batch, where
from stream.core.exact import MAX_INT_DIGITS, MAX_SCALE
from stream.core.tally import Skips
from stream.parsing.framing import (
    MAX_LINE_BYTES,
    SHOWN,
    InputError,
    dialect,
    excerpt,
    show_line,
    spans_lines,
    unwrap,
    unwrapped_chunk,
)
from stream.parsing.layout import (
    KNOWN_CLOSES,
    SAMPLE,
    TIMESTAMP_COLUMN,
    Layout,
    LayoutRequest,
    NotCsv,
    choose_close,
    choose_key,
    csv_reason,
    data_error,
    looks_like_data,
    newest_first,
    not_csv,
    numbered,
    numeric,
    position,
    sniff,
    split,
    time_column,
    wrapped_header,
)
from stream.parsing.rows import BadClose, BadRowError, close_value, mark_of
from stream.sources.files import NewFile


class Blocks(Protocol):
    """The block path (``stream.parsing.blocks.BlockReader``) as ``batches`` feeds it: bytes in, the batches they
    complete out, the lines numpy does not take passed on to the reader."""

    def feed(self, data: bytes) -> list[Batch]: ...


_FAST_DIGITS = min(MAX_SCALE, MAX_INT_DIGITS)
# _header's answer when a file's first line may be a title above the header and the next line has not arrived.
_HOLD = -1


_SEPARATOR_OR_NEWLINE: dict[str, bytes] = {}


def _others(delimiter: str) -> bytes:
    """Every byte but the delimiter's and the newline, for bytes.translate (made once per delimiter)."""
    table = _SEPARATOR_OR_NEWLINE.get(delimiter)
    if table is None:
        keep = delimiter.encode() + b"\n"
        table = _SEPARATOR_OR_NEWLINE[delimiter] = bytes(b for b in range(256) if b not in keep)
    return table


def _column(fields: list[str], c: int, m: int) -> list[str]:
    """Column ``c`` of a plain chunk of lines of ``m`` delimiters each, split at its delimiters (see Reader._plain)."""
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


def batches(
    reader: Reader, events: Iterable[bytes | NewFile], block: Blocks | None = None, *, finish: bool = True
) -> Iterator[Batch]:
    """The one way from bytes to batches: every chunk of ``events`` fed to ``reader`` (or to ``block``, the block
    path, which feeds the reader what numpy does not parse), a NewFile marker starting the next file (after a
    truncation, a partial last line is dropped); with ``finish``, the input's end completes a last line without a
    newline. Only batches with rows or skipped rows come out."""
    for event in events:
        out: Iterable[Batch]
        if isinstance(event, NewFile):
            out = (reader.new_file(complete_partial=event.reason != "truncated", file=event.name),)
        else:
            out = block.feed(event) if block is not None else (reader.feed(event),)
        for batch in out:
            if len(batch) or batch.skipped:
                yield batch
    if finish:
        last = reader.finish()
        if len(last) or last.skipped:
            yield last


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
        request: LayoutRequest | None = None,
    ) -> None:
        self.request = request if request is not None else LayoutRequest(column)
        self.column = self.request.column
        self.key = key  # rows are grouped by this column's value (Batch.keys); None: one series
        self.file = file  # the current file's name, for messages when a run reads several files
        self.skip = on_bad_row == "skip"
        self.report = report or (lambda bad: None)
        self.skips = Skips()  # the skipped rows by kind
        self.keep_text = keep_text
        # In follow mode a line without its newline may still be being written; in batch mode EOF completes it.
        self.final_line_needs_newline = final_line_needs_newline
        self.layout: Layout | None = None
        self._decimal: str | None = None  # the run's decimal mark: the layout's, or the first value that settles it
        # A value needed the decimal mark before any value told it (it was a bad row; a later block cannot know).
        self.undecided = False
        self.line_no = 0  # lines of the current file consumed so far
        self.offset = 0  # bytes of the current file consumed through the last complete line
        self.at_file_start = True
        self.header_text: str | None = None
        self._pending = b""
        self._overlong = False  # discarding the rest of an over-long line
        self._bom = False
        self._skip_left = self.request.skip_lines  # --skip-lines still to skip in this file
        self._held = b""  # a first line kept back until the next one tells whether it is a title
        self._title_note: str | None = None
        self._mirror: int | None = None  # lines come last first: a line numbered n here is line _mirror - n

    def sibling(self, backwards: bool = False) -> Reader:
        """A fresh reader with this one's layout settings that skips bad rows silently: a probe of the first lines
        (the parallel plan, --reverse), which reads past the header into rows that are read again later. With
        ``backwards`` its layout tells the rows' order as --reverse will process them."""
        request = self.request.backwards() if backwards else self.request
        return Reader(self.column, "skip", key=self.key, file=self.file, request=request)

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
        if self._held:
            held, self._held = self._held, b""
            if len(rest) <= MAX_LINE_BYTES:
                self._pending = held + rest
                batch.end_offset = self.offset
                return batch
            self._lines(held, final=True)  # the next line is over-long: the first one cannot wait for it
        if len(rest) > MAX_LINE_BYTES:
            self.line_no += 1
            self._bad(batch, self.line_no, "too_long", f"line is longer than {MAX_LINE_BYTES} bytes", rest[: SHOWN * 4])
            self._overlong = True
            self.offset += len(rest)
            rest = b""
        self._pending = rest
        batch.end_offset = self.offset
        return batch

    def finish(self, ended: bool = False) -> Batch:
        """The input is over: a last line without a newline is complete (unless following; then it is kept, except
        when the input has ``ended`` for good: a closed pipe)."""
        if ended:
            self.final_line_needs_newline = False
        if self.final_line_needs_newline or not self._pending:
            return Batch(end_offset=self.offset)
        tail, self._pending = self._pending, b""
        batch = self._lines(tail if tail.endswith(b"\n") else tail + b"\n", count_bytes=len(tail), final=True)
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
                batch = self._lines(tail if tail.endswith(b"\n") else tail + b"\n", count_bytes=len(tail), final=True)
        if file is not None:
            self.file = file
        self._overlong = False
        self.line_no = 0
        self.offset = 0
        self.at_file_start = True
        self._skip_left = self.request.skip_lines
        batch.end_offset = 0
        return batch

    def state(self) -> dict[str, Any]:
        """Where the reader stands in the current file, for a checkpoint (valid between pushes of bytes)."""
        return {
            "offset": self.offset,
            "line": self.line_no,
            "header": self.header_text,
            "at_file_start": self.at_file_start,
            "layout": self.layout.spec() | {"decimal": self._decimal} if self.layout is not None else None,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state()``: the layout comes back as it was found, the bytes from ``offset`` on."""
        self.offset = int(state["offset"])
        self.line_no = int(state["line"])
        self.at_file_start = bool(state["at_file_start"])
        self._pending = b""
        self._overlong = False
        header = state["header"]
        if header is not None:
            self.header_text = header
        if state.get("layout") is not None:
            self.layout = Layout.from_spec(state["layout"])
        elif header is not None:  # a checkpoint written before layouts were recorded: the header tells it
            self.layout = self._first_layout(header, [], 1)
        self._decimal = self.layout.mark if self.layout is not None else None

    @property
    def decimal(self) -> str | None:
        """The decimal mark of the values read from now on; None while no value has told it."""
        return self._decimal

    @property
    def pending(self) -> bytes:
        """The bytes of a line whose newline has not arrived yet."""
        return self._pending

    @property
    def at_line_start(self) -> bool:
        """True when the next byte fed starts a line of a file whose header has been read."""
        return not self._pending and not self._overlong and not self.at_file_start and self.layout is not None

    def start_piece(self, offset: int, file: str | None) -> None:
        """Read on from byte ``offset`` of ``file``, a line start inside it (a block of the parallel plan): line
        numbers count from here, and the plan adds the lines before."""
        self.line_no, self.offset, self.file = 0, offset, file

    def count_backwards(self, lines: int) -> None:
        """The ``lines`` data lines that follow come last line first (--reverse): number bad rows as in the file."""
        self._mirror = 2 * self.line_no + lines + 1

    def add_skips(self, skips: Skips) -> None:
        """Count rows skipped by other readers of this input after this one's (the parallel plan's workers)."""
        self.skips = self.skips + skips

    def consumed(self, lines: int, nbytes: int) -> None:
        """Account for complete lines another parser (the block path) turned into rows, so line numbers carry on."""
        self.line_no += lines
        self.offset += nbytes

    # ---- lines to rows ------------------------------------------------------------------------------------------

    def _lines(self, data: bytes, count_bytes: int | None = None, final: bool = False) -> Batch:
        batch = Batch()
        first = self.line_no + 1
        counted = len(data) if count_bytes is None else count_bytes
        self.offset += counted
        whole = data
        if self.at_file_start and data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
            self._bom = True
        else:
            self._bom = False
        flagged: dict[int, tuple[str, str, bytes]] = {}  # line index -> (kind, reason, bytes)
        try:
            text = data.decode("utf-8")
            has_quotes = '"' in text
            if not self.at_file_start and self.key is None and len(data) <= MAX_LINE_BYTES:
                # The usual chunk (no line in it can be over-long): read it whole, not even split into lines, when
                # it is plain, or plain once each line's wrapping quotes are gone.
                n = text.count("\n")
                body = unwrapped_chunk(data, text, n) if has_quotes else text[:-1]
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
                    flagged[i] = ("encoding", f"bytes that are not UTF-8 at column {exc.start + 1}", b)
                    lines.append("")
            has_quotes = any('"' in ln for ln in lines)
        self.line_no += len(lines)
        if self.at_file_start:
            skip_left = self._skip_left
            start = self._header(lines, first, flagged, final)
            if start == _HOLD:  # given back: the next push of bytes brings the line that decides
                self.offset -= counted
                self.line_no -= len(lines)
                self._skip_left = skip_left
                self._held = whole
                return batch
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
                        flagged[i] = ("too_long", f"line is longer than {MAX_LINE_BYTES} bytes", b)
                        lines[i] = ""
        plain = not has_quotes
        if has_quotes:
            lines, plain = self._unquote(lines, flagged)
        if not (plain and not flagged and self.key is None and self._plain("\n".join(lines), len(lines), batch)):
            self._parse(lines, first, flagged, batch)
        return batch

    def _unquote(self, lines: list[str], flagged: dict[int, tuple[str, str, bytes]]) -> tuple[list[str], bool]:
        """Unwrap whole-line quoted records and flag lines whose quotes do not close on the same line; say whether
        the lines are quote-free now (every quoted line was a wrapped record)."""
        assert self.layout is not None
        delimiter = self.layout.delimiter
        several = len(self.layout.columns) > 1
        out = []
        plain = True
        for i, ln in enumerate(lines):
            if '"' in ln:
                inside = unwrap(ln, delimiter) if several else None
                if inside is not None:
                    out.append(inside)
                    continue
                plain = False
                if spans_lines(ln, delimiter):
                    flagged[i] = ("quote", "a quoted field is not closed on this line", ln.encode())
                    ln = ""
            out.append(ln)
        return out, plain

    def _plain(self, body: str, n: int, batch: Batch) -> bool:
        """Read ``n`` plain lines (``body``, without its final newline) with a few whole-chunk string operations
        instead of a loop over rows. The caller has made sure that no line is over-long.

        It applies when no line has a quote, a stray carriage return or a NUL, every line has exactly the header's
        field count, and every close is unsigned digits with at most one dot (``42005.96``, ``45219.5``): what
        nearly every chunk of a real export is. Then the csv module would split each line at its delimiters, so
        splitting the joined chunk at its delimiters gives the same fields, and the closes convert in one pass, at
        the chunk's largest scale (the same values; the engine works at the largest scale it has seen anyway).
        Anything else returns False having added nothing, and the row loop reads the chunk (with line numbers for
        its bad rows, which a plain chunk has none of).
        """
        layout = self.layout
        assert layout is not None
        m = len(layout.columns) - 1  # delimiters per line
        if not n or not m:
            return False
        if "\x00" in body or ("\r" in body and body.count("\r") != body.count("\r\n") + body.endswith("\r")):
            return False
        d = layout.delimiter
        # Every line holds exactly m delimiters when the chunk's delimiters and newlines, in order, are m delimiters
        # and a newline, n times over (no other UTF-8 byte is an ASCII delimiter's or a newline's).
        sep = d.encode()
        if body.encode().translate(None, _others(d)) != (sep * m + b"\n") * (n - 1) + sep * m:
            return False
        fields = body.split(d)
        closes = _column(fields, layout.close_index, m)
        joined = "\n".join(closes)
        if self._decimal != "." and "." in joined:  # a dot that is a thousands separator, or may be one
            return False
        found = _one_scale(joined)
        if found is None:
            return False
        digits, scale = found
        batch.units.extend(map(int, digits.split("\n")))
        batch.scales.extend(repeat(scale, n))
        if self.keep_text:
            batch.closes.extend(closes)
            ti = layout.timestamp_index
            if ti is not None:
                batch.stamps.extend([s.strip() for s in _column(fields, ti, m)])
        return True

    # ---- the start of a file -----------------------------------------------------------------------------------

    def _header(
        self, lines: list[str], first: int, flagged: dict[int, tuple[str, str, bytes]], final: bool
    ) -> int | None:
        """Find the header (or, without one, the first data line) among the first lines of a file; return the index
        of the first data line, None when none has come yet, or _HOLD to wait for the next line."""
        for i, ln in enumerate(lines):
            if self._skip_left:  # --skip-lines: lines above the header that are not CSV at all
                self._skip_left -= 1
                continue
            if i in flagged:
                # An undecodable line reads as "" but is not blank: it is the header, or in a later file a bad row.
                if self.layout is None:
                    _, reason, raw = flagged[i]
                    shown = show_line(raw[: SHOWN * 4].decode("utf-8", "replace"))
                    raise InputError(f"the header ({where(self.file, first + i)}) cannot be read: {reason}: {shown}")
                self.at_file_start = False
                return i
            if not ln.strip():
                continue
            stripped = ln.lstrip("\ufeff").strip()
            following = [f for f in lines[i + 1 : i + 1 + 2 * SAMPLE] if f.strip()][:SAMPLE]
            if self.layout is not None:
                return self._later_header(lines, i, stripped, following, first, final)
            at = where(self.file, first + i)
            why = not_csv(stripped)
            if why is not None:
                raise InputError(f"the first line ({at}) cannot be a CSV header: {why}")
            delimiter = self.request.delimiter or sniff(stripped, following)
            if self.request.header and self.request.delimiter is None and self._title(stripped, delimiter):
                if not following:
                    if not final:
                        return _HOLD
                elif self._header_below(following):
                    self._title_note = f"skipped a title line above the header ({at}): {excerpt(stripped)}"
                    continue
            self.at_file_start = False
            self.layout = self._first_layout(stripped, following, first + i, delimiter)
            self._decimal = self.layout.mark
            if not self.layout.header:
                return i
            self.header_text = stripped
            return i + 1
        return None

    def _title(self, line: str, delimiter: str) -> bool:
        """Whether a file's first line may be a title above its header (CryptoDataDownload puts its URL there): a
        single field that is neither a number nor the close column's name (a one-column file's header)."""
        try:
            fields = split(line, delimiter)
        except NotCsv:
            return False
        if len(fields) != 1 or numeric(fields[0]):
            return False
        name = fields[0].strip().lower()
        return name != self.request.column.lower() and name not in KNOWN_CLOSES

    def _header_below(self, following: list[str]) -> bool:
        """Whether the line below a possible title is a header: several fields, not a row of numbers."""
        line = following[0].strip()
        try:
            names = split(line, sniff(line, following[1:]))
        except NotCsv:
            return False
        return len(names) > 1 and not looks_like_data(names)

    def _later_header(
        self, lines: list[str], i: int, stripped: str, following: list[str], first: int, final: bool
    ) -> int | None:
        """A later file (rotation, truncation, another input): its header must be ours, or absent."""
        layout = self.layout
        assert layout is not None
        self.at_file_start = False
        if not layout.header:
            return i  # every line of a headerless input is data
        try:
            names = [c.strip() for c in split(stripped, layout.delimiter)]
        except NotCsv:
            return i  # a later file's first line: an ordinary bad row
        if names == layout.columns:  # compared as fields: quoting and spacing may differ
            return i + 1
        if len(names) == 1 and len(layout.columns) > 1 and not numeric(names[0]):
            # A title line above the header, as the first file may have had: skipped when our header follows.
            if not following and not final:
                self.at_file_start = True
                return _HOLD
            nxt = [c.strip() for c in split(following[0].strip(), layout.delimiter)] if following else []
            if nxt == layout.columns:
                return next(j for j in range(i + 1, len(lines)) if lines[j].strip()) + 1
        if self._header_like(names):
            raise InputError(
                f"{where(self.file, first + i)}: a new header {show_line(stripped)} differs from the first one "
                f"{show_line(self.header_text or '')}; the inputs do not share one layout"
            )
        return i

    def _header_like(self, names: list[str]) -> bool:
        """Whether the first line of a later file is a header rather than data: it names our close or timestamp
        column, or none of its several fields is a number (a data row of OHLCV has numbers beside its timestamp)."""
        assert self.layout is not None
        if self.layout.columns[self.layout.close_index] in names or TIMESTAMP_COLUMN in names:
            return True
        return len(names) >= 2 and not any(numeric(n) for n in names)

    def _first_layout(self, line: str, following: list[str], line_no: int, delimiter: str | None = None) -> Layout:
        """The layout from a file's header (or first data line) and the lines after it."""
        at = where(self.file, line_no)
        request = self.request
        if delimiter is None:
            delimiter = request.delimiter or sniff(line, following)
        try:
            names = [c.strip() for c in split(line, delimiter)]
        except NotCsv as exc:
            raise InputError(f"the header ({at}) is not a CSV record ({exc}): " + show_line(line)) from None
        notes = [self._title_note] if self._title_note else []
        warnings: list[str] = []
        if not request.header:
            if not request.column.isdigit() or (self.key is not None and not self.key.isdigit()):
                raise InputError(
                    f"without a header (--no-header) columns are named by their position: the first line ({at}) is "
                    f"{numbered(names)}; pass --column N" + (" and --key N" if self.key is not None else "")
                )
            close = position(request.column, len(names), at, "--column")
            key_index = position(self.key, len(names), at, "--key") if self.key is not None else None
            columns = [str(k) for k in range(1, len(names) + 1)]
            header = False
        else:
            if request.column not in names and looks_like_data(names):
                raise data_error(names, at, delimiter)
            close, why = choose_close(names, request.column, at)
            if why is not None:  # a position was asked for; a name chosen for the user is worth a warning
                (notes if request.column.isdigit() else warnings).append(why)
            key_index = choose_key(names, self.key, at) if self.key is not None else None
            columns = names
            header = True
        stamps = time_column(names, header)
        if stamps is not None:
            data = following if header else [line, *following]
            values = []
            for f in data:
                try:
                    fields = split(f.strip(), delimiter)
                except NotCsv:
                    break
                if len(fields) != len(names):
                    break
                values.append(fields[stamps])
            what = f"column {columns[stamps]!r}" if header else "the first column"
            if not request.reverse and newest_first(values):
                warnings.append(
                    f"the rows run newest first ({what} goes back in time over the first rows): the rolling mean "
                    "will run backwards in time; pass --reverse to read the file from its last row to its first"
                )
            elif request.reverse and newest_first(values[::-1]):  # the order --reverse processes them in
                warnings.append(
                    f"with --reverse the rows run newest first ({what} goes forward in time over the file's first "
                    "rows): the rolling mean will run backwards in time; leave out --reverse to read the file in order"
                )
        # The signals' timestamp: the column of that name, else the one that tells the rows' order (Date, unix, ...).
        ts = names.index(TIMESTAMP_COLUMN) if header and TIMESTAMP_COLUMN in names else stamps
        if ts == close:
            ts = None
        return Layout(
            columns, close, ts, header and wrapped_header(line, delimiter, names), self._bom, line_no, key_index,
            delimiter=delimiter, header=header, decimal=request.decimal, notes=notes, warnings=warnings,
        )  # fmt: skip

    # ---- rows -------------------------------------------------------------------------------------------------

    def _parse(self, lines: list[str], first: int, flagged: dict[int, tuple[str, str, bytes]], batch: Batch) -> None:
        layout = self.layout
        assert layout is not None
        ncols = len(layout.columns)
        ci = layout.close_index
        ti = layout.timestamp_index
        ki = layout.key_index
        delimiter, decimal = layout.delimiter, self._decimal
        keep = self.keep_text
        units, scales, closes, stamps, keys = batch.units, batch.scales, batch.closes, batch.stamps, batch.keys
        key = ""
        import csv

        rdr = csv.reader(lines, **dialect(delimiter))
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
                            self._bad(batch, first + i, "key", f"empty {self.key} value (the key column)", lines[i])
                            continue
                    text = rec[ci]
                    # Inlined fast path of parse_decimal: plain ASCII "123.45" (the common case) skips the regex.
                    whole, dot, frac = text.partition(".")
                    digits = whole + frac
                    # Within both digit limits whatever the split; longer literals take parse_decimal's full check.
                    # A dot is a decimal point only once the file's mark is known to be the dot.
                    if (
                        len(digits) <= _FAST_DIGITS
                        and digits.isdigit()
                        and digits.isascii()
                        and (not dot or decimal == ".")
                    ):
                        units.append(int(digits))
                        scales.append(len(frac))
                    else:
                        if ncols == 1 and not lines[i].strip():
                            continue  # in a one-column file a whitespace-only line parses as one empty field
                        if decimal is None:
                            decimal = self._decimal = mark_of(text)  # one mark for the run, from its first value
                            self.undecided |= decimal is None and ("," in text or "." in text)
                        try:
                            u, s = close_value(text, delimiter, decimal)
                        except BadClose as exc:
                            reason = str(exc) if exc.kind == "missing" else f"bad {layout.close_name} value: {exc}"
                            if layout.header and [f.strip() for f in rec] == layout.columns:
                                # Files joined into one (cat a.csv b.csv, or a.gz b.gz): its header once more.
                                reason = "the header again, in the middle of the data (files joined together?)"
                            self._bad(batch, first + i, exc.kind, reason, lines[i])
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
                self._bad(batch, first + i, "quote", f"not a CSV record ({csv_reason(exc)})", lines[i])

    def _odd(
        self,
        rec: list[str],
        i: int,
        first: int,
        flagged: dict[int, tuple[str, str, bytes]],
        lines: list[str],
        batch: Batch,
        ncols: int,
    ) -> list[str] | None:
        """A record whose field count differs from the header's: a blank line, a flagged line, or a bad row."""
        if i in flagged:
            kind, reason, raw = flagged[i]
            self._bad(batch, first + i, kind, reason, raw)
            return None
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            return None  # blank or whitespace-only line
        assert self.layout is not None
        delimiter = self.layout.delimiter
        if len(rec) == 1 and ncols > 1 and delimiter in rec[0]:
            import csv

            try:
                inner = next(csv.reader([rec[0]], **dialect(delimiter)), [])
            except csv.Error as exc:
                # Reported here: the caller's csv.Error handler would blame the next line.
                self._bad(batch, first + i, "quote", f"not a CSV record ({csv_reason(exc)})", lines[i])
                return None
            if len(inner) == ncols:
                return inner
            rec = inner
        self._bad(batch, first + i, "fields", f"expected {ncols} fields, found {len(rec)}", lines[i])
        return None

    def _bad(self, batch: Batch, line: int, kind: str, reason: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text[: SHOWN * 4].decode("utf-8", "replace")
        if self._mirror is not None:
            line = self._mirror - line
        bad = BadRow(line, reason, show_line(text), self.file, kind)
        if not self.skip:
            raise BadRowError(bad)
        batch.skipped += 1
        self.skips.add(bad)
        self.report(bad)
