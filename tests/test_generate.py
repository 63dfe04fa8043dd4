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
        assert datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") == start + timedelta(minutes=i)
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


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_generate_stops_on_ctrl_c_and_sigterm(tmp_path: Path, sig: str) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "generate", "--rows", "20000000", "--output", "g.csv"],
        cwd=tmp_path, env=env_with_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ((tmp_path / "g.csv").exists() and (tmp_path / "g.csv").stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(getattr(signal, sig))
    _out, err = proc.communicate(timeout=60)  # 20M rows would take minutes: it stopped
    assert proc.returncode == (130 if sig == "SIGINT" else -signal.SIGTERM)
    assert b"Traceback" not in err
