"""The bad-row policy: stop at the first bad row (``fail``) or leave it out (``skip``), reporting it and counting
it by kind; rows read last-first (--reverse) are numbered as they stand in the file."""

from __future__ import annotations

from collections.abc import Callable

from stream.core.batch import BadRow, Batch
from stream.core.tally import Skips
from stream.parsing.framing import SHOWN, show_line
from stream.parsing.rows import BadRowError


class BadRows:
    """What happens to a bad row: ``fail`` raises BadRowError; ``skip`` counts it in its batch and in ``skips`` (by
    kind) and hands it to ``report``. Rows name ``file``, the current file, when a run reads several."""

    __slots__ = ("_mirror", "file", "report", "skip", "skips")

    def __init__(self, skip: bool, report: Callable[[BadRow], None] | None = None, file: str | None = None) -> None:
        self.skip = skip
        self.report = report or (lambda bad: None)
        self.file = file
        self.skips = Skips()  # the skipped rows by kind
        self._mirror: int | None = None  # lines come last first: a line numbered n here is line _mirror - n

    def bad(self, batch: Batch, line: int, kind: str, reason: str, text: str | bytes) -> None:
        """Line ``line`` (its text, or its bytes) is a bad row of ``kind``, for ``reason``."""
        if isinstance(text, bytes):
            text = text[: SHOWN * 4].decode("utf-8", "replace")
        if self._mirror is not None:
            line = self._mirror - line
        bad = BadRow(line, reason, show_line(text), self.file, kind)
        if not self.skip:
            raise BadRowError(bad)
        batch.skipped += 1
        self.skips.add(bad)
        self.report(bad)

    def in_file(self, file: str | None) -> None:
        """Rows from now on are in ``file``."""
        self.file = file

    def number_backwards(self, mirror: int) -> None:
        """The lines that follow come last first: the one numbered n as read is line ``mirror - n`` of the file."""
        self._mirror = mirror

    def add(self, skips: Skips) -> None:
        """Count rows skipped by other readers of the input after these (the parallel plan's blocks)."""
        self.skips = self.skips + skips
