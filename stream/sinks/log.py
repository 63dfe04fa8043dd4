"""The log sink: every step with an ISO-8601 UTC timestamp to the log file; warnings and errors to stderr too."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from stream.text import line

if TYPE_CHECKING:
    from stream.core.batch import BadRow

SHOW_BAD_ROWS = 20

# The job's log: the package's logger, held by modules from import time; setup() (re)configures its handlers.
log = logging.getLogger("stream")
log.propagate = False  # the job's records are its own: never also printed by a handler an embedding app set up
Log = logging.Logger  # the type of ``log``, for annotations


def _text(record: logging.LogRecord) -> str:
    """``msg % args`` as one bounded line (control characters escaped); a log call that does not match its format
    keeps what it was given instead of failing."""
    try:
        return line(record.getMessage())
    except (TypeError, ValueError, KeyError) as exc:
        return line(f"{record.msg} {record.args!r} (unformattable: {exc})")


class FileFormat(logging.Formatter):
    """``2026-01-31T12:00:00.123Z INFO message``, and the traceback below the record when it carries one."""

    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info is not None and record.exc_info[0] is None:
            record.exc_info = None  # exc_info=True outside an exception: nothing to add
        record.msg, record.args = _text(record), None
        return super().format(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        # Each traceback line bounded too: a frame can quote a huge value from the input.
        return "\n".join(line(part) for part in super().formatException(ei).splitlines())


class FileSink(logging.FileHandler):
    """The log file, appended to; a record is flushed as it is written, so `tail -f` sees it at once and a forked
    worker inherits no buffered lines to write a second time."""

    def __init__(self, path: str) -> None:
        # backslashreplace: a file name that is not UTF-8 (a surrogate escape from argv) must not cost the record.
        super().__init__(path, mode="a", encoding="utf-8", errors="backslashreplace")
        self.setFormatter(FileFormat())

    def handleError(self, record: logging.LogRecord) -> None:
        # A log file that stops accepting lines (disk full, ...) is said once, not with a traceback a line.
        exc = sys.exc_info()[1]
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "write failed"
        log.removeHandler(self)
        try:
            self.close()
        except (OSError, ValueError):  # the unwritten lines are lost either way
            pass
        msg = "the log file %s cannot be written (%s); the rest of the log is lost"
        # Said even with --quiet: the user asked for that file.
        _stderr.handle(log.makeRecord(log.name, logging.WARNING, __file__, 0, msg, (self.baseFilename, reason), None))


PROCESS: Any = object()  # no stream of the run's own: sys.stderr as it is at each write


class StderrSink(logging.Handler):
    """``mlops-stream: warning: ...``, the shape argparse and most Unix tools use on stderr; no tracebacks.

    Written to the run's stderr (``setup``'s; None when it has none), else to sys.stderr as it is at each write. rich's
    live display puts a proxy of the terminal's stderr in sys.stderr while it runs: written through that proxy,
    warnings print above the display, not through it.
    """

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.stream: TextIO | None = PROCESS

    def emit(self, record: logging.LogRecord) -> None:
        err = sys.stderr
        if self.stream is not PROCESS and getattr(err, "rich_proxied_file", None) is not self.stream:
            err = self.stream
        if err is None:
            return
        try:
            err.write(f"mlops-stream: {record.levelname.lower()}: {_text(record)}\n")
            err.flush()
        except (OSError, ValueError):  # a closed or broken stderr: nowhere left to say it
            pass


_stderr = StderrSink(logging.WARNING)
log.addHandler(_stderr)
log.setLevel(logging.WARNING)  # before setup: warnings and errors reach stderr, nothing is formatted for a file


def setup(log_file: str | None, quiet: bool = False, stderr: TextIO | None = PROCESS) -> logging.Logger:
    """Log to ``log_file`` (appended to) and ``stderr`` (warnings and up; errors only when ``quiet``; None: nowhere,
    the run has none), and return the job's log. Raises OSError, leaving the log as it was, when the file cannot be
    opened."""
    new = FileSink(log_file) if log_file else None
    _stderr.stream = stderr
    for handler in [h for h in log.handlers if isinstance(h, FileSink)]:
        log.removeHandler(handler)
        handler.close()
    _stderr.setLevel(logging.ERROR if quiet else logging.WARNING)
    if new is not None:
        log.addHandler(new)
    # Records nobody reads are not even formatted: DEBUG only when there is a file to write them to.
    log.setLevel(logging.DEBUG if new is not None else _stderr.level)
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
