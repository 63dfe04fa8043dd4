"""The reader: pushed bytes become Batches of exact close values. It is the front of the parts of parsing, each in a
module of its own: line framing (stream/parsing/framing.py), finding each file's header and format (header.py),
parsing rows and the bad-row policy (rows.py), the whole-chunk fast path (plain.py), and JSON Lines' rows
(jsonl.py). ``batches`` is the one loop from a byte stream to batches.

The reader is pushed bytes (``feed``), told where one file ends and another begins (``new_file``) and when the
input is over (``finish``); each call returns a Batch of the rows it completed. It knows nothing of windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from stream.core.batch import BadRow, Batch, where
from stream.core.tally import Skips
from stream.parsing.framing import BOM, MAX_LINE_BYTES, TOO_LONG, Framer, InputError, flag_long, show_line, split_lines
from stream.parsing.header import Found, Sample, find_header, layout_of
from stream.parsing.layout import Layout, LayoutRequest
from stream.parsing.rows import BadRows, Rows
from stream.sources.files import NewFile

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, Protocol

    from stream.parsing.jsonl import JsonRows
    from stream.parsing.rows import Bad

    class Blocks(Protocol):
        """The block path (``stream.parsing.blocks.BlockReader``) as ``batches`` feeds it: bytes in, the batches they
        complete out, the lines numpy does not take passed on to the reader."""

        def feed(self, data: bytes) -> list[Batch]: ...


class ReaderState:
    """Where a reader stands in its current file, between pushes of bytes: what a checkpoint keeps (as ``document``)
    and where a block of the parallel plan starts reading."""

    # A plain class, not a NamedTuple: every NamedTuple made costs the run's start-up, and the batch path needs none.
    __slots__ = ("at_file_start", "header", "layout", "line", "offset")

    def __init__(
        self, offset: int, line: int, header: str | None, at_file_start: bool, layout: dict[str, Any] | None
    ) -> None:
        self.offset = offset  # bytes of the file consumed through the last complete line
        self.line = line  # lines of the file consumed
        self.header = header  # the header as written; None: none yet, or the input has none
        self.at_file_start = at_file_start  # the header (or, without one, the first data line) is still to come
        self.layout = layout  # Layout.spec(), its decimal the mark the first values told; None: not known yet

    def __repr__(self) -> str:
        return f"ReaderState({', '.join(f'{k}={v!r}' for k, v in self.document().items())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReaderState) and self.document() == other.document()

    def document(self) -> dict[str, Any]:
        """The state as the checkpoint's JSON holds it."""
        return {k: getattr(self, k) for k in ("offset", "line", "header", "at_file_start", "layout")}

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ReaderState:
        """The state a checkpoint's ``document`` holds (one written before layouts were kept has none)."""
        return cls(int(doc["offset"]), int(doc["line"]), doc["header"], bool(doc["at_file_start"]), doc.get("layout"))


def batches(
    reader: Reader, events: Iterable[bytes | NewFile], block: Blocks | None = None, *, finish: bool = True
) -> Iterator[Batch]:
    """The one way from bytes to batches: every chunk of ``events`` fed to ``reader`` (or to ``block``, the block
    path, which feeds the reader what numpy does not parse), a NewFile marker starting the next file (after a
    truncation, a partial last line is dropped); with ``finish``, the input's end completes a last line without a
    newline, and an input whose header never came because its line was over-long fails saying so. Only batches
    with rows or skipped rows come out."""
    for event in events:
        out: Iterable[Batch]
        if isinstance(event, NewFile):
            out = (reader.new_file(complete_partial=event.reason != "truncated", file=event.name),)
        else:
            out = block.feed(event) if block is not None else (reader.feed(event),)
        for batch in out:
            if len(batch) or batch.skipped:
                yield batch
    if finish:
        last = reader.finish()
        if len(last) or last.skipped:
            yield last
        reader._check_header()


def rows_of(layout: Layout, bad: Bad, keep_text: bool, key: str | None) -> Rows | JsonRows:
    """The reading of ``layout``'s rows, by its format: CSV, or JSON Lines."""
    if layout.format == "jsonl":
        from stream.parsing.jsonl import JsonRows  # deferred: a CSV run never imports json

        return JsonRows(layout, bad, keep_text, key)
    return Rows(layout, bad, keep_text, key)


