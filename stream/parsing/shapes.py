"""The whole-chunk fast path of JSON Lines: a chunk whose lines all have the shape of a first one (the same keys in the
same order, the same kinds of values, the same spacing) read with one regular expression at C speed, giving the texts
the per-line parse (stream/parsing/jsonl.py) gives, or None where it does not apply.

A line that matches its shape's expression is a JSON object the json module reads without complaint, with no key
twice, and the expression's groups are the texts of the wanted fields: the expression is built from the first line's
own keys, and its values are JSON's grammar for their kind (strings without control characters, which the chunk is
checked for, and numbers exactly as json reads them).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

# A JSON number exactly as the json module reads it. Possessive where Python has it (3.11): a number is followed by
# a `,`, `]` or `}`, so backtracking into it can never match, and skipping its bookkeeping halves its cost.
if sys.version_info >= (3, 11):
    _EXPONENT = r"(?:[eE][+-]?\d++)?+"
    NUMBER = r"-?(?:0|[1-9]\d*+)(?:\.\d++)?+" + _EXPONENT
    _BARE = r'"[^"]*+"'  # a string of a chunk without backslashes
    _PLAIN = r'"[^"\\]*+"'
    STRING = r'"[^"\\]*+(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\]*+)*+"'
else:  # pragma: no cover - the same language, matched more slowly
    _EXPONENT = r"(?:[eE][+-]?\d+)?"
    NUMBER = r"-?(?:0|[1-9]\d*)(?:\.\d+)?" + _EXPONENT
    _BARE = r'"[^"]*"'
    _PLAIN = r'"[^"\\]*"'
    STRING = r'"[^"\\]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\]*)*"'
# A value the run takes (the close, time or key): a string without escapes (its text is its value) or a number.
TAKEN = f"({_PLAIN}|{NUMBER})"
# The spacing of lines as JSON writers write them: compact (orjson, jq -c, JavaScript, Go), or Python's json.dumps.
SPACINGS = ((",", ":"), (", ", ": "))
# Every byte but the control characters, for bytes.translate: a chunk's control bytes must be its line ends alone (the
# json module refuses a control character inside a string, which the expressions' string classes would take).
_NOT_CONTROL = bytes(range(32, 256))

Path = tuple[str, ...]


class _Number(str):
    """A number's text, told apart from a string's while a shape is made."""

    __slots__ = ()


class _Object(list[tuple[str, Any]]):
    """An object's (key, value) pairs in order, duplicates kept."""

    __slots__ = ()


_SHAPE_DECODER = json.JSONDecoder(parse_float=_Number, parse_int=_Number, object_pairs_hook=_Object)


class Shape:
    """The expressions of one shape of line (each match a line after its newline): ``regex``, and ``bare`` for chunks
    without a backslash, whose strings need no look for escapes; ``groups[i]`` is the group of the i-th wanted field
    (None when the shape lacks it)."""

    __slots__ = ("bare", "groups", "plain", "regex")

    def __init__(self, pattern: str, groups: list[int | None]) -> None:
        self.regex = re.compile(pattern, re.ASCII)
        bare = pattern.replace(STRING, _BARE).replace(_PLAIN, _BARE)
        self.bare = re.compile(bare, re.ASCII)
        # Numbers without an exponent, as writers print prices: a sixth less work a number; a chunk with an exponent
        # matches fewer lines and is matched again by ``bare``.
        self.plain = re.compile(bare.replace(_EXPONENT, ""), re.ASCII) if _EXPONENT in bare else None
        self.groups = groups

    def columns(self, text: str, n: int | None, data: bytes | None = None) -> list[list[str]] | None:
        """The wanted fields' texts (as written: a string with its quotes) of the ``n`` lines of ``text`` (ending with
        a newline; None: counted here; ``data``, its bytes, when the caller has them), one list per wanted field
        (empty for a field the shape lacks); None unless every line has this shape."""
        raw = text.encode() if data is None else data
        controls = raw.translate(None, _NOT_CONTROL)
        if n is None:
            n = controls.count(b"\n")  # the line ends are among the few control bytes: no pass over the text
        if len(controls) != n and controls.replace(b"\r\n", b"\n") != b"\n" * n:
            return None
        regex = self.regex if "\\" in text else self.plain or self.bare
        found = regex.findall("\n" + text)
        if len(found) != n and regex is self.plain:
            regex = self.bare
            found = regex.findall("\n" + text)
        if len(found) != n:
            return None
        per_group: list[Any] = list(zip(*found)) if regex.groups > 1 else [found]
        return [[] if g is None else per_group[g - 1] for g in self.groups]


