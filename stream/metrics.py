"""The metrics sink: the success and error documents, written atomically and echoed to stdout."""

from __future__ import annotations

import math
from typing import Any

from stream.atomic import write_atomic
from stream.shown import line
from stream.tally import Tally

METRIC = "signal_rate"


def success(
    version: str,
    seed: int,
    tally: Tally,
    latency_ms: int,
    skip_policy: bool,
    by_key: dict[str, Tally] | None = None,
) -> dict[str, Any]:
    """The document of a finished run; ``by_key`` (keyed runs) adds each key's rows and rate, in first-seen order."""
    doc: dict[str, Any] = {
        "version": version,
        "rows_processed": tally.rows,
        "metric": METRIC,
        "value": tally.rate(),
        "latency_ms": latency_ms,
        "seed": seed,
        "status": "success",
    }
    if skip_policy:
        doc["rows_skipped"] = tally.skipped
    if by_key is not None:
        doc["by_key"] = {k: {"rows_processed": t.rows, "value": t.rate()} for k, t in by_key.items()}
    return doc


def running(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The progress document a live run rewrites while it follows its input (the arguments of ``success``)."""
    doc = success(*args, **kwargs)
    doc["status"] = "running"
    return doc


def failure(version: str | None, message: str) -> dict[str, Any]:
    """The document of a failed run; the message is cut to a few KB, whatever it quotes."""
    return {"version": version, "status": "error", "error_message": line(message)}


def encode(doc: dict[str, Any]) -> bytes:
    """The document as UTF-8 JSON with an indent of 2 and a final newline: what ``json.dumps(doc, indent=2,
    ensure_ascii=False)`` writes, without the ~1.5 ms of importing json (a test holds the two to the same bytes).

    A text that UTF-8 cannot hold (a file name of undecodable bytes arrives from argv as lone surrogates) is
    written with backslash escapes, as the log and stderr show it, instead of failing the whole document.
    """
    return (_value(doc, "") + "\n").encode()


# JSON's escapes for the characters a string may not hold as they are; everything else is written as is.
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)} | {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\b"): "\\b",
    ord("\f"): "\\f",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def _value(value: Any, indent: str) -> str:
    if isinstance(value, str):
        if not value.isascii():
            value = value.encode("utf-8", "backslashreplace").decode()
        return '"' + value.translate(_ESCAPES) + '"'
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a metric is not a finite number: {value!r}")
        return float.__repr__(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        items = [f"{inner}{_value(str(k), inner)}: {_value(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    raise TypeError(f"a metrics document holds no {type(value).__name__}")


def write(path: str, doc: dict[str, Any]) -> None:
    write_atomic(path, encode(doc))
