"""The block path of JSON Lines: a chunk whose lines all have the shape of a first line, checked and read with numpy,
its closes exact int64 units; or None, and the regular expressions of stream/parsing/shapes.py read it.

A line has the shape when its quotes are where the first line's are, its keys and every byte outside its strings
are the first line's but for the values, its numbers are JSON's numbers, its true and false are true or false, and no
string holds a backslash or a control character: a JSON object the json module reads without complaint, with the
first line's keys once each, whose values are the texts between those bytes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from stream.core.batch import Batch
from stream.parsing.decimals import MAX_DIGITS, decimals, numpy
from stream.parsing.framing import MAX_LINE_BYTES
from stream.parsing.jsonl import shaped, wanted
from stream.parsing.shapes import Path, Shapes, leaves

if TYPE_CHECKING:
    from stream.parsing.layout import Layout

# What a line holds between two strings: structure, and at most one number, true, false or null.
_OUTSIDE = re.compile(rb"([\[\]{}:, ]*)(?:(-?[0-9][0-9.eE+-]*|true|false|null)([\[\]{}:, ]*))?")
# JSON's numbers as a machine over classes of bytes (0, 1-9, -, +, ., e or E, any other); states: 0 start, 1 after
# a minus, 2 a leading zero, 3 integer digits, 4 after the point, 5 decimals, 6 after e, 7 after its sign,
# 8 exponent digits, 9 refused.
_MOVES = (
    (2, 3, 1, 9, 9, 9, 9), (2, 3, 9, 9, 9, 9, 9), (9, 9, 9, 9, 4, 6, 9), (3, 3, 9, 9, 4, 6, 9), (5, 5, 9, 9, 9, 9, 9),
    (5, 5, 9, 9, 9, 6, 9), (8, 8, 7, 7, 9, 9, 9), (8, 8, 9, 9, 9, 9, 9), (8, 8, 9, 9, 9, 9, 9), (9, 9, 9, 9, 9, 9, 9),
)  # fmt: skip
_ENDS = (2, 3, 5, 8)
# Number texts longer than this are left to the regular expressions.
WIDEST = 32


class Block:
    """A chunk's values: the closes as int64 ``units`` at ``scale``, and the texts the run keeps."""

    __slots__ = ("closes", "keys", "scale", "stamps", "units")

    def __init__(self, units: Any, scale: int, closes: list[str], stamps: list[str], keys: list[str]) -> None:
        self.units = units
        self.scale = scale
        self.closes = closes
        self.stamps = stamps
        self.keys = keys


