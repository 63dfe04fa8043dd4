"""The column rule: which of a CSV header's names, or of a JSON object's fields, is the close, the key and the time;
and whether the first rows' times run newest first. One rule for both formats; messages name what each has."""

from __future__ import annotations

import itertools

from stream.parsing.framing import InputError

# The close under the names common exporters give it, with who writes it so (matched ignoring case).
KNOWN_CLOSES = {
    "<close>": "MetaTrader 5's bar export",
    "4. close": "Alpha Vantage's numbered columns",
    "price": "investing.com, whose Price is the close",
    "zamkniecie": "stooq.pl's Polish header",
    # Taken only when the header has none of the names above (nor the close's own name).
    "last": "exports that give each bar's last price",
    "px_last": "Bloomberg's field names",
    "schlusskurs": "German exports",
    "schluss": "German exports",
}
LATER_CLOSES = ("last", "px_last", "schlusskurs", "schluss")
# Close names matched as written: Binance's ticker has a `C` (its close time) beside its `c`.
CASED_CLOSES = {"c": "the short keys of Binance, Polygon and Alpaca"}
# Names of a time column, for telling whether rows run newest first (matched ignoring case and <>).
TIME_NAMES = (
    "timestamp", "date", "datetime", "time", "unix", "open_time", "gmt time", "data", "date time", "datum", "mts",
)  # fmt: skip
# Time names matched as written: `t` (Polygon, Alpaca, a Binance kline's open time), `E` (a Binance event's time;
# its `e` is the event's type).
CASED_TIME_NAMES = ("t", "E")
# The delimiters CSV headers are split at (a header read as one column may hold another).
DELIMITERS = (",", ";", "\t", "|")
# Columns listed in a message: a header of thousands of columns must not make a message of hundreds of KB.
LISTED = 20


class Words:
    """How messages name where the names come from and what they are: a CSV header's columns, a JSON object's
    fields."""

    __slots__ = ("many", "one", "whole")

    def __init__(self, whole: str, one: str, many: str) -> None:
        self.whole = whole
        self.one = one
        self.many = many


CSV_WORDS = Words("the header", "column", "columns")
JSON_WORDS = Words("the first object", "field", "fields")


def listed(names: list[str]) -> str:
    """Names for a message: quoted, each cut to 40 characters, the first ``LISTED`` of them."""
    shown = ", ".join(repr(n if len(n) <= 40 else n[:40] + "...") for n in names[:LISTED])
    return shown + (f" ... and {len(names) - LISTED} more" if len(names) > LISTED else "")


def _no_column(names: list[str], wanted: str, at: str, flag: str, config: str, words: Words) -> InputError:
    import difflib

    low = wanted.lower()
    close = [n for n in names if low in n.lower()]
    by_lower = {n.lower(): n for n in reversed(names)}
    similar = difflib.get_close_matches(low, list(by_lower), n=3, cutoff=0.6)
    close += [by_lower[n] for n in similar if by_lower[n] not in close]
    if config == "column" and low == "close":  # nested fields whose own name is a close's (a Binance kline's k.c)
        close += [n for n in names if "." in n and known_close(n.rpartition(".")[2]) is not None and n not in close]
    closest = f"; closest: {listed(close[:5])}" if close else ""
    what = f"key {words.one}" if config == "key" else words.one
    # One "column" holding another delimiter: the header was split at the wrong one (a --delimiter given, say).
    other = [d for d in DELIMITERS if len(names) == 1 and d in names[0]] if words is CSV_WORDS else []
    if other:
        tab = other[0] == "\t"
        word, arg, key = ("tabs", "tab", "tab") if tab else (repr(other[0]), repr(other[0]), f'"{other[0]}"')
        return InputError(
            f"the header ({at}) reads as one column {listed(names)}: its names are separated by {word}; pass "
            f"--delimiter {arg} (or delimiter: {key} in the config), or leave the delimiter out to have it found"
        )
    return InputError(
        f"{words.whole} ({at}) has no {what} {wanted!r}; {words.many} found: {listed(names)}{closest}; name the "
        f"{what} with {flag} NAME (or '{config}: NAME' in the config)"
    )


def position(wanted: str, count: int, at: str, flag: str) -> int:
    """The 0-based index of a 1-based column position given as text."""
    n = int(wanted)
    if not 1 <= n <= count:
        raise InputError(f"{flag} {wanted}: the lines ({at}) have {count} fields, numbered 1 to {count}")
    return n - 1


