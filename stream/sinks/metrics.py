"""The metrics sink: the success and error documents, written atomically and echoed to stdout."""

from __future__ import annotations

import json
from functools import partial

from stream.core.tally import Tally
from stream.fs.atomic import write_atomic
from stream.text import line

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any

METRIC = "signal_rate"


def success(
    version: str,
    seed: int,
    tally: Tally,
    latency_ms: int,
    skip_policy: bool,
    by_key: dict[str, Tally] | None = None,
    status: str = "success",
) -> dict[str, Any]:
    """The document of a finished run; ``by_key`` (keyed runs) adds each key's rows and rate, in first-seen order."""
    doc: dict[str, Any] = {
        "version": version,
        "rows_processed": tally.rows,
        "metric": METRIC,
        "value": tally.rate(),
        "latency_ms": latency_ms,
        "seed": seed,
        "status": status,
    }
    if skip_policy:
        doc["rows_skipped"] = tally.skipped
    if by_key is not None:
        doc["by_key"] = {k: {"rows_processed": t.rows, "value": t.rate()} for k, t in by_key.items()}
    return doc


# The progress document a live run rewrites while it follows its input: the success document's fields, "running".
running = partial(success, status="running")


def failure(version: str | None, message: str) -> dict[str, Any]:
    """The document of a failed run; the message is cut to a few KB, whatever it quotes."""
    return {"version": version, "status": "error", "error_message": line(message)}


def encode(doc: dict[str, Any]) -> bytes:
    """The document as UTF-8 JSON with an indent of 2 and a final newline.

    A text that UTF-8 cannot hold (a file name of undecodable bytes arrives from argv as lone surrogates) is
    written with backslash escapes, as the log and stderr show it, instead of failing the whole document.
    """
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        return text.encode()
    except UnicodeEncodeError:  # JSON's own escape for the backslash, so the text reads back as the log shows it
        return "".join(f"\\\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text).encode()


def write(path: str, doc: dict[str, Any]) -> None:
    write_atomic(path, encode(doc))
