"""The layout of a CSV export: its delimiter, header (or none, or a title line above it), which column is the close,
and whether its rows run newest first; what the user asked for and what the file's first lines say."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from stream.core.exact import BadValue, parse_decimal
from stream.parsing.framing import InputError, dialect, excerpt, plain_line, unwrap

if TYPE_CHECKING:
    from stream.config import Config

TIMESTAMP_COLUMN = "timestamp"
DELIMITERS = (",", ";", "\t", "|")
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
# Names of a time column, for telling whether rows run newest first (matched ignoring case and <>).
TIME_NAMES = (
    "timestamp", "date", "datetime", "time", "unix", "open_time", "gmt time", "data", "date time", "datum", "mts",
)  # fmt: skip
# Columns listed in a message: a header of thousands of columns must not make a message of hundreds of KB.
LISTED = 20
# Data rows after the header looked at to tell the delimiter (when the header is ambiguous) and the row order.
SAMPLE = 10


class LayoutRequest:
    """What the user asked for (flags and config): the close column (a name, or a 1-based position), the delimiter,
    whether there is a header, lines to skip at the start of each file, the decimal mark (None: find out), and
    whether the rows are read from the last to the first (--reverse)."""

    def __init__(
        self,
        column: str = "close",
        delimiter: str | None = None,
        header: bool = True,
        skip_lines: int = 0,
        decimal: str | None = None,
        reverse: bool = False,
    ) -> None:
        self.column = column
        self.delimiter = delimiter
        self.header = header
        self.skip_lines = skip_lines
        self.decimal = decimal
        self.reverse = reverse

    @classmethod
    def of(cls, cfg: Config) -> LayoutRequest:
        """The request a config (stream.config.Config, flags applied) makes."""
        return cls(cfg.column, cfg.delimiter, cfg.header, cfg.skip_lines, cfg.decimal)

    def backwards(self) -> LayoutRequest:
        """The same request for rows read from the last to the first (--reverse)."""
        return LayoutRequest(self.column, self.delimiter, self.header, self.skip_lines, self.decimal, reverse=True)


class Layout:
    """What the first lines said: the columns, where the close, timestamp and key are, how the file is written, and
    notes for the log (``warnings`` also go to stderr)."""

    def __init__(
        self,
        columns: list[str],
        close_index: int,
        timestamp_index: int | None,
        quoted_lines: bool,
        bom: bool,
        header_line: int,
        key_index: int | None = None,
        delimiter: str = ",",
        header: bool = True,
        decimal: str | None = None,
        notes: list[str] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.columns = columns
        self.close_index = close_index
        self.timestamp_index = timestamp_index
        self.key_index = key_index
        self.quoted_lines = quoted_lines
        self.bom = bom
        self.header_line = header_line
        self.delimiter = delimiter
        self.header = header  # False: the columns are numbered, every line is data
        self.decimal = decimal
        self.notes = notes or []
        self.warnings = warnings or []

    @property
    def mark(self) -> str | None:
        """The decimal mark as far as the layout tells it: asked for or found in the first rows; a comma-separated
        file's is the dot (a comma in a value there is inside quotes and groups thousands); None: not known yet."""
        return self.decimal or ("." if self.delimiter == "," else None)

    @property
    def close_name(self) -> str:
        return self.columns[self.close_index] if self.header else f"#{self.close_index + 1}"

    def spec(self) -> dict[str, Any]:
        """Plain data that ``from_spec`` turns back into this layout (checkpoints, workers)."""
        return {k: getattr(self, k) for k in _SPEC}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Layout:
        return cls(**{k: spec[k] for k in _SPEC if k in spec})

    def describe(self) -> str:
        ts = self.columns[self.timestamp_index] if self.timestamp_index is not None else "none"
        shown = _listed(self.columns) if self.header else f"numbered 1-{len(self.columns)} (no header)"
        return (
            f"{len(self.columns)} columns {shown}; delimiter {_name(self.delimiter)}; close column "
            + (f"{self.close_name!r} (#{self.close_index + 1})" if self.header else self.close_name)
            + f"; timestamp column {ts!r}; "
            + (f"key column {self.columns[self.key_index]!r}; " if self.key_index is not None else "")
            + (f"decimal mark {self.decimal!r}; " if self.decimal else "")
            + f"whole-line quoted header: {self.quoted_lines}; BOM: {self.bom}"
        )


