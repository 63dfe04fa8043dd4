"""JSON Lines: one JSON object a line, as exchange websockets and Kafka, NATS or Redis clients print them (and as
``--signals-format jsonl`` writes). The first object's fields, flattened to dotted paths (``k.c``), are the names
the column rule (stream/parsing/columns.py) chooses among; values are read exactly, from their text as written,
never through a float. Chunks whose lines share one shape are read whole (stream/parsing/shapes.py); any other line
is parsed on its own, and a line that is not an object with a usable close is a bad row."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stream.core.batch import Batch, where
from stream.parsing.columns import JSON_WORDS, choose_close, choose_key, order_warnings, time_column
from stream.parsing.framing import MAX_LINE_BYTES, InputError, show_line
from stream.parsing.layout import TIMESTAMP_COLUMN, Layout, LayoutRequest
from stream.parsing.plain import one_scale
from stream.parsing.rows import BadClose, close_value
from stream.parsing.shapes import Path, Shapes

if TYPE_CHECKING:
    from stream.parsing.framing import Flagged
    from stream.parsing.rows import Bad

# Numbers keep their text, never a float; NaN and Infinity, which the json module takes, keep theirs too, and are then
# refused as any text that is not a finite decimal is.
DECODER = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)
# Lines a chunk needs for a look at its shape to pay; a chunk of another shape is halved this many times at most
# (a bad line among good ones costs two passes over the chunk, not a per-line parse of all of it).
SHAPED_MIN = 16
HALVINGS = 4
_ABSENT: Any = object()
_KINDS = {list: "an array", bool: "true or false"}


def json_layout(
    line: str,
    following: list[str],
    line_no: int,
    request: LayoutRequest,
    key: str | None,
    file: str | None,
    bom: bool,
    told: str,
) -> Layout:
    """The layout the first object of a JSON Lines input tells: ``line``, line ``line_no`` of ``file``, with the lines
    after it (for the rows' order); ``told``: how the format was told, for the log."""
    at = where(file, line_no)
    for asked, why in (
        (request.delimiter is not None, "--delimiter"), (not request.header, "--no-header"),
        (request.decimal == ",", "--decimal ,"),
    ):  # fmt: skip
        if asked:
            raise InputError(f"{why} applies to CSV, and the input ({at}) is JSON Lines ({told})")
    obj = _first_object(line, at)
    found = flattened(obj)
    if not found:
        raise InputError(f"the first object ({at}) has no fields: {show_line(line)}")
    names = [name for name, _ in found]
    notes: list[str] = []
    warnings: list[str] = []
    close, chosen = choose_close(names, request.column, at, JSON_WORDS)
    if chosen is not None:
        (notes if request.column.isdigit() else warnings).append(chosen)
    key_index = choose_key(names, key, at, JSON_WORDS) if key is not None else None
    stamps = time_column(names, True)
    if stamps is not None:
        values = [_text(_at(o, found[stamps][1])) for o in _objects(following)]
        warnings += order_warnings(values, f"field {names[stamps]!r}", request.reverse)
    ts = names.index(TIMESTAMP_COLUMN) if TIMESTAMP_COLUMN in names else stamps
    return Layout(
        names, close, None if ts == close else ts, False, bom, line_no, key_index, header=False, decimal=".",
        notes=notes, warnings=warnings, format="jsonl", paths=[p for _, p in found], file=file, told=told,
    )  # fmt: skip


def flattened(obj: dict[str, Any], above: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """An object's fields as (dotted name, keys from the object down), nested objects opened: ``{"k": {"c": 1}}``
    has the one field ``k.c``."""
    out = []
    for k, v in obj.items():
        here = (*above, k)
        if type(v) is dict and v:
            out += flattened(v, here)
        else:
            out.append((".".join(here), list(here)))
    return out


def _first_object(line: str, at: str) -> dict[str, Any]:
    if line == "{":
        raise InputError(
            f"the first line ({at}) is a lone '{{': a JSON document written over several lines, not JSON Lines, "
            "which hold one object a line (jq -c . writes it so)"
        )
    obj, why = _decoded(line)
    if why is not None:
        raise InputError(f"the first line ({at}) is not a JSON object ({why}): {show_line(line)}")
    return obj


def _decoded(line: str) -> tuple[Any, str | None]:
    """A line's object, or why it is none (broken JSON, another kind of value)."""
    try:
        obj = DECODER.decode(line)
    except json.JSONDecodeError as exc:
        return None, f"broken JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "JSON nested too deeply"
    if type(obj) is not dict:
        return None, f"{_kind(obj)}, not a JSON object"
    return obj, None


def _objects(lines: list[str]) -> list[dict[str, Any]]:
    """The objects among ``lines``, up to the first line that is none."""
    out = []
    for line in lines:
        obj, why = _decoded(line.strip())
        if why is not None:
            break
        out.append(obj)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string or number"
    return "an object" if type(value) is dict else "null" if value is None else _KINDS[type(value)]


def _at(obj: Any, path: Path | list[str]) -> Any:
    """The value at ``path`` in ``obj``; _ABSENT when the path is not there."""
    for k in path:
        if type(obj) is not dict:
            return _ABSENT
        obj = obj.get(k, _ABSENT)
    return obj


def _no_key(value: Any, name: str | None) -> str:
    """Why a line has no key to group it by."""
    if value is _ABSENT:
        return f"no {name} field (the key)"
    if isinstance(value, str):
        return f"empty {name} value (the key field)"
    return f"{name} is {_kind(value)}, not a key (the key field)"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def wanted(layout: Layout, keep_text: bool, keyed: bool) -> list[Path | None]:
    """The fields a run reads: the close's path, the time's (when texts are kept), the key's (in keyed runs)."""
    paths = layout.paths or []
    ti, ki = layout.timestamp_index, layout.key_index
    return [
        tuple(paths[layout.close_index]),
        tuple(paths[ti]) if ti is not None and keep_text else None,
        tuple(paths[ki]) if ki is not None and keyed else None,
    ]


class Shaped:
    """The values of a chunk read whole: ``units`` at ``scale`` (or, when the closes do not share one, ``units`` and
    ``scales`` row by row), and the texts the run keeps."""

    __slots__ = ("closes", "keys", "scale", "scales", "stamps", "units", "written")

    def __init__(self) -> None:
        self.units: list[int] | str = []  # a str: the digits of every close, a line each, at ``scale``
        self.scale = 0
        self.scales: list[int] | None = None
        self.closes: list[str] = []
        self.stamps: list[str] = []
        self.keys: list[str] = []
        self.written: list[str] = []  # the closes as written (a string with its quotes)

    def into(self, batch: Batch) -> None:
        """Add these rows to a row-path batch."""
        if isinstance(self.units, str):
            n = len(batch.units)
            batch.units.extend(map(int, self.units.split("\n")))
            batch.scales.extend([self.scale] * (len(batch.units) - n))
        else:
            batch.units.extend(self.units)
            batch.scales.extend(self.scales or ())
        batch.closes.extend(self.closes)
        batch.stamps.extend(self.stamps)
        batch.keys.extend(self.keys)


def shaped(shapes: Shapes, text: str, n: int | None, data: bytes | None, keep_text: bool) -> Shaped | None:
    """The values of the ``n`` lines of ``text`` (None: not counted yet) when they all have one shape and every value
    is usable; else None (the per-line parse reads them, and says what is wrong)."""
    columns = shapes.columns(text, n, data)
    if columns is None or not columns[0]:
        return None
    closes, stamps, keys = columns
    n = len(closes)
    joined = "\n".join(closes)
    if '"' in joined:
        joined = joined.replace('"', "")  # a taken string has no quote inside it
    out = Shaped()
    found = one_scale(joined)
    if found is not None:
        out.units, out.scale = found
        out.written = closes
        if keep_text:
            out.closes = joined.split("\n")
    else:
        units, scales, texts = [], [], []
        try:
            for t in joined.split("\n"):
                u, s, dotted = close_value(t, ",", ".")
                units.append(u)
                scales.append(s)
                texts.append(dotted)
        except BadClose:
            return None
        out.units, out.scales, out.closes = units, scales, texts if keep_text else []
    if shapes.paths[2] is not None:
        out.keys = "\n".join(keys).replace('"', "").split("\n")
        if not all(map(str.strip, out.keys)):
            return None
    if keep_text and shapes.paths[1] is not None:
        out.stamps = "\n".join(stamps).replace('"', "").split("\n") if stamps else [""] * n
    return out


class JsonRows:
    """Data lines of a JSON Lines input whose ``layout`` is known to Batches of exact values: whole chunks of one shape
    at once, else line by line, each bad row handed to ``bad``. The reader's counterpart of stream/parsing/rows.py's
    Rows, with the same attributes (``decimal`` is always the dot)."""

    __slots__ = ("_bad", "_shapes", "decimal", "keep_text", "key", "layout", "undecided")

    def __init__(self, layout: Layout, bad: Bad, keep_text: bool = False, key: str | None = None) -> None:
        self.layout = layout
        self._bad = bad
        self.keep_text = keep_text
        self.key = key
        self.decimal = "."
        self.undecided = False
        self._shapes = Shapes(wanted(layout, keep_text, key is not None))

    def chunk(self, data: bytes, text: str) -> Batch | None:
        """The rows of ``data`` (``text`` decoded), complete lines, read whole; None when they are not of one shape
        or the chunk may hold an over-long line."""
        if len(data) > MAX_LINE_BYTES:
            return None
        batch = Batch()
        return batch if self._shaped(text, None, data, batch) else None

    def read(self, lines: list[str], first: int, flagged: Flagged, quotes: bool = True) -> Batch:
        """The rows of ``lines`` (``first``: the number of the first; ``flagged``: lines that could not be read)."""
        batch = Batch()
        self._read(lines, first, flagged, batch, HALVINGS)
        return batch

    def _read(self, lines: list[str], first: int, flagged: Flagged, batch: Batch, halvings: int) -> None:
        n = len(lines)
        if n >= SHAPED_MIN and not flagged and self._shaped("\n".join(lines) + "\n", n, None, batch):
            return
        if halvings and n >= 2 * SHAPED_MIN:
            mid = n // 2
            self._read(lines[:mid], first, {i: f for i, f in flagged.items() if i < mid}, batch, halvings - 1)
            rest = {i - mid: f for i, f in flagged.items() if i >= mid}
            self._read(lines[mid:], first + mid, rest, batch, halvings - 1)
            return
        self._loop(lines, first, flagged, batch)

    def _shaped(self, text: str, n: int | None, data: bytes | None, batch: Batch) -> bool:
        got = shaped(self._shapes, text, n, data, self.keep_text)
        if got is None:
            return False
        got.into(batch)
        return True

    def _loop(self, lines: list[str], first: int, flagged: Flagged, batch: Batch) -> None:
        """The rows of ``lines`` parsed one by one."""
        bad = self._bad
        name = self.layout.close_name
        close_path, time_path, key_path = self._shapes.paths
        assert close_path is not None
        keep = self.keep_text
        units, scales, closes, stamps, keys = batch.units, batch.scales, batch.closes, batch.stamps, batch.keys
        for i, line in enumerate(lines):
            if i in flagged:
                kind, reason, raw = flagged[i]
                bad(batch, first + i, kind, reason, raw)
                continue
            if not line.strip():
                continue  # a blank line
            obj, why = _decoded(line)
            if why is not None:
                bad(batch, first + i, "json", why, line)
                continue
            if key_path is not None:
                key = _at(obj, key_path)
                if not isinstance(key, str) or not key.strip():
                    bad(batch, first + i, "key", _no_key(key, self.key), line)
                    continue
            value = _at(obj, close_path)
            if not isinstance(value, str):
                if value is _ABSENT or value is None:
                    what = f"no {name} field" if value is _ABSENT else f"{name} is null"
                    bad(batch, first + i, "missing", f"the close value is missing ({what})", line)
                else:
                    bad(batch, first + i, "value", f"bad {name} value: {_kind(value)} is not a number", line)
                continue
            try:
                u, s, dotted = close_value(value, ",", ".")
            except BadClose as exc:
                bad(batch, first + i, exc.kind, str(exc) if exc.kind == "missing" else f"bad {name} value: {exc}", line)
                continue
            units.append(u)
            scales.append(s)
            if key_path is not None:
                keys.append(key)
            if keep:
                closes.append(dotted)
                if time_path is not None:
                    stamps.append(_text(_at(obj, time_path)))
