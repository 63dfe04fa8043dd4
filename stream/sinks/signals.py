"""The signals sink: one line per processed row, as CSV or JSON Lines, flushed a batch at a time."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import BinaryIO

HEADER = ("row", "timestamp", "close", "rolling_mean", "signal")


def _csv_field(text: str) -> str:
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _need_quotes(texts: list[str]) -> bool:
    return any("," in t or '"' in t or "\r" in t for t in texts)


class SignalSink:
    """Writes signals to a binary stream, with a timestamp column when the input has one and, in keyed runs, the key
    column (named as in the input) after it.

    ``with_timestamp=None`` decides from the first batch: batches carry stamps only when the input has the column.
    """

    def __init__(
        self,
        out: BinaryIO,
        fmt: str = "csv",
        with_timestamp: bool | None = None,
        key: str | None = None,
        name: str | None = None,
        header_written: bool = False,
    ) -> None:
        """``header_written``: the output has its header already (a restart appends to it; a parallel block's rows
        go below the one header the parent writes)."""
        self.out = out
        self.name = name  # the file's name, for a write error (a full disk) to say which file failed
        self.fmt = fmt
        self.with_timestamp = with_timestamp
        self.key = key
        self.header_written = header_written

    def fix_timestamp(self, with_timestamp: bool) -> None:
        """Decide the timestamp column before the first batch (the parallel plan writes the header itself)."""
        self.with_timestamp = with_timestamp

    def columns(self) -> list[str]:
        cols = ["row", "timestamp"] if self.with_timestamp else ["row"]
        if self.key is not None:
            cols.append(self.key)
        return [*cols, "close", "rolling_mean", "signal"]

    def header(self) -> None:
        if self.fmt == "csv" and not self.header_written:
            self._put((",".join(_csv_field(c) for c in self.columns()) + "\n").encode())
        self.header_written = True

    def write(
        self,
        first_row: int,
        stamps: list[str],
        closes: list[str],
        means: list[float | None],
        signals: list[int],
        keys: list[str] | None = None,
    ) -> None:
        """Write one batch: rows numbered from ``first_row``; ``keys`` in keyed runs."""
        if self.with_timestamp is None:
            self.with_timestamp = bool(stamps)
        if not self.header_written:
            self.header()
        rows = range(first_row, first_row + len(signals))
        keyed = self.key is not None
        if keyed and (keys is None or len(keys) != len(signals)):
            raise ValueError("a keyed signals sink needs the key of every row")
        if self.fmt == "jsonl":
            import orjson

            nl = orjson.OPT_APPEND_NEWLINE
            dumps = orjson.dumps
            if keyed:
                names = self.columns()
                before = (rows, stamps, keys) if self.with_timestamp else (rows, keys)
                parts = [dumps(dict(zip(names, values)), option=nl) for values in zip(*before, closes, means, signals)]
            elif self.with_timestamp:
                parts = [
                    dumps({"row": r, "timestamp": t, "close": c, "rolling_mean": m, "signal": s}, option=nl)
                    for r, t, c, m, s in zip(rows, stamps, closes, means, signals)
                ]
            else:
                parts = [
                    dumps({"row": r, "close": c, "rolling_mean": m, "signal": s}, option=nl)
                    for r, c, m, s in zip(rows, closes, means, signals)
                ]
            self._put(b"".join(parts))
            return
        mean_text = ["" if m is None else repr(m) for m in means]
        if "," in "".join(closes):  # the reader hands closes on with a dot mark and no separators; kept CSV-safe anyway
            closes = [_csv_field(c) for c in closes]
        if self.with_timestamp and _need_quotes(stamps):
            stamps = [_csv_field(t) for t in stamps]
        if keyed:
            assert keys is not None
            if _need_quotes(keys):
                keys = [_csv_field(k) for k in keys]
            # The timestamp (if any) and the key go between the row number and the close.
            middle = [f"{t},{k}" for t, k in zip(stamps, keys)] if self.with_timestamp else keys
            lines = [f"{r},{p},{c},{m},{s}\n" for r, p, c, m, s in zip(rows, middle, closes, mean_text, signals)]
        elif self.with_timestamp:
            lines = [f"{r},{t},{c},{m},{s}\n" for r, t, c, m, s in zip(rows, stamps, closes, mean_text, signals)]
        else:
            lines = [f"{r},{c},{m},{s}\n" for r, c, m, s in zip(rows, closes, mean_text, signals)]
        self._put("".join(lines).encode())

    def _put(self, data: bytes) -> None:
        self._io(self.out.write, data)

    def flush(self) -> None:
        self._io(self.out.flush)

    def close(self) -> None:
        """Close the output (its last buffered rows written), an error naming the file as a write's does."""
        self._io(self.out.close)

    def _io(self, call: Callable[..., object], *args: bytes) -> None:
        """``call(*args)`` on the output, an error naming the signals file (a full disk says which file was full)."""
        try:
            call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            if exc.filename is None and self.name is not None:
                exc.filename = self.name
            raise


def open_file(path: str, *, create: bool = True, nofollow: bool = False) -> BinaryIO:
    """Open the signals file ``path`` for writing, positioned at its start, nothing cut yet. A regular file is
    locked against a second run (``locks.LockedError``); a FIFO or character device is written as a stream; anything
    else is refused (OSError), and with ``nofollow`` a symbolic link too (ELOOP)."""
    flags = (
        os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0) | (os.O_NOFOLLOW if nofollow else 0)
    )
    fd = os.open(path, flags, 0o666)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            from stream.fs import locks

            locks.lock(fd, path, "signals file")
        elif not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise OSError(f"{path} is not a regular file, a FIFO or a character device")
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "wb")


def is_regular(fh: BinaryIO) -> bool:
    return stat.S_ISREG(os.fstat(fh.fileno()).st_mode)
