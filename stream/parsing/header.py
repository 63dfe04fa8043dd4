"""Finding a file's header, as csv.Sniffer does: a pure function of the file's first lines that returns where its
data starts and the layout it has (stream/parsing/layout.py), or that it needs more lines (a title line above it,
headerless files, a later file's header, the newest-first check); and its format (a first `{`: JSON Lines, whose
first object tells the layout, stream/parsing/jsonl.py)."""

from __future__ import annotations

from stream.core.batch import where
from stream.parsing.columns import choose_close, choose_key, known_close, order_warnings, position, time_column
from stream.parsing.framing import SHOWN, Flagged, InputError, excerpt, show_line
from stream.parsing.layout import (
    SAMPLE,
    TIMESTAMP_COLUMN,
    Layout,
    LayoutRequest,
    NotCsv,
    data_error,
    looks_like_data,
    not_csv,
    numbered,
    numeric,
    sniff,
    split,
    wrapped_header,
)

# find_header's answer when the last line it looked at may be a title above the header and the line after it, which
# decides, has not come yet: the lines are given back, to be looked at again with the next one.
HOLD = "hold"


class Sample:
    """The first lines of a file as they have come: ``lines`` (``first``: the number of the first), ``flagged``
    (lines that could not be read, read as ""), whether they are all the file has (``final``), the file's name
    for messages, and whether it starts with a byte order mark."""

    __slots__ = ("bom", "file", "final", "first", "flagged", "lines")

    def __init__(
        self, lines: list[str], first: int = 1, flagged: Flagged | None = None, final: bool = True,
        file: str | None = None, bom: bool = False,
    ) -> None:  # fmt: skip
        self.lines = lines
        self.first = first
        self.flagged = flagged if flagged is not None else {}
        self.final = final
        self.file = file
        self.bom = bom


class Found:
    """Where a file's data starts among the lines of its Sample (``start``, the index of its first data line), and
    the layout it has, with its header as written (None: the input has none); a later file's are the first's."""

    # A plain class: the run's import pays for every NamedTuple made, and this one needs nothing of a tuple.
    __slots__ = ("header", "layout", "start")

    def __init__(self, start: int, layout: Layout, header: str | None) -> None:
        self.start = start
        self.layout = layout
        self.header = header

    def at(self, start: int) -> Found:
        """The same layout and header, the data starting at ``start``."""
        return Found(start, self.layout, self.header)


def find_header(
    sample: Sample,
    request: LayoutRequest,
    key: str | None = None,
    skip: int = 0,
    known: Found | None = None,
) -> Found | str | None:
    """The header of the file whose first lines are ``sample`` (or, without one, its first data line) after its
    first ``skip`` lines: Found; HOLD when a line may be a title and the next line decides; None when only blank
    lines came. ``known``: what the run's first file had (the file is a later one: its header must be the same, or
    absent). Raises InputError when the lines cannot start a CSV file."""
    lines, flagged, final = sample.lines, sample.flagged, sample.final
    note = None
    for i in range(skip, len(lines)):
        at = where(sample.file, sample.first + i)
        if i in flagged:
            # An undecodable line reads as "" but is not blank: it is the header, or in a later file a bad row.
            if known is not None:
                return known.at(i)
            _, reason, raw = flagged[i]
            shown = show_line(raw[: SHOWN * 4].decode("utf-8", "replace"))
            raise InputError(f"the header ({at}) cannot be read: {reason}: {shown}")
        if not lines[i].strip():
            continue
        stripped = lines[i].lstrip("\ufeff").strip()
        following = [f for f in lines[i + 1 : i + 1 + 2 * SAMPLE] if f.strip()][:SAMPLE]
        # JSON Lines are told by the first character of each input, as compressed inputs are by their first bytes.
        fmt = request.format or ("jsonl" if stripped[:1] == "{" else "csv")
        if known is not None:
            if request.format is None and fmt != known.layout.format:
                raise _mixed(sample, i, stripped, known.layout)
            return known.at(i) if fmt == "jsonl" else _later(sample, i, stripped, following, known)
        if fmt == "jsonl":
            from stream.parsing.jsonl import json_layout  # deferred: a CSV run never imports json

            told = "--format jsonl" if request.format else "its first line starts with '{'"
            line_no = sample.first + i
            layout = json_layout(stripped, following, line_no, request, key, sample.file, sample.bom, told)
            return Found(i, layout, None)
        why = not_csv(stripped)
        if why is not None:
            raise InputError(f"the first line ({at}) cannot be a CSV header: {why}")
        delimiter = request.delimiter or sniff(stripped, following)
        if request.header and request.delimiter is None and _title(stripped, delimiter, request.column):
            if not following:
                if not final:
                    return HOLD
            elif _header_below(following):
                note = f"skipped a title line above the header ({at}): {excerpt(stripped)}"
                continue
        layout = layout_of(
            stripped, following, sample.first + i, request, key, sample.file, sample.bom, delimiter, note
        )
        return Found(i + 1, layout, stripped) if layout.header else Found(i, layout, None)
    return None