class Reader:
    """Turns pushed bytes into Batches of exact close values; see the module docstring. What other parts use:

    - pushing bytes: ``feed``, ``finish``, ``new_file`` (and ``batches``, which calls them);
    - where it stands and what it found, read-only: ``offset``, ``line_no``, ``pending``, ``file``, ``layout``,
      ``header_text``, ``decimal``, ``undecided``, ``skips``; its settings: ``request``, ``column``, ``key``,
      ``skip``, ``report``, ``keep_text``;
    - checkpoints: ``state`` and ``restore`` (a ReaderState);
    - the parallel plan and --reverse: ``sibling``, ``start_piece``, ``count_backwards``, ``add_skips``; the block
      path: ``at_file_start``, ``at_line_start`` and ``consumed``.
    """

    __slots__ = (
        "_at_file_start", "_framer", "_header", "_long_header", "_policy", "_rows", "_skip_left", "_wait",
        "keep_text", "key", "request",
    )  # fmt: skip

    def __init__(
        self,
        column: str = "close",
        on_bad_row: str = "fail",
        report: Callable[[BadRow], None] | None = None,
        keep_text: bool = False,
        final_line_needs_newline: bool = False,
        key: str | None = None,
        file: str | None = None,
        request: LayoutRequest | None = None,
    ) -> None:
        self.request = request if request is not None else LayoutRequest(column)
        self.key = key  # rows are grouped by this column's value (Batch.keys); None: one series
        self.keep_text = keep_text
        self._policy = BadRows(on_bad_row == "skip", report, file)
        self._framer = Framer(self._take, self._too_long)
        # In follow mode a line without its newline may still be being written; in batch mode EOF completes it.
        self._wait = final_line_needs_newline
        self._rows: Rows | JsonRows | None = None  # the rows of the layout found; None until it is
        self._header: str | None = None
        self._at_file_start = True
        self._skip_left = self.request.skip_lines  # --skip-lines still to skip in this file
        self._long_header: BadRow | None = None  # an over-long line where the header should be, skipped

    def sibling(self, backwards: bool = False) -> Reader:
        """A fresh reader with this one's layout settings that skips bad rows silently: a probe of the first lines
        (the parallel plan, --reverse), which reads past the header into rows that are read again later. With
        ``backwards`` its layout tells the rows' order as --reverse will process them."""
        request = self.request.backwards() if backwards else self.request
        return Reader(self.column, "skip", key=self.key, file=self.file, request=request)

    # ---- pushing bytes -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> Batch:
        """Take more bytes; return the rows whose lines are now complete."""
        return self._framer.feed(data)

    def finish(self, ended: bool = False) -> Batch:
        """The input is over: a last line without a newline is complete (unless following; then it is kept, except
        when the input has ``ended`` for good: a closed pipe)."""
        if ended:
            self._wait = False
        return self._framer.finish(self._wait)

    def new_file(self, complete_partial: bool = True, file: str | None = None) -> Batch:
        """The current file is over and another begins (rotation, truncation, the next input): a header may follow.

        A held partial line is complete when its file will not grow any more (the next input, a rotated file); after
        a truncation it was cut short, so the caller passes ``complete_partial=False`` and the line is dropped.
        ``file`` names the next file in messages (runs over several inputs).
        """
        batch = self._framer.next_file(complete_partial)
        if file is not None:
            self._policy.in_file(file)
        self._at_file_start = True
        self._skip_left = self.request.skip_lines
        return batch

    def state(self) -> ReaderState:
        """Where the reader stands in the current file, for a checkpoint (valid between pushes of bytes)."""
        rows = self._rows
        layout = rows.layout.spec() | {"decimal": rows.decimal} if rows is not None else None
        return ReaderState(self._framer.offset, self._framer.line_no, self._header, self._at_file_start, layout)

    def restore(self, state: ReaderState) -> None:
        """Continue from ``state``: the layout comes back as it was found, the bytes from ``offset`` on."""
        self._framer.restore(state.offset, state.line)
        self._at_file_start = state.at_file_start
        if state.header is not None:
            self._header = state.header
        layout = self.layout
        if state.layout is not None:
            layout = Layout.from_spec(state.layout)
        elif state.header is not None:  # a checkpoint written before layouts were recorded: the header tells it
            layout = layout_of(state.header, [], 1, self.request, self.key)
        if layout is not None and self.request.format not in (None, layout.format):
            raise InputError(f"--format {self.request.format}: the checkpoint's run read the input as {layout.format}")
        self._rows = None if layout is None else rows_of(layout, self._policy.bad, self.keep_text, self.key)

    # ---- what it found, and where it stands -------------------------------------------------------------------

    @property
    def layout(self) -> Layout | None:
        """The layout the first file's first lines told; None until they have come."""
        return self._rows.layout if self._rows is not None else None

    @property
    def decimal(self) -> str | None:
        """The decimal mark of the values read from now on; None while no value has told it."""
        return self._rows.decimal if self._rows is not None else None

    @property
    def undecided(self) -> bool:
        """A value needed the decimal mark before any value told it (it was a bad row; a later block cannot know)."""
        return self._rows.undecided if self._rows is not None else False

    @property
    def header_text(self) -> str | None:
        """The header as written; None while not found, or for an input without one."""
        return self._header

    @property
    def offset(self) -> int:
        """Bytes of the current file consumed through the last complete line."""
        return self._framer.offset

    @property
    def line_no(self) -> int:
        """Lines of the current file consumed so far."""
        return self._framer.line_no

    @property
    def pending(self) -> bytes:
        """The bytes of a line whose newline has not arrived yet."""
        return self._framer.pending

    @property
    def file(self) -> str | None:
        """The current file's name, for messages when a run reads several files."""
        return self._policy.file

    @property
    def skips(self) -> Skips:
        """The skipped rows by kind."""
        return self._policy.skips

    @property
    def column(self) -> str:
        return self.request.column

    @property
    def skip(self) -> bool:
        """Whether bad rows are skipped (``--on-bad-row skip``) rather than stop the run."""
        return self._policy.skip

    @property
    def report(self) -> Callable[[BadRow], None]:
        """Where each skipped row is reported."""
        return self._policy.report

    @property
    def at_file_start(self) -> bool:
        """True while the current file's header (or first data line) is still to come."""
        return self._at_file_start

    @property
    def at_line_start(self) -> bool:
        """True when the next byte fed starts a line of a file whose header has been read."""
        return self._framer.at_line_start and not self._at_file_start and self._rows is not None

    # ---- for the parallel plan, --reverse and the block path -----------------------------------------------------

    def start_piece(self, offset: int, file: str | None) -> None:
        """Read on from byte ``offset`` of ``file``, a line start inside it (a block of the parallel plan): line
        numbers count from here, and the plan adds the lines before."""
        self._framer.move_to(offset)
        self._policy.in_file(file)

    def count_backwards(self, lines: int) -> None:
        """The ``lines`` data lines that follow come last line first (--reverse): number bad rows as in the file."""
        self._policy.number_backwards(2 * self._framer.line_no + lines + 1)

    def add_skips(self, skips: Skips) -> None:
        """Count rows skipped by other readers of this input after this one's (the parallel plan's workers)."""
        self._policy.add(skips)

    def consumed(self, lines: int, nbytes: int) -> None:
        """Account for complete lines another parser (the block path) turned into rows, so line numbers carry on."""
        self._framer.consumed(lines, nbytes)

    # ---- lines to rows (the framer's take) ------------------------------------------------------------------------

    def _take(self, data: bytes, first: int, final: bool) -> Batch | None:
        """The rows of ``data``, complete lines from line ``first`` on; None gives them back until the next line
        has come (the framer holds them: a first line that may be a title)."""
        at_start = self._at_file_start
        bom = at_start and data[:3] == BOM
        if bom:
            data = data[3:]
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        rows = self._rows
        if not at_start and rows is not None and text is not None:
            whole = rows.chunk(data, text)  # the usual chunk: plain lines, read whole
            if whole is not None:
                return whole
        lines, flagged = split_lines(data, text)
        quotes = '"' in text if text is not None else any('"' in ln for ln in lines)
        if at_start:
            skip = min(self._skip_left, len(lines))
            known = Found(0, rows.layout, self._header) if rows is not None else None  # a later file's: the first's
            sample = Sample(lines, first, flagged, final, self.file, bom)
            found = find_header(sample, self.request, self.key, skip, known)
            if not isinstance(found, Found):
                if found is not None:  # HOLD
                    return None
                self._skip_left -= skip
                return Batch()
            self._start(found)
            rows = self._rows
            start = found.start
            lines = lines[start:]
            flagged = {i - start: v for i, v in flagged.items() if i >= start}
            first += start
        assert rows is not None
        flag_long(lines, flagged, len(data))
        return rows.read(lines, first, flagged, quotes)

    def _start(self, found: Found) -> None:
        """The current file's data starts (``found``); the first file's tells the run's layout."""
        self._skip_left = 0
        self._at_file_start = False
        if self._rows is None:
            self._rows = rows_of(found.layout, self._policy.bad, self.keep_text, self.key)
            self._header = found.header

    def _too_long(self, batch: Batch, line: int, raw: bytes) -> None:
        """A line grew past MAX_LINE_BYTES: a bad row; where the header should be, kept to say why none came."""
        self._policy.bad(batch, line, "too_long", TOO_LONG, raw)
        if self._rows is None and self._long_header is None:
            self._long_header = BadRow(line, "", show_line(raw.decode("utf-8", "replace")), self.file, "too_long")

    def _check_header(self) -> None:
        """At the input's end (``batches``): an input whose header never came because the line where it should be
        was over-long (and skipped) fails with that reason, not as an empty input."""
        bad = self._long_header
        if self._rows is None and bad is not None:
            raise InputError(
                f"the first line ({where(bad.file, bad.line)}), which should be the header naming the columns, is "
                f"longer than {MAX_LINE_BYTES} bytes, the limit for one line: {bad.text}"
            )
