"""Contract point 11: `generate` makes seeded, consistent candles; data.csv is its output for 10,000 rows, seed 42."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import ROOT, env_with_repo, find_assessment_data

from stream import generate

PRICE = re.compile(r"^\d+\.\d{2}$")
BTC = re.compile(r"^\d+\.\d{6}$")


def test_data_csv_is_reproduced_byte_for_byte(run_main, tmp_path: Path) -> None:
    run = run_main(["generate", "--rows", "10000", "--seed", "42", "--output", "gen.csv"])
    assert run.code == 0, run.stderr
    assert (tmp_path / "gen.csv").read_bytes() == (ROOT / "data.csv").read_bytes()
    to_stdout = run_main(["generate", "--rows", "10000", "--seed", "42"])
    assert to_stdout.stdout == (ROOT / "data.csv").read_bytes()


def test_seeds_matter_and_runs_repeat() -> None:
    def make(seed: int) -> bytes:
        out = io.BytesIO()
        generate.write(out, 500, seed)
        return out.getvalue()

    assert make(1) == make(1)
    assert make(1) != make(2)


def rows_of(text: str) -> list[list[str]]:
    lines = text.split("\n")
    assert lines[0] == ",".join(generate.COLUMNS)
    assert lines[-1] == ""
    return [line.split(",") for line in lines[1:-1]]


@pytest.mark.parametrize(("rows", "seed"), [(10_000, 42), (70_000, 5)])  # 70,000 crosses a generation block
def test_candles_are_consistent(rows: int, seed: int) -> None:
    out = io.BytesIO()
    generate.write(out, rows, seed)
    records = rows_of(out.getvalue().decode())
    assert len(records) == rows
    start = datetime(2024, 1, 1)
    flat = 0
    prev_close = None
    for i, (stamp, o, h, lo, c, vb, vu) in enumerate(records):
        # The exact text expected (strptime, which costs more, would take unpadded fields too).
        assert stamp == (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        for price in (o, h, lo, c, vu):
            assert PRICE.match(price), price
        assert BTC.match(vb), vb
        cents = [int(p.replace(".", "")) for p in (o, h, lo, c)]
        assert cents[2] <= min(cents[0], cents[3]) and max(cents[0], cents[3]) <= cents[1], (i, o, h, lo, c)
        assert cents[2] > 0
        if prev_close is not None:
            assert abs(cents[0] - prev_close) <= 2  # opens at (or a few cents off) the previous close
            flat += cents[3] == prev_close
        prev_close = cents[3]
    # Real 1-minute data has many unchanged closes: the ties an exact comparison must get right.
    assert flat > rows * 0.02


def test_quoted_variant_has_the_assessment_shape(run_main, tmp_path: Path) -> None:
    run = run_main(["generate", "--rows", "300", "--seed", "3", "--quoted", "--output", "q.csv"])
    assert run.code == 0
    data = (tmp_path / "q.csv").read_bytes()
    assert not data.endswith(b"\n")
    assert data.count(b"\r\n") == 300 and data.count(b"\n") == 300
    lines = data.split(b"\r\n")
    assert all(line.startswith(b'"') and line.endswith(b'"') and line.count(b'"') == 2 for line in lines)
    plain = run_main(["generate", "--rows", "300", "--seed", "3"]).stdout
    assert [line.strip(b'"') for line in lines] == plain.rstrip(b"\n").split(b"\n")


def test_the_reader_gives_the_same_signals_for_both_variants(run_main, tmp_path: Path) -> None:
    assert run_main(["generate", "--rows", "2000", "--seed", "8", "--output", "plain.csv"]).code == 0
    assert run_main(["generate", "--rows", "2000", "--seed", "8", "--quoted", "--output", "quoted.csv"]).code == 0
    plain = run_main(["--input", "plain.csv", "--signals", "-"])
    quoted = run_main(["--input", "quoted.csv", "--signals", "-"])
    assert plain.code == quoted.code == 0
    assert plain.stdout == quoted.stdout
    assert plain.stdout.count(b"\n") == 2001


def test_the_layout_is_the_assessment_datasets() -> None:
    path = find_assessment_data()
    if path is None:
        pytest.skip("the assessment dataset ../shared/data/assessment-data.csv is not present beside the repository")
    header = path.read_bytes().split(b"\r\n", 1)[0].decode().strip('"')
    assert tuple(header.split(",")) == generate.COLUMNS


def test_zero_rows_is_a_header_only(run_main) -> None:
    run = run_main(["generate", "--rows", "0"])
    assert (run.code, run.stdout) == (0, (",".join(generate.COLUMNS) + "\n").encode())


def test_unwritable_output(run_main, tmp_path: Path) -> None:
    run = run_main(["generate", "--rows", "5", "--output", "no/such/dir.csv"])
    assert run.code == 1
    assert run.stderr == "mlops-stream generate: error: cannot write no/such/dir.csv: no such file or directory\n"
    if Path("/dev/full").exists():
        with open("/dev/full", "wb") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "stream", "generate", "--rows", "100"],
                cwd=tmp_path,
                stdout=full,
                stderr=subprocess.PIPE,
                env=env_with_repo(),
                timeout=60,
            )
        assert proc.returncode == 1
        assert proc.stderr == b"mlops-stream generate: error: cannot write stdout: no space left on device\n"


@pytest.mark.parametrize(
    ("rows", "symbols"), [(1_000, 7), (70_003, 3), (5, 12)]
)  # crossing a block; fewer rows than symbols
def test_a_multi_symbol_feed_is_one_consistent_walk_per_symbol(rows: int, symbols: int) -> None:
    out = io.BytesIO()
    generate.write(out, rows, 9, symbols=symbols)
    lines = out.getvalue().decode().split("\n")
    assert lines[0] == "timestamp,symbol,open,high,low,close,volume_btc,volume_usd" and lines[-1] == ""
    records = [line.split(",") for line in lines[1:-1]]
    assert len(records) == rows
    names = generate.symbol_names(symbols)
    assert len(set(names)) == symbols
    start = datetime(2024, 1, 1)
    prev: dict[str, int] = {}
    for i, (stamp, symbol, o, h, lo, c, vb, _vu) in enumerate(records):
        # Minute by minute, one candle of every symbol, in the same order each minute.
        assert (stamp, symbol) == (
            (start + timedelta(minutes=i // symbols)).strftime("%Y-%m-%d %H:%M:%S"),
            names[i % symbols],
        )
        assert BTC.match(vb), vb
        cents = [int(p.replace(".", "")) for p in (o, h, lo, c)]
        assert cents[2] <= min(cents[0], cents[3]) and max(cents[0], cents[3]) <= cents[1]
        if symbol in prev:
            assert abs(cents[0] - prev[symbol]) <= 2  # each symbol opens at its own previous close
        prev[symbol] = cents[3]
    again = io.BytesIO()
    generate.write(again, rows, 9, symbols=symbols)
    assert again.getvalue() == out.getvalue()


def staged_files(folder: Path, name: str) -> list[Path]:
    """The files a run writes beside ``name`` before it is renamed into place (``.NAME.PID.RANDOM.tmp``)."""
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp")]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_generate_leaves_the_file_that_was_there(tmp_path: Path, sig: str) -> None:
    import signal
    import time

    (tmp_path / "g.csv").write_text("the file that was there\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "generate", "--rows", "20000000", "--output", "g.csv"],
        cwd=tmp_path, env=env_with_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size for p in staged_files(tmp_path, "g.csv")):  # well into writing
        assert time.monotonic() < deadline and proc.poll() is None, "generate never started writing"
        time.sleep(0.01)
    proc.send_signal(getattr(signal, sig))
    _out, err = proc.communicate(timeout=60)  # 20M rows would take minutes: it stopped
    assert proc.returncode == {"SIGINT": 130, "SIGTERM": -signal.SIGTERM, "SIGKILL": -signal.SIGKILL}[sig]
    assert b"Traceback" not in err
    assert (tmp_path / "g.csv").read_text() == "the file that was there\n"
    if sig != "SIGKILL":
        assert staged_files(tmp_path, "g.csv") == []
        return
    # kill -9 leaves its staged file; the next run to the same output removes it.
    assert staged_files(tmp_path, "g.csv")
    again = subprocess.run(
        [sys.executable, "-m", "stream", "generate", "--rows", "10", "--output", "g.csv"],
        cwd=tmp_path, env=env_with_repo(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert staged_files(tmp_path, "g.csv") == []
    assert len((tmp_path / "g.csv").read_text().splitlines()) == 11


def test_a_fifo_output_is_written_as_the_stream_it_is(run_main, tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    run = run_main(["generate", "--rows", "100", "--output", "out.fifo"])
    reader.join(timeout=60)
    assert run.code == 0, run.stderr
    want = io.BytesIO()
    generate.write(want, 100, 42)
    assert got == [want.getvalue()]
    assert fifo.exists() and staged_files(tmp_path, "out.fifo") == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_more_symbols_than_rows_keeps_no_walk_for_symbols_without_a_candle(tmp_path: Path) -> None:
    from conftest import RSS_PROBE

    proc = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, "generate", "--rows", "10", "--symbols", "1000000000", "--output", "g.csv"],
        cwd=tmp_path, env=env_with_repo(), capture_output=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    lines = (tmp_path / "g.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in lines[1:]] == [f"SYM{i:09d}" for i in range(10)]
    peak_mib = int(err.split("MAXRSS_KIB ")[1].split()[0]) / 1024
    assert peak_mib < 100, peak_mib  # a name, a price and a walk for each of a billion symbols: gigabytes


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--rows", "2000000000"], "--rows must be between 0 and 1,000,000,000"),
        (["--symbols", "-1"], "--symbols must be between 0 and 1,000,000,000"),
        (
            ["--rows", "1000000", "--symbols", "50000"],
            "--symbols 50,000 with --rows 1,000,000 gives candles to 50,000 symbols at once; at most 20,000 (each "
            "keeps its own random walk in memory)",
        ),
    ],
)
def test_sizes_past_the_limits_are_usage_errors_before_anything_is_written(
    run_main, tmp_path: Path, args: list[str], said: str
) -> None:
    run = run_main(["generate", *args, "--output", "g.csv"])
    assert run.code == 2
    assert run.stderr.endswith(f"mlops-stream generate: error: {said}\n")
    assert list(tmp_path.iterdir()) == []