class BlockShape:
    """One shape of line as numpy checks it. Each line's bounds are its start, its quotes and its end; every place
    in it is a bound and an offset from it (``_at``)."""

    def __init__(self, first: bytes, paths: list[Path | None]) -> None:
        """The shape of ``first`` (a line without its newline), reading the fields at ``paths``; raises ValueError
        when it has none numpy checks (arrays of several numbers, a backslash, an unusual value)."""
        found = leaves(first.decode("utf-8"))
        if found is None or b"\\" in first or not first.isascii():
            raise ValueError("no shape")
        quotes = [i for i, b in enumerate(first) if b == 34]
        self.quotes = len(quotes)
        bounds = [0, *quotes, len(first)]
        fixed: list[tuple[int, int, int]] = []  # (bound, offset, byte)
        sized: list[tuple[int, int, int]] = []  # (end bound, start bound, length + start offset)
        self.numbers: list[tuple[int, int, int, int]] = []  # (start bound, offset, end bound, offset)
        self.bools: list[tuple[int, int, int, int]] = []
        values: list[tuple[str, tuple[int, int, int, int]]] = []  # each value, in order: kind and place
        strings = len(quotes) // 2
        for j in range(strings + 1):
            lo, hi = 2 * j, 2 * j + 1  # an outside piece: from bound lo (after its quote) to bound hi
            skip = 1 if j else 0
            piece = first[bounds[lo] + skip : bounds[hi]]
            m = _OUTSIDE.fullmatch(piece)
            if m is None:
                raise ValueError("no shape")
            pre, token, post = m.group(1), m.group(2), m.group(3) or b""
            if token is None or token == b"null":
                fixed += [(lo, skip + k, b) for k, b in enumerate(piece)]
                sized.append((hi, lo, len(piece) + skip))
                if token is not None:
                    values.append(("null", (lo, skip + len(pre), hi, -len(post))))
            else:
                fixed += [(lo, skip + k, b) for k, b in enumerate(pre)]
                fixed += [(hi, k - len(post), b) for k, b in enumerate(post)]
                place = (lo, skip + len(pre), hi, -len(post))
                if token in (b"true", b"false"):
                    self.bools.append(place)
                    values.append(("bool", place))
                else:
                    self.numbers.append(place)
                    values.append(("number", place))
            if j < strings:  # the string after the piece: a key when a colon follows it
                s, e = 2 * j + 1, 2 * j + 2
                text = first[bounds[s] + 1 : bounds[e]]
                if first[bounds[e] + 1 :].lstrip(b" ")[:1] == b":":
                    fixed += [(s, 1 + k, b) for k, b in enumerate(text)]
                    sized.append((e, s, len(text) + 1))
                else:
                    values.append(("string", (s, 1, e, 0)))
        if [kind for kind, _ in values] != [kind for _, kind in found]:
            raise ValueError("no shape")
        # Laid out for rows of bounds: each fixed byte (or size) a row, each line a column.
        self._fixed = _rows(fixed)
        self._sized = _rows([(hi, size, lo) for hi, lo, size in sized])
        where = {path: place for (path, _), (_, place) in zip(found, values)}
        kinds = {path: kind for path, kind in found}
        self.paths = paths
        self.taken = [None if p is None or kinds.get(p) not in ("string", "number") else where[p] for p in paths]
        self.signature = (tuple(fixed), tuple(sized), tuple(self.numbers), tuple(self.bools), tuple(self.taken))
        if self.taken[0] is None or self.read(first + b"\n", 1) is None:  # no close, or one numpy does not read
            raise ValueError("no shape")

    def read(self, body: bytes, n: int, texts: bool = False) -> Block | None:
        """The values of the ``n`` lines of ``body`` (each ending with a newline) when every line has this shape and
        every close is plain digits with at most one dot; None otherwise. ``texts``: keep the close and time texts
        (the key's are kept in keyed runs)."""
        np = numpy()
        if b"\\" in body or not n:
            return None
        a = np.frombuffer(body, np.uint8)
        if np.count_nonzero(a < 32) != n:  # a control character but the newlines: the json module may refuse it
            return None
        marks = np.flatnonzero((a == 34) | (a == 10))  # the quotes and the line ends, in one pass
        if len(marks) != n * (self.quotes + 1):
            return None
        at = marks.reshape(n, self.quotes + 1)
        if not (a[at[:, -1]] == 10).all():
            return None  # the lines have the quotes between them, but not that many each
        # The bounds of every line, a row for each: its start, its quotes, its end.
        bounds = np.empty((self.quotes + 2, n), np.int64)
        bounds[0, 0] = 0
        bounds[0, 1:] = at[:-1, -1] + 1
        bounds[1:] = at.T
        if int((bounds[-1] - bounds[0]).max()) > MAX_LINE_BYTES or not self._fits(a, bounds):
            return None
        if not (body.isascii() or _utf8(body)):
            return None
        close = self.taken[0]
        assert close is not None
        s, e = self._span(bounds, close)
        ok, units, scale = decimals(a, s, e - s)
        if not ok.all():
            return None
        need = [texts, texts, True]
        text = body.decode("latin-1") if any(t is not None and w for t, w in zip(self.taken, need)) else ""
        if text and not body.isascii():
            return None  # byte offsets are character offsets only in ASCII
        out = [[] if t is None or not w else _slices(text, *self._span(bounds, t)) for t, w in zip(self.taken, need)]
        if self.taken[2] is not None and not all(map(str.strip, out[2])):
            return None
        if self.taken[1] is None and texts and self.paths[1] is not None:
            out[1] = [""] * n  # the time field is not in these lines
        return Block(units, scale, out[0], out[1], out[2])

    def _span(self, bounds: Any, place: tuple[int, int, int, int]) -> tuple[Any, Any]:
        lo, lo_off, hi, hi_off = place
        return bounds[lo] + lo_off, bounds[hi] + hi_off

    def _fits(self, a: Any, bounds: Any) -> bool:
        """Whether every line's fixed bytes, fixed lengths, numbers and true or false are the shape's."""
        np = numpy()
        if self._sized is not None:
            hi, size, lo = self._sized
            if not ((bounds[hi] - bounds[lo[:, 0]]) == size).all():
                return False
        if self._fixed is not None:
            at, off, byte = self._fixed
            if not (np.take(a, bounds[at] + off) == byte).all():
                return False
        for place in self.bools:
            s, e = self._span(bounds, place)
            t = a[np.minimum(s[:, None] + np.arange(5), len(a) - 1)]
            true = (e - s == 4) & (t[:, :4] == np.frombuffer(b"true", np.uint8)).all(1)
            false = (e - s == 5) & (t == np.frombuffer(b"false", np.uint8)).all(1)
            if not (true | false).all():
                return False
        if self.numbers:
            s, e = zip(*(self._span(bounds, p) for p in self.numbers))
            padded = np.concatenate([a, np.zeros(WIDEST + 1, np.uint8)])
            if not _numbers(padded, np.concatenate(s), np.concatenate(e)):
                return False
        return True


