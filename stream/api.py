"""The processor called from Python: ``process(source, ...)`` runs the command's batch run on a path, a stream or rows
in memory, and returns its metrics document and, when asked, its signals."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from stream.records import NamedTuple

CHUNK = 1 << 16  # bytes handed to the reader at a time from a stream or from rows


class Result(NamedTuple):
    """What ``process`` returns: the metrics document (the dict ``--output`` writes), the signals (one dict a row, as
    ``--signals-format jsonl`` writes them: ``row``, ``timestamp`` when the input has one, the key column in keyed
    runs, ``close`` as a str, ``rolling_mean`` as a float or None, ``signal``; None unless asked for) and the
    warnings the command would print on stderr."""

    metrics: dict[str, Any]
    signals: list[dict[str, Any]] | None
    warnings: list[str]


def process(
    source: str | os.PathLike[str] | Any,
    *,
    window: int | None = None,
    column: str | int | None = None,
    key: str | None = None,
    signals: bool = False,
    on_bad_row: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    skip_lines: int | None = None,
    decimal: str | None = None,
    max_skipped: float | None = None,
    format: str | None = None,
    reverse: bool = False,
    config: str | os.PathLike[str] | None = None,
    workers: int = 1,
) -> Result:
    """Process ``source`` as the command does and return its Result, with the same answers.

    ``source``: a path, glob or URL, as ``--input`` takes it; a binary or text stream (``io.BytesIO``,
    ``io.StringIO``, an open file, ``sys.stdin``), read from where it stands to its end and left open; or an
    iterable of rows (str or bytes lines, each with its newline or without). The settings are the command's flags
    (``header=False`` is ``--no-header``) over ``config``, a YAML config (None: the built-in defaults, seed 42,
    window 5, version v1; ./config.yaml is not looked for); a setting left None keeps the config's value.
    ``signals=True`` returns the signals. ``workers``: worker processes for a big file (default 1: this process
    only). Nothing is printed, and the process's random generators are not reseeded.

    Raises ``stream.errors.MlopsStreamError`` (a subclass of it) with the command's error message for any input or
    setting it refuses (messages name the command's flags: ``--window`` is ``window=`` here), and TypeError for a
    source of another kind.
    """
    from stream.config import Config, load, validate
    from stream.runs import batch
    from stream.runs.context import RunContext
    from stream.runs.options import Environment, Options, Overrides
    from stream.runs.stops import Signals

    started = time.perf_counter()
    given = {
        "window": window, "column": column, "key": key, "on_bad_row": on_bad_row, "delimiter": delimiter,
        "header": header, "skip_lines": skip_lines, "decimal": decimal, "max_skipped": max_skipped, "format": format,
    }  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    cfg = load(os.fspath(config)) if config is not None else Config()
    # The settings checked as a config's are, so a bad one is the same ConfigError with the same words.
    checked = validate({"seed": cfg.seed, "window": cfg.window, "version": cfg.version, **given}, "stream.process()")
    cfg = cfg.with_overrides(**{name: getattr(checked, name) for name in given})
    name, stdin = _source(source)
    if reverse and name == "-":
        from stream.errors import JobError

        raise JobError("reverse=True reads one regular file backwards from its end: pass its path as the source")
    out = io.BytesIO()
    env = Environment(stdin, out, io.StringIO())  # type: ignore[arg-type] # a binary stream is one of those it takes
    options = Options(
        inputs=(name,), input=name, config=None, output=None, metrics_to_stdout=False, log_file=None,
        signals="-" if signals else None, signals_format="jsonl", quiet=True, no_progress=True, follow=False,
        idle_timeout=None, checkpoint=None, reverse=reverse, workers=workers, cluster=False, scheduler=None,
        block_size=None, overrides=Overrides(),
    )  # fmt: skip
    log, said = _log()
    doc = batch.document(RunContext(options, cfg, log, env, Signals(), started))
    rows = None
    if signals:
        import orjson

        rows = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return Result(doc, rows, said)


def _source(source: Any) -> tuple[str, io.RawIOBase]:
    """The ``--input`` name for ``source`` and the stream that stands in for stdin (``-``): the source's bytes, or
    none for a path."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, str) and "\n" not in path:
            return path, _Chunks(iter(()))
        raise TypeError("a str source is a path: pass CSV text as io.StringIO(text), or its lines as a list")
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError("pass CSV bytes as io.BytesIO(data), or a path as a str")
    if callable(getattr(source, "read", None)):
        return "-", _Chunks(_read(source))
    if isinstance(source, Iterable):
        return "-", _Chunks(_lines(source))
    raise TypeError(f"source must be a path, a stream or an iterable of lines, not {type(source).__name__}")


def _read(stream: Any) -> Iterator[bytes]:
    """A stream's bytes from where it stands; a text stream's characters as UTF-8 (not the buffer under them, which
    may be read ahead)."""
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        yield chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else bytes(chunk)


def _lines(rows: Iterable[Any]) -> Iterator[bytes]:
    """Rows as lines of bytes, a newline added where one is missing, joined into chunks of about ``CHUNK`` bytes."""
    held: list[bytes] = []
    size = 0
    for row in rows:
        if isinstance(row, str):
            data = row.encode("utf-8", "surrogateescape")
        elif isinstance(row, (bytes, bytearray)):
            data = bytes(row)
        else:
            raise TypeError(f"rows must be str or bytes lines, found {type(row).__name__}")
        held.append(data if data.endswith(b"\n") else data + b"\n")
        size += len(data) + 1
        if size >= CHUNK:
            yield b"".join(held)
            held, size = [], 0
    if held:
        yield b"".join(held)


class _Chunks(io.RawIOBase):
    """A binary stream over chunks of bytes, for the run to read as its stdin; it has no descriptor, so the run
    reads it as a stream from this process."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _log() -> tuple[Any, list[str]]:
    """A log of the run's own, not the command's: its warnings are kept (the list), nothing is printed."""
    import logging

    from stream.text import line

    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(line(record.getMessage()))

    log = logging.Logger("stream.process", logging.WARNING)  # not the manager's: no handler of the caller's sees it
    log.addHandler(Keep(logging.WARNING))
    return log, said
