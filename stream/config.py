"""The job's settings: read a YAML config as plain data, validate every key, and say exactly what is wrong."""

from __future__ import annotations

import os
import re

from stream.errors import MlopsStreamError
from stream.records import NamedTuple
from stream.text import excerpt, line

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any

POLICIES = ("fail", "skip")
FORMATS = ("csv", "jsonl")  # the input formats (stream/parsing/layout.py); left out, each input's first line tells
MAX_BYTES = 1 << 20  # a config is a handful of lines; anything near this size is a mistake (or /dev/zero)
MAX_TEXT = 256  # characters of a string setting: a version, a column name
MAX_DEPTH = 8  # nesting of YAML collections: a config is one flat mapping
MAX_KEYS = 100_000  # distinct values of the key column before a keyed run stops (max_keys)


class ConfigError(MlopsStreamError):
    """A config that cannot be used; the message names the file, the key and what was expected."""


class Config(NamedTuple):
    """The validated settings of one run, and where they came from."""

    seed: int = 42
    window: int = 5
    version: str = "v1"
    column: str = "close"
    on_bad_row: str = "fail"
    key: str | None = None  # the column whose value groups rows into series, each with its own window; None: one series
    # The input's layout (stream/parsing/layout.py): None finds it out from the file.
    delimiter: str | None = None
    header: bool = True
    skip_lines: int = 0
    decimal: str | None = None
    format: str | None = None  # csv or jsonl; None: told by each input's first line ('{': JSON Lines)
    max_skipped: float = 0.5  # a run that skips more than this fraction of its data rows fails
    max_keys: int = MAX_KEYS  # a keyed run with more distinct keys than this stops: its key column is likely wrong
    metrics_port: int | None = None  # serve Prometheus metrics on this port while the run lasts; None: do not
    metrics_host: str = "127.0.0.1"
    source: str = "built-in defaults"

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with the given settings replaced; None means "not given" and keeps the current value."""
        cfg = self._replace(**{k: v for k, v in changes.items() if v is not None})
        if cfg.key is not None and cfg.key == cfg.column:
            raise ConfigError(
                f"the key column and the value column are both {cfg.key!r}: the key groups rows, it is not the value"
            )
        return cfg


_REQUIRED = {"seed": int, "window": int, "version": str}
_OPTIONAL: dict[str, Any] = {
    "column": (str, int), "on_bad_row": str, "key": str, "delimiter": str, "header": bool, "skip_lines": int,
    "decimal": str, "max_skipped": (float, int, str), "metrics_port": int, "metrics_host": str,
    "max_keys": int, "format": str,
}  # fmt: skip
_TYPE_NAMES = {
    int: "an integer", str: "a string", bool: "true or false", (str, int): "a column name or a 1-based position",
    (float, int, str): "a fraction such as 0.05 or a percentage such as 5%",
}  # fmt: skip
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def delimiter(text: str) -> str:
    """A delimiter as given (``;``, ``tab``, ``\\t``); raises ValueError for anything but one character."""
    value = DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1 or value in '"\r\n' or value.isalnum() or value == " ":
        raise ValueError(f"expected one character such as , ; | or tab, got {text!r}")
    return value


def fraction(value: float | str) -> float:
    """A share from 0 to 1, written as a number or as a percentage.

    >>> fraction(0.05), fraction("0.05"), fraction("5%"), fraction(" 100 % ")
    (0.05, 0.05, 0.05, 1.0)
    """
    number: float | None = value if not isinstance(value, str) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            number = None
    if number is None or not 0 <= number <= 1:
        shown = excerpt(value) if isinstance(value, str) else value
        raise ValueError(f"expected a fraction from 0 to 1 such as 0.05, or a percentage such as 5%, got {shown}")
    return float(number)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {excerpt(value)}"


def _meant(key: object) -> str:
    """What an unknown key most likely means (``; did you mean window?``), else the known keys.

    >>> _meant("windwo")
    '; did you mean window?'
    """
    known = [*_REQUIRED, *_OPTIONAL]
    if isinstance(key, str):
        import difflib

        close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]}?"
    return f" (known keys: {', '.join(known)})"


def validate(doc: Any, where: str) -> Config:
    """Check a parsed config document and return the Config it describes."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping of keys (seed, window, version), found {_describe(doc)}")
    unknown = [k for k in doc if k not in _REQUIRED and k not in _OPTIONAL]
    if unknown:
        raise ConfigError(f"{where}: unknown key {excerpt(unknown[0])}{_meant(unknown[0])}")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    values: dict[str, Any] = {}
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in doc:
            continue
        value = doc[key]
        # bool is a subclass of int, and YAML turns `yes` into True: neither is a seed or a window.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, found {_describe(value)}")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ConfigError(
                f"{where}: {key!r} is {len(value):,} characters long, at most {MAX_TEXT} are allowed: {excerpt(value)}"
            )
        values[key] = value
    if values.get("max_keys", 1) < 1:
        raise ConfigError(f"{where}: 'max_keys' must be at least 1, found {values['max_keys']}")
    if isinstance(values.get("column"), int):
        if values["column"] < 1:
            raise ConfigError(f"{where}: 'column' as a position must be at least 1, found {values['column']}")
        values["column"] = str(values["column"])
    if values.get("skip_lines", 0) < 0:
        raise ConfigError(f"{where}: 'skip_lines' must be 0 or more, found {values['skip_lines']}")
    if "decimal" in values and values["decimal"] not in (".", ","):
        raise ConfigError(f"{where}: 'decimal' must be '.' or ',', found {values['decimal']!r}")
    if "format" in values and values["format"] not in FORMATS:
        raise ConfigError(f"{where}: 'format' must be 'csv' or 'jsonl', found {excerpt(values['format'])}")
    for name, check in (("delimiter", delimiter), ("max_skipped", fraction)):
        if name in values:
            try:
                values[name] = check(values[name])
            except ValueError as exc:
                raise ConfigError(f"{where}: {name!r}: {exc}") from None
    if values["window"] < 1:
        raise ConfigError(f"{where}: 'window' must be at least 1, found {values['window']}")
    if "on_bad_row" in values and values["on_bad_row"] not in POLICIES:
        raise ConfigError(f"{where}: 'on_bad_row' must be 'fail' or 'skip', found {excerpt(values['on_bad_row'])}")
    if not 0 <= values.get("metrics_port", 0) <= 65535:
        raise ConfigError(
            f"{where}: 'metrics_port' must be a port number from 0 to 65535, found {values['metrics_port']}"
        )
    for name in ("column", "key", "metrics_host"):
        if name in values and not values[name].strip():
            what = "an address to listen on" if name == "metrics_host" else "a column"
            raise ConfigError(f"{where}: {name!r} must name {what}, found an empty string")
    if "key" in values and values["key"] == values.get("column", "close"):
        raise ConfigError(
            f"{where}: 'key' and 'column' are both {values['key']!r}: the key groups rows by another column"
        )
    return Config(**values, source=where)


