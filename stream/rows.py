"""Row parsing: a close field to an exact value (thousands separators, decimal commas, missing values), and the bad
rows the policy skips or stops at, counted by kind."""

from __future__ import annotations

import re

from stream.exact import BadValue, parse_decimal
from stream.framing import InputError, excerpt

# Why a row is bad, in a word a monitor can label counters with.
KINDS = ("fields", "value", "missing", "encoding", "too_long", "quote", "key")
# Close texts that mean "no value on this row" (lower-cased): Yahoo writes null on days without trades.
MISSING = frozenset(["", "null", "nan", "none", "na", "n/a", "#n/a", "-"])
SKIP_HINT = "run with --on-bad-row skip to leave such rows out"

# Thousands grouped by commas, well formed: 1,234 or 41,903.50, never 1,2,3 (compiled by re when first used: most
# runs never see a comma in a value).
_GROUPED = r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?"
_DOT_GROUPED = r"[+-]?[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]*)?"
_DECIMAL_COMMA = r"[+-]?[0-9]*,[0-9]+"


class BadRow:
    """A data row that cannot be used: where it is (the file, when the run reads several), why (``reason`` for a
    person, ``kind`` one of KINDS for a machine), and what it looked like (shortened)."""

    __slots__ = ("file", "kind", "line", "reason", "text")

    def __init__(self, line: int, reason: str, text: str, file: str | None = None, kind: str = "value") -> None:
        self.line = line
        self.reason = reason
        self.text = text
        self.file = file
        self.kind = kind

    def __repr__(self) -> str:
        where = f", file={self.file!r}" if self.file is not None else ""
        return f"BadRow(line={self.line}, kind={self.kind!r}, reason={self.reason!r}, text={self.text!r}{where})"

    def _key(self) -> tuple[int, str, str, str | None, str]:
        return (self.line, self.reason, self.text, self.file, self.kind)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadRow) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def moved(self, lines: int) -> BadRow:
        """The same bad row, ``lines`` further down its file (a worker numbers lines from its block's start)."""
        return BadRow(self.line + lines, self.reason, self.text, self.file, self.kind)

    def describe(self) -> str:
        return f"{where(self.file, self.line)}: {self.reason}: {self.text}"


def where(file: str | None, line: int) -> str:
    return f"{file} line {line}" if file is not None else f"line {line}"


class BadRowError(InputError):
    def __init__(self, bad: BadRow) -> None:
        hint = "fix the row, or " + SKIP_HINT
        if bad.kind == "missing":
            hint = "run with --on-bad-row skip to leave the rows without a value out of the window"
        super().__init__(f"bad row at {bad.describe()} ({hint})")
        self.bad = bad


class Skips:
    """Skipped rows by kind: how many, and the first of each. Merges with ``+`` in input order (workers' counts)."""

    __slots__ = ("counts", "first")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: dict[str, BadRow] = {}

    def add(self, bad: BadRow) -> None:
        self.counts[bad.kind] = self.counts.get(bad.kind, 0) + 1
        self.first.setdefault(bad.kind, bad)

    def __add__(self, later: Skips) -> Skips:
        out = Skips()
        for part in (self, later):
            for kind, n in part.counts.items():
                out.counts[kind] = out.counts.get(kind, 0) + n
            for kind, bad in part.first.items():
                out.first.setdefault(kind, bad)
        return out

    def moved(self, lines: int) -> Skips:
        """The same counts, their first rows ``lines`` further down (see BadRow.moved)."""
        out = Skips()
        out.counts = dict(self.counts)
        out.first = {k: b.moved(lines) for k, b in self.first.items()}
        return out

    def commonest(self) -> tuple[int, BadRow] | None:
        """The count and first row of the commonest kind (the earliest kind on a tie); None when nothing skipped."""
        if not self.counts:
            return None
        kind = max(self.counts, key=lambda k: (self.counts[k], -self.first[k].line))
        return self.counts[kind], self.first[kind]


class BadClose(ValueError):
    """A close field that is not a usable value: ``kind`` (value or missing) and a reason for a person."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


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


def close_value(text: str, delimiter: str, decimal: str | None) -> tuple[int, int]:
    """The exact ``(units, scale)`` of a close field that is not plain digits (the callers' fast path takes those),
    read with the file's decimal mark ``decimal``: None while it is not known (the caller settles it with
    ``mark_of`` first, so a value with a mark is then ambiguous); a comma-separated file's is the dot.

    With the dot, commas group thousands (``"41,903.50"``) and must be well formed; with the comma, dots group
    thousands (``1.234,56``). A value that has the other mark in another place contradicts the file's mark. Raises
    BadClose.
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
        elif re.fullmatch(_DECIMAL_COMMA, s, re.ASCII) or re.fullmatch(_DOT_GROUPED, s, re.ASCII):
            raise BadClose("value", f"{excerpt(s)} has a ',' but the file's decimal mark is '.' (--decimal)")
    elif re.fullmatch(_GROUPED, s, re.ASCII) or re.fullmatch(_DOT_GROUPED, s, re.ASCII):
        raise BadClose(
            "value",
            f"{excerpt(s)} may have a thousands separator or a decimal mark, and no earlier value tells which: "
            "pass --decimal , or --decimal .",
        )
    try:
        return parse_decimal(s)
    except BadValue as exc:
        raise BadClose("value", str(exc)) from None