def _numbers(a: Any, start: Any, end: Any) -> bool:
    """Whether every text ``a[start:end]`` is a JSON number (``a`` holds ``WIDEST`` + 1 bytes more than the texts)."""
    np = numpy()
    length = end - start
    width = int(length.max())
    if width > WIDEST or int(length.min()) < 1:
        return False
    # A row for each place in the texts (and the place after them), a column for each text: whole-row steps.
    t = np.take(a, start + np.arange(width + 1)[:, None])
    plain = _plain_numbers(t, length)
    if plain is not None:
        return plain
    classes, moves, accepting = _machine()
    kinds = classes[t[:width]]  # one vector step of the machine for each row
    kinds[np.arange(width)[:, None] >= length] = _STAY
    state = np.zeros(len(start), np.int8)
    for row in kinds:
        state = moves[state * _KINDS + row]
    return bool(accepting[state].all())


def _plain_numbers(t: Any, length: Any) -> bool | None:
    """Whether the texts (columns of ``t``, ``length`` bytes each) are JSON numbers when none has an exponent, in a
    few whole-array steps: ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``; None when one has an e, E or +."""
    np = numpy()
    width, count = t.shape
    size = length.astype(np.uint8)
    inside = np.arange(width, dtype=np.uint8)[:, None] < size
    digit = (t - np.uint8(48)) < 10
    dot = t == 46
    usual = digit | dot
    minus = t[0] == 45
    usual[0] |= minus
    if (inside & ~usual).any():
        return None
    flat = t.ravel()
    cols = np.arange(count)
    first = minus.astype(np.int64)  # where the digits start
    lead = flat[first * count + cols]
    after = flat[(first + 1) * count + cols]
    last = flat[(length - 1) * count + cols]
    good = ((dot & inside).sum(0, dtype=np.uint8) <= 1) & ((lead - np.uint8(48)) < 10) & ((last - np.uint8(48)) < 10)
    # A leading zero is the whole integer part: 0, 0.5, -0.5, never 01.
    good &= (lead != 48) | (after == 46) | (first + 1 == length)
    return bool(good.all())


