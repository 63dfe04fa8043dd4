"""Many places of a chunk's bytes at once, with numpy: the fixed-width windows the block path of JSON Lines
compares its lines with, and the check that texts are JSON numbers (stream/parsing/jsonblocks.py)."""

from __future__ import annotations

from typing import Any

from stream.parsing.decimals import numpy

# Bytes a window holds: a key with its quotes and the punctuation around it, or a number's text, in one gather.
WINDOW = 16
# Number texts longer than this are left to the regular expressions.
WIDEST = 32
# JSON's numbers as a machine over classes of bytes (0, 1-9, -, +, ., e or E, any other); states: 0 start, 1 after
# a minus, 2 a leading zero, 3 integer digits, 4 after the point, 5 decimals, 6 after e, 7 after its sign,
# 8 exponent digits, 9 refused.
_MOVES = (
    (2, 3, 1, 9, 9, 9, 9), (2, 3, 9, 9, 9, 9, 9), (9, 9, 9, 9, 4, 6, 9), (3, 3, 9, 9, 4, 6, 9), (5, 5, 9, 9, 9, 9, 9),
    (5, 5, 9, 9, 9, 6, 9), (8, 8, 7, 7, 9, 9, 9), (8, 8, 9, 9, 9, 9, 9), (8, 8, 9, 9, 9, 9, 9), (9, 9, 9, 9, 9, 9, 9),
)  # fmt: skip
_ENDS = (2, 3, 5, 8)
_KINDS = 8  # the byte classes, and one more for a place past a text's end, where the state stays
_STAY = 7
_MACHINE: list[Any] = []
_TABLES: list[Any] = []
# Eight bytes taken as one little-endian word, and a word of eight flag bytes, each 1.
WORD = "<u8"
_ONES = 0x0101010101010101


def padded(a: Any, lead: bytes = b"") -> Any:
    """``lead``, ``a``'s bytes and ``WIDEST`` zero bytes after them: room for a window at every place of ``a``."""
    np = numpy()
    k = len(lead)
    out = np.empty(k + len(a) + WIDEST, np.uint8)
    out[:k] = np.frombuffer(lead, np.uint8)
    out[k : k + len(a)] = a
    out[k + len(a) :] = 0
    return out


def windows(pad: Any, at: Any, width: int = WINDOW) -> Any:
    """The ``width`` bytes from each place ``at`` (any shape) of ``pad`` (from ``padded``), in an array of ``at``'s
    shape and one more axis of ``width`` bytes.

    One gather of a ``width``-byte item a place: a byte-by-byte gather would need an index (8 bytes) for each byte.
    """
    np = numpy()
    view = np.ndarray((len(pad) - width + 1,), np.dtype(f"V{width}"), pad, 0, (1,))
    return view[at].view(np.uint8).reshape(*at.shape, width)


def numbers(pad: Any, start: Any, end: Any) -> bool:
    """Whether every text ``pad[start:end]`` is a JSON number (``pad`` from ``padded``)."""
    length = end - start
    width = int(length.max())
    if width > WIDEST:
        return False
    # A row for each text, and its bytes (a few past its end) along it: one word when they fit in one.
    t = windows(pad, start, 8 if width <= 8 else WINDOW if width <= WINDOW else WIDEST)
    return words_are_numbers(words(t), length)


def words_are_numbers(w: Any, length: Any) -> bool:
    """Whether texts are JSON numbers: text i's ``length[i]`` bytes, from its first, are bytes of words ``w[:, i]``
    (1, 2 or 4 of them; ``words``), followed by a byte that is not a digit where the words have room for one."""
    np = numpy()
    width = int(length.max())
    if width > 8 * len(w) or int(length.min()) < 1:
        return False
    plain = _plain(w, length)
    if plain is not None:
        return plain
    classes, moves, accepting = _machine()
    t = np.ascontiguousarray(w.T).view(np.uint8)  # a row of bytes a text
    kinds = classes[t.T[:width]]  # one vector step of the machine for each place
    kinds[np.arange(width)[:, None] >= length] = _STAY
    state = np.zeros(len(t), np.int8)
    for row in kinds:
        state = moves[state * _KINDS + row]
    return bool(accepting[state].all())


def words(t: Any) -> Any:
    """Rows of bytes (``t``: a row of ``8 * k`` bytes each) as k rows of 8-byte words, word j of every row in row j:
    each step then runs along all the rows at once."""
    np = numpy()
    return np.ascontiguousarray(t.view(WORD).T)


def _plain(w: Any, length: Any) -> bool | None:
    """Whether the texts (in words ``w``, as ``words_are_numbers`` takes them) are JSON numbers when none has an
    exponent: ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``; None when one has an e, E or +. The bytes are taken eight at a
    time, as words, each byte's kind a flag bit in it."""
    np = numpy()
    rows = len(w)
    masks, starts = _tables()
    b = w.view(np.uint8)
    digit = ((b - np.uint8(48)) < 10).view(WORD)
    dot = (b == 46).view(WORD)
    mask = masks[: rows + 1].take(length, axis=1)  # the words' masks of each text's bytes, and its last byte's flag
    lead = w[0]
    signed = (lead & np.uint64(0xFF)) == 45
    minus = bool(signed.any())  # prices rarely have one: the steps for it are skipped then
    bad = ((digit | dot) ^ np.uint64(_ONES)) & mask[1:]  # a byte of another kind: a minus, an exponent, ...
    if minus:
        bad[0] ^= signed  # a minus is usual as the first byte
    if bad.any():
        return None
    dot &= mask[1:]
    dots = dot[0]
    for j in range(1, rows):
        dots |= dot[j] << np.uint64(j)  # each row's flags at a bit of their own
    if minus:
        lead = lead >> (signed.astype(WORD) << np.uint64(3))  # the first digit, and the byte after it
    # One dot at most, and not the last byte; a digit first, a leading zero the whole integer part (0.5, never 01).
    good = (dots & ((dots - np.uint64(1)) | mask[0])) == 0
    good &= starts.take(lead & np.uint64(0xFFFF))
    return bool(good.all())


def _tables() -> tuple[Any, Any]:
    """Made once: for each length L (a column), the flag of a text's last byte among the flags ``_plain`` gathers
    in one word, then the mask of its bytes 8j ... 8j + 7 in word j (a row each); and whether two bytes (the first
    in the low byte) begin a number's digits well."""
    if not _TABLES:
        np = numpy()
        ends = [0] + [1 << (8 * ((n - 1) % 8) + (n - 1) // 8) for n in range(1, WIDEST + 1)]
        masks = [[(1 << 8 * min(max(n - 8 * j, 0), 8)) - 1 for n in range(WIDEST + 1)] for j in range(WIDEST // 8)]
        digits = np.arange(256)
        ok = np.zeros((256, 256), bool)  # [second, first]
        ok[:, 49:58] = True
        ok[:, 48] = (digits < 48) | (digits > 57)
        _TABLES.extend([np.array([ends, *masks], WORD), ok.ravel()])
    return _TABLES[0], _TABLES[1]


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
