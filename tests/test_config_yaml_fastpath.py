"""The config fast path must read exactly what PyYAML reads, or step aside."""

from __future__ import annotations

import string

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import simple_yaml

LETTERS = string.ascii_letters
VALUES = st.one_of(
    st.sampled_from(
        [
            "v1",
            "close",
            "skip",
            "yes",
            "No",
            "on",
            "null",
            "~",
            "1.5",
            "042",
            "0",
            "-0",
            "-3",
            "1e3",
            "0x1f",
            "1_000",
            ".inf",
            "v1.2-rc",
            "a:b",
            "x y",
            '"v1"',
            "'v 2'",
            '"a\\"b"',
            "''",
            '""',
            "'it''s'",
            '"x#y"',
            "[1, 2]",
            "{a: 1}",
            "!!python/object:os.system",
            "&a 1",
            "*a",
            "TRUE",
            "nan",
            "Y",
            "n",
        ]
    ),
    st.integers(-(10**6), 10**6).map(str),
    # [A-Za-z][A-Za-z0-9_.-]{0,8}, drawn as two pieces: st.from_regex costs several times more per example.
    st.tuples(st.sampled_from(LETTERS), st.text(LETTERS + "0123456789_.-", max_size=8)).map("".join),
)
LINE = st.tuples(
    st.sampled_from(["seed", "window", "version", "column", "on_bad_row", "k"]),
    st.sampled_from([" ", "  "]),
    VALUES,
    st.sampled_from(["", " ", " # note", "#x"]),
).map(lambda t: f"{t[0]}:{t[1]}{t[2]}{t[3]}")


@settings(max_examples=600, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=5), st.sampled_from(["\n", "\r\n"]))
def test_fast_path_agrees_with_pyyaml(lines: list[str], eol: str) -> None:
    text = eol.join(lines) + eol
    fast = simple_yaml(text)
    if fast is not None:
        assert fast == yaml.safe_load(text)


def test_fast_path_takes_the_usual_config() -> None:
    assert simple_yaml('seed: 42\nwindow: 5\nversion: "v1"\n') == {"seed": 42, "window": 5, "version": "v1"}


def test_fast_path_steps_aside_for_yaml_it_does_not_read() -> None:
    for text in ("seed: 0x10\n", "a: yes\n", "seed: 1\nseed: 2\n", "version: 1.0\n", "--- \nseed: 1\n", "[1]\n"):
        assert simple_yaml(text) is None
