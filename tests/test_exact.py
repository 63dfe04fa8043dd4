"""Contract point 3: close values are decimal literals parsed exactly from their text, never through float."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.exact import MAX_INT_DIGITS, MAX_SCALE, BadValue, parse_decimal


def value(text: str) -> Fraction:
    units, scale = parse_decimal(text)
    return Fraction(units, 10**scale)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100.10", (10010, 2)),
        ("100.1", (1001, 1)),
        ("42", (42, 0)),
        ("0", (0, 0)),
        ("-0.0", (0, 0)),
        (".5", (5, 1)),
        ("5.", (5, 0)),
        ("+1.25", (125, 2)),
        ("-1.25", (-125, 2)),
        ("8.5e-06", (85, 7)),
        ("8.5E-06", (85, 7)),
        ("1e3", (1000, 0)),
        ("-1.5E+3", (-1500, 0)),
        ("1.5e+0", (15, 1)),
        ("0.000001", (1, 6)),
        ("1e000000000005", (100000, 0)),  # leading zeros do not make an exponent large
        ("12345678901234567890.5", (123456789012345678905, 1)),
    ],
)
def test_literals_parse_exactly(text: str, expected: tuple[int, int]) -> None:
    assert parse_decimal(text) == expected


def test_values_that_floats_get_wrong_are_exact() -> None:
    assert value("0.1") + value("0.2") == value("0.3")
    assert value("100.1") == value("100.10") == value("1.001e2") == value("10010e-2")
    assert value("8.5e-06") == Fraction(85, 10**7)
    assert value("9007199254740993") == 9007199254740993  # 2**53 + 1: not representable as a float


@given(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=-8, max_value=8),
    st.sampled_from(["e", "E"]),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_any_decimal_spelling_round_trips(units: int, scale: int, exp: int, e: str, plus: bool) -> None:
    # Write units/10**scale as mantissa * 10**exp; the parsed value must be the Fraction of that text.
    digits = str(abs(units)).rjust(scale + 1, "0")
    mantissa = digits[: len(digits) - scale] + ("." + digits[len(digits) - scale :] if scale else "")
    sign = "-" if units < 0 else ("+" if plus else "")
    text = f"{sign}{mantissa}{e}{exp}"
    assert value(text) == Fraction(text)
    plain = f"{sign}{mantissa}"
    assert value(plain) == Fraction(plain)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("nan", "not a finite number"),
        ("NaN", "not a finite number"),
        ("-nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("-Infinity", "not a finite number"),
        ("+inf", "not a finite number"),
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not a decimal number"),
        ("1.2.3", "not a decimal number"),
        ("1,5", "not a decimal number"),
        ("0x1A", "not a decimal number"),
        ("1_000", "not a decimal number"),
        ("١٢٣", "not a decimal number"),  # Arabic-Indic digits: str.isdigit() is true, but not a price
        ("1e", "not a decimal number"),
        ("e5", "not a decimal number"),
        (".", "not a decimal number"),
        ("-", "not a decimal number"),
        ("--1", "not a decimal number"),
        ("1 000", "not a decimal number"),
        ("$100", "not a decimal number"),
        ("1e999999999", "out of range"),
        ("1e-999999999", "out of range"),
        ("1" * (MAX_INT_DIGITS + 1), "out of range"),
        ("0." + "0" * MAX_SCALE + "1", "out of range"),
    ],
)
def test_bad_values_are_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(BadValue, match=why):
        parse_decimal(text)


@pytest.mark.parametrize("text", ["1e999999999", "-7.5E+999999999", "1e-999999999", "1e99999999999999999999"])
def test_huge_exponents_are_refused_from_the_text_alone(text: str) -> None:
    # 10**999999999 would take about 400 MB to build; refusing from the text allocates next to nothing.
    tracemalloc.start()
    try:
        with pytest.raises(BadValue, match="out of range"):
            parse_decimal(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_zero_with_any_exponent_is_zero() -> None:
    assert parse_decimal("0e999999999") == (0, 0)
    assert parse_decimal("0.0e99999999999999999999") == (0, 0)
    assert parse_decimal("-0.000e-5") == (0, 0)


def test_the_range_limits_are_inclusive() -> None:
    assert parse_decimal("0." + "0" * (MAX_SCALE - 1) + "1") == (1, MAX_SCALE)
    assert parse_decimal("9" * MAX_INT_DIGITS) == (int("9" * MAX_INT_DIGITS), 0)
    assert parse_decimal(f"1e{MAX_INT_DIGITS - 1}") == (10 ** (MAX_INT_DIGITS - 1), 0)
    # Trailing zeros in the fraction do not count against the scale: the value is what matters.
    assert parse_decimal("1." + "0" * (MAX_SCALE + 5)) == (1, 0)