# A config is a handful of `key: value` lines. Those whose meaning is beyond doubt (a decimal integer without a
# leading zero, or a word that YAML reads as a plain string) are read here; anything else (lists, anchors, tags,
# `yes`, `0x10`, `1.5`, duplicates ...) goes to PyYAML: this saves a small run the import of PyYAML, which costs
# more than reading the bundled 10,000 rows (docs/performance.md has the figures).
_SIMPLE_LINE = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*):[ ]+"
    r"""(-?(?:0|[1-9][0-9]*)|[A-Za-z][A-Za-z0-9_.-]*|"[A-Za-z0-9_. -]*"|'[A-Za-z0-9_. -]*')[ ]*(?:[ ]#.*)?""",
    re.ASCII,
)
_YAML_WORDS = frozenset(["y", "n", "yes", "no", "true", "false", "on", "off", "null"])


def simple_yaml(text: str) -> dict[str, Any] | None:
    r"""Read a flat config of plain integers and words exactly as YAML would; None when it needs a real YAML parser.

    >>> simple_yaml("seed: 42\nwindow: 5  # rows\nversion: v1\n")
    {'seed': 42, 'window': 5, 'version': 'v1'}
    >>> simple_yaml("version: 'v1'\ncolumn: \"close\"")
    {'version': 'v1', 'column': 'close'}
    >>> simple_yaml("seed: 042\n") is None  # octal to YAML 1.1: leave it to PyYAML
    True
    """
    doc: dict[str, Any] = {}
    for ln in text.splitlines():
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        m = _SIMPLE_LINE.fullmatch(ln)
        if m is None or m.group(1) in doc:
            return None
        value = m.group(2)
        if value[0] in "\"'":
            doc[m.group(1)] = value[1:-1]
        elif value[0].isalpha():
            if value.lower() in _YAML_WORDS:
                return None
            doc[m.group(1)] = value
        else:
            doc[m.group(1)] = int(value)
    return doc or None


def _strict_loader(yaml: Any) -> type:
    """PyYAML's SafeLoader, except that a key given twice is an error (YAML would silently keep the last), and that
    anchors, aliases and nesting deeper than ``MAX_DEPTH`` are refused: a config needs none of them, and aliases
    nested in aliases expand into gigabytes."""

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.composer.ComposerError(
                    None, None, "anchors and aliases (& and *) are not allowed in a config", event.start_mark
                )
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)) and self.depth >= MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"collections nested more than {MAX_DEPTH} deep are not allowed", event.start_mark
                )
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    def mapping(loader: Any, node: Any) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            # A merge key ("<<") is YAML's own override mechanism, not a repeated setting.
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = loader.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
        return loader.construct_mapping(node)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


def load(path: str | None) -> Config:
    """Load ``path``; with None, use ./config.yaml when present, else the built-in defaults."""
    if path is None:
        if not os.path.exists("config.yaml"):
            return Config()
        path = "config.yaml"
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # not to its end: /dev/zero has none
        # A BOM is dropped, as utf-8-sig would (without its codec's import).
        text = data.decode("utf-8").removeprefix("\ufeff")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_BYTES >> 20} MiB: a config is a few lines of YAML")
    simple = simple_yaml(text)
    if simple is not None:
        return validate(simple, f"config file {path}")
    import yaml

    try:
        # The safe loader builds plain data only: a tag such as !!python/object is refused, never executed.
        doc = yaml.load(text, Loader=_strict_loader(yaml))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = line(exc.problem or exc.context or "invalid YAML", 200)
        if "constructor" in problem or "tag" in problem:
            problem = "tags that build objects are not allowed in a config"
        raise ConfigError(f"config file {path}{at}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: invalid YAML ({excerpt(str(exc))})") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: nested too deeply to read") from None
    return validate(doc, f"config file {path}")
