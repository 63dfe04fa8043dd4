"""The log sink: every step with an ISO-8601 UTC timestamp to the log file; warnings and errors to stderr too."""

from __future__ import annotations

import logging
import sys
import time

from stream.reader import BadRow

LOGGER = "mlops_stream"
SHOW_BAD_ROWS = 20


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def setup(log_file: str | None, quiet: bool = False) -> logging.Logger:
    """Configure and return the job's logger. Raises OSError when the log file cannot be opened."""
    log = logging.getLogger(LOGGER)
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if log_file:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.ERROR if quiet else logging.WARNING)
    err.setFormatter(logging.Formatter("mlops-stream: %(levelname)s: %(message)s"))
    log.addHandler(err)
    return log


class BadRowLog:
    """Logs skipped rows with their line numbers: the first few in full, then a count."""

    def __init__(self, log: logging.Logger, show: int = SHOW_BAD_ROWS) -> None:
        self.log = log
        self.show = show
        self.count = 0

    def __call__(self, bad: BadRow) -> None:
        self.count += 1
        if self.count <= self.show:
            self.log.warning("skipped bad row at %s", bad.describe())
        elif self.count == self.show + 1:
            self.log.warning("more bad rows are being skipped; only their count is logged from here on")

    def add_unshown(self, n: int) -> None:
        """Count ``n`` more skipped rows that are past the ones shown (workers send only their first few)."""
        self.count += n

    def summary(self) -> None:
        if self.count > self.show:
            self.log.warning("skipped %d bad rows in all (%d shown above)", self.count, self.show)
        elif self.count:
            self.log.info("skipped %d bad rows in all", self.count)
