"""Contract point 9: per-row signals as CSV or JSON Lines, to a file or stdout, written as rows are processed."""

from __future__ import annotations

import json
import os
import select
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import exact_signals, ohlcv_csv, read_signals_csv, run_command, start_command, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CLOSES = ["100.10", "100.1", "100.3", "8.5e-06", "100.2", "100.20", "+100.4", "100.4"]


def check_rows(rows: list[dict], closes: list[str], window: int, with_timestamp: bool = True) -> None:
    signals, means = exact_signals(closes, window)
    assert [int(r["row"]) for r in rows] == list(range(1, len(closes) + 1))
    for i, r in enumerate(rows):
        assert r["close"] == closes[i].strip()  # as written
        assert int(r["signal"]) == signals[i]
        mean = r["rolling_mean"]
        if means[i] is None:
            assert mean in ("", None)  # warm-up: no mean
        else:
            assert float(mean) == float(means[i])  # the exact mean, rounded once
            assert isinstance(mean, float) or mean == repr(float(means[i]))
        if with_timestamp:
            assert r["timestamp"] == f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00"


def test_csv_signals_file(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(CLOSES))
    run = run_main(["--input", "in.csv", "--window", "3", "--signals", "signals.csv"])
    assert run.code == 0, run.stderr
    text = (tmp_path / "signals.csv").read_text()
    assert text.splitlines()[0] == "row,timestamp,close,rolling_mean,signal"
    rows = read_signals_csv(text)
    check_rows(rows, CLOSES, 3)
    assert text.splitlines()[1:3] == ["1,2024-01-01 00:00:00,100.10,,0", "2,2024-01-01 00:01:00,100.1,,0"]
    assert run.doc()["value"] == round(sum(int(r["signal"]) for r in rows) / len(rows), 4)


