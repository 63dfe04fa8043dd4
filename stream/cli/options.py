"""The command's options: the argument table ``OPTIONS`` (every flag once, with its group and argparse settings) and
the argparse types that read and bound their values."""

from __future__ import annotations

import argparse
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any


def _whole(what: str, least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number (``what``, for the message) from ``least`` to ``most``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < least or (most is not None and value > most):
            bounds = f"from {least} to {most}" if most is not None else f"at least {least}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


_positive_int = _whole("a whole number", 1)
_port = _whole("a port number from 0 to 65535 (0: any free port)", 0, 65535)
_lines = _whole("a whole number of lines", 0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    try:
        value = int(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in bytes such as 4096, 512K or 32M, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text}")
    return value


def _delimiter(text: str) -> str:
    from stream.config import delimiter

    try:
        return delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    from stream.config import fraction

    try:
        return fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _column(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a column, or give its 1-based position")
    return text


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type for an option with ``choices``: the value, or an error that names the likeliest choice."""

    def parse(text: str) -> str:
        if text in choices:
            return text
        import difflib

        from stream.text import excerpt

        close = difflib.get_close_matches(text, choices, n=1, cutoff=0.5)
        meant = f"; did you mean {close[0]}?" if close else ""
        raise argparse.ArgumentTypeError(f"invalid choice: {excerpt(text)} (choose from {', '.join(choices)}){meant}")

    return parse


def _cluster(text: str) -> int | None:
    from stream.runs.plan.executors import parse_cluster

    try:
        return parse_cluster(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


LIVE = "live mode"
LAYOUT = "input layout (found from the file's first lines unless given)"
SCALE = "scale-out (batch runs over files or URLs; the output is the one-process output)"
ONE_OF = "one of"  # a mutually exclusive member of the scale-out group

# The one-letter spellings of the options used most, as csvkit, miller and most Unix tools offer them (-h, --help and
# -V, --version are the parser's own).
SHORT = {
    "--input": "-i", "--config": "-c", "--output": "-o", "--log-file": "-l", "--signals": "-s", "--window": "-w",
    "--key": "-k", "--follow": "-f", "--quiet": "-q", "--workers": "-j",
}  # fmt: skip

# Every option once: (group, flag, argparse settings); build_parser() makes the parser from it.
OPTIONS: list[tuple[str | None, str, dict[str, Any]]] = [
    (None, "--input", {
        "metavar": "PATH", "action": "append",
        "help": "CSV or JSON Lines input: a path, a glob or a URL (file://, s3://, gs://, ...); repeat it to read "
        "several inputs as one stream, in order; '-' or omitted (with a pipe on stdin) reads stdin",
    }),
    (None, "--config", {"metavar": "PATH", "help": "YAML config (default: ./config.yaml if present)"}),
    (None, "--output", {"metavar": "PATH", "help": "write the metrics JSON here (atomically)"}),
    (None, "--log-file", {"metavar": "PATH", "help": "write the timestamped log here"}),
    (None, "--signals", {"metavar": "PATH", "help": "write per-row signals here ('-' = stdout)"}),
    (None, "--signals-format", {"choices": ("csv", "jsonl"), "default": "csv", "help": "signals format"}),
    (None, "--window", {"type": _positive_int, "metavar": "N", "help": "rolling window (overrides the config)"}),
    (None, "--on-bad-row", {"choices": ("fail", "skip"), "help": "bad-row policy (overrides the config)"}),
    (None, "--key", {
        "metavar": "COLUMN",
        "help": "group rows by this column: each value (a symbol, say) has its own window (overrides the config)",
    }),
    (LAYOUT, "--column", {
        "type": _column, "metavar": "NAME|N",
        "help": "the close column: a header name, or its 1-based position (overrides the config's column)",
    }),
    (LAYOUT, "--format", {
        "choices": ("csv", "jsonl"),
        "help": "the input format (default: told by each input's first line, '{' for JSON Lines)",
    }),
    (LAYOUT, "--delimiter", {
        "type": _delimiter, "metavar": "CHAR", "help": "the field delimiter: , ; | or tab (default: sniffed)",
    }),
    (LAYOUT, "--no-header", {
        "action": "store_true", "help": "the input has no header row: name the close by position with --column N",
    }),
    (LAYOUT, "--skip-lines", {
        "type": _lines, "metavar": "N", "help": "skip N lines at the start of each input, before its header",
    }),
    (LAYOUT, "--decimal", {
        "choices": (".", ","), "metavar": ".|,", "help": "the decimal mark of the values (default: found out)",
    }),
    (LAYOUT, "--max-skipped", {
        "type": _fraction, "metavar": "FRACTION",
        "help": "fail when more than this share of the data rows is skipped: 0.05 or 5%% (default 0.5)",
    }),
    (LAYOUT, "--reverse", {
        "action": "store_true", "help": "read a newest-first file from its last row to its first (regular files)",
    }),
    (None, "--quiet", {"action": "store_true", "help": "print nothing but errors (and signals on stdout)"}),
    (LIVE, "--follow", {
        "action": "store_true", "help": "keep reading as the input grows, like tail -F; SIGINT/SIGTERM stops",
    }),
    (LIVE, "--idle-timeout", {
        "type": _seconds, "metavar": "SECONDS", "help": "with --follow: stop after this long without new data",
    }),
    (LIVE, "--checkpoint", {
        "metavar": "PATH", "help": "with --follow: keep state here; a restart continues exactly once",
    }),
    (LIVE, "--metrics-port", {
        "type": _port, "metavar": "PORT",
        "help": "serve Prometheus /metrics, /healthz and /readyz on this port while the run lasts (batch runs too); "
        "needs the serve extra",
    }),
    (LIVE, "--metrics-host", {
        "metavar": "HOST", "help": "the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    }),
    (ONE_OF, "--workers", {
        "type": _positive_int, "metavar": "N",
        "help": "worker processes on this machine (default: the available cores for files of 32 MiB or more, else 1)",
    }),
    (ONE_OF, "--cluster", {
        "type": _cluster, "metavar": "local[:N]", "default": False,
        "help": "run on an embedded Dask cluster of N worker processes on 127.0.0.1 (default N: the cores)",
    }),
    (ONE_OF, "--scheduler", {"metavar": "ADDRESS", "help": "run on an existing Dask cluster (tcp://host:8786)"}),
    (SCALE, "--block-size", {
        "type": _size, "metavar": "SIZE",
        "help": "bytes per block of the parallel plan, e.g. 512K (default: about four per worker, 128K to 32M)",
    }),
    (None, "--no-progress", {"action": "store_true", "help": "no live progress display on a terminal's stderr"}),
]  # fmt: skip
