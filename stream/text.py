"""Text from users' files and arguments as messages show it: cut to a short excerpt, control characters escaped."""

from __future__ import annotations

EXCERPT = 80  # characters of a quoted value
LINE = 4096  # characters of one message, log record or error document's message
# C0 and C1 control characters (a terminal's escape sequences start with one), written as Python escapes.
_CONTROLS = {i: f"\\x{i:02x}" for i in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
}


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters with the full size given.

    >>> excerpt("n/a")
    "'n/a'"
    >>> excerpt("x" * 1000, 10)
    "'xxxxxxxxx... (1,000 characters)"
    """
    text = value if isinstance(value, str) else None
    if text is not None and len(text) > limit:
        return f"{text[: limit - 1]!r}"[:-1] + f"... ({len(text):,} characters)"
    shown = repr(value) if text is not None else _bounded_repr(value, limit)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown):,} characters)"


def _bounded_repr(value: object, limit: int) -> str:
    # A deeply nested or huge container's repr could itself run out of stack or memory: describe those by size.
    if isinstance(value, (list, tuple, dict, set)):
        try:
            text = repr(value)
        except RecursionError:
            return f"a {type(value).__name__} nested too deeply to show"
        return text
    return repr(value)


def escaped(text: str) -> str:
    r"""``text`` with control characters written as escapes, so a name cannot move a terminal's cursor or colour it.

    >>> escaped("a\x1b[31mb\n")
    'a\\x1b[31mb\\n'
    """
    return text.translate(_CONTROLS) if not text.isprintable() else text


def line(text: str, limit: int = LINE) -> str:
    """One line of a message: control characters escaped, cut to ``limit`` characters with the full size given."""
    text = escaped(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut: {len(text):,} characters in all)"
