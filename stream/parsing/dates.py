"""Time texts of a column as keys that compare as the times they write (the date forms of common exports, epoch
numbers), or None when the column's form cannot be told; pure, and without the datetime module."""

from __future__ import annotations

import itertools
import re

# A key: (year, month, day, hour, minute, second, fraction) for dates, (nanoseconds, fraction) for epoch numbers.
# The fraction is the digits beyond the last whole unit without trailing zeros: as text they compare as numbers.
Key = tuple[int | str, ...]

_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december",
)  # fmt: skip
_MONTHS = {name: n for n, full in enumerate(_MONTH_NAMES, 1) for name in (full, full[:3])}
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# The date forms: year first (ISO, 2024.01.31), day or month first (01/19/2024, 19.01.2024), a month's name
# (26-Dec-18, 29-Nov-2024, Jan 19, 2024) and YYYYMMDD. re compiles (and keeps) a pattern when it is first tried, and
# the time's only when something follows a date: the import and a run's check cost 0.2 ms on epoch numbers and
# 0.4-0.6 ms on dates, instead of 1.0 ms with every pattern compiled at import (min of 25 fresh processes).
_DATES = (
    ("year first", r"(?P<y>\d{4})(?P<sep>[-./])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"),
    ("day or month first", r"(?P<a>\d{1,2})(?P<sep>[-./])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})"),
    ("day month-name year", r"(?P<d>\d{1,2})(?P<sep>[- ])(?P<mon>[A-Z]{3,9})(?P=sep)(?P<y>\d{4}|\d{2})"),
    ("month-name day, year", r"(?P<mon>[A-Z]{3,9})\.? (?P<d>\d{1,2}),? (?P<y>\d{4})"),
    ("YYYYMMDD", r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
)
# What may follow a date: a time (` 10:00`, `T10:00:00.000`, ` 3:45:00 PM`) and a zone (`Z`, `+02:00`, ` UTC`).
_TIME = (
    r"(?:(?:T|\s+)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?(?:\s*(?P<ampm>[AP]M))?)?"
    r"(?P<zone>Z|\s*UTC|\s*GMT|\s*[+-]\d{2}(?::?\d{2})?)?"
)
_FLAGS = re.ASCII | re.IGNORECASE
_NO_TIME = dict.fromkeys(("h", "mi", "s", "f", "ampm", "zone"))
# Digits of an epoch number's whole part -> the digits it lacks to count nanoseconds: seconds, milliseconds,
# microseconds and nanoseconds since 1970, each from 1973 to 2286 (11, 14 and 17 digits could be either of two).
# Told without a pattern, so a run on epoch numbers compiles none.
_EPOCH_UNITS = {9: 9, 10: 9, 12: 6, 13: 6, 15: 3, 16: 3, 18: 0, 19: 0}


def time_keys(texts: list[str]) -> list[Key] | None:
    """Keys that compare as the times the ``texts`` (one column) write, or None when their form cannot be told: a
    value in no known form, forms mixed, or day-first and month-first readings both possible and ordering the
    values differently. Keys are for comparing only; two readings that order the values alike give either's keys.

    >>> time_keys(["01/19/2024", "01/18/2024"]) == time_keys(["2024-01-19", "2024-01-18"])  # month first: 19 > 12
    True
    >>> time_keys(["26-Dec-18", "1-jan-19", "Jan 2, 2019", "2019-01-03"]) is None  # one column holds one form
    True
    >>> a, b = time_keys(["26-Dec-18", "1-JAN-19"]); a < b
    True
    >>> a, b = time_keys(["December 31, 2023", "Jan 1, 2024"]); a < b
    True
    >>> a, b = time_keys(["19840907", "19840910"]); a < b
    True
    >>> time_keys(["02/01/2024", "03/01/2024"]) is None  # Feb 1 -> Mar 1, or 2 Jan -> 3 Jan: same order
    False
    >>> time_keys(["12/01/2024", "01/02/2024"]) is None  # Dec 1 after Jan 2, or 12 Jan before 1 Feb: cannot tell
    True
    >>> time_keys(["13/01/2024", "12/01/2024", "01/02/2024"]) is None  # 13 is a day: day first
    False
    >>> a, b, c = time_keys(["1623369600000", "1503014400.0", "1700000000000000000"]); b < a < c  # ms, s, ns
    True
    >>> a, b = time_keys(["01.01.2016 00:00:00.000", "01.01.2016 01:00:00.000"]); a < b
    True
    >>> a, b = time_keys(["1/19/2024 11:59 AM", "1/19/2024 12:00 PM"]); a < b
    True
    >>> time_keys(["2024-02-30"]), time_keys(["20241301"]), time_keys(["12345678901"]), time_keys(["tomorrow"])
    (None, None, None, None)
    """
    parsed = [_parse(t.strip()) for t in texts]
    known = [p for p in parsed if p is not None]
    if len(known) < len(parsed) or len({form for form, _ in known}) > 1:
        return None
    if not known:
        return []
    readings = [[k for k in keys if k is not None] for keys in zip(*(keys for _, keys in known))]
    readings = [keys for keys in readings if len(keys) == len(known)]  # each value a time under that reading
    if not readings or any(not _same_order(readings[0], other) for other in readings[1:]):
        return None
    return readings[0]


# What one text says: its form (with whatever must be alike down a column: separator, year digits, time, zone) and
# its key under each reading of that form (None where a reading makes no date).
Parsed = tuple[tuple[object, ...], tuple[Key | None, ...]]


def _parse(text: str) -> Parsed | None:
    whole, _, fraction = text.partition(".")
    shift = _EPOCH_UNITS.get(len(whole))
    if shift is not None and (whole + fraction).isdigit() and text.isascii() and whole[0] != "0":
        ns = int(whole + fraction[:shift].ljust(shift, "0"))
        return ("epoch",), ((ns, fraction[shift:].rstrip("0")),)
    for name, pattern in _DATES:
        date = re.match(pattern, text, _FLAGS)
        if date is not None:
            rest = text[date.end() :]
            time = re.fullmatch(_TIME, rest, _FLAGS) if rest else None
            if rest and time is None:
                return None
            return _dated(name, date.groupdict() | (time.groupdict() if time else _NO_TIME))
    return None


def _dated(name: str, g: dict[str, str | None]) -> Parsed | None:
    time = _clock(g)
    y = g["y"]
    if time is None or y is None:
        return None
    form = (name, g.get("sep"), len(y), g["h"] is None, g["ampm"] is None, (g["zone"] or "").strip().upper())
    year = int(y) + (0 if len(y) == 4 else 1900 if int(y) >= 69 else 2000)  # two digits: as strptime's %y reads them
    if name == "day or month first":
        a, b = int(g["a"] or 0), int(g["b"] or 0)
        return form, (_key(year, a, b, time), _key(year, b, a, time))  # month first, day first
    mon, m = g.get("mon"), g.get("m")
    month = _MONTHS.get(mon.lower()) if mon is not None else int(m or 0)
    if month is None:
        return None
    return form, (_key(year, month, int(g["d"] or 0), time),)


def _clock(g: dict[str, str | None]) -> tuple[int, int, int, str] | None:
    """Hour, minute, second and the fraction's digits of the time after a date (midnight when there is none); None
    for no such time (25:00, 13 PM)."""
    if g["h"] is None:
        return 0, 0, 0, ""
    h, mi, s = int(g["h"]), int(g["mi"] or 0), int(g["s"] or 0)
    if g["ampm"] is not None:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if g["ampm"].lower() == "pm" else 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    return h, mi, s, (g["f"] or "").rstrip("0")


def _key(year: int, month: int, day: int, time: tuple[int, int, int, str]) -> Key | None:
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= days_in(year, month)):
        return None
    return (year, month, day, *time)


def days_in(year: int, month: int) -> int:
    """The days of a month in the proleptic Gregorian calendar.

    >>> days_in(2024, 2), days_in(1900, 2), days_in(2000, 2), days_in(2023, 4)
    (29, 28, 29, 30)
    """
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return _DAYS[month - 1] + leap


def _same_order(xs: list[Key], ys: list[Key]) -> bool:
    """Whether two key lists rank the same values alike (ties included)."""
    ranked = sorted(range(len(xs)), key=xs.__getitem__)
    return all((xs[i] < xs[j]) == (ys[i] < ys[j]) and ys[i] <= ys[j] for i, j in itertools.pairwise(ranked))
