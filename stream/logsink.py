"""The log sink: every step with an ISO-8601 UTC timestamp to the log file; warnings and errors to stderr too."""

# Not the logging package: importing it (traceback, tokenize, string, ...) costs ~5 ms of a ~55 ms run.
from __future__ import annotations

import atexit
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from stream.shown import line

if TYPE_CHECKING:
    from stream.reader import BadRow

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
SHOW_BAD_ROWS = 20


class Log:
    """The job's log: every record to the log file (if any); warnings and up (errors only, when quiet) to stderr.

    One per process, ``log`` below: ``setup`` reconfigures it in place, so modules can hold it from import time.
    """

    def __init__(self) -> None:
        self.path: str | None = None
        self._file: IO[bytes] | None = None
        self._stderr_level = WARNING

    def configure(self, log_file: str | None, quiet: bool = False) -> Log:
        """Log to ``log_file`` (appended to) and stderr; raises OSError, leaving the log as it was, when the file
        cannot be opened."""
        # Unbuffered: each record is one write(), so `tail -f` sees it at once, and a forked worker inherits no
        # buffered lines to write a second time.
        new = open(log_file, "ab", buffering=0) if log_file else None  # noqa: SIM115 - closed by close()
        self.close()
        self._file, self.path = new, log_file or None
        self._stderr_level = ERROR if quiet else WARNING
        return self

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:  # nothing is buffered: every record was written (or reported lost) already
                pass

    def debug(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        """``exc_info=True`` adds the current exception's traceback after the record, in the log file only."""
        self._emit(DEBUG, msg, args, exc_info)

    def info(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        self._emit(INFO, msg, args, exc_info)

    def warning(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        self._emit(WARNING, msg, args, exc_info)

    def error(self, msg: str, *args: Any, exc_info: bool = False) -> None:
        self._emit(ERROR, msg, args, exc_info)

    def _emit(self, level: int, msg: str, args: tuple[Any, ...], exc_info: bool) -> None:
        to_err = level >= self._stderr_level
        if self._file is None and not to_err:
            return  # nobody reads it: not even formatted
        text = line(_message(msg, args))
        if self._file is not None:
            self._to_file(self._file, level, text, exc_info)
        if to_err:
            _to_stderr(level, text)

    def _to_file(self, file: IO[bytes], level: int, text: str, exc_info: bool) -> None:
        secs, ns = divmod(time.time_ns(), 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        record = f"{stamp}.{ns // 1_000_000:03d}Z {NAMES[level]} {text}\n"
        if exc_info:
            record += _details()
        # backslashreplace: a file name that is not UTF-8 (a surrogate escape from argv) must not cost the record.
        data = memoryview(record.encode("utf-8", "backslashreplace"))
        try:
            while data:
                n = file.write(data)
                if not n:
                    raise OSError("the log file accepted no bytes")
                data = data[n:]
        except (OSError, ValueError) as exc:
            self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        # A log file that stops accepting lines (disk full, ...) is said once, not with a traceback a line.
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "write failed"
        self.close()
        _to_stderr(WARNING, f"the log file {self.path} cannot be written ({reason}); the rest of the log is lost")


def _message(msg: str, args: tuple[Any, ...]) -> str:
    """``msg % args``, as logging formats it (one non-empty dict argument is the mapping for ``%(name)s``)."""
    if not args:
        return str(msg)
    values: Any = args[0] if len(args) == 1 and isinstance(args[0], dict) and args[0] else args
    try:
        return str(msg) % values
    except (TypeError, ValueError, KeyError) as exc:
        # A log call that does not match its format must not stop the run; the record keeps what it was given.
        return f"{msg} {args!r} (unformattable: {exc})"


def _details() -> str:
    """The current exception's traceback, as logging writes it below the record; empty outside an exception."""
    kind, exc, tb = sys.exc_info()
    if exc is None:
        return ""
    import traceback  # ~3 ms: only a failure pays for it

    text = "".join(traceback.format_exception(kind, exc, tb))
    return "".join(line(part) + "\n" for part in text.splitlines())


def _to_stderr(level: int, text: str) -> None:
    # `mlops-stream: error: ...`, the shape argparse and most Unix tools use on stderr. sys.stderr is looked up at
    # each write, not kept: rich's live display puts its own in sys.stderr while it runs (warnings then print above
    # the display, not through it), and the terminal's is back once the display stops.
    err = sys.stderr
    if err is None:
        return
    try:
        err.write(f"mlops-stream: {NAMES[level].lower()}: {text}\n")
        err.flush()
    except (OSError, ValueError):  # a closed or broken stderr: nowhere left to say it
        pass


log = Log()
atexit.register(log.close)


def setup(log_file: str | None, quiet: bool = False) -> Log:
    """Configure and return the job's log. Raises OSError when the log file cannot be opened."""
    return log.configure(log_file, quiet)


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
