"""The block path of JSON Lines: a chunk whose lines all have the shape of a first line, checked and read with numpy,
its closes exact int64 units; or None, and the regular expressions of stream/parsing/shapes.py read it.

A line has the shape when its quotes are where the first line's are, its keys and every byte outside its strings
are the first line's but for the values, its numbers are JSON's numbers, its true and false are true or false, no
string holds a backslash or a control character, and every byte is ASCII: a JSON object the json module reads without
complaint, with the first line's keys once each, whose values are the texts between those bytes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from stream.core.batch import Batch
from stream.parsing.decimals import MAX_DIGITS, decimals, numpy
from stream.parsing.framing import MAX_LINE_BYTES
from stream.parsing.jsonl import shaped, wanted
from stream.parsing.jsonmarks import Marks, windows_of
from stream.parsing.jsonnumbers import WIDEST, WINDOW, WORD, numbers, padded, windows, words_are_numbers
from stream.parsing.shapes import Path, Shapes, leaves

if TYPE_CHECKING:
    from stream.parsing.layout import Layout

# What the chunk is padded with in front: a newline before its first line, and room before that for a window that
# begins up to 7 bytes before the line (spaces: neither marks nor colons).
_LEAD = b"       \n"
# A value's place: (start bound, offset, end bound, offset), or as rows of windows once they are laid out.
Place = tuple[int, int, int, int]
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
        self.numbers: list[Place] = []  # (start bound, offset, end bound, offset)
        self.bools: list[Place] = []
        values: list[tuple[str, Place]] = []  # each value, in order: kind and place
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
        self.marks = Marks(first, bounds[1:-1], sized)
        self._lay_out(fixed, checked, texts)
        if self.taken[0] is None or self.read(first + b"\n", 1) is None:  # no close, or one numpy does not read
            raise ValueError("no shape")

    def _lay_out(self, fixed: list[tuple[int, int, int]], checked: list[Place], texts: list[Place]) -> None:
        """Lay the shape's places out as windows of its fixed bytes, the values' places as rows of them and offsets."""
        marks = self.marks
        # The window before each number holds its first two words too: no gather of their own.
        held = checked + ([] if self.taken[0] is None else [self.taken[0]])
        self._windows = windows_of(fixed, marks, [(*marks.at(p[0], p[1]), WINDOW) for p in held])
        marks.rows(self._windows.at, self._windows.offset)
        self._held = self._windows.slots[: len(checked)]
        self._close_held = self._windows.slots[len(checked)] if self.taken[0] is not None else None
        self._tiled: dict[int, tuple[Any, Any]] = {}
        self.bools = [marks.place(p) for p in self.bools]
        self.taken = [None if p is None else marks.place(p) for p in self.taken]
        # The numbers other than the close (whose grammar is checked as it is read): their places as arrays.
        self._checked: tuple[Any, ...] | None = None
        if checked:
            lo, lo_off, hi, hi_off = _arrays(marks, checked)
            self._checked = (lo, lo_off[:, None], hi, hi_off[:, None])
        # Without every quote among the marks, the string values' closing quotes are checked to come after their
        # opening ones, the texts between at least empty (numbers and true or false are checked to be at least a
        # byte long).
        self._order: tuple[Any, ...] | None = None
        if marks.filtered and texts:
            lo, lo_off, hi, hi_off = _arrays(marks, texts)
            # One string (a time, say) by its row: a row of places is a view, rows by an array a copy.
            self._order = (
                (hi[0], lo[0], int(lo_off[0] - hi_off[0])) if len(hi) == 1 else (hi, lo, (lo_off - hi_off)[:, None])
            )

    def read(self, body: bytes, n: int | None, texts: bool = False) -> Block | None:
        """The values of the lines of ``body`` (``n`` of them, when the caller has counted them; each ending with a
        newline) when every line has this shape and every close is plain digits with at most one dot; None
        otherwise. ``texts``: keep the close and time texts (the key's are kept in keyed runs)."""
        np = numpy()
        if b"\\" in body or not body.endswith(b"\n"):
            return None
        a = np.frombuffer(body, np.uint8)
        pad = padded(a, lead=_LEAD)  # every place below is a place in pad: the newline before the first line is a mark
        marks, found = self.marks.find(pad, len(a) + len(_LEAD))
        k = len(self.marks.kept) - 1
        lines, rest = divmod(len(marks) - 1, k)
        if rest or not lines or (n is not None and lines != n):
            return None
        n = lines
        # The bounds of every line, a row for each: the newline before it, its marks, its newline; laid over the marks
        # as they are.
        bounds = np.lib.stride_tricks.as_strided(marks, (k + 1, n), (8, 8 * k), writeable=False)
        if not (pad[bounds[-1]] == 10).all() or found != n * (self.quotes + 1) + 1:
            return None  # the marks are not as many each line, or a control character or a byte past ASCII is there
        if int((bounds[-1] - bounds[0]).max()) > MAX_LINE_BYTES + 1:
            return None
        places = bounds[self._windows.at] + self._windows.offset  # where each line's windows begin
        got = self._fits(pad, places)
        if got is None or not self._ordered(bounds, places):
            return None
        close = self.taken[0]
        assert close is not None
        s, e = self._span(places, close)
        widest, held = int((e - s).max()), self._close_held
        # A window of the close a row of bytes, copied to contiguous rows: decimals' steps on a transposed view of the
        # windows cost half as much again as the copy and the steps together.
        if held is not None and widest <= held[3]:
            gathered = np.ascontiguousarray(_held(got, held, n, WINDOW).view(np.uint8).T)
        else:
            gathered = np.ascontiguousarray(windows(pad, s, WINDOW if widest <= WINDOW else WIDEST).T)
        ok, units, scale = decimals(pad, s, e - s, gathered)
        if not ok.all():
            return None
        if self._close_number and not _json_decimal(pad, gathered, e):
            return None
        need = [texts, texts, True]
        text = body.decode("latin-1") if any(t is not None and w for t, w in zip(self.taken, need)) else ""
        out = [[] if t is None or not w else _slices(text, *self._span(places, t)) for t, w in zip(self.taken, need)]
        if self.taken[2] is not None and not all(map(str.strip, out[2])):
            return None
        if self.taken[1] is None and texts and self.paths[1] is not None:
            out[1] = [""] * n  # the time field is not in these lines
        return Block(units, scale, out[0], out[1], out[2])

    def _span(self, places: Any, place: Place) -> tuple[Any, Any]:
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

    def _fits(self, pad: Any, places: Any) -> list[Any] | None:
        """The windows of every line (a group's a row of words a window), when every line's fixed bytes (and so its
        quotes' places), numbers and true or false are the shape's; else None."""
        np = numpy()
        n = places.shape[1]
        got = []
        for g, (rows, width, _, _) in enumerate(self._windows.groups):
            words = width // 8
            wants, masks = self._tiles(g, n)
            gathered = windows(pad, places[rows], width).view(WORD).reshape(rows.stop - rows.start, words * n)
            if not ((gathered & masks) == wants).all():
                return None
            got.append(gathered)
        for place in self.bools:
            s, e = self._span(places, place)
            t = windows(pad, s)[:, :5]
            true = (e - s == 4) & (t[:, :4] == np.frombuffer(b"true", np.uint8)).all(1)
            false = (e - s == 5) & (t == np.frombuffer(b"false", np.uint8)).all(1)
            if not (true | false).all():
                return None
        if self._checked is not None and not self._numbers(pad, places, got):
            return None
        return got

    def _tiles(self, g: int, n: int) -> tuple[Any, Any]:
        """Group ``g``'s words and masks repeated for ``n`` lines: the lines' windows are then compared as they were
        gathered, in one long row a window (a broadcast along the lines, or a transposed copy, costs several times
        more)."""
        _, width, want, mask = self._windows.groups[g]
        words = width // 8
        tiled = self._tiled.get(g)
        if tiled is None or tiled[0].shape[1] < words * n:
            np = numpy()
            reps = max(n, 4096)
            tiled = self._tiled[g] = (np.tile(want, reps), np.tile(mask, reps))
        return tiled[0][:, : words * n], tiled[1][:, : words * n]

    def _numbers(self, pad: Any, places: Any, got: list[Any]) -> bool:
        """Whether the numbers other than the close are JSON numbers: those the windows hold, and the others gathered;
        the fields whose numbers fit in a word apart from the others (half the bytes to check)."""
        np = numpy()
        assert self._checked is not None
        lo, lo_off, hi, hi_off = self._checked
        length = places[hi] - places[lo]
        length += hi_off - lo_off
        n = places.shape[1]
        held: dict[int, tuple[list[Any], list[Any]]] = {}  # bytes a text: the texts, their lengths
        rest = []
        for j, (slot, longest) in enumerate(zip(self._held, length.max(1).tolist())):
            if slot is not None and longest <= slot[3]:
                width = 8 if longest <= 8 else slot[3]
                texts, lengths = held.setdefault(width, ([], []))
                texts.append(_held(got, slot, n, width))
                lengths.append(length[j])
            else:
                rest.append(j)
        for width, (texts, lengths) in held.items():
            w = np.stack([np.concatenate([t[:, k] for t in texts]) for k in range(width // 8)])
            if not words_are_numbers(w, np.concatenate(lengths)):
                return False
        if rest:
            start, end = places[lo[rest]] + lo_off[rest], places[hi[rest]] + hi_off[rest]
            narrow = (end - start).max(1) <= 8
            for group in (narrow, ~narrow):
                if group.any() and not numbers(pad, start[group].ravel(), end[group].ravel()):
                    return False
        return True


def _arrays(marks: Marks, places: list[Place]) -> tuple[Any, ...]:
    """Values' places as rows of windows and offsets from them: start row, offset, end row, offset, an array each."""
    np = numpy()
    return tuple(np.array(c, np.int64) for c in zip(*(marks.place(p) for p in places)))


def _held(got: list[Any], slot: tuple[int, int, int, int], n: int, width: int) -> Any:
    """A value's first ``width`` bytes as a window holds them (``slot``: group, row, byte, room): a row of words a
    line (taken as words, not bytes: a copy of them costs a fraction)."""
    g, row, byte, _ = slot
    windows = got[g]
    return windows.reshape(len(windows), n, -1)[row, :, byte // 8 : (byte + width) // 8]


def _json_decimal(pad: Any, gathered: Any, end: Any) -> bool:
    """Whether texts that are digits with at most one dot (``gathered``: byte j of each in row j; each followed by a
    byte that is not a digit) are JSON numbers too: a digit first and last, and no leading zero before a digit."""
    np = numpy()
    first, second = gathered[0], gathered[1]
    zero_led = (first == 48) & ((second - np.uint8(48)) < 10)
    return bool((((first - np.uint8(48)) < 10) & ~zero_led & (pad[end - 1] != 46)).all())


def _slices(text: str, start: Any, end: Any) -> list[str]:
    """The texts between places of the padded chunk (``_LEAD`` past the text's own places)."""
    return [text[s:e] for s, e in zip((start - len(_LEAD)).tolist(), (end - len(_LEAD)).tolist())]


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
