"""The signals sink: one line per processed row, as CSV or JSON Lines, flushed a batch at a time."""

from __future__ import annotations

from typing import BinaryIO

HEADER = ("row", "timestamp", "close", "rolling_mean", "signal")


def _csv_field(text: str) -> str:
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


class SignalSink:
    """Writes signals to a binary stream, with a timestamp column when the input has one.

    ``with_timestamp=None`` decides from the first batch: batches carry stamps only when the input has the column.
    """

    def __init__(self, out: BinaryIO, fmt: str = "csv", with_timestamp: bool | None = None) -> None:
        self.out = out
        self.fmt = fmt
        self.with_timestamp = with_timestamp
        self.header_written = False

    def header(self) -> None:
        if self.fmt == "csv" and not self.header_written:
            cols = HEADER if self.with_timestamp else tuple(c for c in HEADER if c != "timestamp")
            self.out.write((",".join(cols) + "\n").encode())
        self.header_written = True

    def write(
        self,
        first_row: int,
        stamps: list[str],
        closes: list[str],
        means: list[float | None],
        signals: list[int],
    ) -> None:
        """Write one batch: rows numbered from ``first_row``."""
        if self.with_timestamp is None:
            self.with_timestamp = bool(stamps)
        if not self.header_written:
            self.header()
        rows = range(first_row, first_row + len(signals))
        if self.fmt == "jsonl":
            import orjson

            dumps = orjson.dumps
            if self.with_timestamp:
                parts = [
                    dumps({"row": r, "timestamp": t, "close": c, "rolling_mean": m, "signal": s})
                    for r, t, c, m, s in zip(rows, stamps, closes, means, signals)
                ]
            else:
                parts = [
                    dumps({"row": r, "close": c, "rolling_mean": m, "signal": s})
                    for r, c, m, s in zip(rows, closes, means, signals)
                ]
            self.out.write(b"\n".join(parts) + b"\n")
            return
        mean_text = ["" if m is None else repr(m) for m in means]
        if self.with_timestamp:
            if any("," in t or '"' in t for t in stamps):
                stamps = [_csv_field(t) for t in stamps]
            lines = [f"{r},{t},{c},{m},{s}\n" for r, t, c, m, s in zip(rows, stamps, closes, mean_text, signals)]
        else:
            lines = [f"{r},{c},{m},{s}\n" for r, c, m, s in zip(rows, closes, mean_text, signals)]
        self.out.write("".join(lines).encode())

    def flush(self) -> None:
        self.out.flush()