class Shapes:
    """The shape of the chunks of one input as they come: the last one found, or the shape of a chunk's first line
    when that one does not fit."""

    __slots__ = ("_last", "paths")

    def __init__(self, paths: list[Path | None]) -> None:
        self.paths = paths  # the wanted fields: each a path of keys, or None
        self._last: Shape | None = None

    def columns(self, text: str, n: int | None, data: bytes | None = None) -> list[list[str]] | None:
        """Shape.columns with the last shape, else with the shape of ``text``'s first line."""
        last = self._last
        if last is not None:
            found = last.columns(text, n, data)
            if found is not None:
                return found
        shape = shape_of(text[: text.find("\n")], self.paths)
        if shape is None or (last is not None and shape.regex.pattern == last.regex.pattern):
            return None
        self._last = shape
        return shape.columns(text, n, data)


def shape_of(line: str, paths: list[Path | None]) -> Shape | None:
    """The shape of ``line`` (one object, without its newline), capturing the fields at ``paths``; None when it has no
    shape this path reads (duplicate keys, escapes in keys, unusual spacing, a wanted field that is not a string or
    number)."""
    obj = _object(line)
    if obj is None:
        return None
    wanted = {p: i for i, p in enumerate(paths) if p is not None}
    for item, pair in SPACINGS:
        taken: dict[int, int] = {}
        try:
            body = _pattern(obj, (), wanted, taken, re.escape(item), re.escape(pair))
        except _NoShape:
            return None
        shape = Shape(f"\n{body}\r?(?=\n)", [taken.get(i) for i in range(len(paths))])
        found = shape.regex.match(f"\n{line}\n")
        if found is not None and found.end() == len(line) + 1:
            return shape
    return None


class _NoShape(Exception):
    pass


def _object(line: str) -> _Object | None:
    """The line's object as pairs in order (numbers told from strings), or None when it is not one."""
    try:
        obj = _SHAPE_DECODER.decode(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, _Object) else None


def leaves(line: str) -> list[tuple[Path | None, str]] | None:
    """The values of ``line``'s object in the order they are written, each with its path (None inside an array) and
    kind (string, number, bool or null); None when the line has no shape (see ``shape_of``)."""
    obj = _object(line)
    if obj is None:
        return None
    out: list[tuple[Path | None, str]] = []
    try:
        _leaves(obj, (), out)
    except _NoShape:
        return None
    return out


def _leaves(value: Any, here: Path | None, out: list[tuple[Path | None, str]]) -> None:
    if isinstance(value, _Object):
        keys = [k for k, _ in value]
        if len(set(keys)) != len(keys) or not all(map(_plain_key, keys)):
            raise _NoShape
        for k, v in value:
            _leaves(v, None if here is None else (*here, k), out)
    elif isinstance(value, list):
        for v in value:
            _leaves(v, None, out)
    elif isinstance(value, _Number):
        out.append((here, "number"))
    elif isinstance(value, str):
        out.append((here, "string"))
    else:
        out.append((here, "null" if value is None else "bool"))


def _pattern(value: Any, here: Path, wanted: dict[Path, int], taken: dict[int, int], item: str, pair: str) -> str:
    """The expression of ``value`` at path ``here``: keys as written, values by kind, wanted fields as groups."""
    if here in wanted:
        if isinstance(value, str):  # a string or a number (_Number)
            taken[wanted[here]] = len(taken) + 1
            return TAKEN
        raise _NoShape  # a wanted field that is null, true, an object ...: the per-line parse says what is wrong
    if isinstance(value, _Object):
        keys = [k for k, _ in value]
        if len(set(keys)) != len(keys) or not all(map(_plain_key, keys)):
            raise _NoShape
        inner = item.join(
            f'"{re.escape(k)}"{pair}{_pattern(v, (*here, k), wanted, taken, item, pair)}' for k, v in value
        )
        return rf"\{{{inner}\}}"
    if isinstance(value, list):
        return rf"\[{item.join(_pattern(v, (), {}, taken, item, pair) for v in value)}\]"
    if isinstance(value, _Number):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if value is None:
        return "null"
    return "(?:true|false)"


def _plain_key(key: str) -> bool:
    """A key written as it reads: no quote, backslash or control character (nor anything a writer would escape)."""
    return key.isprintable() and '"' not in key and "\\" not in key
