"""Contract point 8: every step logged with an ISO-8601 UTC timestamp; warnings also on stderr; only data on stdout."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ohlcv_csv, write

STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (DEBUG|INFO|WARNING|ERROR) \S")


def records(log: str) -> list[re.Match]:
    """The log's records; lines that do not start a record must belong to a debug record's traceback."""
    found, in_details = [], False
    for line in log.splitlines():
        m = STAMP.match(line)
        if m:
            found.append(m)
            in_details = m.group(2) == "DEBUG"
        else:
            assert in_details, f"a log line without a timestamp: {line!r}"
    return found


def test_every_step_is_logged_with_a_utc_timestamp(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["100.5", "x", "101", "102", "100.25", "99", "98"]))
    before = datetime.now(timezone.utc)
    # A local time zone far from UTC: the stamps must not follow it.
    run = run_main(
        ["--input", "in.csv", "--window", "3", "--on-bad-row", "skip", "--output", "m.json", "--log-file", "run.log"],
        env={"TZ": "IST-5:30"},
    )
    after = datetime.now(timezone.utc)
    assert run.code == 0, run.stderr
    log = run.log()
    found = records(log)
    assert len(found) == len(log.splitlines()) >= 10
    for m in found:
        stamp = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert before - timedelta(seconds=2) <= stamp <= after + timedelta(seconds=2)
    steps = [
        "mlops-stream started:",
        "config from built-in defaults: seed=42 window=3 version=v1 column=close on_bad_row=skip",
        "input opened: in.csv (regular file,",
        "input layout: 7 columns 'timestamp', 'open', 'high', 'low', 'close', 'volume_btc', 'volume_usd'; "
        "delimiter ','; close column 'close' (#5)",
        "warm-up: the first 2 rows have no rolling mean (signal 0)",
        "skipped 1 bad rows in all",
        "WARNING 1 of 7 data rows (14.3%) were bad and skipped; the commonest reason (1 rows) first at line 3",
        "processed 6 rows (",
        "metrics written to m.json",
        'metrics: {   "version": "v1",',
        "finished with exit code 0",
    ]
    positions = [log.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions) if p < 0]
    assert positions == sorted(positions), "steps are logged in the order they happen"
    # Bad rows are logged as the reader meets them (here before the layout is announced after the first batch).
    assert "WARNING skipped bad row at line 3: bad close value: 'x' is not a decimal number" in log
    assert re.search(r"processed 6 rows \(\d+ signals, 1 skipped\) in \d+\.\d{3} s \(\d+ rows/s\)", log)


def test_warnings_go_to_stderr_and_only_data_to_stdout(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "oops", "2"]))
    run = run_main(["--input", "in.csv", "--on-bad-row", "skip", "--log-file", "run.log", "--window", "2"])
    assert run.code == 0
    assert json.loads(run.stdout)["rows_skipped"] == 1  # stdout is exactly the document
    row = "2024-01-01 00:01:00,100.00,101.00,99.00,oops,1.500000,150.00"
    warning = (
        f"mlops-stream: warning: skipped bad row at line 3: bad close value: 'oops' is not a decimal number: {row!r}"
    )
    share = "mlops-stream: warning: 1 of 3 data rows (33.3%) were bad and skipped; the commonest reason (1 rows) "
    assert run.stderr.splitlines() == [warning, share + warning.split("bad row at ")[1].join(["first at ", ""])]
    assert "INFO" not in run.stderr


def test_a_clean_run_is_silent_on_stderr(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2"]))
    run = run_main(["--input", "in.csv", "--signals", "-", "--window", "2"])  # a window the 2 rows fill
    assert (run.code, run.stderr) == (0, "")
    assert run.out.splitlines()[0] == "row,timestamp,close,rolling_mean,signal"


def test_quiet_keeps_errors_but_not_warnings(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "oops", "2"]))
    skipped = run_main(["--input", "in.csv", "--on-bad-row", "skip", "--quiet", "--log-file", "run.log"])
    assert (skipped.code, skipped.stdout, skipped.stderr) == (0, b"", "")
    assert "skipped bad row at line 3" in skipped.log()  # still in the log file
    failed = run_main(["--input", "in.csv", "--quiet"])
    assert failed.code == 1
    assert failed.stdout == b""
    assert "error: bad row at line 3" in failed.stderr


def test_an_error_keeps_its_traceback_in_the_log_only(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "oops"]))
    run = run_main(["--input", "in.csv", "--log-file", "run.log"])
    assert run.code == 1
    run.assert_no_traceback()
    log = run.log()
    records(log)
    assert "DEBUG details" in log and "Traceback (most recent call last)" in log
    assert "ERROR bad row at line 3" in log


def test_a_failure_writes_its_traceback_below_a_debug_record_in_the_log_only(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "2"]))
    run = run_main(["--input", "in.csv", "--config", "nope.yaml", "--output", "m.json", "--log-file", "run.log"])
    assert run.code == 1
    message = "config file nope.yaml does not exist"
    assert run.stderr.splitlines() == [f"mlops-stream: error: {message}"]
    lines = run.log().splitlines()
    records(run.log())
    at = next(i for i, line in enumerate(lines) if line.endswith(" DEBUG details"))
    assert lines[at - 1].endswith(f" ERROR {message}")
    assert lines[at + 1] == "Traceback (most recent call last):"
    end = next(i for i in range(at + 1, len(lines)) if STAMP.match(lines[i]))
    assert lines[end - 1].startswith("stream.config.ConfigError: ")
    assert lines[end].endswith(" INFO metrics written to m.json")
    assert lines[-1].endswith(" INFO finished with exit code 1")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full: it opens, and every write fails")
def test_a_full_log_file_is_reported_once_and_the_run_goes_on(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["1", "oops", "2", "nan?", "3"]))
    run = run_main(["--input", "in.csv", "--on-bad-row", "skip", "--log-file", "/dev/full"])
    assert run.code == 0
    run.assert_no_traceback()
    lost = "mlops-stream: warning: the log file /dev/full cannot be written (no space left on device); "
    lost += "the rest of the log is lost"
    lines = run.stderr.splitlines()
    assert lines[0] == lost and lines.count(lost) == 1  # at the first record, once
    # Warnings still reach stderr.
    assert [line.split(" at line ")[0] for line in lines[1:3]] == ["mlops-stream: warning: skipped bad row"] * 2
    assert lines[3].startswith("mlops-stream: warning: 2 of 5 data rows (40.0%) were bad and skipped")
    assert run.doc()["rows_skipped"] == 2
