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
from stream.parsing.jsonnumbers import WIDEST, WINDOW, WORD, numbers, padded, windows
from stream.parsing.shapes import Path, Shapes, leaves

if TYPE_CHECKING:
    from stream.parsing.layout import Layout

# What a line holds between two strings: structure, and at most one number, true, false or null.
_OUTSIDE = re.compile(rb"([\[\]{}:, ]*)(?:(-?[0-9][0-9.eE+-]*|true|false|null)([\[\]{}:, ]*))?")


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
        bounds = [-1, *quotes, len(first)]  # the line begins after the newline before it
        fixed: list[tuple[int, int, int]] = []  # (bound, offset, byte)
        sized: list[tuple[int, int, int]] = []  # (end bound, start bound, length + start offset)
        self.numbers: list[tuple[int, int, int, int]] = []  # (start bound, offset, end bound, offset)
        self.bools: list[tuple[int, int, int, int]] = []
        values: list[tuple[str, tuple[int, int, int, int]]] = []  # each value, in order: kind and place
        strings = len(quotes) // 2
        for j in range(strings + 1):
            lo, hi = 2 * j, 2 * j + 1  # an outside piece: from bound lo (after its quote) to bound hi
            piece = first[bounds[lo] + 1 : bounds[hi]]
            m = _OUTSIDE.fullmatch(piece)
            if m is None:
                raise ValueError("no shape")
            pre, token, post = m.group(1), m.group(2), m.group(3) or b""
            if token is None or token == b"null":
                fixed += [(lo, 1 + k, b) for k, b in enumerate(piece)]
                sized.append((hi, lo, len(piece) + 1))
                if token is not None:
                    values.append(("null", (lo, 1 + len(pre), hi, -len(post))))
            else:
                fixed += [(lo, 1 + k, b) for k, b in enumerate(pre)]
                fixed += [(hi, k - len(post), b) for k, b in enumerate(post)]
                place = (lo, 1 + len(pre), hi, -len(post))
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
        where = {path: place for (path, _), (_, place) in zip(found, values)}
        kinds = {path: kind for path, kind in found}
        self.paths = paths
        self.taken = [None if p is None or kinds.get(p) not in ("string", "number") else where[p] for p in paths]
        if paths[2] is not None and self.taken[2] is None:
            raise ValueError("no shape")  # a keyed run's line without its key is a bad row, which the reader names
        self.signature = (tuple(fixed), tuple(sized), tuple(self.numbers), tuple(self.bools), tuple(self.taken))
        self._close_number = self.taken[0] in self.numbers
        checked = [p for p in self.numbers if p != self.taken[0]]
        texts = [place for kind, place in values if kind == "string"]
        # From here on every place is a window's place (a row of ``places`` in ``read``) and an offset from it.
        marks = _Marks(first, bounds[1:-1], sized)
        self.marks = marks
        self._windows = _windows(fixed, marks)
        marks.rows(*self._windows[:2])
        self._tiled: tuple[Any, Any] | None = None
        self.bools = [marks.place(p) for p in self.bools]
        self.taken = [None if p is None else marks.place(p) for p in self.taken]
        # The numbers other than the close (whose grammar is checked as it is read): their places as arrays.
        self._checked: tuple[Any, ...] | None = None
        np = numpy()
        if checked:
            lo, lo_off, hi, hi_off = (np.array(c, np.int64) for c in zip(*(marks.place(p) for p in checked)))
            self._checked = (lo, lo_off[:, None], hi, hi_off[:, None])
        # Without every quote among the marks, the string values' closing quotes are checked to come after their
        # opening ones, the texts between at least empty (numbers and true or false are checked to be at least a
        # byte long).
        self._order: tuple[Any, ...] | None = None
        if marks.filtered and texts:
            lo, lo_off, hi, hi_off = (np.array(c, np.int64) for c in zip(*(marks.place(p) for p in texts)))
            self._order = (hi, lo, (lo_off - hi_off)[:, None])
        if self.taken[0] is None or self.read(first + b"\n", 1) is None:  # no close, or one numpy does not read
            raise ValueError("no shape")

    def read(self, body: bytes, n: int | None, texts: bool = False) -> Block | None:
        """The values of the lines of ``body`` (``n`` of them, when the caller has counted them; each ending with a
        newline) when every line has this shape and every close is plain digits with at most one dot; None
        otherwise. ``texts``: keep the close and time texts (the key's are kept in keyed runs)."""
        np = numpy()
        if b"\\" in body or not body.endswith(b"\n"):
            return None
        a = np.frombuffer(body, np.uint8)
        pad = padded(a, lead=b"\n")  # every place below is a place in pad: the newline before the first line is its 0
        marks, found = self.marks.find(pad, len(a) + 1)
        k = len(self.marks.kept) - 1
        lines, rest = divmod(len(marks) - 1, k)
        if rest or not lines or (n is not None and lines != n):
            return None
        n = lines
        # The bounds of every line, a row for each: the newline before it, its marks, its newline; laid over the marks
        # as they are.
        bounds = np.lib.stride_tricks.as_strided(marks, (k + 1, n), (8, 8 * k), writeable=False)
        if not (pad[bounds[-1]] == 10).all() or found != n * (self.quotes + 1) + 1:
            return None  # the lines have the marks between them, but not that many each, or another control character
        if int((bounds[-1] - bounds[0]).max()) > MAX_LINE_BYTES + 1:
            return None
        at, offset = self._windows[:2]
        places = bounds[at] + offset  # where each line's windows begin
        if not self._fits(pad, places) or not self._ordered(bounds, places):
            return None
        if not (body.isascii() or _utf8(body)):
            return None
        close = self.taken[0]
        assert close is not None
        s, e = self._span(places, close)
        width = WINDOW if int((e - s).max()) <= WINDOW else WIDEST
        # A window of the close a row of bytes, copied to contiguous rows: decimals' steps on a transposed view of the
        # windows cost half as much again as the copy and the steps together.
        gathered = np.ascontiguousarray(windows(pad, s, width).T)
        ok, units, scale = decimals(pad, s, e - s, gathered)
        if not ok.all():
            return None
        if self._close_number and not _json_decimal(pad, gathered, e):
            return None
        need = [texts, texts, True]
        text = body.decode("latin-1") if any(t is not None and w for t, w in zip(self.taken, need)) else ""
        if text and not body.isascii():
            return None  # byte offsets are character offsets only in ASCII
        out = [[] if t is None or not w else _slices(text, *self._span(places, t)) for t, w in zip(self.taken, need)]
        if self.taken[2] is not None and not all(map(str.strip, out[2])):
            return None
        if self.taken[1] is None and texts and self.paths[1] is not None:
            out[1] = [""] * n  # the time field is not in these lines
        return Block(units, scale, out[0], out[1], out[2])

    def _span(self, places: Any, place: tuple[int, int, int, int]) -> tuple[Any, Any]:
        lo, lo_off, hi, hi_off = place
        return places[lo] + lo_off, places[hi] + hi_off

    def _ordered(self, bounds: Any, places: Any) -> bool:
        """Whether each line's places come one after the other, so its quotes are as many as the shape's: the
        marks hold them all, or the string values' quotes are in order and the line ends where its last fixed bytes
        do."""
        if self._order is not None:
            hi, lo, least = self._order
            if not (places[hi] - places[lo] >= least).all():
                return False
        end = self.marks.end
        return end is None or bool((bounds[-1] == places[end[0]] + end[1]).all())

    def _fits(self, pad: Any, places: Any) -> bool:
        """Whether every line's fixed bytes (and so its quotes' places), numbers and true or false are the shape's."""
        np = numpy()
        want, mask = self._windows[2:]
        n = places.shape[1]
        if self._tiled is None or self._tiled[0].shape[1] < 2 * n:
            # Each window's words repeated for every line: the lines' windows are then compared as they were gathered,
            # in one long row a window (a broadcast along the lines, or a transposed copy, costs several times more).
            tile = max(2 * n, 2 * 4096)
            self._tiled = tuple(np.tile(w, tile // 2) for w in (want, mask))
        wants, masks = (t[:, : 2 * n] for t in self._tiled)
        got = windows(pad, places).view(WORD).reshape(len(places), 2 * n)
        if not ((got & masks) == wants).all():
            return False
        for place in self.bools:
            s, e = self._span(places, place)
            t = windows(pad, s)[:, :5]
            true = (e - s == 4) & (t[:, :4] == np.frombuffer(b"true", np.uint8)).all(1)
            false = (e - s == 5) & (t == np.frombuffer(b"false", np.uint8)).all(1)
            if not (true | false).all():
                return False
        if self._checked is not None:
            lo, lo_off, hi, hi_off = self._checked
            start, end = places[lo] + lo_off, places[hi] + hi_off
            # The fields whose numbers fit in a word apart from the others: half the bytes to gather and check.
            narrow = (end - start).max(1) <= 8
            for group in (narrow, ~narrow):
                if group.any() and not numbers(pad, start[group].ravel(), end[group].ravel()):
                    return False
        return True


def _windows(fixed: list[tuple[int, int, int]], marks: _Marks) -> tuple[Any, ...]:
    """The fixed bytes of a shape as the windows that hold them: each window's column of marks (a row of bounds),
    its offset from that mark, and its bytes and which of them count, as 8-byte words.

    A bound a fixed length after another (a key's closing quote, say) is placed from the other's place, so a key, its
    quotes and the punctuation around it are one window; a line whose windows all match has its quotes at those
    places, and so the lengths the shape fixes.
    """
    np = numpy()
    quotes = len(marks.anchor) - 2
    ends = [(b, 0, 34) for b in range(1, quotes + 1)] + [(quotes + 1, 0, 10)]
    placed = {marks.at(b, offset): byte for b, offset, byte in fixed + ends}
    starts: list[tuple[int, int]] = []
    for b, offset in sorted(placed):
        if not starts or starts[-1][0] != b or offset >= starts[-1][1] + WINDOW:
            starts.append((b, offset))
    want = np.zeros((len(starts), WINDOW), np.uint8)
    mask = np.zeros((len(starts), WINDOW), np.uint8)
    for i, (b, offset) in enumerate(starts):
        for k in range(WINDOW):
            if (b, offset + k) in placed:
                want[i, k], mask[i, k] = placed[b, offset + k], 255
    at, offset = (np.array(c, np.int64) for c in zip(*starts))
    return at, offset[:, None], want.view(WORD), mask.view(WORD)


class _Marks:
    """The bytes numpy finds first in every line, its bounds: the newlines, and the quotes but for those beside a
    colon (a key's closing quote, a string value's opening one), whose places the fixed bytes give; or every quote,
    when a bound that places others is beside a colon in the first line. Half the marks to find and to lay out."""

    def __init__(self, first: bytes, quotes: list[int], sized: list[tuple[int, int, int]]) -> None:
        """The marks of lines of the shape of ``first``, whose quotes are at ``quotes``; ``sized``: the bounds a fixed
        length after another (end bound, start bound, length)."""
        last = len(quotes) + 1
        anchor, delta = list(range(last + 1)), [0] * (last + 1)
        for hi, lo, size in sorted(sized):  # each sized bound follows the one before it
            anchor[hi], delta[hi] = anchor[lo], delta[lo] + size
        beside = [first[q + 1 : q + 2] == b":" or first[q - 1 : q] == b":" for q in quotes]
        kept = [0, *(b for b, colon in enumerate(beside, 1) if not colon), last]
        self.filtered = len(kept) < last + 1 and all(anchor[b] in kept for b in range(last + 1))
        self.kept = kept if self.filtered else list(range(last + 1))
        self.anchor, self.delta = anchor, delta
        self._column = {b: i for i, b in enumerate(self.kept)}
        self._row: dict[int, tuple[int, int]] = {}
        self.end: tuple[int, int] | None = None

    def at(self, b: int, offset: int) -> tuple[int, int]:
        """A place ``offset`` bytes from bound ``b`` as a column of marks and an offset from it."""
        return self._column[self.anchor[b]], self.delta[b] + offset

    def rows(self, at: Any, offset: Any) -> None:
        """Place values from the windows (``at``: their columns; ``offset``: their offsets, a row each) from now on:
        a line's windows' places are gathered once, and a value's are then that row and an offset."""
        for i, (c, off) in enumerate(zip(at.tolist(), offset[:, 0].tolist())):
            self._row.setdefault(c, (i, off))
        last = len(self.anchor) - 1
        if self.filtered and self.anchor[last] != last:  # a line's end placed from a quote before it: checked to be
            self.end = self._from_row(*self.at(last, 0))  # the newline found

    def place(self, p: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A value's place (start bound, offset, end bound, offset) as rows of windows and offsets from them."""
        return (*self._from_row(*self.at(p[0], p[1])), *self._from_row(*self.at(p[2], p[3])))

    def _from_row(self, column: int, offset: int) -> tuple[int, int]:
        if column not in self._row:  # every mark a place counts from has a byte of its own in a window, but be sure
            raise ValueError("no shape")
        row, start = self._row[column]
        return row, offset - start

    def find(self, pad: Any, size: int) -> tuple[Any, int]:
        """The places of the marks among the first ``size`` bytes of ``pad``, in order, and how many quotes and
        control characters those bytes hold."""
        np = numpy()
        # The quotes, the line ends and any other control character, in one pass: x ^ 2 <= 32 for x < 32 or x = 34.
        marked = (pad[:size] ^ np.uint8(2)) <= 32
        found = int(np.count_nonzero(marked))
        if self.filtered:
            other = pad[: size + 1] != 58
            marked &= other[1:]  # not before a colon
            marked[1:] &= other[: size - 1]  # nor after one
        return np.flatnonzero(marked), found


def _json_decimal(pad: Any, gathered: Any, end: Any) -> bool:
    """Whether texts that are digits with at most one dot (``gathered``: byte j of each in row j; each followed by a
    byte that is not a digit) are JSON numbers too: a digit first and last, and no leading zero before a digit."""
    np = numpy()
    first, second = gathered[0], gathered[1]
    zero_led = (first == 48) & ((second - np.uint8(48)) < 10)
    return bool((((first - np.uint8(48)) < 10) & ~zero_led & (pad[end - 1] != 46)).all())


def _slices(text: str, start: Any, end: Any) -> list[str]:
    """The texts between places of the padded chunk (one past the text's own places)."""
    return [text[s:e] for s, e in zip((start - 1).tolist(), (end - 1).tolist())]


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

    def read(self, body: bytes, n: int | None, texts: bool) -> Block | None:
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
        got = self._blocks.read(body, None, self.keep_text)
        if got is not None:
            batch = Batch(0, got.units, got.scale)
            batch.closes, batch.stamps, batch.keys = got.closes, got.stamps, got.keys
            return batch, len(got.units)
        a = np.frombuffer(body, np.uint8)
        n = int(np.count_nonzero(a == 10))
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
        if isinstance(shape.units, str) and max(map(len, shape.written)) + shape.scale <= MAX_DIGITS:  # fits int64
            # numpy's text reader: the digits are plain, one number a line, so it reads each exactly.
            batch.array, batch.scale = np.fromstring(shape.units, np.int64, sep="\n"), shape.scale
            batch.closes, batch.stamps, batch.keys = shape.closes, shape.stamps, shape.keys
        else:
            shape.into(batch)
        return batch, n
