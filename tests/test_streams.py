"""The standard streams a run is handed: in this process any kind of stream (text over a buffer, a plain StringIO or
BytesIO, a closed one) without the process's own being swapped; in a real process closed ones (`2>&-`, `>&-`), for
want of which nothing may fail: messages go to the log, and a signals output with nowhere to go is a clear error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TRACEBACK_MARKERS, env_with_repo, ohlcv_csv, write

from stream.cli import main

CLOSES = ["100.5", "101.25", "oops", "99.75", "102", "103.5", "98", "104.25"]
CSV = ohlcv_csv(CLOSES)
ARGS = ["--input", "-", "--window", "3", "--on-bad-row", "skip", "--max-skipped", "0.5"]
SKIPPED = "mlops-stream: warning: skipped bad row at line 4"


def same_document(printed: str | bytes, reference: dict[str, Any]) -> bool:
    doc = json.loads(printed)
    return {**doc, "latency_ms": 0} == {**reference, "latency_ms": 0}


@pytest.fixture
def reference(run_main) -> dict[str, Any]:
    """The document of the run below with the streams the interpreter gives a process (text over a buffer)."""
    run = run_main(ARGS, stdin=CSV.encode())
    assert run.code == 0 and SKIPPED in run.stderr
    return run.doc()


def test_plain_string_streams_are_read_and_written(reference, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert main(ARGS, stdin=io.StringIO(CSV), stdout=out, stderr=err) == 0
    assert same_document(out.getvalue(), reference)
    assert SKIPPED in err.getvalue()
    signals = io.StringIO()
    assert main([*ARGS, "--signals", "-"], stdin=io.StringIO(CSV), stdout=signals, stderr=io.StringIO()) == 0
    write(tmp_path / "in.csv", CSV)
    assert main([*ARGS[2:], "--input", "in.csv", "--signals", "s.csv"], stdout=io.StringIO()) == 0
    assert signals.getvalue() == (tmp_path / "s.csv").read_text()


def test_plain_byte_streams_are_read_and_written(reference, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out, err = io.BytesIO(), io.BytesIO()
    assert main(ARGS, stdin=io.BytesIO(CSV.encode()), stdout=out, stderr=err) == 0
    assert same_document(out.getvalue(), reference)
    assert SKIPPED in err.getvalue().decode()
    usage = io.BytesIO()
    assert main(["--window", "0"], stdin=io.BytesIO(), stdout=io.BytesIO(), stderr=usage) == 2
    assert b"usage: mlops-stream" in usage.getvalue()


def test_the_process_streams_are_neither_swapped_nor_written(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[Any, ...]] = []

    class Watched(io.StringIO):
        def read(self, size: int | None = -1) -> str:
            seen.append((sys.stdin, sys.stdout, sys.stderr))
            return super().read(size)

    process = (sys.stdin, sys.stdout, sys.stderr)
    out, err = io.StringIO(), io.StringIO()
    assert main(ARGS, stdin=Watched(CSV), stdout=out, stderr=err) == 0
    assert seen and all(streams == process for streams in seen)
    assert capsys.readouterr() == ("", "")  # everything went to the streams the run was given
    assert out.getvalue() and SKIPPED in err.getvalue()


def test_closed_streams_given_in_process_are_left_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    closed = io.StringIO()
    closed.close()
    assert main([*ARGS, "--output", "m.json"], stdin=io.StringIO(CSV), stdout=closed, stderr=closed) == 0
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "success"
    code = main([*ARGS, "--output", "m.json", "--signals", "-"], stdin=io.StringIO(CSV), stdout=closed, stderr=closed)
    assert code == 1
    assert "which is closed" in json.loads((tmp_path / "m.json").read_text())["error_message"]


def run_closed(args: list[str], closed: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The command with a standard stream closed by the shell (``2>&-``, ``>&-``): Python starts with it None."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {closed}', "sh", sys.executable, "-m", "stream", *args],
        cwd=cwd, env=env_with_repo(), stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
    )  # fmt: skip


def no_traceback(proc: subprocess.CompletedProcess[bytes], log: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in proc.stderr.decode() and marker not in proc.stdout.decode()
    assert "internal error" not in log


def test_a_closed_stderr_costs_nothing_but_its_messages(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", CSV)
    args = [*ARGS[2:], "--input", "in.csv", "--log-file", "run.log"]
    ok = run_closed(args, "2>&-", tmp_path)
    log = (tmp_path / "run.log").read_text()
    no_traceback(ok, log)
    assert ok.returncode == 0 and json.loads(ok.stdout)["status"] == "success"
    assert "WARNING skipped bad row at line 4" in log  # said in the log, the one place left
    failed = run_closed([*args, "--column", "nosuch", "--output", "m.json"], "2>&-", tmp_path)
    log = (tmp_path / "run.log").read_text()
    no_traceback(failed, log)
    assert failed.returncode == 1 and "ERROR the header (line 1) has no column 'nosuch'" in log
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "error"
    usage = run_closed(["--window", "0"], "2>&-", tmp_path)
    assert (usage.returncode, usage.stdout) == (2, b"")  # the usage is not printed on stdout instead


def test_a_closed_stdout_fails_only_a_run_that_writes_its_signals_there(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", CSV)
    args = [*ARGS[2:], "--input", "in.csv", "--log-file", "run.log", "--output", "m.json"]
    ok = run_closed(args, ">&-", tmp_path)
    no_traceback(ok, (tmp_path / "run.log").read_text())
    assert ok.returncode == 0 and json.loads((tmp_path / "m.json").read_text())["status"] == "success"
    for live in ([], ["--follow", "--idle-timeout", "0.2"]):
        to_stdout = run_closed([*args, "--signals", "-", *live], ">&-", tmp_path)
        no_traceback(to_stdout, (tmp_path / "run.log").read_text())
        assert to_stdout.returncode == 1
        message = json.loads((tmp_path / "m.json").read_text())["error_message"]
        assert message == "--signals - writes the signals to stdout, which is closed; pass a file to --signals"
        assert f"mlops-stream: error: {message}" in to_stdout.stderr.decode()
