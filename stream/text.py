"""Text from users' files and arguments as messages show it: cut to a short excerpt, control characters escaped,
credentials in URLs hidden."""

from __future__ import annotations

import re

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


# Query parameters that carry a credential in signed or keyed URLs (S3 and GCS pre-signed, Azure SAS, API keys).
SECRET_KEYS = frozenset(
    k.lower()
    for k in (
        "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "X-Goog-Signature", "X-Goog-Credential",
        "AWSAccessKeyId", "Signature", "sig", "token", "access_token", "api_key", "apikey", "key", "password",
        "secret", "client_secret",
    )
)  # fmt: skip
HIDDEN = "***"
# A URL up to whitespace or a quote: its scheme, its userinfo (up to the last @ before the path), and the rest.
# Compiled by re on first use: most messages hold no URL.
_URL = r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s'\"]*@)?([^\s'\"]*)"
_QUERY_PAIR = r"([?&;])([^=&;#]*)=([^&;#]*)"


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it hidden: userinfo becomes ``***@``, and the values of query
    parameters that carry one (``X-Amz-Signature``, ``token``, ``key``, ...) become ``***``. Every message, log line,
    document and display shows text through this (``line`` calls it).

    >>> redact("cannot open http://alice:S3cr3t@host/x.csv: refused")
    'cannot open http://***@host/x.csv: refused'
    >>> redact("'https://b.s3.amazonaws.com/x.csv?X-Amz-Credential=AK%2F1&X-Amz-Expires=60&X-Amz-Signature=ab12'")
    "'https://b.s3.amazonaws.com/x.csv?X-Amz-Credential=***&X-Amz-Expires=60&X-Amz-Signature=***'"
    >>> redact("s3://bucket/2024-*.csv")
    's3://bucket/2024-*.csv'
    """
    if "://" not in text:
        return text
    return re.sub(_URL, _hide, text)


def _hide(m: re.Match[str]) -> str:
    scheme, userinfo, rest = m.group(1), m.group(2), m.group(3)
    if "=" in rest:
        rest = re.sub(_QUERY_PAIR, _hide_value, rest)
    return scheme + (HIDDEN + "@" if userinfo else "") + rest


def _hide_value(m: re.Match[str]) -> str:
    sep, key, value = m.group(1), m.group(2), m.group(3)
    return f"{sep}{key}={HIDDEN}" if key.lower() in SECRET_KEYS and value else m.group(0)


def line(text: str, limit: int = LINE) -> str:
    """One line of a message: credentials in URLs hidden, control characters escaped, cut to ``limit`` characters
    with the full size given."""
    text = escaped(redact(text))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut: {len(text):,} characters in all)"
