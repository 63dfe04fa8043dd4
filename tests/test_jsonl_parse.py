"""JSON Lines parsing held to one per-line reference (json.loads with the text of every number kept): the whole-chunk
fast path, the reader's row path and the numpy block path give each line's exact close, time and key, or the same bad
row, whatever the objects' key orders, nesting, spacing, escapes, duplicate keys, the close's name inside another
value, and numbers written as strings or as numbers."""

from __future__ import annotations

import functools
import json
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stream.core.batch import BadRow
from stream.parsing.blocks import BlockReader
from stream.parsing.framing import InputError
from stream.parsing.jsonblocks import BlockShapes
from stream.parsing.layout import LayoutRequest
from stream.parsing.reader import Reader, batches
from stream.parsing.rows import BadClose, close_value
from stream.parsing.shapes import Shapes

ABSENT = object()


class Num(str):
    """A number written as this text."""


class Obj(list):  # type: ignore[type-arg]
    """An object as (key, value) pairs, in order, a key possibly twice."""


def dump(value: Any, item: str = ",", pair: str = ":", ascii: bool = True) -> str:
    if isinstance(value, Obj):
        return "{" + item.join(dump(k, item, pair, ascii) + pair + dump(v, item, pair, ascii) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + item.join(dump(v, item, pair, ascii) for v in value) + "]"
    if isinstance(value, Num):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii)


# ---- the reference: one line at a time ------------------------------------------------------------------------------


def walk(obj: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(obj, dict):
            return ABSENT
        obj = obj.get(k, ABSENT)
    return obj


def reference(line: str, close: tuple[str, ...], stamp: tuple[str, ...] | None, key: tuple[str, ...] | None) -> Any:
    """What one line reads as: None (blank), ("bad", kind), or ("row", exact close, close text, time, key)."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line, parse_float=str, parse_int=str, parse_constant=str)
    except (ValueError, RecursionError):
        return ("bad", "json")
    if not isinstance(obj, dict):
        return ("bad", "json")
    k = walk(obj, key) if key is not None else ""
    if key is not None and (not isinstance(k, str) or not k.strip()):
        return ("bad", "key")
    value = walk(obj, close)
    if value is ABSENT or value is None:
        return ("bad", "missing")
    if not isinstance(value, str):
        return ("bad", "value")
    try:
        u, s, dotted = close_value(value, ",", ".")
    except BadClose as exc:
        return ("bad", exc.kind)
    t = walk(obj, stamp) if stamp is not None else ""
    return ("row", Fraction(u, 10**s), dotted, t if isinstance(t, str) else "", k)


# ---- generated lines: one shape, with some lines off it -------------------------------------------------------------


@st.composite
def decimals(draw: st.DrawFn, whole: int, point: int, exponent: int = 0, sign: bool = False) -> str:
    """The text of a JSON number: ``-?(0|[1-9][0-9]{0,whole-1})(\\.[0-9]{1,point})?([eE][+-]?[0-9]{1,exponent})?``
    (no exponent when ``exponent`` is 0); drawn piece by piece, which costs a few times less than st.from_regex."""
    text = "-" if sign and draw(st.booleans()) else ""
    text += str(draw(_below(10**whole)))
    for prefixes, width in ((POINT, point), (EXPONENT, exponent)):
        if width and draw(st.booleans()):
            digits = 1 + draw(_below(width))
            text += draw(prefixes) + str(draw(_below(10**digits))).zfill(digits)
    return text


POINT, EXPONENT = st.just("."), st.sampled_from(["e", "E", "e+", "E+", "e-", "E-"])


@functools.cache
def _below(n: int) -> st.SearchStrategy[int]:
    """One strategy object per bound: a new one each draw is validated anew, a cost larger than the draw's."""
    return st.integers(0, n - 1)


NUMBER_TEXT = decimals(9, 6, 2, sign=True)
PLAIN_PRICE = decimals(6, 4)
PLAIN_TEXT = st.text("abcXYZ019 -:._", max_size=12)
PRICE_TEXT = st.sampled_from(
    ["100", "100.0", "100.10", "100.1", "1.001e2", "1001E-1", "99.9", "0.3", "0.30", "-0.5", "1e400", "12345.678"]
)
ODD_STRINGS = st.sampled_from(
    ["", " 100.1 ", ".3", "100.", "1,234.5", "1,5", "abc", "null", "nan", "NaN", "Infinity", "+1", "1\u00a0"]
)
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['"close": 1', '{"close":"1"}', "close", "\\", '"', "a\nb", "\t", "é", "\u2028", "c"]),
)
NICE_KEYS = ["close", "c", "k", "t", "timestamp", "s", "x", "Close", "a.b", ""]
# Keys a shape cannot be made of (a quote or backslash in them, written escaped): their lines are parsed one by one.
KEYS = st.sampled_from(NICE_KEYS * 4 + ['cl"ose', "clo\\se", "é", "\u2028"])
PRICES = st.one_of(PRICE_TEXT, NUMBER_TEXT)