_SPEC = (
    "columns", "close_index", "timestamp_index", "quoted_lines", "bom", "header_line", "key_index", "delimiter",
    "header", "decimal", "notes", "warnings",
)  # fmt: skip


def _name(delimiter: str) -> str:
    return {"\t": "TAB", ",": "','", ";": "';'", "|": "'|'"}.get(delimiter, repr(delimiter))


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n if len(n) <= 40 else n[:40] + "...") for n in names[:LISTED])
    return shown + (f" ... and {len(names) - LISTED} more" if len(names) > LISTED else "")


def numeric(text: str) -> bool:
    try:
        parse_decimal(text.strip())
    except BadValue:
        return False
    return True


class NotCsv(ValueError):
    """A line the csv module cannot read; the message says why, in words about the input."""


def csv_reason(exc: Exception) -> str:
    """The csv module's complaint in words about the input (its own text suggests opening files differently)."""
    if "new-line" in str(exc):
        return "a carriage return inside an unquoted field"
    return str(exc)


def split(line: str, delimiter: str) -> list[str]:
    """The fields of one line read on its own (a header, a first line): csv fields, with a record wrapped whole in
    quotes unwrapped. Raises NotCsv."""
    if plain_line(line):
        return line.split(delimiter) if line else []
    inside = unwrap(line, delimiter)
    if inside is not None and plain_line(inside):
        return inside.split(delimiter)
    import csv

    try:
        rec = next(csv.reader([line], delimiter=delimiter), [])
        if len(rec) == 1 and delimiter in rec[0]:  # a wrapped record with quotes inside it, doubled
            rec = next(csv.reader([rec[0]], delimiter=delimiter), [])
    except csv.Error as exc:
        raise NotCsv(csv_reason(exc)) from None
    return rec


def _outside_quotes(line: str) -> str:
    inside = unwrap(line, "") if line.count('"') == 2 else None  # a whole-line quoted record: look inside it
    if inside is not None:
        return inside
    return "".join(line.split('"')[::2])


def sniff(line: str, following: list[str]) -> str:
    """The delimiter among , ; TAB | of a header (or first) ``line``: the only one it has, or, when it has several,
    the one that splits the ``following`` lines into as many fields; the comma when it has none."""
    bare = _outside_quotes(line)
    found = [d for d in DELIMITERS if d in bare]
    if len(found) <= 1:
        return found[0] if found else ","
    counts = {d: bare.count(d) + 1 for d in found}
    agree = [d for d in found if following and all(_count(f, d) == counts[d] for f in following)]
    pick = agree or found
    return max(pick, key=lambda d: (counts[d], d == ","))


def _count(line: str, delimiter: str) -> int:
    try:
        return len(split(line.strip(), delimiter))
    except NotCsv:
        return -1


def not_csv(line: str) -> str | None:
    """Why a first line is plainly not CSV (a JSON document given as the input, say), with a short excerpt only; None
    when it may be CSV."""
    s = line.strip()
    if (s[:1] == "{" and s[-1:] == "}") or s[:2] in ('{"', "[{", '["', "[["):  # not `[Date],[Close]`
        return f"it looks like JSON, not CSV (it starts {excerpt(s, 12)})"
    return None


def looks_like_data(names: list[str]) -> bool:
    """Whether a first line is a data row rather than a header: several fields, at least half of them numbers."""
    return len(names) >= 2 and sum(numeric(n) for n in names) * 2 >= len(names)


def numbered(fields: list[str]) -> str:
    """A line's fields numbered from 1 (``1=2023.04.24 2=10:00 ...``), cut to the first ``LISTED``."""
    shown = " ".join(f"{i}={f.strip() if len(f) <= 24 else f[:24] + '...'}" for i, f in enumerate(fields[:LISTED], 1))
    return shown + (f" ... ({len(fields)} fields)" if len(fields) > LISTED else "")


