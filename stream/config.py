"""The job's settings: read a YAML config as plain data, validate every key, and say exactly what is wrong."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

DEFAULTS = {"seed": 42, "window": 5, "version": "v1"}
POLICIES = ("fail", "skip")


class ConfigError(Exception):
    """A config that cannot be used; the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class Config:
    seed: int = 42
    window: int = 5
    version: str = "v1"
    column: str = "close"
    on_bad_row: str = "fail"
    source: str = "built-in defaults"

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_REQUIRED = {"seed": int, "window": int, "version": str}
_OPTIONAL = {"column": str, "on_bad_row": str}
_TYPE_NAMES = {int: "an integer", str: "a string"}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def validate(doc: Any, where: str) -> Config:
    """Check a parsed config document and return the Config it describes."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping of keys (seed, window, version), found {_describe(doc)}")
    unknown = [k for k in doc if k not in _REQUIRED and k not in _OPTIONAL]
    if unknown:
        known = ", ".join([*_REQUIRED, *_OPTIONAL])
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {known})")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    values: dict[str, Any] = {}
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in doc:
            continue
        value = doc[key]
        # bool is a subclass of int, and YAML turns `yes` into True: neither is a seed or a window.
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, found {_describe(value)}")
        values[key] = value
    if values["window"] < 1:
        raise ConfigError(f"{where}: 'window' must be at least 1, found {values['window']}")
    if "on_bad_row" in values and values["on_bad_row"] not in POLICIES:
        raise ConfigError(f"{where}: 'on_bad_row' must be 'fail' or 'skip', found {values['on_bad_row']!r}")
    if "column" in values and not values["column"].strip():
        raise ConfigError(f"{where}: 'column' must name a column, found an empty string")
    return Config(**values, source=where)


def _strict_loader(yaml: Any) -> type:
    """PyYAML's SafeLoader, except that a key given twice is an error (YAML would silently keep the last)."""

    class StrictLoader(yaml.SafeLoader):
        pass

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
    import yaml  # only runs that have a config pay for the YAML import

    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        # The safe loader builds plain data only: a tag such as !!python/object is refused, never executed.
        doc = yaml.load(text, Loader=_strict_loader(yaml))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if "constructor" in problem or "tag" in problem:
            problem = "tags that build objects are not allowed in a config"
        raise ConfigError(f"config file {path}{line}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: invalid YAML ({exc})") from None
    return validate(doc, f"config file {path}")
