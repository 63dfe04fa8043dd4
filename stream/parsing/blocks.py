"""The block path: whole chunks of plain CSV lines parsed with numpy, exactly; every other line goes to the Reader.

A line is parsed here only when nothing about it can differ from the row path: the right number of fields, printable
ASCII without quotes (CR only before the newline), a close field of digits with at most one dot and few enough
digits for int64 and, in keyed runs, a key that is not blank. All other lines — quoted records, signs, exponents,
spaces, blank or bad lines — are fed to the Reader in file order, so values, keys, bad-row handling and line numbers
are the row path's own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stream.core.batch import Batch
from stream.parsing.decimals import MAX_DIGITS, decimals, numpy
from stream.parsing.framing import MAX_LINE_BYTES
from stream.parsing.reader import Reader
from stream.sources.chunks import CHUNK

if TYPE_CHECKING:
    from stream.parsing.jsonblocks import JsonBlocks

# Bytes from a file's start that the Reader reads itself: the header and the lines that tell its layout.
LAYOUT_SAMPLE_BYTES = CHUNK
# A chunk of complete lines shorter than this goes to the Reader: numpy's per-call overhead would not pay off.
MIN_BLOCK_BYTES = 64 * 1024
# With more runs of irregular lines than this share of the lines, the whole chunk goes to the Reader at once.
IRREGULAR_RUNS = 1 / 16
# Each block costs the engine O(window) on top of O(block); past this window a chunk's ~10k rows no longer pay for
# it, and the row path (O(1) per row) is the faster one.
MAX_WINDOW = 1 << 16


@dataclass
class _Parsed:
    starts: Any  # byte offset of each line
    ends: Any  # byte offset of each line's newline
    regular: Any  # bool per line: parsed here
    units: Any  # int64 per regular line, at `scale`
    scale: int
    closes: list[str]
    stamps: list[str]
    keys: list[str] = field(default_factory=list)


class BlockReader:
    """Feeds a Reader, but turns long runs of plain lines into Blocks itself; same rows, same line numbers."""

    def __init__(
        self,
        reader: Reader,
        min_block: int | None = None,
        irregular_runs: float = IRREGULAR_RUNS,
        after: int | None = None,
        started: Callable[[int], None] | None = None,
    ) -> None:
        """``after``: the Reader alone reads the first ``after`` bytes fed (a stream proves itself big first), and
        ``started(offset)`` is told when numpy takes over; None: from the first byte on, silently."""
        self.reader = reader
        self.min_block = MIN_BLOCK_BYTES if min_block is None else min_block
        self.irregular_runs = irregular_runs
        self.lines = 0  # lines parsed by the block path (for the log)
        self._after = after
        self._started = started
        self._seen = 0
        self._json_blocks: JsonBlocks | None = None  # JSON Lines: the shapes of the chunks so far

    @property
    def json(self) -> bool:
        """Whether the input is JSON Lines (as far as its layout is known)."""
        layout = self.reader.layout
        return layout is not None and layout.format == "jsonl"

    @property
    def started(self) -> bool:
        """Whether numpy parses the chunks fed from now on."""
        return self._after is None

    def feed(self, data: bytes) -> list[Batch]:
        reader = self.reader
        if self._after is not None:
            self._seen += len(data)
            if self._seen <= self._after:
                return [reader.feed(data)]
            self._after = None
            if self._started is not None:
                self._started(self._seen - len(data))
        out: list[Batch] = []
        pos = 0
        # The header, leading blank lines and the end of a line begun in the last chunk: the Reader, a line at a time
        # (a file's start with the lines after it, from which the Reader tells its layout).
        while pos < len(data) and not reader.at_line_start:
            cut = data.find(b"\n", pos) + 1
            if reader.at_file_start:
                cut = data.rfind(b"\n", pos, pos + LAYOUT_SAMPLE_BYTES) + 1 or cut
            if not cut:
                out.append(reader.feed(data[pos:]))
                return out
            out.append(reader.feed(data[pos:cut]))
            pos = cut
        cut = data.rfind(b"\n") + 1
        if cut - pos >= self.min_block:
            out.extend(self._block(data[pos:cut]))
        elif cut > pos:
            out.append(reader.feed(data[pos:cut]))
        if cut < len(data):
            out.append(reader.feed(data[cut:]))
        return out

    def _block(self, body: bytes) -> list[Batch]:
        reader = self.reader
        layout = reader.layout
        assert layout is not None
        if layout.format == "jsonl":
            return [self._json(body)]
        if reader.decimal != "." or len(layout.delimiter.encode()) != 1:
            return [reader.feed(body)]  # values with a decimal comma, or a mark not yet known, are the row path's
        parsed = parse(body, layout.columns, layout.close_index, layout.timestamp_index, reader.keep_text,
                       layout.key_index, ord(layout.delimiter))  # fmt: skip
        np = numpy()
        regular = parsed.regular
        n = len(regular)
        if n and regular.all():
            reader.consumed(n, len(body))
            self.lines += n
            batch = Batch(reader.offset, parsed.units, parsed.scale)
            batch.closes, batch.stamps, batch.keys = parsed.closes, parsed.stamps, parsed.keys
            return [batch]
        # Runs of equal regularity: edges where it flips.
        flips = np.flatnonzero(regular[1:] != regular[:-1]) + 1
        if n == 0 or len(flips) + 1 > max(2, n * self.irregular_runs) or not regular.any():
            return [reader.feed(body)]
        bounds = [0, *flips.tolist(), n]
        starts, ends = parsed.starts, parsed.ends
        pieces: list[tuple[int, int] | Batch] = []  # (first, last) regular indices, or the Reader's batch
        done = 0  # regular lines so far
        for a, b in itertools.pairwise(bounds):
            lo, hi = int(starts[a]), int(ends[b - 1]) + 1
            if regular[a]:
                reader.consumed(b - a, hi - lo)
                pieces.append((done, done + b - a))
                done += b - a
            else:
                pieces.append(reader.feed(body[lo:hi]))
        self.lines += done
        return [_merge(pieces, parsed, reader.offset)]

    def _json(self, body: bytes) -> Batch:
        """JSON Lines: a chunk of one shape read whole; any other chunk goes to the reader (which halves it down to
        its odd lines)."""
        reader = self.reader
        if self._json_blocks is None:
            from stream.parsing.jsonblocks import JsonBlocks

            assert reader.layout is not None
            self._json_blocks = JsonBlocks(reader.layout, reader.keep_text, reader.key is not None)
        batch, n = self._json_blocks.read(body)
        if batch is None:
            return reader.feed(body)
        reader.consumed(n, len(body))
        self.lines += n
        batch.end_offset = reader.offset
        return batch


def _merge(pieces: list[tuple[int, int] | Batch], parsed: _Parsed, end_offset: int) -> Batch:
    """One batch for a chunk's rows in file order: an int64 array at a common scale when every value fits."""
    np = numpy()
    batches = [p for p in pieces if isinstance(p, Batch)]
    skipped = sum(b.skipped for b in batches)
    scale = max([parsed.scale, *(s for b in batches for s in b.scales)])
    biggest = max((abs(u) * 10 ** (scale - s) for b in batches for u, s in zip(b.units, b.scales)), default=0)
    units = parsed.units
    if len(units):
        biggest = max(biggest, int(np.abs(units).max()) * 10 ** (scale - parsed.scale))
    keep = bool(parsed.closes)
    keyed = bool(parsed.keys)
    closes: list[str] = []
    stamps: list[str] = []
    keys: list[str] = []
    for p in pieces:
        if isinstance(p, Batch):
            closes += p.closes
            stamps += p.stamps
            keys += p.keys
        else:
            if keep:
                closes += parsed.closes[p[0] : p[1]]
                stamps += parsed.stamps[p[0] : p[1]]
            if keyed:
                keys += parsed.keys[p[0] : p[1]]
    merged = Batch(end_offset)
    merged.closes, merged.stamps, merged.skipped, merged.keys = closes, stamps, skipped, keys
    if biggest < 10**MAX_DIGITS and scale - parsed.scale <= MAX_DIGITS:  # values and the factor fit int64
        factor = 10 ** (scale - parsed.scale)
        arrays = [
            np.array([u * 10 ** (scale - s) for u, s in zip(p.units, p.scales)], np.int64)
            if isinstance(p, Batch)
            else units[p[0] : p[1]] * factor
            for p in pieces
        ]
        merged.array, merged.scale = np.concatenate(arrays), scale
        return merged
    for p in pieces:
        if isinstance(p, Batch):
            merged.units += p.units
            merged.scales += p.scales
        else:
            merged.units += units[p[0] : p[1]].tolist()
            merged.scales += [parsed.scale] * (p[1] - p[0])
    return merged


