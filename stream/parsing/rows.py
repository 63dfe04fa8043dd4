"""Row parsing: a close field to an exact value (thousands separators, decimal commas, missing values), and the bad
rows the policy skips or stops at, counted by kind."""

from __future__ import annotations

import re

from stream.core.batch import BadRow
from stream.core.exact import BadValue, parse_decimal
from stream.parsing.framing import InputError, excerpt

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