@functools.cache  # one strategy object per kind (see _below)
@st.composite
def values(draw: st.DrawFn, kind: str, dirt: int = 20) -> Any:
    if kind == "str":
        return draw(TEXT if dirt else PLAIN_TEXT)
    if kind == "num":
        return Num(draw(NUMBER_TEXT))
    if kind.startswith("price"):  # the close, the time or the key: a number, or a string holding one (or odd text)
        if not dirt:  # plain prices only, as feeds write them
            text = draw(PLAIN_PRICE)
            as_number = draw(st.booleans()) if kind == "price" else kind == "price-number"
            return Num(text) if as_number else text
        odd = draw(_below(dirt))  # one price in `dirt` is odd
        text = draw(TEXT if odd == 0 else ODD_STRINGS if odd == 1 else PRICES)
        return Num(text) if draw(st.booleans()) and _number(text) else text
    if kind == "bool":
        return draw(st.booleans())
    if kind == "null":
        return None
    return [Num("1"), "x"]


def _number(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@st.composite
def templates(draw: st.DrawFn, nested: bool, clean: bool = False) -> list[tuple[str, Any]]:
    """A line's shape: keys and the kind of each value; "close" (or k.c), "t" and "s" are prices. ``clean``: keys
    without escapes, and each price written one way on every line."""
    keys = st.sampled_from(NICE_KEYS) if clean else KEYS
    others = draw(st.lists(st.tuples(keys, st.sampled_from(["str", "num", "bool", "null", "list"])), max_size=4))
    others = [(k, v) for k, v in others if k not in ("close", "k", "t", "s", "timestamp")]
    # Each of them written as a string, as a number, or either way line by line.
    price = st.sampled_from(["price-string", "price-number"] if clean else ["price", "price-string", "price-number"])
    mine: list[tuple[str, Any]] = [("t", draw(price)), ("s", draw(price))]
    if nested:
        inner = [("c", draw(price)), *draw(st.lists(st.tuples(keys, st.just("str")), max_size=2))]
        mine.append(("k", [(k, v) for k, v in inner if k != "c" or v.startswith("price")]))
    else:
        mine.append(("close", draw(price)))
    fields = draw(st.permutations([*mine, *others]))
    return fields


# How a line is taken off the shape, and the pieces it is given then.
CHANGES = st.sampled_from(["drop", "twice", "order", "kind", "broken", "blank", "other", "space", "nest"])
OTHER_KINDS = st.sampled_from([None, True, Obj(), [1], Num("1.5"), "s"])
BROKEN_ENDS = st.sampled_from(["", "}", "x", ",}", "]", '"'])
BLANKS = st.sampled_from(["", "  ", "\r"])
NOT_OBJECTS = st.sampled_from(["[1,2]", '"close"', "5", "null", "true", "NaN", "{}", "{} {}", "\ufeff{}"])
LINE_ENDS = st.sampled_from(["", " ", "\t", "\r"])


@st.composite
def line(draw: st.DrawFn, template: list[tuple[str, Any]], spacing: tuple[str, str, bool], odd: bool, dirt: int) -> str:
    obj = Obj()
    for k, kind in template:
        obj.append((k, _build(draw, kind, dirt)))
    item, pair, ascii = spacing
    if odd:
        change = draw(CHANGES)
        if change == "drop" and obj:
            obj.pop(draw(_below(len(obj))))
        elif change == "twice" and obj:  # a key twice: JSON's last one wins
            k = obj[draw(_below(len(obj)))][0]
            obj.append((k, draw(values("price"))))
        elif change == "order":
            obj = Obj(draw(st.permutations(list(obj))))
        elif change == "kind" and obj:
            i = draw(_below(len(obj)))
            obj[i] = (obj[i][0], draw(OTHER_KINDS))
        elif change == "nest":
            obj.append(("deep", Obj([("close", Num("7")), ("c", "8")])))
        text = dump(obj, item, pair, ascii)
        if change == "broken":
            cut = draw(_below(len(text) + 1))
            return text[:cut] + draw(BROKEN_ENDS)
        if change == "blank":
            return draw(BLANKS)
        if change == "other":
            return draw(NOT_OBJECTS)
        if change == "space":
            return " " + text + draw(LINE_ENDS)
        return text
    return dump(obj, item, pair, ascii)


def _build(draw: st.DrawFn, kind: Any, dirt: int) -> Any:
    if isinstance(kind, list):
        return Obj((k, _build(draw, v, dirt)) for k, v in kind)
    return draw(values(kind, dirt))


@st.composite
def inputs(draw: st.DrawFn, clean: bool = False) -> tuple[list[str], tuple[str, ...]]:
    """Lines of one shape, some off it, and the close's path; the first line is of the shape, with a usable close.
    ``clean``: every line of the shape, every price plain."""
    nested = draw(st.booleans())
    template = draw(templates(nested, clean))
    spacing = draw(st.sampled_from([(",", ":", True), (", ", ": ", True), (",", ":", False), (" ,", ": ", True)]))
    rate = 0 if clean else draw(st.sampled_from([0, 0, 0, 1, 4, 20]))  # one line in `rate` is off the shape (0: none)
    dirt = 0 if clean else draw(st.sampled_from([0, 0, 5, 60]))  # one price in `dirt` is an odd string (0: none)
    n = draw(st.integers(1, 70))
    odd = [bool(rate) and draw(_below(rate)) == 0 for _ in range(n)]
    lines = [draw(line(template, spacing, o, dirt)) for o in odd]
    path = ("k", "c") if nested else ("close",)
    first = dump(_first(draw, template), *spacing)
    return [first, *lines], path


def _first(draw: st.DrawFn, template: list[tuple[str, Any]]) -> Obj:
    """A line of the shape whose close, time and key are usable (the layout is told by the first line)."""
    return Obj((k, _first(draw, v) if isinstance(v, list) else _usable(draw, v)) for k, v in template)


def _usable(draw: st.DrawFn, kind: str) -> Any:
    if not kind.startswith("price"):
        return draw(values(kind))
    return Num("1") if kind == "price-number" or (kind == "price" and draw(st.booleans())) else "1"


# ---- the fast path answers as the reference does, or not at all --------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=inputs())
def test_the_whole_chunk_path_reads_what_each_line_reads(data: tuple[list[str], tuple[str, ...]]) -> None:
    lines, path = data
    shapes = Shapes([path, ("t",), ("s",)])
    for start in range(0, len(lines), 23):  # chunks after the first see the shape the first chunks left
        part = lines[start : start + 23]
        got = shapes.columns("\n".join(part) + "\n", len(part))
        event("a chunk read whole" if got is not None else "a chunk left to the per-line parse")
        if got is None:
            continue
        want = [reference(ln, path, ("t",), ("s",)) for ln in part]
        closes, stamps, keys = ([t[1:-1] if t.startswith('"') else t for t in col] for col in got)
        for i, w in enumerate(want):
            # Every line has the shape, so each is an object with the close a string or a number.
            raw = json.loads(part[i], parse_float=str, parse_int=str)
            assert (closes[i] if closes else ABSENT) == walk(raw, path)  # a shape without the close: no line has it
            assert (stamps[i] if stamps else ABSENT) == walk(raw, ("t",))
            assert (keys[i] if keys else ABSENT) == walk(raw, ("s",))
            assert w is not None and (w[0] == "row" or w[1] in ("value", "missing", "key"))


@SETTINGS
@given(data=inputs())
def test_the_numpy_path_reads_what_each_line_reads(data: tuple[list[str], tuple[str, ...]]) -> None:
    lines, path = data
    shapes = BlockShapes([path, ("t",), ("s",)])
    for start in range(0, len(lines), 23):
        part = lines[start : start + 23]
        got = shapes.read(("\n".join(part) + "\n").encode(), len(part), texts=True)
        event("a chunk read by numpy" if got is not None else "a chunk left to the regular expressions")
        if got is None:
            continue
        want = [reference(ln, path, ("t",), ("s",)) for ln in part]
        assert all(w is not None and w[0] == "row" for w in want)  # numpy takes plain closes only
        assert [Fraction(int(u), 10**got.scale) for u in got.units] == [w[1] for w in want]
        assert got.closes == [w[2] for w in want] and got.stamps == [w[3] for w in want]
        assert got.keys == [w[4] for w in want]


def test_lines_of_one_shape_are_read_whole() -> None:
    lines = [
        json.dumps({"E": 1700000000000 + i, "s": "BTCUSDT", "k": {"t": i, "c": f"{100 + i % 7}.{i % 10}", "x": True}})
        for i in range(50)
    ]
    for item, pair in ((",", ":"), (", ", ": ")):
        text = "\n".join(json.dumps(json.loads(ln), separators=(item, pair)) for ln in lines) + "\n"
        got = Shapes([("k", "c"), ("E",), ("s",)]).columns(text, 50)
        assert got is not None and got[0][3] == '"103.3"' and got[1][0] == "1700000000000" and got[2][1] == '"BTCUSDT"'
        block = BlockShapes([("k", "c"), ("E",), ("s",)]).read(text.encode(), 50, texts=True)
        assert block is not None and block.closes[3] == "103.3" and block.stamps[0] == "1700000000000"
        assert block.keys[1] == "BTCUSDT" and list(block.units[:2]) == [1000, 1011] and block.scale == 1


@pytest.mark.parametrize("close", ["01.5", "00", "1.", "-0.5", "1e2", "1.5.1"])
def test_a_close_json_would_not_read_as_written_leaves_numpy(close: str) -> None:
    # Digits with one dot that JSON refuses (a leading zero, a point last), and numbers numpy leaves to the slower
    # paths (a sign, an exponent): the chunk is not read by numpy, whose reading would differ from json's.
    lines = [f'{{"t":{i},"o":1.25,"c":{100 + i}.5,"v":7}}' for i in range(30)]
    lines[17] = lines[17].replace('"c":117.5', f'"c":{close}')
    assert BlockShapes([("c",), ("t",), None]).read(("\n".join(lines) + "\n").encode(), 30, texts=False) is None
    lines[17] = '{"t":17,"o":1.25,"c":117.50,"v":7}'  # the same shape, well written: read
    got = BlockShapes([("c",), ("t",), None]).read(("\n".join(lines) + "\n").encode(), 30, texts=False)
    assert got is not None and int(got.units[17]) == 11750 and got.scale == 2


def test_a_chunk_with_an_exponent_is_read_whole_too() -> None:
    # Chunks are matched first by an expression for numbers without an exponent, as prices are written; a line with
    # one (here not the close's) sends the chunk to the full grammar, which reads it all the same.
    lines = [f'{{"t":{i},"o":1.25,"c":{100 + i}.5,"v":7}}' for i in range(30)]
    lines[9] = '{"t":9,"o":1.25E-1,"c":1.095e2,"v":7}'
    got = Shapes([("c",), ("t",), None]).columns("\n".join(lines) + "\n", 30)
    assert got is not None and got[0][9] == "1.095e2" and got[0][10] == "110.5" and got[1][29] == "29"
    lines[9] = '{"t":9,"o":1.25E-,"c":109.5,"v":7}'  # not a JSON number: no expression takes the chunk
    assert Shapes([("c",), ("t",), None]).columns("\n".join(lines) + "\n", 30) is None


# ---- every path reads what the reference reads ----------------------------------------------------------------------


def read(data: bytes, path: tuple[str, ...], cuts: list[int], block: bool, key: str | None) -> tuple[list, list]:
    bad: list[BadRow] = []
    reader = Reader(on_bad_row="skip", report=bad.append, keep_text=True, key=key,
                    request=LayoutRequest(".".join(path)))  # fmt: skip
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    rows = []
    for batch in batches(reader, pieces, BlockReader(reader, 1) if block else None):
        units, scales = batch.values()
        for i, (u, s) in enumerate(zip(units, scales)):
            rows.append((Fraction(u, 10**s), batch.closes[i], batch.stamps[i], batch.keys[i] if key else ""))
    return rows, [(b.line, b.kind) for b in bad]


@settings(SETTINGS, max_examples=40)
@given(data=inputs(), block=st.booleans(), keyed=st.booleans(), draw=st.data())
def test_every_path_reads_what_each_line_reads(data, block, keyed, draw) -> None:
    lines, path = data
    raw = ("\n".join(lines) + draw.draw(st.sampled_from(["\n", ""]))).encode()
    cuts = sorted(draw.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=4, unique=True)))
    want_rows, want_bad = [], []
    for i, ln in enumerate(lines, 1):
        got = reference(ln, path, ("t",), ("s",) if keyed else None)
        if got is None:
            continue
        if got[0] == "bad":
            want_bad.append((i, got[1]))
        else:
            want_rows.append(got[1:])
    try:
        rows, bad = read(raw, path, cuts, block, "s" if keyed else None)
    except InputError as exc:  # the first object's time field is named "t", the key "s": both always there
        pytest.fail(str(exc))
    event(f"{'no' if not want_bad else 'some'} bad rows")
    assert bad == want_bad
    assert rows == want_rows