def parse(
    body: bytes,
    columns: list[str],
    close_index: int,
    stamp_index: int | None,
    keep_text: bool,
    key_index: int | None = None,
    delimiter: int = 44,
) -> _Parsed:
    """Parse complete lines (``body`` ends with a newline) of a file whose header has been read, its fields separated
    by the byte ``delimiter``.

    Returns every line's bounds, which lines are regular (see the module docstring) and, for those, the close as
    int64 units at one scale, the keys in keyed runs (and the texts when asked).
    """
    np = numpy()
    ncols = len(columns)
    a = np.frombuffer(body, np.uint8)
    sep = np.flatnonzero((a == delimiter) | (a == 10))
    nl_at = np.flatnonzero(a[sep] == 10)  # index in sep of each newline
    ends = sep[nl_at]
    n = len(ends)
    starts = np.empty(n, np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    regular = (np.diff(nl_at, prepend=-1) == ncols) & (ends - starts <= MAX_LINE_BYTES)
    # Bytes the csv module or the decoder could treat differently: quotes, non-ASCII, control characters.
    odd_pos = []
    if not body.isascii():
        odd_pos.append(np.flatnonzero(a >= 128))
    if b'"' in body:
        odd_pos.append(np.flatnonzero(a == 34))
    field_end = sep
    control = a < 32
    if delimiter < 32:  # a TAB delimiter is not a stray control character
        control &= a != delimiter
    if np.count_nonzero(control) != n:
        ctl = np.flatnonzero(control & (a != 10))
        crlf = (a[ctl] == 13) & (a[ctl + 1] == 10)
        odd_pos.append(ctl[~crlf])
        if crlf.any():
            # A CR before the newline ends the last field, as in the csv module.
            field_end = sep.copy()
            field_end[np.searchsorted(sep, ctl[crlf] + 1)] -= 1
    for pos in odd_pos:
        regular[np.searchsorted(ends, pos)] = False
    rows = np.flatnonzero(regular)
    first_sep = nl_at[rows] - (ncols - 1)  # index in sep of each regular line's first separator

    def bounds(col: int) -> tuple[Any, Any]:
        lo = sep[first_sep + col - 1] + 1 if col else starts[rows]
        return lo, field_end[first_sep + col]

    cs, ce = bounds(close_index)
    ok, units, scale = decimals(a, cs, ce - cs)
    if not ok.all():
        regular[rows[~ok]] = False
        rows, units, cs, ce, first_sep = rows[ok], units[ok], cs[ok], ce[ok], first_sep[ok]
    closes: list[str] = []
    stamps: list[str] = []
    keys: list[str] = []
    # Regular lines are ASCII, so latin-1 maps their bytes to characters one to one.
    text = body.decode("latin-1") if len(rows) and (keep_text or key_index is not None) else ""
    if key_index is not None and len(rows):
        ks, ke = bounds(key_index)
        # Printable ASCII only: strip() takes exactly the spaces the row path's csv reading and strip() take.
        keys = [text[s:e].strip() for s, e in zip(ks.tolist(), ke.tolist())]
        if not all(keys):  # a blank key is a bad row: the Reader reports it
            good = np.array([bool(k) for k in keys])
            regular[rows[~good]] = False
            rows, units, cs, ce, first_sep = rows[good], units[good], cs[good], ce[good], first_sep[good]
            keys = [k for k in keys if k]
    if keep_text and len(rows):
        closes = [text[s:e] for s, e in zip(cs.tolist(), ce.tolist())]
        if stamp_index is not None:
            ts, te = bounds(stamp_index)
            stamps = [text[s:e].strip() for s, e in zip(ts.tolist(), te.tolist())]
    return _Parsed(starts, ends, regular, units, scale, closes, stamps, keys)
