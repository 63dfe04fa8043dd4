"""The records parsing hands on: a Batch of rows' exact values, and a BadRow for each row that could not be used."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:  # the block path's arrays (numpy loads only when a run needs it)
    import numpy as np
    from numpy.typing import NDArray


class Batch:
    """The rows completed by one push of bytes, as parallel lists (cheap to build, cheap to walk); the block path's
    rows carry their values as one numpy int64 ``array`` at one ``scale`` instead of ``units`` and ``scales``. Every
    run hands batches of both kinds to its engine through one method (``feed``)."""

    # Plain slots, not a dataclass: dataclasses cost more import time than a 10,000-row run spends on its rows.
    __slots__ = ("array", "closes", "end_offset", "keys", "scale", "scales", "skipped", "stamps", "units")

    def __init__(self, end_offset: int = 0, array: NDArray[np.int64] | None = None, scale: int = 0) -> None:
        self.units: list[int] = []
        self.scales: list[int] = []
        self.array = array
        self.scale = scale  # the scale of every value in ``array``
        self.closes: list[str] = []  # the close as written; kept only when asked for
        self.stamps: list[str] = []  # the timestamp column, when the input has one and text is kept
        self.keys: list[str] = []  # the key column of every row, in keyed runs
        self.skipped = 0
        self.end_offset = end_offset  # bytes of the current file consumed through the last complete line

    def __repr__(self) -> str:
        return f"Batch(rows={len(self)}, skipped={self.skipped}, end_offset={self.end_offset})"

    def __len__(self) -> int:
        return len(self.units) if self.array is None else len(self.array)

    def values(self, start: int = 0, stop: int | None = None) -> tuple[list[int], Iterable[int]]:
        """The units and scales of rows ``start:stop``, as Python integers, whichever kind the batch is."""
        if self.array is None:
            return self.units[start:stop], self.scales[start:stop]
        return self.array[start:stop].tolist(), repeat(self.scale)


class BadRow:
    """A data row that cannot be used: where it is (the file, when the run reads several), why (``reason`` for a
    person, ``kind`` one of KINDS for a machine), and what it looked like (shortened)."""

    __slots__ = ("file", "kind", "line", "reason", "text")

    def __init__(self, line: int, reason: str, text: str, file: str | None = None, kind: str = "value") -> None:
        self.line = line
        self.reason = reason
        self.text = text
        self.file = file
        self.kind = kind

    def __repr__(self) -> str:
        where = f", file={self.file!r}" if self.file is not None else ""
        return f"BadRow(line={self.line}, kind={self.kind!r}, reason={self.reason!r}, text={self.text!r}{where})"

    def _key(self) -> tuple[int, str, str, str | None, str]:
        return (self.line, self.reason, self.text, self.file, self.kind)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadRow) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def moved(self, lines: int) -> BadRow:
        """The same bad row, ``lines`` further down its file (a worker numbers lines from its block's start)."""
        return BadRow(self.line + lines, self.reason, self.text, self.file, self.kind)

    def describe(self) -> str:
        return f"{where(self.file, self.line)}: {self.reason}: {self.text}"


def where(file: str | None, line: int) -> str:
    return f"{file} line {line}" if file is not None else f"line {line}"
