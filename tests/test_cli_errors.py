"""Every error case end to end: exit code, the error document, a message a person can act on, and no traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ERROR_KEYS, env_with_repo, ohlcv_csv, start_command, write

# Signs of a raw exception leaking into a message meant for a person.
RAW = re.compile(r"\b\w*(Error|Exception)\b\(|\[Errno|Traceback|object at 0x|<class ")

GOOD = ohlcv_csv(["100.1", "100.2", "100.3"])

ERROR_CASES = {
    # name: (files, args, stdin, words in the message, version in the document)
    "config file missing": ({}, ["--config", "nope.yaml"], None, "config file nope.yaml does not exist", None),
    "config invalid yaml": ({"c.yaml": "seed: 1\nwindow: [\n"}, ["--config", "c.yaml"], None, "line 3", None),
    "config unknown key": (
        {"c.yaml": "seed: 1\nwindow: 2\nversion: v\nwindo: 3\n"},
        ["--config", "c.yaml"],
        None,
        "unknown key 'windo'",
        None,
    ),
    "config object tag": (
        {"c.yaml": "seed: 1\nwindow: 2\nversion: !!python/object/apply:os.getcwd []\n"},
        ["--config", "c.yaml"],
        None,
        "tags that build objects are not allowed",
        None,
    ),
    "input missing": ({}, ["--input", "missing.csv"], None, "input file missing.csv does not exist", "v1"),
    "input is a folder": ({"sub/x": ""}, ["--input", "sub"], None, "input sub is a directory", "v1"),
    "input empty": ({"e.csv": ""}, ["--input", "e.csv"], None, "the input e.csv is empty", "v1"),
    "input blank lines only": ({"e.csv": "\n  \r\n\n"}, ["--input", "e.csv"], None, "is empty", "v1"),
    "header only": ({"h.csv": "timestamp,close\n"}, ["--input", "h.csv"], None, "has a header but no usable", "v1"),
    "empty stdin": ({}, ["--input", "-"], b"", "the input <stdin> is empty", "v1"),
    "stdin header only": ({}, [], b"close\r\n", "the input <stdin> has a header but no usable data rows", "v1"),
    "missing column": (
        {"m.csv": "timestamp,Adj Close\n1,2\n"},
        ["--input", "m.csv"],
        None,
        "no column 'close'; columns found: 'timestamp', 'Adj Close'; closest: 'Adj Close'; name the column with "
        "--column",
        "v1",
    ),
    "bad row": (
        {"b.csv": "close\n1\n2\nabc\n"},
        ["--input", "b.csv"],
        None,
        "bad row at line 4: bad close value: 'abc' is not a decimal number: 'abc'",
        "v1",
    ),
    "all rows skipped": (
        {"b.csv": "close\nx\ny\n"},
        ["--input", "b.csv", "--on-bad-row", "skip"],
        None,
        "no usable data rows (2 bad rows were skipped)",
        "v1",
    ),
    "undecodable header": ({"u.csv": b"clos\xe9\n1\n"}, ["--input", "u.csv"], None, "the header (line 1)", "v1"),
    "signals folder missing": (
        {"in.csv": GOOD},
        ["--input", "in.csv", "--signals", "nowhere/s.csv"],
        None,
        "the signals file nowhere/s.csv cannot be written: no such file or directory",
        "v1",
    ),
    "signals device full": (
        {"in.csv": GOOD},
        ["--input", "in.csv", "--signals", "/dev/full"],
        None,
        "an I/O error stopped the run",
        "v1",
    ),
}


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_error_case(run_main, tmp_path: Path, name: str) -> None:
    files, args, stdin, words, version = ERROR_CASES[name]
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / rel, content)
    run = run_main([*args, "--output", "metrics.json", "--log-file", "run.log"], stdin=stdin)
    assert run.code == 1, (run.code, run.stderr)
    run.assert_no_traceback()
    doc = run.file_doc()
    assert list(doc) == ERROR_KEYS
    assert doc["status"] == "error"
    assert doc["version"] == version
    message = doc["error_message"]
    assert words in message
    assert not RAW.search(message), message
    assert run.doc() == doc  # also printed on stdout
    assert f"mlops-stream: error: {message}" in run.stderr
    # The traceback is kept for whoever debugs it, in the log only.
    log = run.log()
    assert f"ERROR {message}" in log
    assert "finished with exit code 1" in log


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-flag"],
        ["--window", "0"],
        ["--window", "-3"],
        ["--window", "abc"],
        ["--window", "2.5"],
        ["--signals-format", "xml"],
        ["--on-bad-row", "ignore"],
        ["--input"],
        ["generate", "--rows", "-1"],
        ["generate", "--rows", "many"],
    ],
)
def test_usage_errors_exit_2(run_main, tmp_path: Path, args: list[str]) -> None:
    write(tmp_path / "in.csv", GOOD)
    full = args if args[0] == "generate" or args == ["--input"] else ["--input", "in.csv", *args]
    run = run_main([*full, "--output", "metrics.json"] if args[0] != "generate" else full)
    assert run.code == 2
    run.assert_no_traceback()
    assert "usage:" in run.stderr
    assert run.stdout == b""
    assert not (tmp_path / "metrics.json").exists()


def test_no_input_on_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "stream"],
            cwd=tmp_path,
            stdin=follower,
            capture_output=True,
            env=env_with_repo(),
            timeout=30,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    assert b"no input: pass --input PATH, or pipe CSV into stdin" in proc.stderr
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["no-such-folder/run.log", "."])
def test_an_unwritable_log_file_fails_clearly(run_main, tmp_path: Path, where: str) -> None:
    write(tmp_path / "in.csv", GOOD)
    run = run_main(["--input", "in.csv", "--log-file", where])
    assert run.code == 1
    run.assert_no_traceback()
    assert f"mlops-stream: error: the log file {where} cannot be opened" in run.stderr


def test_a_log_file_that_fails_while_writing_does_not_print_tracebacks(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", GOOD)
    run = run_main(["--input", "in.csv", "--log-file", "/dev/full"])
    run.assert_no_traceback()
    assert "the log file /dev/full" in run.stderr
    assert run.stderr.count("\n") <= 2  # one clear message, not one per log line
    assert run.code == 0
    assert run.doc()["rows_processed"] == 3


@pytest.mark.parametrize(
    ("sig", "code", "words"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped by SIGTERM")]
)
def test_interrupt_writes_an_error_document(tmp_path: Path, sig: signal.Signals, code: int, words: str) -> None:
    proc = start_command(["--output", "metrics.json", "--log-file", "run.log"], tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(b"close\n1\n2\n3\n")
    proc.stdin.flush()
    log = tmp_path / "run.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and "input layout" in log.read_text()):
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert b"Traceback" not in err
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert list(doc) == ERROR_KEYS
    assert words in doc["error_message"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--inptu", "in.csv"], "mlops-stream: error: unrecognized option --inptu; did you mean --input?"),
        (["-i", "in.csv", "--signals-format", "jsnl"], "did you mean jsonl?"),
    ],
)
def test_the_command_suggests_the_flag_meant(run_cli, tmp_path: Path, args: list[str], said: str) -> None:
    write(tmp_path / "in.csv", GOOD)
    run = run_cli(args)
    assert run.code == 2
    assert len(run.stderr.splitlines()) == 2 and run.stderr.splitlines()[1].endswith(said)
    assert run.stdout == b""


def test_a_mistyped_config_key_names_the_key_meant(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", GOOD)
    write(tmp_path / "c.yaml", "seed: 1\nwindwo: 2\nversion: v\n")
    run = run_cli(["-i", "in.csv", "-c", "c.yaml"])
    assert run.code == 1
    run.assert_no_traceback()
    message = "config file c.yaml: unknown key 'windwo'; did you mean window?"
    assert run.stderr == f"mlops-stream: error: {message}\n"
    assert run.doc()["error_message"] == message


def test_short_flags_and_the_version(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", GOOD)
    run = run_cli(["-i", "in.csv", "-w", "2", "-o", "m.json", "-l", "run.log", "-s", "s.csv", "-q"])
    assert (run.code, run.stdout, run.stderr) == (0, b"", "")
    assert run.file_doc("m.json")["rows_processed"] == 3
    assert (tmp_path / "s.csv").read_text().count("\n") == 4 and "window=2" in run.log()
    version = run_cli(["-V"])
    assert version.code == 0 and version.out.startswith("mlops-stream ")
