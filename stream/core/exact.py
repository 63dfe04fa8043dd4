"""Exact decimal literals: a price as written becomes an integer count of units at a decimal scale, never a float.

>>> parse_decimal("100.10")
(10010, 2)
>>> parse_decimal("8.5e-06")
(85, 7)
>>> parse_decimal("-1.5E+3")
(-1500, 0)
"""

from __future__ import annotations

import re

from stream.text import excerpt

# Bounds keep every value a small integer: a price needs far fewer digits than this, and a literal such as
# "1e999999999" is refused from its text alone instead of building a billion-digit integer.
MAX_SCALE = 30
MAX_INT_DIGITS = 30

_LITERAL = r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?)([0-9]+))?"
_literal: re.Pattern[str] | None = None  # compiled on first use: most runs' closes never leave the fast path
# More exponent digits than this put any nonzero value far outside the limits above.
MAX_EXP_DIGITS = 9


class BadValue(ValueError):
    """A field that is not a usable decimal price; the message says why, for a person."""


def parse_decimal(text: str) -> tuple[int, int]:
    """Return ``(units, scale)`` with ``value == units / 10**scale`` exactly; raise BadValue otherwise."""
    # The fast path covers plain "123.45": ASCII digits only (str.isdigit alone admits other scripts).
    whole, _, frac = text.partition(".")
    digits = whole + frac
    if digits.isdigit() and digits.isascii() and len(frac) <= MAX_SCALE and len(whole) <= MAX_INT_DIGITS:
        return int(digits), len(frac)
    return _parse_general(text)


def _parse_general(text: str) -> tuple[int, int]:
    global _literal
    if _literal is None:
        _literal = re.compile(_LITERAL, re.ASCII)
    m = _literal.fullmatch(text)
    if m is None or not (m.group(2) or m.group(3)):
        low = text.strip().lower().lstrip("+-")
        if low in ("nan", "inf", "infinity"):
            raise BadValue(f"{excerpt(text)} is not a finite number")
        if not text.strip():
            raise BadValue("the value is empty")
        raise BadValue(f"{excerpt(text)} is not a decimal number")
    sign, whole, frac, exp_sign, exp_digits = m.group(1), m.group(2) or "", m.group(3) or "", m.group(4), m.group(5)
    digits = (whole + frac).lstrip("0")
    if not digits:
        return 0, 0
    # Work out magnitude from the text before building any integer.
    exp_digits = (exp_digits or "").lstrip("0")
    if len(exp_digits) > MAX_EXP_DIGITS:
        raise BadValue(f"{excerpt(text)} is out of range (its exponent is far too large)")
    exp = -int(exp_digits) if exp_sign == "-" and exp_digits else int(exp_digits or "0")
    stripped = digits.rstrip("0")
    scale = len(frac) - exp - (len(digits) - len(stripped))
    int_digits = len(stripped) - scale
    if scale > MAX_SCALE or int_digits > MAX_INT_DIGITS:
        raise BadValue(
            f"{excerpt(text)} is out of range (more than {MAX_INT_DIGITS} integer digits or {MAX_SCALE} decimals)"
        )
    units = int(stripped)
    if scale < 0:
        units *= 10**-scale
        scale = 0
    return (-units if sign == "-" else units), scale


def format_decimal(units: int, scale: int) -> str:
    """The inverse of ``parse_decimal`` for display: ``units / 10**scale`` written out exactly.

    >>> format_decimal(10050, 2), format_decimal(-85, 7), format_decimal(7, 0)
    ('100.50', '-0.0000085', '7')
    """
    digits = str(abs(units)).rjust(scale + 1, "0")
    sign = "-" if units < 0 else ""
    return sign + (f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits)
