"""The quick argument reader gives exactly what argparse gives, or steps aside for argparse to read and report."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.cli import OPTIONS, build_parser, quick_parse

FLAGS = [flag for _, flag, _ in OPTIONS]
VALUES = ["data.csv", "-", "3", "0", "-5", "x", "csv", "jsonl", "skip", "fail", "512K", "1.5", "local:1", "", "a=b",
          "--input", "--quiet", "-q"]  # fmt: skip


def token() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(FLAGS),
        st.sampled_from(VALUES),
        st.builds(lambda f, v: f"{f}={v}", st.sampled_from(FLAGS), st.sampled_from(VALUES)),
        st.sampled_from(["--inp", "--out", "--help", "-h", "--version", "--", "--follow=1", "--unknown"]),
    )


def argparse_reads(argv: list[str]) -> dict | None:
    try:
        return vars(build_parser().parse_args(argv))
    except SystemExit:  # a usage error (or --help/--version): argparse's to report
        return None


@given(st.lists(token(), max_size=8))
@settings(max_examples=600, deadline=None)
def test_quick_parse_is_argparse_or_nothing(argv: list[str]) -> None:
    quick = quick_parse(argv)
    if quick is not None:
        assert vars(quick) == argparse_reads(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--input", "data.csv", "--config", "config.yaml", "--output", "m.json", "--log-file", "run.log"],
        ["--input", "-", "--signals", "-", "--signals-format", "jsonl", "--window", "7", "--quiet"],
        ["--input=a.csv", "--input", "b.csv", "--on-bad-row", "skip", "--key", "symbol", "--no-progress"],
        ["--input", "f.csv", "--follow", "--idle-timeout", "2.5", "--checkpoint", "c.json"],
        ["--input", "f.csv", "--workers", "2", "--block-size", "512K"],
    ],
)
def test_everyday_command_lines_are_read_quickly_and_alike(argv: list[str]) -> None:
    quick = quick_parse(argv)
    assert quick is not None
    assert vars(quick) == argparse_reads(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["--inp", "data.csv"],  # an abbreviation: argparse's to accept
        ["--window", "0"],  # a bad value: argparse's to report
        ["--window"],
        ["--input", "--quiet"],
        ["--quiet=yes"],
        ["--workers", "2", "--scheduler", "tcp://h:8786"],  # options that exclude each other
        ["data.csv"],
    ],
)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert quick_parse(argv) is None