def _no_column(names: list[str], wanted: str, at: str, flag: str, config: str) -> InputError:
    import difflib

    low = wanted.lower()
    close = [n for n in names if low in n.lower()]
    by_lower = {n.lower(): n for n in reversed(names)}
    similar = difflib.get_close_matches(low, list(by_lower), n=3, cutoff=0.6)
    close += [by_lower[n] for n in similar if by_lower[n] not in close]
    closest = f"; closest: {_listed(close[:5])}" if close else ""
    what = "key column" if config == "key" else "column"
    # One "column" holding another delimiter: the header was split at the wrong one (a --delimiter given, say).
    other = [d for d in DELIMITERS if len(names) == 1 and d in names[0]]
    if other:
        tab = other[0] == "\t"
        word, arg, key = ("tabs", "tab", "tab") if tab else (repr(other[0]), repr(other[0]), f'"{other[0]}"')
        return InputError(
            f"the header ({at}) reads as one column {_listed(names)}: its names are separated by {word}; pass "
            f"--delimiter {arg} (or delimiter: {key} in the config), or leave the delimiter out to have it found"
        )
    return InputError(
        f"the header ({at}) has no {what} {wanted!r}; columns found: {_listed(names)}{closest}; name the {what} "
        f"with {flag} NAME (or '{config}: NAME' in the config)"
    )


def position(wanted: str, count: int, at: str, flag: str) -> int:
    """The 0-based index of a 1-based column position given as text."""
    n = int(wanted)
    if not 1 <= n <= count:
        raise InputError(f"{flag} {wanted}: the lines ({at}) have {count} fields, numbered 1 to {count}")
    return n - 1


def choose_close(names: list[str], wanted: str, at: str) -> tuple[int, str | None]:
    """The index of the close among a header's ``names`` and, when it is not the exact name asked for, why it was
    taken. The exact name; else a position (``--column 6``); else the one name that matches ignoring case; else, for
    the default ``close``, the one close name of a common exporter. Never an adjusted close in place of the close;
    never a silent choice among several."""
    if wanted in names:
        if names.count(wanted) > 1:
            raise InputError(f"the header ({at}) names the column {wanted!r} more than once")
        return names.index(wanted), None
    if wanted.isdigit():
        i = position(wanted, len(names), at, "--column")
        return i, f"the close is column {wanted}, {names[i]!r} (--column {wanted})"
    low = [n.lower() for n in names]
    same = [i for i, n in enumerate(low) if n == wanted.lower()]
    if len(same) == 1:
        i = same[0]
        why = f"the close is the column {names[i]!r}: the header has no {wanted!r}, and it is the one name that matches"
        return i, why + " ignoring case"
    if len(same) > 1:
        raise InputError(
            f"the header ({at}) has several columns named {wanted!r} ignoring case: "
            f"{_listed([names[i] for i in same])}; choose one with --column NAME"
        )
    if wanted.lower() == "close":
        for later in (False, True):  # a later name never over an earlier one: headers read before read the same
            known = [i for i, n in enumerate(low) if n in KNOWN_CLOSES and (n in LATER_CLOSES) == later]
            if len(known) == 1:
                i = known[0]
                return i, f"the close is the column {names[i]!r}, the close's name in {KNOWN_CLOSES[low[i]]}"
            if len(known) > 1:
                raise InputError(
                    f"the header ({at}) has several columns that may be the close: "
                    f"{_listed([names[i] for i in known])}; choose one with --column NAME"
                )
    raise _no_column(names, wanted, at, "--column", "column")


def choose_key(names: list[str], key: str, at: str) -> int:
    if key in names:
        if names.count(key) > 1:
            raise InputError(f"the header ({at}) names the key column {key!r} more than once")
        return names.index(key)
    if key.isdigit():
        return position(key, len(names), at, "--key")
    raise _no_column(names, key, at, "--key", "key")


def time_column(names: list[str], header: bool) -> int | None:
    """The column that tells the rows' order: the first with a time-like name; the first column of a headerless
    file."""
    if not header:
        return 0
    for i, n in enumerate(names):
        if n.strip("<>").lower() in TIME_NAMES:
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


def wrapped_header(line: str, delimiter: str, names: list[str]) -> bool:
    """Whether a header is one record wrapped whole in quotes (the log says so)."""
    if not line.startswith('"') or len(names) < 2:
        return False
    if unwrap(line, delimiter) is not None:
        return True
    import csv

    return len(next(csv.reader([line], **dialect(delimiter)), [])) == 1


def data_error(fields: list[str], at: str, delimiter: str) -> InputError:
    return InputError(
        f"the first line ({at}) looks like data, not a header: {numbered(fields)} (delimiter {_name(delimiter)}); "
        "if the file has no header, pass --no-header --column N with N the close's position "
        "(config: 'header: false', 'column: N')"
    )