# ---- the numpy path's own rules: numbers eight bytes a word, fixed bytes in windows ---------------------------------

NEAR_NUMBER = st.text("0123456789.-+eE", min_size=1, max_size=40)


@SETTINGS
@given(texts=st.lists(st.one_of(NEAR_NUMBER, NUMBER_TEXT, PRICE_TEXT), min_size=1, max_size=30))
def test_the_numpy_number_check_is_json_grammar(texts: list[str]) -> None:
    from stream.parsing.decimals import numpy
    from stream.parsing.jsonnumbers import WIDEST, numbers, padded

    np = numpy()
    body = ("[" + ",".join(texts) + "]").encode()
    start = np.cumsum([1] + [len(t) + 1 for t in texts[:-1]])
    end = start + np.array([len(t) for t in texts])
    got = numbers(padded(np.frombuffer(body, np.uint8)), start, end)
    event("all numbers" if got else "refused")
    assert got == all(_number(t) and len(t) <= WIDEST for t in texts)


PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
DIGITS = st.sampled_from("0123456789.-")


@SETTINGS
@given(data=inputs(clean=True), draw=st.data())
def test_a_line_changed_in_one_byte_is_read_as_each_line_reads_it_or_refused(data, draw) -> None:
    """A byte of one line of a clean chunk replaced (a quote moved, a key's letter, a digit, a comma): numpy reads the
    chunk as the per-line parse does, or leaves it to the slower paths."""
    lines, path = data
    lines = [ln for ln in lines if ln.strip()] or lines[:1]
    i = draw.draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    at = draw.draw(st.integers(0, max(0, len(line) - 1)))
    # Any printable byte, and often a digit or the byte it was: changes a chunk may still have the shape after.
    lines[i] = line[:at] + draw.draw(st.one_of(PRINTABLE, DIGITS, st.just(line[at : at + 1]))) + line[at + 1 :]
    got = BlockShapes([path, ("t",), ("s",)]).read(("\n".join(lines) + "\n").encode(), len(lines), texts=True)
    event("read by numpy" if got is not None else "refused")
    if got is None:
        return
    want = [reference(ln, path, ("t",), ("s",)) for ln in lines]
    assert all(w is not None and w[0] == "row" for w in want)
    assert [Fraction(int(u), 10**got.scale) for u in got.units] == [w[1] for w in want]
    assert got.closes == [w[2] for w in want] and got.stamps == [w[3] for w in want]
    assert got.keys == [w[4] for w in want]
