"""The log sink: every step with an ISO-8601 UTC timestamp to the log file; warnings and errors to stderr too."""

from __future__ import annotations

import os
import sys
import time
from _thread import RLock
from collections.abc import Mapping

from stream.text import line

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, TextIO

    from stream.core.batch import BadRow

SHOW_BAD_ROWS = 20
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40  # the logging module's numbers
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
_lock = RLock()  # one record at a time, whichever thread (the metrics server's too) writes it


def _renew_lock() -> None:
    global _lock
    _lock = RLock()  # a forked worker: a lock another thread held at the fork would never be let go there


os.register_at_fork(after_in_child=_renew_lock)


class Record:
    """One call to the log: its level, its ``msg % args`` and the exception it carries (logging's LogRecord)."""

    __slots__ = ("args", "created", "exc_info", "levelname", "levelno", "msg")

    def __init__(self, level: int, msg: object, args: Any, exc_info: Any = None) -> None:
        self.created = time.time()
        self.levelno, self.levelname = level, _NAMES[level]
        if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            args = args[0]  # a single mapping argument, as logging takes it: "%(rows)d rows"
        self.msg, self.args = msg, args
        if exc_info and not isinstance(exc_info, tuple):
            exc_info = (
                (type(exc_info), exc_info, exc_info.__traceback__)
                if isinstance(exc_info, BaseException)
                else sys.exc_info()
            )
        self.exc_info = exc_info if exc_info and exc_info[0] is not None else None  # outside an exception: nothing

    def text(self) -> str:
        """``msg % args`` as one bounded line (control characters escaped); a log call that does not match its format
        keeps what it was given instead of failing."""
        try:
            return line(str(self.msg) % self.args if self.args else str(self.msg))
        except (TypeError, ValueError, KeyError) as exc:
            return line(f"{self.msg} {self.args!r} (unformattable: {exc})")


class Log:
    """The job's log: as much of a ``logging.Logger`` as the job uses (``debug`` to ``error`` with ``%`` arguments and
    ``exc_info``, levels, handlers), written by hand: the logging module's import (traceback, tokenize, threading,
    string and their regular expressions) would add a quarter to a small run's CPU instructions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.level = WARNING
        self.handlers: list[FileSink | StderrSink] = []

    def setLevel(self, level: int) -> None:
        self.level = level

    def addHandler(self, handler: FileSink | StderrSink) -> None:
        if handler not in self.handlers:
            self.handlers.append(handler)

    def removeHandler(self, handler: FileSink | StderrSink) -> None:
        if handler in self.handlers:
            self.handlers.remove(handler)

    def log(self, level: int, msg: object, *args: object, exc_info: Any = None) -> None:
        if self.level <= level:
            self.handle(Record(level, msg, args, exc_info))

    def debug(self, msg: object, *args: object, exc_info: Any = None) -> None:
        self.log(DEBUG, msg, *args, exc_info=exc_info)

    def info(self, msg: object, *args: object, exc_info: Any = None) -> None:
        self.log(INFO, msg, *args, exc_info=exc_info)

    def warning(self, msg: object, *args: object, exc_info: Any = None) -> None:
        self.log(WARNING, msg, *args, exc_info=exc_info)

    def error(self, msg: object, *args: object, exc_info: Any = None) -> None:
        self.log(ERROR, msg, *args, exc_info=exc_info)

    def handle(self, record: Record) -> None:
        with _lock:
            for handler in list(self.handlers):
                if record.levelno >= handler.level:
                    handler.handle(record)


# The job's log, held by modules from import time; setup() (re)configures its handlers.
log = Log("stream")


def _file_line(record: Record) -> str:
    """``2026-01-31T12:00:00.123Z INFO message``, and the traceback below the record when it carries one."""
    created = record.created
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    text = f"{stamp}.{int((created - int(created)) * 1000):03d}Z {record.levelname} {record.text()}"
    if record.exc_info is not None:
        import traceback  # only a record with a traceback pays for the module

        shown = "".join(traceback.format_exception(*record.exc_info)).removesuffix("\n")
        # Each traceback line bounded too: a frame can quote a huge value from the input.
        text += "\n" + "\n".join(line(part) for part in shown.splitlines())
    return text


class FileSink:
    """The log file, appended to; a record is flushed as it is written, so `tail -f` sees it at once and a forked
    worker inherits no buffered lines to write a second time."""

    level = DEBUG

    def __init__(self, path: str) -> None:
        self.baseFilename = os.path.abspath(path)
        # backslashreplace: a file name that is not UTF-8 (a surrogate escape from argv) must not cost the record.
        self.stream: TextIO | None = open(self.baseFilename, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115

    def handle(self, record: Record) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(_file_line(record) + "\n")
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self._failed()

    def close(self) -> None:
        with _lock:
            stream, self.stream = self.stream, None
            if stream is not None:
                try:
                    stream.flush()
                finally:
                    stream.close()

    def _failed(self) -> None:
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
        _stderr.handle(Record(WARNING, msg, (self.baseFilename, reason)))


PROCESS: Any = object()  # no stream of the run's own: sys.stderr as it is at each write


class StderrSink:
    """``mlops-stream: warning: ...``, the shape argparse and most Unix tools use on stderr; no tracebacks.

    Written to the run's stderr (``setup``'s; None when it has none), else to sys.stderr as it is at each write. rich's
    live display puts a proxy of the terminal's stderr in sys.stderr while it runs: written through that proxy,
    warnings print above the display, not through it.
    """

    def __init__(self, level: int) -> None:
        self.level = level
        self.stream: TextIO | None = PROCESS

    def setLevel(self, level: int) -> None:
        self.level = level

    def handle(self, record: Record) -> None:
        err = sys.stderr
        if self.stream is not PROCESS and getattr(err, "rich_proxied_file", None) is not self.stream:
            err = self.stream
        if err is None:
            return
        try:
            err.write(f"mlops-stream: {record.levelname.lower()}: {record.text()}\n")
            err.flush()
        except (OSError, ValueError):  # a closed or broken stderr: nowhere left to say it
            pass


_stderr = StderrSink(WARNING)
log.addHandler(_stderr)  # before setup: warnings and errors reach stderr, nothing is formatted for a file


def setup(log_file: str | None, quiet: bool = False, stderr: TextIO | None = PROCESS) -> Log:
    """Log to ``log_file`` (appended to) and ``stderr`` (warnings and up; errors only when ``quiet``; None: nowhere,
    the run has none), and return the job's log. Raises OSError, leaving the log as it was, when the file cannot be
    opened."""
    new = FileSink(log_file) if log_file else None
    _stderr.stream = stderr
    for handler in [h for h in log.handlers if isinstance(h, FileSink)]:
        log.removeHandler(handler)
        handler.close()
    _stderr.setLevel(ERROR if quiet else WARNING)
    if new is not None:
        log.addHandler(new)
    # Records nobody reads are not even formatted: DEBUG only when there is a file to write them to.
    log.setLevel(DEBUG if new is not None else _stderr.level)
    return log


class BadRowLog:
    """Logs skipped rows with their line numbers: the first few in full, then a count."""

    def __init__(self, log: Log, show: int = SHOW_BAD_ROWS) -> None:
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
