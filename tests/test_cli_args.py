"""The quick argument reader gives exactly what argparse gives, or steps aside for argparse to read and report."""

from __future__ import annotations

import pytest
from conftest import imported_by_run, ohlcv_csv, write, write_config
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


# ---- start-up: what a plain batch run does not load ---------------------------------------------------------------

# Each of these costs 0.5-6 ms of a ~50 ms run of the bundled file, and such a run needs none of them.
STARTUP_HEAVY = (
    "argparse", "gettext", "locale", "json", "csv", "logging", "traceback", "numpy", "orjson", "rich",
)  # fmt: skip


def test_a_plain_batch_run_imports_none_of_the_heavy_modules(tmp_path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv([f"{100 + i % 7}.{i % 10}5" for i in range(300)]))
    write_config(tmp_path)
    args = ["--input", "in.csv", "--config", "config.yaml", "--output", "m.json", "--log-file", "run.log"]
    assert imported_by_run(tmp_path, STARTUP_HEAVY, *args) == ([], 0)
    assert imported_by_run(tmp_path, STARTUP_HEAVY, *args, "--signals", "s.csv", "--window", "3") == ([], 0)
    # An export that wraps every line in quotes (the assessment's) needs none of them either.
    write(tmp_path / "q.csv", "\r\n".join(f'"{line}"' for line in ohlcv_csv(["1.5", "2.25"]).splitlines()))
    assert imported_by_run(tmp_path, STARTUP_HEAVY, "--input", "q.csv", "--output", "m.json") == ([], 0)
    # The probe sees what a run does load: a quoted field inside a line needs the csv module, --help argparse.
    write(tmp_path / "f.csv", ohlcv_csv(["1.5", "2.25"]).replace("2024-01-01 00:01:00", '"2024-01-01 00:01:00"'))
    assert imported_by_run(tmp_path, STARTUP_HEAVY, "--input", "f.csv", "--output", "m.json") == (["csv"], 0)
    seen, code = imported_by_run(tmp_path, STARTUP_HEAVY, "--help")
    assert code == 0 and "argparse" in seen