def test_jsonl_signals(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(CLOSES))
    run = run_main(["--input", "in.csv", "--window", "3", "--signals", "s.jsonl", "--signals-format", "jsonl"])
    assert run.code == 0, run.stderr
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [list(r) for r in rows] == [["row", "timestamp", "close", "rolling_mean", "signal"]] * len(CLOSES)
    check_rows(rows, CLOSES, 3)
    assert rows[0]["rolling_mean"] is None
    assert all(isinstance(r["row"], int) and isinstance(r["signal"], int) for r in rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_without_a_timestamp_column(run_main, tmp_path: Path, fmt: str) -> None:
    write(tmp_path / "in.csv", "close,volume\n" + "".join(f"{c},1\n" for c in CLOSES))
    run = run_main(["--input", "in.csv", "--window", "2", "--signals", "-", "--signals-format", fmt])
    assert run.code == 0, run.stderr
    if fmt == "csv":
        assert run.out.splitlines()[0] == "row,close,rolling_mean,signal"
        rows = read_signals_csv(run.out)
    else:
        rows = [json.loads(line) for line in run.out.splitlines()]
        assert list(rows[0]) == ["row", "close", "rolling_mean", "signal"]
    check_rows(rows, CLOSES, 2, with_timestamp=False)


def test_skipped_rows_get_no_signal_and_rows_stay_consecutive(run_main, tmp_path: Path) -> None:
    closes = ["1", "bad", "2", "", "3"]
    write(tmp_path / "in.csv", ohlcv_csv(closes))
    run = run_main(["--input", "in.csv", "--window", "2", "--on-bad-row", "skip", "--signals", "-"])
    assert run.code == 0, run.stderr
    rows = read_signals_csv(run.out)
    assert [(r["row"], r["close"], r["rolling_mean"], r["signal"]) for r in rows] == [
        ("1", "1", "", "0"),
        ("2", "2", "1.5", "1"),
        ("3", "3", "2.5", "1"),
    ]


def test_a_timestamp_with_a_comma_is_quoted(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", 'timestamp,close\n"Jan 1, 2024",5\n"Jan 2, 2024",6\n')
    run = run_main(["--input", "in.csv", "--window", "1", "--signals", "-"])
    assert run.code == 0
    assert [r["timestamp"] for r in read_signals_csv(run.out)] == ["Jan 1, 2024", "Jan 2, 2024"]


def test_csv_and_jsonl_carry_the_same_values(run_main, tmp_path: Path) -> None:
    closes = [f"{100 + (i * 37) % 11 / 4}" for i in range(300)]
    write(tmp_path / "in.csv", ohlcv_csv(closes))
    as_csv = read_signals_csv(run_main(["--input", "in.csv", "--window", "7", "--signals", "-"]).out)
    as_jsonl = [
        json.loads(line)
        for line in run_main(
            ["--input", "in.csv", "--window", "7", "--signals", "-", "--signals-format", "jsonl"]
        ).out.splitlines()
    ]
    assert len(as_csv) == len(as_jsonl) == 300
    for c, j in zip(as_csv, as_jsonl):
        assert int(c["row"]) == j["row"] and c["close"] == j["close"] and int(c["signal"]) == j["signal"]
        assert (float(c["rolling_mean"]) if c["rolling_mean"] else None) == j["rolling_mean"]
    check_rows(as_jsonl, closes, 7)
    assert Fraction(as_jsonl[-1]["close"]) == Fraction(closes[-1])


def test_signals_are_written_as_rows_arrive(tmp_path: Path) -> None:
    # Through a pipe that stays open: the signals for the rows sent so far appear before the input ends.
    proc = start_command(["--signals", "-", "--window", "2"], tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"close\n1\n2\n3\n")
        proc.stdin.flush()
        got = b""
        fd = proc.stdout.fileno()
        while got.count(b"\n") < 4:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"no signals before the input ended; got {got!r}"
            chunk = os.read(fd, 4096)
            assert chunk, "stdout closed early"
            got += chunk
        assert got == b"row,close,rolling_mean,signal\n1,1,,0\n2,2,1.5,1\n3,3,2.5,1\n"
        assert proc.poll() is None  # still running: the input is not over
        proc.stdin.write(b"1\n")
        proc.stdin.close()
        rest = proc.stdout.read()
        assert rest == b"4,1,2.0,0\n"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("how", ["a typo in --column", "a bad row", "too many skipped rows", "SIGTERM"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failed_batch_run_leaves_the_earlier_signals_file_as_it_was(tmp_path: Path, how: str, workers: str) -> None:
    import signal

    good = [f"{100 + i % 9}.{i % 100:02d}" for i in range(3000)]
    write(tmp_path / "in.csv", ohlcv_csv(good))
    args = ["--input", "in.csv", "--signals", "s.csv", "--workers", workers, "--block-size", "16K", "--quiet"]
    assert start_command(args, tmp_path).wait(timeout=60) == 0
    before = (tmp_path / "s.csv").read_bytes()
    assert before.count(b"\n") == 3001
    if how == "a typo in --column":
        args += ["--column", "nosuch"]
    elif how == "a bad row":
        write(tmp_path / "in.csv", ohlcv_csv([*good[:2500], "oops", *good[2500:]]))
    elif how == "too many skipped rows":
        write(tmp_path / "in.csv", ohlcv_csv([*good[:100], *["oops"] * 200]))
        args += ["--on-bad-row", "skip"]
    else:  # a big input, stopped while it runs: ohlcv_csv(good * 300), whose rows repeat every 36,000 (times, closes)
        header, rows = ohlcv_csv(good * 12).split("\n", 1)
        write(tmp_path / "in.csv", header + "\n" + rows * 25)
    proc = start_command([*args, "--output", "m.json"], tmp_path)
    if how == "SIGTERM":
        import time

        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".s.csv.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the run has begun to write its signals
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    doc = json.loads((tmp_path / "m.json").read_text())
    if how == "SIGTERM" and doc["status"] == "success":
        pytest.skip("the run finished before the signal arrived")
    assert code != 0 and doc["status"] == "error"
    assert (tmp_path / "s.csv").read_bytes() == before  # not emptied, not cut short
    assert not list(tmp_path.glob(".s.csv.*")), "the unfinished signals file is removed"


def _grouped(digits: str, sep: str) -> str:
    """``digits`` with ``sep`` between every three, from the right: 1234567 -> 1.234.567."""
    head = len(digits) % 3 or 3
    return sep.join([digits[:head], *(digits[i : i + 3] for i in range(head, len(digits), 3))])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.tuples(st.sampled_from(["", "-"]), st.integers(0, 10**9), st.text("0123456789", max_size=6)),
        min_size=1,
        max_size=30,
    ),
    mark=st.sampled_from([",", "."]),
    thousands=st.booleans(),
    fmt=st.sampled_from(["csv", "jsonl"]),
)
def test_signals_write_the_close_with_a_dot_whatever_the_input_mark(
    values: list[tuple[str, int, str]], mark: str, thousands: bool, fmt: str
) -> None:
    import tempfile

    from conftest import call_main

    written, dotted = [], []
    for sign, whole, frac in values:
        digits = str(whole)
        grouped = _grouped(digits, "." if mark == "," else ",") if thousands else digits
        written.append(sign + grouped + (mark + frac if frac else ""))
        dotted.append(sign + digits + ("." + frac if frac else ""))
    # A decimal-comma export separates its fields with ';'; a dot one quotes its grouped values.
    delimiter = ";" if mark == "," else ","
    lines = [f'2024-01-01,"{w}"' if mark == "." and "," in w else f"2024-01-01{delimiter}{w}" for w in written]
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder, "in.csv"), f"timestamp{delimiter}close\n" + "\n".join(lines) + "\n")
        args = ["--input", "in.csv", "--decimal", mark, "--window", "3", "--signals", "-", "--signals-format", fmt]
        run = call_main(args, Path(folder))
    assert run.code == 0, run.stderr
    rows = read_signals_csv(run.out) if fmt == "csv" else [json.loads(line) for line in run.out.splitlines()]
    plain = mark == "." and not thousands
    # The exact value, with a dot and without separators; a plain dot-decimal close byte for byte as written.
    assert [r["close"] for r in rows] == (written if plain else dotted)
    signals, _ = exact_signals(dotted, 3)
    assert [int(r["signal"]) for r in rows] == signals