def known_close(name: str) -> str | None:
    """Who writes the close under ``name``, when it is a known close name; None otherwise."""
    return KNOWN_CLOSES.get(name.lower()) or CASED_CLOSES.get(name)


def choose_close(names: list[str], wanted: str, at: str, words: Words = CSV_WORDS) -> tuple[int, str | None]:
    """The index of the close among a header's ``names`` and, when it is not the exact name asked for, why it was
    taken. The exact name; else a position (``--column 6``); else the one name that matches ignoring case; else, for
    the default ``close``, the one close name of a common exporter. Never an adjusted close in place of the close;
    never a silent choice among several."""
    whole, one, many = words.whole, words.one, words.many
    if wanted in names:
        if names.count(wanted) > 1:
            raise InputError(f"{whole} ({at}) names the {one} {wanted!r} more than once")
        return names.index(wanted), None
    if wanted.isdigit():
        i = position(wanted, len(names), at, "--column")
        return i, f"the close is {one} {wanted}, {names[i]!r} (--column {wanted})"
    low = [n.lower() for n in names]
    same = [i for i, n in enumerate(low) if n == wanted.lower()]
    if len(same) == 1:
        i = same[0]
        why = f"the close is the {one} {names[i]!r}: {whole} has no {wanted!r}, and it is the one name that matches"
        return i, why + " ignoring case"
    if len(same) > 1:
        raise InputError(
            f"{whole} ({at}) has several {many} named {wanted!r} ignoring case: "
            f"{listed([names[i] for i in same])}; choose one with --column NAME"
        )
    if wanted.lower() == "close":
        for later in (False, True):  # a later name never over an earlier one: headers read before read the same
            known = [i for i, n in enumerate(names) if known_close(n) is not None and (low[i] in LATER_CLOSES) == later]
            if len(known) == 1:
                i = known[0]
                return i, f"the close is the {one} {names[i]!r}, the close's name in {known_close(names[i])}"
            if len(known) > 1:
                raise InputError(
                    f"{whole} ({at}) has several {many} that may be the close: "
                    f"{listed([names[i] for i in known])}; choose one with --column NAME"
                )
    raise _no_column(names, wanted, at, "--column", "column", words)


def choose_key(names: list[str], key: str, at: str, words: Words = CSV_WORDS) -> int:
    if key in names:
        if names.count(key) > 1:
            raise InputError(f"{words.whole} ({at}) names the key {words.one} {key!r} more than once")
        return names.index(key)
    if key.isdigit():
        return position(key, len(names), at, "--key")
    raise _no_column(names, key, at, "--key", "key", words)


def time_column(names: list[str], header: bool) -> int | None:
    """The column that tells the rows' order: the first with a time-like name; the first column of a headerless
    file."""
    if not header:
        return 0
    for i, n in enumerate(names):
        if n.strip("<>").lower() in TIME_NAMES or n in CASED_TIME_NAMES:
            return i
    return None


def newest_first(stamps: list[str]) -> bool:
    """Whether the sampled rows' times (in the order they are processed) run backwards: at least three, each earlier
    than the one before, in a form stream.parsing.dates can compare; never on mixed forms, unreadable values, equal
    times, a sample out of order or a day-month order the values leave open."""
    if len(stamps) < 3:
        return False
    from stream.parsing.dates import time_keys  # deferred: read once per run, and never by workers

    keys = time_keys(stamps)
    return keys is not None and all(a > b for a, b in itertools.pairwise(keys))


def order_warnings(values: list[str], what: str, reverse: bool) -> list[str]:
    """A warning when the first rows' times (``values``, of ``what``) run backwards in the order the run reads them
    (``reverse``: from the last row)."""
    if not reverse and newest_first(values):
        return [
            f"the rows run newest first ({what} goes back in time over the first rows): the rolling mean "
            "will run backwards in time; pass --reverse to read the file from its last row to its first"
        ]
    if reverse and newest_first(values[::-1]):  # the order --reverse processes them in
        return [
            f"with --reverse the rows run newest first ({what} goes forward in time over the file's first "
            "rows): the rolling mean will run backwards in time; leave out --reverse to read the file in order"
        ]
    return []
