"""What the command hands a run: its options, typed and read once from the arguments (``Options``), and the standard
streams it was given (``Environment``)."""

from __future__ import annotations

import io
import sys

from stream.records import NamedTuple
from stream.text import redact

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import IO, Any, BinaryIO, TextIO


class Overrides(NamedTuple):
    """The config settings given as flags; None: not given, the config's value stands."""

    window: int | None = None
    on_bad_row: str | None = None
    key: str | None = None
    column: str | None = None
    delimiter: str | None = None
    header: bool | None = None  # False with --no-header
    skip_lines: int | None = None
    decimal: str | None = None
    max_skipped: float | None = None
    format: str | None = None  # csv or jsonl; None: told by each input's first line
    metrics_port: int | None = None
    metrics_host: str | None = None


class Options(NamedTuple):
    """One run's options, checked; runs read these, never argparse's namespace."""

    inputs: tuple[str, ...]  # the --input names as given, in order ('-': stdin)
    input: str | None  # the one input: for --follow the local path it names; None when a batch run reads several
    config: str | None  # --config as given (None: ./config.yaml if present)
    output: str | None  # the metrics file; None without --output, and with --output - (see metrics_to_stdout)
    metrics_to_stdout: bool  # --output -: the document is printed on stdout even with --quiet
    log_file: str | None
    signals: str | None  # '-': stdout
    signals_format: str
    quiet: bool
    no_progress: bool
    follow: bool
    idle_timeout: float | None
    checkpoint: str | None
    reverse: bool
    workers: int | None
    cluster: int | bool | None  # False: not asked; None or N: an embedded Dask cluster of N workers
    scheduler: str | None
    block_size: int | None
    overrides: Overrides


class Environment:
    """The standard streams of one run: an in-process caller's, or the process's where it gave none.

    Each is a text stream for messages and a binary one for data, however it was given (a text stream over a buffer,
    a plain ``io.StringIO`` or ``io.BytesIO``); one that is closed or missing (``2>&-``) is None, and what would go to
    it goes nowhere. ``*_fd`` is the descriptor behind a stream (None: none, as for a stream in memory).
    """

    # A plain class: the dataclasses module would cost every batch run its import.
    __slots__ = (
        "stderr", "stderr_isatty", "stdin", "stdin_buffer", "stdin_fd", "stdin_isatty", "stdout", "stdout_buffer",
        "stdout_fd", "stdout_isatty",
    )  # fmt: skip

    def __init__(self, stdin: IO[Any] | None = None, stdout: IO[Any] | None = None, stderr: IO[Any] | None = None):
        self.stdin, self.stdout, self.stderr = (
            _text(s) if s is not None else None
            for s in (_usable(stdin, sys.stdin), _usable(stdout, sys.stdout), _usable(stderr, sys.stderr))
        )
        self.stdin_buffer = _binary(self.stdin)
        self.stdout_buffer = _binary(self.stdout)
        self.stdin_fd, self.stdout_fd = _fd(self.stdin), _fd(self.stdout)
        self.stdin_isatty, self.stdout_isatty, self.stderr_isatty = (
            _isatty(s) for s in (self.stdin, self.stdout, self.stderr)
        )

    def say(self, text: str, stdout: bool = False) -> None:
        """Write ``text`` to stderr (or stdout), credentials in URLs hidden; nothing when it is closed or broken, as
        there is nowhere left."""
        out = self.stdout if stdout else self.stderr
        if out is None:
            return
        try:
            out.write(redact(text))
            out.flush()
        except (OSError, ValueError):
            pass


def _usable(given: IO[Any] | None, process: IO[Any] | None) -> IO[Any] | None:
    """The stream ``given`` (else the ``process``'s), or None when there is none or it is closed."""
    stream = given if given is not None else process
    return None if stream is None or getattr(stream, "closed", False) else stream


def _text(stream: IO[Any]) -> TextIO:
    """A text view of ``stream``: itself when it is text, else UTF-8 over it (an ``io.BytesIO``, a binary pipe)."""
    return _TextOver(stream) if isinstance(stream, (io.RawIOBase, io.BufferedIOBase)) else stream  # type: ignore[return-value]


def _binary(stream: TextIO | None) -> BinaryIO | None:
    """The bytes under a text stream: its buffer, the binary stream a ``_TextOver`` wraps, or UTF-8 through it."""
    if stream is None:
        return None
    if isinstance(stream, _TextOver):
        return stream.raw
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else _BytesThrough(stream)  # type: ignore[return-value]


def _fd(stream: TextIO | None) -> int | None:
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


class _TextOver(io.TextIOBase):
    """Text written as UTF-8 to a binary stream an in-process caller gave; never closes it (io.TextIOWrapper would
    close the caller's stream once collected)."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def read(self, size: int | None = -1) -> str:
        return self.raw.read(size).decode("utf-8", "replace")

    def readable(self) -> bool:
        return bool(self.raw.readable())

    def writable(self) -> bool:
        return bool(self.raw.writable())

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return int(self.raw.fileno())

    def isatty(self) -> bool:
        return bool(self.raw.isatty())

    def close(self) -> None:  # the caller's stream stays open
        pass


class _BytesThrough(io.RawIOBase):
    """Bytes through a text stream without a buffer (an ``io.StringIO``), as UTF-8: read from it, or written to it;
    a character cut between two writes is decoded when its last byte comes."""

    def __init__(self, text: TextIO) -> None:
        super().__init__()
        import codecs

        self.text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            text = self.text.read(1 << 16)
            if not text:
                return 0
            self._pending = text.encode("utf-8", "surrogateescape")
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def write(self, b: Any) -> int:
        self.text.write(self._decoder.decode(bytes(b)))
        return len(b)

    def flush(self) -> None:
        self.text.flush()

    def close(self) -> None:  # the caller's stream stays open
        pass