_MACHINE: list[Any] = []
_KINDS = 8  # the byte classes, and one more for a place past a text's end, where the state stays
_STAY = 7


def _machine() -> tuple[Any, Any, Any]:
    """The number machine's arrays (made once): each byte's class, the moves (flat), the accepting states."""
    if not _MACHINE:
        np = numpy()
        classes = np.full(256, 6, np.int8)
        classes[48] = 0
        classes[49:58] = 1
        classes[[45, 43, 46, 101, 69]] = [2, 3, 4, 5, 5]
        moves = np.array([[*m, i] for i, m in enumerate(_MOVES)], np.int8).ravel()
        accepting = np.zeros(len(_MOVES), bool)
        accepting[list(_ENDS)] = True
        _MACHINE.extend([classes, moves, accepting])
    return _MACHINE[0], _MACHINE[1], _MACHINE[2]


def _rows(places: list[tuple[int, int, int]]) -> tuple[Any, Any, Any] | None:
    """(bound, offset, value) triples as a row index and two columns, for arrays with a row per bound."""
    if not places:
        return None
    np = numpy()
    bound, offset, value = (np.array(c, np.int64) for c in zip(*places))
    return bound, offset[:, None], value[:, None]


def _slices(text: str, start: Any, end: Any) -> list[str]:
    return [text[s:e] for s, e in zip(start.tolist(), end.tolist())]


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class BlockShapes:
    """The block shape of an input's chunks as they come: the last one, or that of a chunk's first line."""

    __slots__ = ("_last", "paths")

    def __init__(self, paths: list[Path | None]) -> None:
        self.paths = paths
        self._last: BlockShape | None = None

    def read(self, body: bytes, n: int, texts: bool) -> Block | None:
        last = self._last
        if last is not None:
            got = last.read(body, n, texts)
            if got is not None:
                return got
        try:
            shape = BlockShape(body[: body.find(b"\n")], self.paths)
        except ValueError:
            return None
        if last is not None and shape.signature == last.signature:
            return None
        self._last = shape
        return shape.read(body, n, texts)


class JsonBlocks:
    """The block path's reading of JSON Lines: chunks of one shape checked with numpy, else matched by the regular
    expressions of the row path; None for a chunk that is neither (the reader reads it line by line)."""

    __slots__ = ("_blocks", "_shapes", "keep_text")

    def __init__(self, layout: Layout, keep_text: bool, keyed: bool) -> None:
        paths = wanted(layout, keep_text, keyed)
        self.keep_text = keep_text
        self._blocks = BlockShapes(paths)
        self._shapes = Shapes(paths)

    def read(self, body: bytes) -> tuple[Batch | None, int]:
        """The rows of the complete lines of ``body`` (or None), and how many lines it has."""
        np = numpy()
        a = np.frombuffer(body, np.uint8)
        n = int(np.count_nonzero(a == 10))
        got = self._blocks.read(body, n, self.keep_text)
        if got is not None:
            batch = Batch(0, got.units, got.scale)
            batch.closes, batch.stamps, batch.keys = got.closes, got.stamps, got.keys
            return batch, n
        ends = np.flatnonzero(a == 10)
        if n and max(int(ends[0]), int(np.diff(ends).max(initial=0)) - 1) > MAX_LINE_BYTES:
            return None, n  # the reader makes the over-long line a bad row
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None, n  # the reader flags the lines that are not UTF-8
        shape = shaped(self._shapes, text, n, body, self.keep_text)
        if shape is None:
            return None, n
        batch = Batch()
        if isinstance(shape.units, str) and shape.width + shape.scale <= MAX_DIGITS:  # every value fits int64
            # numpy's text reader: the digits are plain, one number a line, so it reads each exactly.
            batch.array, batch.scale = np.fromstring(shape.units, np.int64, sep="\n"), shape.scale
            batch.closes, batch.stamps, batch.keys = shape.closes, shape.stamps, shape.keys
        else:
            shape.into(batch)
        return batch, n
