"""Row parsing: data lines of a known layout to exact values (the csv row loop, after the whole-chunk fast path of
stream/parsing/plain.py), a close field to an exact value (thousands separators, decimal commas, missing values),
and the bad-row policy: the bad rows it skips, counted by kind, or stops at."""

from __future__ import annotations

import re
from collections.abc import Callable

from stream.core.batch import BadRow, Batch
from stream.core.exact import BadValue, parse_decimal
from stream.core.tally import Skips
from stream.parsing.framing import SHOWN, InputError, dialect, excerpt, show_line, spans_lines, unwrap
from stream.parsing.layout import csv_reason
from stream.parsing.plain import FAST_DIGITS, chunk_rows, plain_rows

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from stream.parsing.framing import Flagged
    from stream.parsing.layout import Layout

    # Where a bad row goes (the policy, BadRows.bad): its batch, line number, kind, reason and line.
    Bad = Callable[[Batch, int, str, str, str | bytes], None]

# Why a row is bad, in a word a monitor can label counters with.
KINDS = ("fields", "value", "missing", "encoding", "too_long", "quote", "key", "json")
# Close texts that mean "no value on this row" (lower-cased): Yahoo writes null on days without trades.
MISSING = frozenset(["", "null", "nan", "none", "na", "n/a", "#n/a", "-"])
SKIP_HINT = "run with --on-bad-row skip to leave such rows out"

# Thousands grouped by commas, well formed: 1,234 or 41,903.50, never 1,2,3 (compiled by re when first used: most
# runs never see a comma in a value).
_GROUPED = r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?"
_DOT_GROUPED = r"[+-]?[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]*)?"
_DECIMAL_COMMA = r"[+-]?[0-9]*,[0-9]+"


class BadRowError(InputError):
    def __init__(self, bad: BadRow) -> None:
        hint = "fix the row, or " + SKIP_HINT
        if bad.kind == "missing":
            hint = "run with --on-bad-row skip to leave the rows without a value out of the window"
        super().__init__(f"bad row at {bad.describe()} ({hint})")
        self.bad = bad


