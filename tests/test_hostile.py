"""Contract point 12: hostile or careless input — over-long lines and fields, and a reader of stdout that goes away."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RSS_PROBE, env_with_repo, start_command, write

from stream.parsing.framing import MAX_LINE_BYTES
from stream.runs.job import EXIT_BROKEN_PIPE

LONG = f"line is longer than {MAX_LINE_BYTES} bytes"


@pytest.mark.parametrize(
    "long_line",
    [
        "t2," + "9" * (MAX_LINE_BYTES + 10),  # a huge close value
        't2,"' + "x" * 200_000 + '"',  # a quoted field beyond the csv module's own field limit
        "t2," + "5," * 40_000 + "5",  # a very wide row
    ],
    ids=["long-value", "long-quoted-field", "wide-row"],
)
def test_an_over_long_line_is_a_bad_row(run_main, tmp_path: Path, long_line: str) -> None:
    write(tmp_path / "in.csv", f"ts,close\nt1,1\n{long_line}\nt3,2\nt4,oops\nt5,3\n")
    failed = run_main(["--input", "in.csv"])
    assert failed.code == 1
    failed.assert_no_traceback()
    message = failed.doc()["error_message"]
    assert message.startswith(f"bad row at line 3: {LONG}: 't2,")
    assert len(message) < 300  # the offending text is shortened
    assert "field larger than field limit" not in message
    skipped = run_main(["--input", "in.csv", "--on-bad-row", "skip", "--window", "1"])
    assert skipped.code == 0
    doc = skipped.doc()
    assert (doc["rows_processed"], doc["rows_skipped"]) == (3, 2)
    # The line after the long one keeps its true line number.
    assert "skipped bad row at line 3: " + LONG in skipped.stderr
    assert "skipped bad row at line 5: bad close value" in skipped.stderr


@pytest.mark.parametrize("name", ["in.csv", "in.csv.gz", "-"])
def test_a_header_over_the_line_limit_is_said_to_be_one(run_main, tmp_path: Path, name: str) -> None:
    # Longer than any read: the line never comes whole, so it is skipped as it streams in, and nothing follows it.
    header = ("ts," * (MAX_LINE_BYTES // 2) + "close\n").encode()
    stdin = None
    if name == "-":
        stdin = header
    else:
        write(tmp_path / name, gzip.compress(header, mtime=0) if name.endswith(".gz") else header)
    run = run_main(["--input", name, "--on-bad-row", "skip"], stdin=stdin)
    assert run.code == 1
    run.assert_no_traceback()
    message = run.doc()["error_message"]
    where = f"{name} line 1" if name.endswith(".gz") else "line 1"  # an archive's lines name it
    assert message.startswith(
        f"the first line ({where}), which should be the header naming the columns, is longer than "
        f"{MAX_LINE_BYTES} bytes, the limit for one line: 'ts,ts,"
    )
    assert "empty" not in message and len(message) < 300
    # A header that does follow an over-long first line is read as before: the long line is a skipped bad row.
    write(tmp_path / "then.csv", header + b"ts,close\nt1,1\n")
    assert run_main(["--input", "then.csv", "--on-bad-row", "skip", "--window", "1"]).code == 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
@pytest.mark.parametrize("final_newline", [False, True])
def test_a_64_mib_line_through_a_pipe_is_skipped_in_bounded_memory(tmp_path: Path, final_newline: bool) -> None:
    proc = start_command(["--on-bad-row", "skip", "--window", "2"], tmp_path, code=RSS_PROBE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"close\n1\n2\n3\n")
    block = b"7" * (1 << 20)
    for _ in range(64):
        proc.stdin.write(block)
    if final_newline:
        proc.stdin.write(b"\n4\n5\n")
    proc.stdin.close()
    out = proc.stdout.read()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["rows_skipped"] == 1
    assert doc["rows_processed"] == (5 if final_newline else 3)
    assert f"skipped bad row at line 5: {LONG}" in err
    # A correctness guard, generous on purpose: holding the 64 MiB line at all would far exceed it.
    max_rss_mib = int(err.split("MAXRSS_KIB ")[1].split()[0]) / 1024
    print(f"peak RSS with a 64 MiB line: {max_rss_mib:.1f} MiB")
    assert max_rss_mib < 48, max_rss_mib


def test_an_endless_line_fails_fast_with_the_fail_policy(tmp_path: Path) -> None:
    proc = start_command([], tmp_path)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    written = 0
    try:
        proc.stdin.write(b"close\n1\n")
        block = b"x" * (1 << 16)
        while written < 256 << 20:  # the job must stop reading long before this
            proc.stdin.write(block)
            written += len(block)
    except BrokenPipeError:
        pass  # the job stopped reading: what should happen
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert written < 256 << 20
    assert b"Traceback" not in err
    assert json.loads(out)["error_message"].startswith(f"bad row at line 3: {LONG}")
    proc.stdout.close()
    proc.stderr.close()


# ---- the reader of stdout goes away ---------------------------------------------------------------------------------


@pytest.fixture
def big_input(tmp_path: Path) -> Path:
    from stream.generate import write as generate

    with open(tmp_path / "big.csv", "wb") as fh:
        generate(fh, 60_000, 1)
    return tmp_path / "big.csv"


def test_signals_into_head_end_quietly(tmp_path: Path, big_input: Path) -> None:
    script = (
        f'"{sys.executable}" -m stream --input big.csv --signals - --output m.json | head -1; '
        'echo "status=${PIPESTATUS[0]}" >&2'
    )
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, env=env_with_repo(), timeout=60)
    assert proc.stdout == b"row,timestamp,close,rolling_mean,signal\n"
    err = proc.stderr.decode()
    assert EXIT_BROKEN_PIPE == 141  # what shells report for `yes | head`, as documented in cli.py
    assert f"status={EXIT_BROKEN_PIPE}" in err
    assert "Traceback" not in err and "Error" not in err
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["status"] == "error" and "closed it before the input was fully processed" in doc["error_message"]


def test_stdout_closed_early_by_the_reading_process(tmp_path: Path, big_input: Path) -> None:
    args = ["--input", "big.csv", "--signals", "-", "--signals-format", "jsonl"]
    proc = start_command(args, tmp_path, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert json.loads(first)["row"] == 1
    assert err == b""
