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


class _LogFile(logging.FileHandler):
    """A log file that stops accepting lines (disk full, ...) says so once on stderr, not with a traceback a line."""

    def __init__(self, path: str) -> None:
        super().__init__(path, encoding="utf-8")
        self.path = path
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "write failed"
        sys.stderr.write(
            f"mlops-stream: warning: the log file {self.path} cannot be written ({reason}); "
            "the rest of the log is lost\n"
        )


class _StderrFormatter(logging.Formatter):
    """`mlops-stream: error: ...`, the shape argparse and most Unix tools use on stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return f"mlops-stream: {record.levelname.lower()}: {record.getMessage()}"


def setup(log_file: str | None, quiet: bool = False) -> logging.Logger:
    """Configure and return the job's logger. Raises OSError when the log file cannot be opened."""
    log = logging.getLogger(LOGGER)
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if log_file:
        fh = _LogFile(log_file)
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.ERROR if quiet else logging.WARNING)
    err.setFormatter(_StderrFormatter())
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