class BadClose(ValueError):
    """A close field that is not a usable value: ``kind`` (value or missing) and a reason for a person."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class BadRows:
    """What happens to a bad row: ``fail`` raises BadRowError; ``skip`` counts it in its batch and in ``skips`` (by
    kind) and hands it to ``report``. Rows name ``file``, the current file, when a run reads several."""

    __slots__ = ("_mirror", "file", "report", "skip", "skips")

    def __init__(self, skip: bool, report: Callable[[BadRow], None] | None = None, file: str | None = None) -> None:
        self.skip = skip
        self.report = report or (lambda bad: None)
        self.file = file
        self.skips = Skips()  # the skipped rows by kind
        self._mirror: int | None = None  # lines come last first: a line numbered n here is line _mirror - n

    def bad(self, batch: Batch, line: int, kind: str, reason: str, text: str | bytes) -> None:
        """Line ``line`` (its text, or its bytes) is a bad row of ``kind``, for ``reason``."""
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

    def in_file(self, file: str | None) -> None:
        """Rows from now on are in ``file``."""
        self.file = file

    def number_backwards(self, mirror: int) -> None:
        """The lines that follow come last first: the one numbered n as read is line ``mirror - n`` of the file."""
        self._mirror = mirror

    def add(self, skips: Skips) -> None:
        """Count rows skipped by other readers of the input after these (the parallel plan's blocks)."""
        self.skips = self.skips + skips


def mark_of(text: str) -> str | None:
    """The decimal mark a close field settles for a file whose delimiter is not the comma: ``,`` for ``1,5``,
    ``1.234,56`` or ``1.234.567``; ``.`` for ``1.5``, ``1,234.56`` or ``1,234,567``; None for a value without a mark,
    one that may be read either way (``1,234``, ``1.234``) or one that is no number at all."""
    s = text.strip()
    if "," in s:
        if re.fullmatch(_GROUPED, s, re.ASCII) and ("." in s or s.count(",") > 1):
            return "."
        if re.fullmatch(_DOT_GROUPED, s, re.ASCII) and "." in s:
            return ","
        if re.fullmatch(_DECIMAL_COMMA, s, re.ASCII) and len(s) - s.index(",") - 1 != 3:
            return ","
        return None
    if "." not in s:
        return None
    if re.fullmatch(_DOT_GROUPED, s, re.ASCII):
        return "," if s.count(".") > 1 else None
    try:
        parse_decimal(s)
    except BadValue:
        return None
    return "."


def close_value(text: str, delimiter: str, decimal: str | None) -> tuple[int, int, str]:
    """The exact ``(units, scale)`` of a close field that is not plain digits (the callers' fast path takes those),
    read with the file's decimal mark ``decimal``: None while it is not known (the caller settles it with
    ``mark_of`` first, so a value with a mark is then ambiguous); a comma-separated file's is the dot. And the
    value's text as outputs write it: as written, but with a dot for its decimal mark and without thousands
    separators (``1,09863`` is ``1.09863``, ``"41,903.50"`` is ``41903.50``).

    With the dot, commas group thousands (``"41,903.50"``) and must be well formed; with the comma, dots group
    thousands (``1.234,56``). A value that has the other mark in another place contradicts the file's mark. Raises
    BadClose.

    >>> close_value(" 1.234,5 ", ";", ",")
    (12345, 1, '1234.5')
    """
    s = text.strip()
    if s.lower() in MISSING:
        raise BadClose("missing", f"the close value is missing ({excerpt(s)})")
    if decimal is None and delimiter == ",":
        decimal = "."
    if decimal == ",":
        if re.fullmatch(_DOT_GROUPED, s, re.ASCII):
            s = s.replace(".", "")
        elif "." in s:
            raise BadClose("value", f"{excerpt(s)} has a '.' but the file's decimal mark is ',' (--decimal)")
        s = s.replace(",", ".", 1) if s.count(",") == 1 else s
    elif decimal == ".":
        if re.fullmatch(_GROUPED, s, re.ASCII):
            s = s.replace(",", "")
        elif "," in s and (re.fullmatch(_DECIMAL_COMMA, s, re.ASCII) or re.fullmatch(_DOT_GROUPED, s, re.ASCII)):
            raise BadClose("value", f"{excerpt(s)} has a ',' but the file's decimal mark is '.' (--decimal)")
    elif re.fullmatch(_GROUPED, s, re.ASCII) or re.fullmatch(_DOT_GROUPED, s, re.ASCII):
        raise BadClose(
            "value",
            f"{excerpt(s)} may have a thousands separator or a decimal mark, and no earlier value tells which: "
            "pass --decimal , or --decimal .",
        )
    try:
        return (*parse_decimal(s), s)
    except BadValue as exc:
        raise BadClose("value", str(exc)) from None


class Rows:
    """Data lines of a file whose ``layout`` is known to Batches of exact values: whole chunks at once where they
    are plain (stream/parsing/plain.py), else the csv row loop, which hands each bad row to ``bad``. ``decimal``, the
    file's decimal mark, is the layout's, or settled by the first value that tells it; ``undecided`` is set when a
    value needed it before any told it. Both are read by the reader; only the reading here changes them."""

    __slots__ = ("_bad", "decimal", "keep_text", "key", "layout", "undecided")

    def __init__(self, layout: Layout, bad: Bad, keep_text: bool = False, key: str | None = None) -> None:
        self.layout = layout
        self._bad = bad
        self.keep_text = keep_text
        self.key = key  # the key column's name (rows are grouped by its value); None: one series
        self.decimal = layout.mark
        self.undecided = False

    def chunk(self, data: bytes, text: str) -> Batch | None:
        """The rows of ``data`` (``text`` decoded), complete lines after the header, read as a whole; None when
        the fast path does not apply (the caller then reads them as lines)."""
        if self.key is not None:
            return None
        return chunk_rows(data, self.layout, self.decimal, self.keep_text, text)

    def read(self, lines: list[str], first: int, flagged: Flagged, quotes: bool = True) -> Batch:
        """The rows of ``lines`` (``first``: the number of the first; ``flagged``: lines that could not be read), as
        a whole where they are plain, else row by row. ``quotes``: whether any line may hold a quote."""
        plain = not quotes
        if quotes:
            lines, plain = self._unquote(lines, flagged)
        if plain and not flagged and self.key is None:
            batch = plain_rows("\n".join(lines), len(lines), self.layout, self.decimal, self.keep_text)
            if batch is not None:
                return batch
        batch = Batch()
        self._loop(lines, first, flagged, batch)
        return batch

    def loop(self, lines: list[str], first: int, flagged: Flagged | None = None) -> Batch:
        """The rows of ``lines`` read one by one with the csv module, as ``read`` reads a chunk that is not plain."""
        flagged = {} if flagged is None else dict(flagged)
        lines, _ = self._unquote(lines, flagged)
        batch = Batch()
        self._loop(lines, first, flagged, batch)
        return batch

    def _unquote(self, lines: list[str], flagged: Flagged) -> tuple[list[str], bool]:
        """Unwrap whole-line quoted records and flag lines whose quotes do not close on the same line; say whether
        the lines are quote-free now (every quoted line was a wrapped record)."""
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

    def _loop(self, lines: list[str], first: int, flagged: Flagged, batch: Batch) -> None:
        layout = self.layout
        ncols = len(layout.columns)
        ci = layout.close_index
        ti = layout.timestamp_index
        ki = layout.key_index
        delimiter, decimal = layout.delimiter, self.decimal
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
                        fixed = self._odd(rec, i, first, flagged, lines, batch)
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
                        len(digits) <= FAST_DIGITS
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
                            decimal = self.decimal = mark_of(text)  # one mark for the run, from its first value
                            self.undecided |= decimal is None and ("," in text or "." in text)
                        try:
                            u, s, text = close_value(text, delimiter, decimal)
                        except BadClose as exc:
                            reason = str(exc) if exc.kind == "missing" else f"bad {layout.close_name} value: {exc}"
                            if layout.header and [f.strip() for f in rec] == layout.columns:
                                # Files joined into one (cat a.csv b.csv, or a.gz b.gz): its header once more.
                                reason = "the header again, in the middle of the data (files joined together?)"
                            self._bad(batch, first + i, exc.kind, reason, lines[i])
                            continue
                        units.append(u)
                        scales.append(s)
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
        self, rec: list[str], i: int, first: int, flagged: Flagged, lines: list[str], batch: Batch
    ) -> list[str] | None:
        """A record whose field count differs from the header's: a blank line, a flagged line, or a bad row."""
        if i in flagged:
            kind, reason, raw = flagged[i]
            self._bad(batch, first + i, kind, reason, raw)
            return None
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            return None  # blank or whitespace-only line
        ncols = len(self.layout.columns)
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
