"""The command line, in this process: the parser made from the one options table, and the combinations it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ohlcv_csv, write

from stream.cli.checks import build_parser
from stream.cli.options import OPTIONS


def test_every_option_of_the_table_is_offered_and_explained(run_main) -> None:
    helped = run_main(["--help"])
    assert helped.code == 0
    for _, flag, settings in OPTIONS:
        assert flag in helped.out
        assert settings["help"].split()[0] in helped.out


def test_the_parser_reads_what_the_table_declares() -> None:
    args = build_parser().parse_args(
        ["--input", "a.csv", "--input=b.csv", "--window", "7", "--block-size", "512K", "--cluster", "local:3"]
    )
    assert args.input == ["a.csv", "b.csv"]
    assert (args.window, args.block_size, args.cluster) == (7, 512 * 1024, 3)
    assert (args.signals_format, args.quiet, args.follow, args.on_bad_row) == ("csv", False, False, None)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--input", "a.csv", "--workers", "2", "--scheduler", "tcp://h:8786"], "not allowed with argument"),
        (["--input", "a.csv", "--cluster", "remote"], "expected local or local:N"),
        (["--input", "a.csv", "--block-size", "12Q"], "expected a size in bytes"),
        (
            ["--input", "a.csv", "--idle-timeout", "2"],
            "--idle-timeout and --checkpoint apply to live runs: add --follow",
        ),
        (["--input", "a.csv", "--follow", "--workers", "2"], "apply to batch runs, not to --follow"),
        (["--input", "a.csv", "--follow", "--input", "b.csv"], "--follow follows one input"),
        (["--input", "s3://bucket/x.csv", "--follow"], "--follow follows a local file or stdin"),
        (["--input", "a.csv", "--key", "  "], "--key must name a column"),
        (["--input", "-", "--input", "-"], "stdin ('-') can be given as --input only once"),
    ],
)
def test_combinations_that_cannot_run_are_usage_errors(run_main, tmp_path: Path, args: list[str], words: str) -> None:
    write(tmp_path / "a.csv", ohlcv_csv(["1", "2"]))
    run = run_main([*args, "--output", "m.json"])
    assert run.code == 2
    assert words in run.stderr and "usage:" in run.stderr
    assert run.stdout == b""
    assert not (tmp_path / "m.json").exists()


def test_checkpoint_needs_a_file_not_a_pipe(run_main, tmp_path: Path) -> None:
    run = run_main(["--follow", "--checkpoint", "c.json"], stdin=b"close\n1\n")
    assert run.code == 2
    assert "--checkpoint needs --input PATH (a file)" in run.stderr


def test_an_in_process_run_leaves_the_process_as_it_found_it(run_main, tmp_path: Path) -> None:
    import signal
    import sys

    streams, handler = (sys.stdin, sys.stdout, sys.stderr), signal.getsignal(signal.SIGTERM)
    write(tmp_path / "a.csv", ohlcv_csv(["1", "2", "3"]))
    ok = run_main(["--input", "a.csv", "--window", "2", "--log-file", "run.log"])
    assert ok.code == 0 and ok.doc()["rows_processed"] == 3
    assert run_main(["--window", "0"]).code == 2  # argparse's exit, returned rather than raised
    assert (sys.stdin, sys.stdout, sys.stderr) == streams
    assert signal.getsignal(signal.SIGTERM) == handler
    from stream.sinks.log import log

    assert not [h for h in log.handlers if getattr(h, "baseFilename", None)]  # the log file was closed with the run


def test_the_short_flags_read_as_the_long_ones() -> None:
    from stream.cli.options import SHORT

    short = ["-i", "a.csv", "-c", "c.yaml", "-o", "m.json", "-l", "r.log", "-s", "s.csv", "-w", "3", "-k", "symbol"]
    long = ["--input", "a.csv", "--config", "c.yaml", "--output", "m.json", "--log-file", "r.log", "--signals", "s.csv"]
    long += ["--window", "3", "--key", "symbol"]
    assert build_parser().parse_args([*short, "-q", "-j", "2"]) == build_parser().parse_args(
        [*long, "--quiet", "--workers", "2"]
    )
    assert build_parser().parse_args(["-f", "-i", "a.csv"]).follow is True
    assert sorted(SHORT.values()) == ["-c", "-f", "-i", "-j", "-k", "-l", "-o", "-q", "-s", "-w"]


def test_the_readme_flags_table_shows_every_short_flag() -> None:
    from conftest import ROOT

    from stream.cli.options import SHORT

    rows = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("| `-")]
    for flag, short in [*SHORT.items(), ("--version", "-V")]:
        assert any(row.startswith(f"| `{short}`, `{flag}") for row in rows), (short, flag)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--inptu", "a.csv"], "unrecognized option --inptu; did you mean --input?"),
        (["--inp", "a.csv"], "unrecognized option --inp; did you mean --input?"),  # no abbreviations
        (["-i", "a.csv", "--windwo=3"], "unrecognized option --windwo; did you mean --window?"),
        (["-i", "a.csv", "--signals-format", "jsnl"], "'jsnl' (choose from csv, jsonl); did you mean jsonl?"),
        (["-i", "a.csv", "--on-bad-row", "skp"], "invalid choice: 'skp' (choose from fail, skip); did you mean skip?"),
        (["-i", "a.csv", "--no-such-flag"], "unrecognized option --no-such-flag"),
        (["a.csv"], "unexpected argument 'a.csv': inputs are named with --input PATH (-i PATH)"),
        (["generate", "--rwos", "3"], "unrecognized option --rwos; did you mean --rows?"),
    ],
)
def test_a_mistyped_flag_or_choice_gets_two_lines_and_a_suggestion(
    run_main, tmp_path: Path, args: list[str], said: str
) -> None:
    write(tmp_path / "a.csv", ohlcv_csv(["1", "2"]))
    run = run_main(args)
    assert run.code == 2
    usage, error = run.stderr.splitlines()
    prog = "mlops-stream generate" if args[0] == "generate" else "mlops-stream"
    assert usage == f"usage: {prog} [options]  ('{prog} --help' lists them)"
    assert error.startswith(f"{prog}: error: ") and error.endswith(said)
    assert run.stdout == b""
