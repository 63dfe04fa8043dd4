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
    if isinstance(value, str):
        # Credentials hidden before the cut, which could part a URL's user and password from the "@" marking them.
        text = redact(value)
        if len(text) > limit:
            return f"{text[: limit - 1]!r}"[:-1] + f"... ({len(value):,} characters)"
        shown = repr(text)
    else:
        shown = redact(_bounded_repr(value, limit))
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
# A URL up to whitespace or a quote: its scheme, its userinfo (up to the last @ before the path; a password may hold
# quotes), and the rest. Compiled by re on first use: most messages hold no URL.
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
_URL = rf"({_SCHEME})([^/?#\s]*@)?([^\s'\"]*)"
_QUERY_PAIR = r"([?&;])([^=&;#]*)=([^&;#]*)"
SHORTEST = 8  # characters of a query value hidden wherever it shows; shorter ones are hidden in their URLs only
# The credentials of the URLs this process was given, as (text, what shows instead), longest first: hidden wherever
# they show, however a library quotes them (a host with its user and password but no scheme, a decoded value).
_known: tuple[tuple[str, str], ...] = ()


def remember(arguments: list[str]) -> None:
    """Hide the credentials of every URL in ``arguments`` (each one whole: a password may hold a space) in all text
    ``redact`` shows from now on, also where a library quotes them without their URL.

    >>> remember(["--scheduler", "tcp://alice:pw 1@10.0.0.1:8786", "--input", "https://h?sig=Zq0Zq0Zq0Zq0"])
    >>> redact("invalid address 'alice:pw 1@10.0.0.1:8786'; signature Zq0Zq0Zq0Zq0 expired")
    "invalid address '***@10.0.0.1:8786'; signature *** expired"
    """
    global _known
    from urllib.parse import unquote

    found = dict(_known)
    for argument in arguments:
        for m in re.finditer(_SCHEME, argument):
            rest = argument[m.end() :]
            netloc = rest.split("/", 1)[0]  # up to the path: a password may hold a "?" or "#" left unencoded
            userinfo = netloc.rpartition("@")[0]
            found |= {form + "@": HIDDEN + "@" for form in (userinfo, unquote(userinfo)) if form}
            for pair in re.finditer(_QUERY_PAIR, rest):
                key, value = pair.group(2), pair.group(3)
                if key.lower() in SECRET_KEYS:
                    found |= {form: HIDDEN for form in (value, unquote(value)) if len(form) >= SHORTEST}
    _known = tuple(sorted(found.items(), key=lambda item: -len(item[0])))


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
    if "://" in text:
        text = re.sub(_URL, _hide, text)
    for secret, instead in _known:
        if secret in text:
            text = text.replace(secret, instead)
    return text


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
