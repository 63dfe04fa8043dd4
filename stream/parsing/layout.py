"""The layout of an input: for CSV its delimiter, header (or none, or a title line above it), for JSON Lines the
fields of its first object; which column is the close, and whether its rows run newest first; what the user asked
for and what the file's first lines say."""

from __future__ import annotations

from stream.core.exact import BadValue, parse_decimal
from stream.parsing.columns import DELIMITERS, LISTED, listed
from stream.parsing.framing import InputError, dialect, excerpt, plain_line, unwrap

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any

    from stream.config import Config

TIMESTAMP_COLUMN = "timestamp"
# Data rows after the header looked at to tell the delimiter (when the header is ambiguous) and the row order.
SAMPLE = 10


class LayoutRequest:
    """What the user asked for (flags and config): the close column (a name, or a 1-based position), the delimiter,
    whether there is a header, lines to skip at the start of each file, the decimal mark (None: find out), whether
    the rows are read from the last to the first (--reverse), and the format (csv or jsonl; None: told by each
    input's first line)."""

    def __init__(
        self,
        column: str = "close",
        delimiter: str | None = None,
        header: bool = True,
        skip_lines: int = 0,
        decimal: str | None = None,
        reverse: bool = False,
        format: str | None = None,
    ) -> None:
        self.column = column
        self.delimiter = delimiter
        self.header = header
        self.skip_lines = skip_lines
        self.decimal = decimal
        self.reverse = reverse
        self.format = format

    @classmethod
    def of(cls, cfg: Config) -> LayoutRequest:
        """The request a config (stream.config.Config, flags applied) makes."""
        return cls(cfg.column, cfg.delimiter, cfg.header, cfg.skip_lines, cfg.decimal, format=cfg.format)

    def backwards(self) -> LayoutRequest:
        """The same request for rows read from the last to the first (--reverse)."""
        return LayoutRequest(
            self.column, self.delimiter, self.header, self.skip_lines, self.decimal, reverse=True, format=self.format
        )


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
        format: str = "csv",
        paths: list[list[str]] | None = None,
        file: str | None = None,
        told: str | None = None,
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
        self.format = format  # "jsonl": one JSON object a line; its columns are the first object's fields
        self.paths = paths  # JSON Lines: each field's keys from the object down (``k.c`` is ["k", "c"])
        self.file = file  # the input whose first lines told the layout, when the run reads several
        self.told = told  # how the format was told, for the log ("--format jsonl"); None: CSV, as ever

    @property
    def mark(self) -> str | None:
        """The decimal mark as far as the layout tells it: asked for or found in the first rows; a comma-separated
        file's is the dot (a comma in a value there is inside quotes and groups thousands); None: not known yet."""
        return self.decimal or ("." if self.delimiter == "," else None)

    @property
    def close_name(self) -> str:
        named = self.header or self.format == "jsonl"
        return self.columns[self.close_index] if named else f"#{self.close_index + 1}"

    def spec(self) -> dict[str, Any]:
        """Plain data that ``from_spec`` turns back into this layout (checkpoints, workers)."""
        return {k: getattr(self, k) for k in _SPEC}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Layout:
        return cls(**{k: spec[k] for k in _SPEC if k in spec})

    def describe(self) -> str:
        ts = self.columns[self.timestamp_index] if self.timestamp_index is not None else "none"
        if self.format == "jsonl":
            return (
                f"JSON Lines ({self.told}); close field {self.close_name!r}; time field {ts!r}"
                + (" (a time name)" if self.timestamp_index is not None else "")
                + "; "
                + (f"key field {self.columns[self.key_index]!r} (--key); " if self.key_index is not None else "")
                + f"{len(self.columns)} fields in the first object (line {self.header_line}): {listed(self.columns)}"
                + f"; BOM: {self.bom}"
            )
        shown = listed(self.columns) if self.header else f"numbered 1-{len(self.columns)} (no header)"
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
    "header", "decimal", "notes", "warnings", "format", "paths", "file", "told",
)  # fmt: skip


def _name(delimiter: str) -> str:
    return {"\t": "TAB", ",": "','", ";": "';'", "|": "'|'"}.get(delimiter, repr(delimiter))


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
    if s[:2] in ("[{", '["', "[[") or s == "[":  # not `[Date],[Close]`
        return (
            f"it is a JSON array, not CSV or JSON Lines (it starts {excerpt(s, 12)}); JSON Lines hold one object a "
            "line: jq -c '.[]' writes an array so"
        )
    if s[:1] == "{":
        return f"it looks like JSON Lines, not CSV (it starts {excerpt(s, 12)}); leave out --format csv to read it"
    return None


def looks_like_data(names: list[str]) -> bool:
    """Whether a first line is a data row rather than a header: several fields, at least half of them numbers."""
    return len(names) >= 2 and sum(numeric(n) for n in names) * 2 >= len(names)


def numbered(fields: list[str]) -> str:
    """A line's fields numbered from 1 (``1=2023.04.24 2=10:00 ...``), cut to the first ``LISTED``."""
    shown = " ".join(f"{i}={f.strip() if len(f) <= 24 else f[:24] + '...'}" for i, f in enumerate(fields[:LISTED], 1))
    return shown + (f" ... ({len(fields)} fields)" if len(fields) > LISTED else "")


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
