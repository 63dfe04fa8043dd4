"""Where the bytes of JSON Lines of one shape are (stream/parsing/jsonblocks.py): the marks numpy finds in every
line, and the windows of fixed bytes whose places count from them."""

from __future__ import annotations

from stream.parsing.decimals import numpy
from stream.parsing.jsonnumbers import WINDOW, WORD
from stream.records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Windows(NamedTuple):
    """Where a shape's fixed bytes are checked: each window's column of marks (``at``) and its offset from that
    mark (``offset``, a column), in order of width; the windows a group a width (``groups``: their slice of the
    windows, the width, and their bytes and which of them count, as 8-byte words); and for each value asked for, where
    its bytes are in the window before it (``slots``: group, row in the group, byte in the window, room), or None."""

    at: Any
    offset: Any
    groups: list[tuple[slice, int, Any, Any]]
    slots: list[tuple[int, int, int, int] | None]


def windows_of(fixed: list[tuple[int, int, int]], marks: Marks, values: list[tuple[int, int, int]]) -> Windows:
    """The fixed bytes of a shape (bound, offset, byte) as the windows that hold them; ``values``: (column, offset,
    room) of values whose first ``room`` bytes the window before each is to hold as well, from a word's start.

    A bound a fixed length after another (a key's closing quote, say) is placed from the other's place, so a key, its
    quotes and the punctuation around it are one window; a line whose windows all match has its quotes at those
    places, and so the lengths the shape fixes. A value's bytes in the window before it cost no gather of their own.
    """
    np = numpy()
    quotes = len(marks.anchor) - 2
    ends = [(b, 0, 34) for b in range(1, quotes + 1)] + [(quotes + 1, 0, 10)]
    placed = {marks.at(b, offset): byte for b, offset, byte in fixed + ends}
    starts: list[tuple[int, int]] = []
    for c, offset in sorted(placed):
        if not starts or starts[-1][0] != c or offset >= starts[-1][1] + WINDOW:
            starts.append((c, offset))
    widths = [WINDOW] * len(starts)
    at_value: list[tuple[int, int, int] | None] = []  # (window, byte, room)
    for c, offset, room in values:
        # The window holding the byte before the value, begun earlier so that the value begins a word.
        w = next((i for i, (c2, s) in enumerate(starts) if c2 == c and s < offset <= s + WINDOW), None)
        if w is None or widths[w] != WINDOW:
            at_value.append(None)
            continue
        lead = -(-(offset - starts[w][1]) // 8) * 8
        starts[w], widths[w] = (c, offset - lead), lead + room
        at_value.append((w, lead, room))
    # The windows in order of width, a group a width: a group's places are then a slice of a line's, not a copy.
    order = sorted(range(len(starts)), key=widths.__getitem__)
    groups: list[tuple[slice, int, Any, Any]] = []
    where: dict[int, tuple[int, int]] = {}  # window -> (group, row in it)
    first = 0
    for width in sorted(set(widths)):
        rows = [i for i in order if widths[i] == width]
        want = np.zeros((len(rows), width), np.uint8)
        mask = np.zeros((len(rows), width), np.uint8)
        for r, i in enumerate(rows):
            c, offset = starts[i]
            where[i] = (len(groups), r)
            for k in range(width):
                if (c, offset + k) in placed:
                    want[r, k], mask[r, k] = placed[c, offset + k], 255
        groups.append((slice(first, first + len(rows)), width, want.view(WORD), mask.view(WORD)))
        first += len(rows)
    at, offset = (np.array(c, np.int64) for c in zip(*(starts[i] for i in order)))
    slots = [None if v is None else (*where[v[0]], v[1], v[2]) for v in at_value]
    return Windows(at, offset[:, None], groups, slots)


class Marks:
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
        """The places of the marks among the first ``size`` bytes of ``pad``, in order, and how many quotes, control
        characters and bytes past ASCII those bytes hold."""
        np = numpy()
        # The quotes, the line ends, any other control character and any byte past ASCII (negative as int8), in one
        # pass: x ^ 2 <= 32 for x < 32, x = 34 or x < 0. A chunk with one of the last is then not of the shape, and the
        # regular expressions read it: the check of its UTF-8 costs more than those chunks are worth.
        marked = (pad[:size].view(np.int8) ^ np.int8(2)) <= 32
        found = int(np.count_nonzero(marked))
        if self.filtered:
            other = pad[: size + 1] != 58
            marked &= other[1:]  # not before a colon
            marked[1:] &= other[: size - 1]  # nor after one
        return np.flatnonzero(marked), found