def test_a_decimal_comma_export_gets_dot_closes_beside_its_means(run_main, tmp_path: Path) -> None:
    write(tmp_path / "eur.csv", "Date;Close\n2024-01-02;1,09863\n2024-01-03;1,099\n2024-01-04;1.098,5\n")
    run = run_main(["--input", "eur.csv", "--window", "2", "--signals", "-"])
    assert run.code == 0, run.stderr
    assert run.out.splitlines() == [
        "row,timestamp,close,rolling_mean,signal",
        "1,2024-01-02,1.09863,,0",
        "2,2024-01-03,1.099,1.098815,1",
        "3,2024-01-04,1098.5,549.7995,1",
    ]


def staged(folder: Path) -> list[Path]:
    """The staged signals files beside ``s.csv``: ``.s.csv.PID.RANDOM.tmp``."""
    return sorted(folder.glob(".s.csv.*.tmp"))


def start_writing(folder: Path, rows: int) -> tuple[subprocess.Popen, Path]:
    """A batch run reading a pipe, stopped in the middle of its input: ``rows`` rows in, its staged signals file
    holding some of their signals. Returns the process and that file."""
    import time

    proc = start_command(["--input", "-", "--signals", "s.csv", "--quiet"], folder)
    assert proc.stdin is not None
    proc.stdin.write(ohlcv_csv([f"{100 + i % 9}.{i % 100:02d}" for i in range(rows)]).encode())
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not (found := [p for p in staged(folder) if p.stat().st_size > 0]):
        assert proc.poll() is None and time.monotonic() < deadline, "the run wrote no staged signals"
        time.sleep(0.01)
    return proc, found[0]


@pytest.mark.parametrize("later", ["batch", "live"])
def test_a_later_run_removes_the_staged_signals_a_killed_batch_run_left(tmp_path: Path, later: str) -> None:
    import signal

    proc, left = start_writing(tmp_path, 50_000)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9: nothing of the run can clean up
    proc.wait(timeout=30)
    assert left.exists() and staged(tmp_path) == [left]  # left behind, as a power cut would leave it
    write(tmp_path / "in.csv", ohlcv_csv(CLOSES))
    args = ["--input", "in.csv", "--signals", "s.csv", "--log-file", "run.log", "--quiet"]
    args += ["--follow", "--idle-timeout", "0.2"] if later == "live" else []
    assert run_command(args, tmp_path).code == 0
    assert staged(tmp_path) == []
    assert f"removed {left.name}, a temporary file an interrupted run left beside s.csv" in (
        (tmp_path / "run.log").read_text()
    )
    assert (tmp_path / "s.csv").read_text().count("\n") == len(CLOSES) + 1  # the later run's own signals


def test_a_running_batch_run_s_staged_signals_are_left_alone(tmp_path: Path) -> None:
    first, its_own = start_writing(tmp_path, 20_000)
    try:
        write(tmp_path / "in.csv", ohlcv_csv(CLOSES))
        assert run_command(["--input", "in.csv", "--signals", "s.csv", "--quiet"], tmp_path).code == 0
        assert staged(tmp_path) == [its_own]  # the first run's, still being written
        assert first.stdin is not None
        first.stdin.close()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert staged(tmp_path) == []
    assert (tmp_path / "s.csv").read_text().count("\n") == 20_001  # the first run's, renamed into place last


def test_a_leftover_of_a_live_pid_that_nobody_holds_is_removed(tmp_path: Path) -> None:
    # In containers every run is process 1: the name of a killed run's file then holds the pid of a live process
    # (this machine's init here), and only the lock its writer no longer holds tells it is a leftover.
    left = write(tmp_path / ".s.csv.1.k2j9x1ab.tmp", "row,close,rolling_mean,signal\n1,100,,0\n")
    write(tmp_path / "in.csv", ohlcv_csv(CLOSES))
    args = ["--input", "in.csv", "--signals", "s.csv", "--log-file", "run.log", "--quiet"]
    assert run_command(args, tmp_path).code == 0
    assert not left.exists() and staged(tmp_path) == []
    assert f"removed {left.name}" in (tmp_path / "run.log").read_text()