def layout_of(
    line: str,
    following: list[str],
    line_no: int,
    request: LayoutRequest,
    key: str | None = None,
    file: str | None = None,
    bom: bool = False,
    delimiter: str | None = None,
    note: str | None = None,
) -> Layout:
    """The layout a file's header (or first data line) ``line``, line ``line_no`` of ``file``, and the lines after
    it tell (``bom``: the file starts with a byte order mark; ``note``: for the log)."""
    at = where(file, line_no)
    if delimiter is None:
        delimiter = request.delimiter or sniff(line, following)
    try:
        names = [c.strip() for c in split(line, delimiter)]
    except NotCsv as exc:
        raise InputError(f"the header ({at}) is not a CSV record ({exc}): " + show_line(line)) from None
    notes = [note] if note else []
    warnings: list[str] = []
    if not request.header:
        if not request.column.isdigit() or (key is not None and not key.isdigit()):
            raise InputError(
                f"without a header (--no-header) columns are named by their position: the first line ({at}) is "
                f"{numbered(names)}; pass --column N" + (" and --key N" if key is not None else "")
            )
        close = position(request.column, len(names), at, "--column")
        key_index = position(key, len(names), at, "--key") if key is not None else None
        columns = [str(k) for k in range(1, len(names) + 1)]
    else:
        if request.column not in names and looks_like_data(names):
            raise data_error(names, at, delimiter)
        close, why = choose_close(names, request.column, at)
        if why is not None:  # a position was asked for; a name chosen for the user is worth a warning
            (notes if request.column.isdigit() else warnings).append(why)
        key_index = choose_key(names, key, at) if key is not None else None
        columns = names
    header = request.header
    stamps = time_column(names, header)
    if stamps is not None:
        data = following if header else [line, *following]
        what = f"column {columns[stamps]!r}" if header else "the first column"
        values = _column([f.strip() for f in data], delimiter, len(names), stamps)
        warnings += order_warnings(values, what, request.reverse)
    # The signals' timestamp: the column of that name, else the one that tells the rows' order (Date, unix, ...).
    ts = names.index(TIMESTAMP_COLUMN) if header and TIMESTAMP_COLUMN in names else stamps
    if ts == close:
        ts = None
    return Layout(
        columns, close, ts, header and wrapped_header(line, delimiter, names), bom, line_no, key_index,
        delimiter=delimiter, header=header, decimal=request.decimal, notes=notes, warnings=warnings, file=file,
    )  # fmt: skip


def _column(data: list[str], delimiter: str, width: int, index: int) -> list[str]:
    """Column ``index`` of the ``data`` lines, up to the first that is not a record of ``width`` fields."""
    values = []
    for f in data:
        try:
            fields = split(f, delimiter)
        except NotCsv:
            break
        if len(fields) != width:
            break
        values.append(fields[index])
    return values


def _mixed(sample: Sample, i: int, line: str, first: Layout) -> InputError:
    """A later input whose first line (``sample.lines[i]``) is of another format than the first input's."""
    name = {"csv": "CSV", "jsonl": "JSON Lines"}
    mine = "csv" if first.format == "jsonl" else "jsonl"
    other = first.file if first.file is not None else "the first input"
    return InputError(
        f"{where(sample.file, sample.first + i)} is {name[mine]} (it starts {excerpt(line, 12)}) but {other} is "
        f"{name[first.format]}: a run reads one format; read them in separate runs"
    )


def _title(line: str, delimiter: str, column: str) -> bool:
    """Whether a file's first line may be a title above its header (CryptoDataDownload puts its URL there): a
    single field that is neither a number nor the close column's name (a one-column file's header)."""
    try:
        fields = split(line, delimiter)
    except NotCsv:
        return False
    if len(fields) != 1 or numeric(fields[0]):
        return False
    name = fields[0].strip().lower()
    return name != column.lower() and known_close(fields[0].strip()) is None


def _header_below(following: list[str]) -> bool:
    """Whether the line below a possible title is a header: several fields, not a row of numbers."""
    line = following[0].strip()
    try:
        names = split(line, sniff(line, following[1:]))
    except NotCsv:
        return False
    return len(names) > 1 and not looks_like_data(names)


def _later(sample: Sample, i: int, stripped: str, following: list[str], known: Found) -> Found | str:
    """A later file (rotation, truncation, another input) whose first line is ``sample.lines[i]``: its header must
    be the first file's, or absent."""
    layout = known.layout
    if not layout.header:
        return known.at(i)  # every line of a headerless input is data
    try:
        names = [c.strip() for c in split(stripped, layout.delimiter)]
    except NotCsv:
        return known.at(i)  # a later file's first line: an ordinary bad row
    if names == layout.columns:  # compared as fields: quoting and spacing may differ
        return known.at(i + 1)
    if len(names) == 1 and len(layout.columns) > 1 and not numeric(names[0]):
        # A title line above the header, as the first file may have had: skipped when our header follows.
        if not following and not sample.final:
            return HOLD
        nxt = [c.strip() for c in split(following[0].strip(), layout.delimiter)] if following else []
        if nxt == layout.columns:
            lines = sample.lines
            return known.at(next(j for j in range(i + 1, len(lines)) if lines[j].strip()) + 1)
    if _header_like(names, layout):
        raise InputError(
            f"{where(sample.file, sample.first + i)}: a new header {show_line(stripped)} differs from the first one "
            f"{show_line(known.header or '')}; the inputs do not share one layout"
        )
    return known.at(i)


def _header_like(names: list[str], layout: Layout) -> bool:
    """Whether the first line of a later file is a header rather than data: it names our close or timestamp column,
    or none of its several fields is a number (a data row of OHLCV has numbers beside its timestamp)."""
    if layout.columns[layout.close_index] in names or TIMESTAMP_COLUMN in names:
        return True
    return len(names) >= 2 and not any(numeric(n) for n in names)
