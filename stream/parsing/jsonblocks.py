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
        self._windows = _windows(fixed, sized, self.quotes)
        self._tiled: tuple[Any, Any] | None = None
        where = {path: place for (path, _), (_, place) in zip(found, values)}
        kinds = {path: kind for path, kind in found}
        self.paths = paths
        self.taken = [None if p is None or kinds.get(p) not in ("string", "number") else where[p] for p in paths]
        self.signature = (tuple(fixed), tuple(sized), tuple(self.numbers), tuple(self.bools), tuple(self.taken))
        # The numbers other than the close (whose grammar is checked as it is read): their places as arrays.
        self._close_number = self.taken[0] in self.numbers
        checked = [p for p in self.numbers if p != self.taken[0]]
        self._checked: tuple[Any, ...] | None = None
        if checked:
            np = numpy()
            lo, lo_off, hi, hi_off = (np.array(c, np.int64) for c in zip(*checked))
            self._checked = (lo, lo_off[:, None], hi, hi_off[:, None])
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
        # The quotes, the line ends and any other control character, in one pass: x ^ 2 <= 32 for x < 32 or x = 34.
        marks = np.flatnonzero((pad[: len(a) + 1] ^ np.uint8(2)) <= 32)
        k = self.quotes + 1
        lines, rest = divmod(len(marks) - 1, k)
        if rest or not lines or (n is not None and lines != n):
            return None
        n = lines
        # The bounds of every line, a row for each: the newline before it, its quotes, its newline; laid over the marks
        # as they are.
        bounds = np.lib.stride_tricks.as_strided(marks, (k + 1, n), (8, 8 * k), writeable=False)
        if not (pad[bounds[-1]] == 10).all() or np.count_nonzero(a < 32) != n:
            return None  # the lines have the quotes between them, but not that many each, or a control character
        if int((bounds[-1] - bounds[0]).max()) > MAX_LINE_BYTES + 1:
            return None
        if not self._fits(pad, bounds):
            return None
        if not (body.isascii() or _utf8(body)):
            return None
        close = self.taken[0]
        assert close is not None
        s, e = self._span(bounds, close)
        width = WINDOW if int((e - s).max()) <= WINDOW else WIDEST
        gathered = windows(pad, s, width).T  # a window of the close a column
        ok, units, scale = decimals(pad, s, e - s, gathered)
        if not ok.all():
            return None
        if self._close_number and not _json_decimal(pad, gathered, e):
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

    def _fits(self, pad: Any, bounds: Any) -> bool:
        """Whether every line's fixed bytes (and so its quotes' places), numbers and true or false are the shape's."""
        np = numpy()
        at, offset, want, mask = self._windows
        n = bounds.shape[1]
        if self._tiled is None or self._tiled[0].shape[1] < 2 * n:
            # Each window's words repeated for every line: the lines' windows are then compared as they were gathered,
            # in one long row a window (a broadcast along the lines, or a transposed copy, costs several times more).
            tile = max(2 * n, 2 * 4096)
            self._tiled = tuple(np.tile(w, tile // 2) for w in (want, mask))
        wants, masks = (t[:, : 2 * n] for t in self._tiled)
        got = windows(pad, bounds[at] + offset).view(WORD).reshape(len(at), 2 * n)
        if not ((got & masks) == wants).all():
            return False
        for place in self.bools:
            s, e = self._span(bounds, place)
            t = windows(pad, s)[:, :5]
            true = (e - s == 4) & (t[:, :4] == np.frombuffer(b"true", np.uint8)).all(1)
            false = (e - s == 5) & (t == np.frombuffer(b"false", np.uint8)).all(1)
            if not (true | false).all():
                return False
        if self._checked is not None:
            lo, lo_off, hi, hi_off = self._checked
            start, end = bounds[lo] + lo_off, bounds[hi] + hi_off
            # The fields whose numbers fit in a word apart from the others: half the bytes to gather and check.
            narrow = (end - start).max(1) <= 8
            for group in (narrow, ~narrow):
                if group.any() and not numbers(pad, start[group].ravel(), end[group].ravel()):
                    return False
        return True


def _windows(fixed: list[tuple[int, int, int]], sized: list[tuple[int, int, int]], quotes: int) -> tuple[Any, ...]:
    """The fixed bytes of a shape as the windows that hold them: each window's bound (a row of bounds), its offset
    from that bound, and its bytes and which of them count, as 8-byte words.

    A bound a fixed length after another (a key's closing quote, say) is placed from the other's place, so a key, its
    quotes and the punctuation around it are one window; a line whose windows all match has its quotes at those
    places, and so the lengths the shape fixes.
    """
    np = numpy()
    anchor, delta = list(range(quotes + 2)), [0] * (quotes + 2)
    for hi, lo, size in sorted(sized):  # each sized bound follows the one before it
        anchor[hi], delta[hi] = anchor[lo], delta[lo] + size
    marks = [(b, 0, 34) for b in range(1, quotes + 1)] + [(quotes + 1, 0, 10)]
    placed = {(anchor[b], delta[b] + offset): byte for b, offset, byte in fixed + marks}
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
