"""The whole-chunk fast path: a chunk of plain lines read with a few string operations over the whole chunk instead
of a loop over rows, giving the row loop's values (stream/parsing/rows.py), or None where it does not apply."""

from __future__ import annotations

import re
from itertools import repeat

from stream.core.batch import Batch
from stream.core.exact import MAX_INT_DIGITS, MAX_SCALE
from stream.parsing.framing import MAX_LINE_BYTES, unwrapped_chunk

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from stream.parsing.layout import Layout

# Digits of a close read inline, without parse_decimal's full check: within both of its digit limits however split.
FAST_DIGITS = min(MAX_SCALE, MAX_INT_DIGITS)

_SEPARATOR_OR_NEWLINE: dict[str, bytes] = {}


def chunk_rows(
    data: bytes, layout: Layout, decimal: str | None, keep_text: bool = False, text: str | None = None
) -> Batch | None:
    """The rows of ``data``, complete lines of a file whose ``layout`` is known (none of them a header), read as a
    whole when they are plain, or plain once each line's wrapping quotes are gone; None otherwise, and for a chunk
    over ``MAX_LINE_BYTES`` (one of its lines might be over-long). ``decimal`` is the file's decimal mark (None: not
    known yet), ``text`` the chunk decoded when the caller has it."""
    if len(data) > MAX_LINE_BYTES:
        return None
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    n = text.count("\n")
    body = unwrapped_chunk(data, text, n) if '"' in text else text[:-1]
    return None if body is None else plain_rows(body, n, layout, decimal, keep_text)


def plain_rows(body: str, n: int, layout: Layout, decimal: str | None, keep_text: bool) -> Batch | None:
    """The rows of ``n`` plain lines (``body``, without its final newline), read with a few whole-chunk string
    operations instead of a loop over rows; the caller has made sure that no line is over-long.

    It applies when no line has a quote, a stray carriage return or a NUL, every line has exactly the header's
    field count, and every close is unsigned digits with at most one dot (``42005.96``, ``45219.5``): what nearly
    every chunk of a real export is. Then the csv module would split each line at its delimiters, so splitting the
    joined chunk at its delimiters gives the same fields, and the closes convert in one pass, at the chunk's largest
    scale (the same values; the engine works at the largest scale it has seen anyway). Anything else returns None,
    and the row loop reads the chunk (with line numbers for its bad rows, which a plain chunk has none of).
    """
    m = len(layout.columns) - 1  # delimiters per line
    if not n or not m:
        return None
    if "\x00" in body or ("\r" in body and body.count("\r") != body.count("\r\n") + body.endswith("\r")):
        return None
    d = layout.delimiter
    # Every line holds exactly m delimiters when the chunk's delimiters and newlines, in order, are m delimiters and
    # a newline, n times over (no other UTF-8 byte is an ASCII delimiter's or a newline's).
    sep = d.encode()
    if body.encode().translate(None, _others(d)) != (sep * m + b"\n") * (n - 1) + sep * m:
        return None
    fields = body.split(d)
    closes = _column(fields, layout.close_index, m)
    joined = "\n".join(closes)
    if decimal != "." and "." in joined:  # a dot that is a thousands separator, or may be one
        return None
    found = one_scale(joined)
    if found is None:
        return None
    digits, scale = found
    batch = Batch()
    batch.units.extend(map(int, digits.split("\n")))
    batch.scales.extend(repeat(scale, n))
    if keep_text:
        batch.closes.extend(closes)
        ti = layout.timestamp_index
        if ti is not None:
            batch.stamps.extend([s.strip() for s in _column(fields, ti, m)])
    return batch


def _others(delimiter: str) -> bytes:
    """Every byte but the delimiter's and the newline, for bytes.translate (made once per delimiter)."""
    table = _SEPARATOR_OR_NEWLINE.get(delimiter)
    if table is None:
        keep = delimiter.encode() + b"\n"
        table = _SEPARATOR_OR_NEWLINE[delimiter] = bytes(b for b in range(256) if b not in keep)
    return table


def _column(fields: list[str], c: int, m: int) -> list[str]:
    """Column ``c`` of a plain chunk of lines of ``m`` delimiters each, split at its delimiters (see plain_rows)."""
    if 0 < c < m:
        return fields[c::m]
    ends = fields[m : len(fields) - 1 : m]  # each the last field of one line, a newline, and the first of the next
    if c == 0:
        return [fields[0], *[f.partition("\n")[2] for f in ends]]
    return [*[f.partition("\n")[0].rstrip("\r") for f in ends], fields[-1].rstrip("\r")]


def _closes(scale: int, exact: bool) -> str:
    """A regular expression for closes, one per line: unsigned ASCII digits within the inline fast path's digit
    limit, with exactly ``scale`` decimals, or (not exact) at most that many, the dot optional."""
    one = f"[0-9]{{1,{FAST_DIGITS - scale}}}"
    if not exact:
        one += rf"(?:\.[0-9]{{0,{scale}}})?"
    elif scale:
        one += rf"\.[0-9]{{{scale}}}"
    return f"{one}(?:\n{one})*"


def one_scale(joined: str) -> tuple[str, int] | None:
    """The closes of a plain chunk (``joined``, one per line) as digits at one scale, and that scale: the most
    decimals any of them has, the others padded with zeros (``45219.5`` is 4521950 at scale 2, as exports that drop
    trailing zeros write it). None unless every close is unsigned ASCII digits with at most one dot, within the
    digit limit. The regular expressions are compiled once per run (re caches them)."""
    first = joined.partition("\n")[0]
    dot = first.find(".")
    scale = 0 if dot < 0 else len(first) - dot - 1
    if scale >= FAST_DIGITS:
        return None
    if re.fullmatch(_closes(scale, exact=True), joined):  # the usual chunk: every close has the same decimals
        return joined.replace(".", ""), scale
    while scale < FAST_DIGITS - 1 and re.search(rf"\.[0-9]{{{scale + 1}}}", joined):
        scale += 1
    if not re.fullmatch(_closes(scale, exact=False), joined):
        return None
    if joined.count(".") < joined.count("\n") + 1:  # closes without a dot: whole numbers
        joined = re.sub(r"^([0-9]+)$", rf"\g<1>{'0' * scale}", joined, flags=re.M)
    for d in range(scale):  # closes with d decimals
        joined = re.sub(rf"\.([0-9]{{{d}}})$", rf"\g<1>{'0' * (scale - d)}", joined, flags=re.M)
    return joined.replace(".", ""), scale
