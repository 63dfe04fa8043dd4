"""--follow on a glob pattern of dated files, end to end: the command in a subprocess follows the files a writer starts
one after another, is killed with kill -9 mid-file and as the next file appears, and its signals are compared byte for
byte with a batch run over the same pattern; late files, changed files, headers, idle timeouts and keyed runs."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_follow import ENV, HEADER, WINDOW, append, finish, make_rows, signal_rows, start, text, wait_for

PATTERN = "feeds/BTCUSDT-1m-*.csv"
LIVE = ("--input", PATTERN, "--follow", "--signals", "sig.csv", "--output", "m.json", "--no-progress")
CKPT = (*LIVE, "--checkpoint", "ck.json")


def day(tmp: Path, n: int) -> Path:
    return tmp / "feeds" / f"BTCUSDT-1m-2024-01-{n:02d}.csv"


def log_of(tmp: Path) -> str:
    path = tmp / "run.log"
    return path.read_text() if path.exists() else ""


def batch(tmp: Path, *args: str, inputs: tuple[str, ...] = ("--input", PATTERN)) -> tuple[bytes, dict]:
    """The signals and metrics of a batch run over ``inputs`` (by default the same pattern)."""
    cmd = [sys.executable, "-m", "stream", *inputs, "--window", str(WINDOW), "--signals", "batch.csv"]
    run = subprocess.run([*cmd, "--output", "batch.json", "--quiet", *args], cwd=tmp, env=ENV, capture_output=True)
    assert run.returncode == 0, run.stderr
    doc = json.loads((tmp / "batch.json").read_text())
    doc.pop("latency_ms")
    return (tmp / "batch.csv").read_bytes(), doc


def assert_same_as_batch(tmp: Path, *args: str, inputs: tuple[str, ...] = ("--input", PATTERN)) -> None:
    signals, doc = batch(tmp, *args, inputs=inputs)
    assert (tmp / "sig.csv").read_bytes() == signals
    live = json.loads((tmp / "m.json").read_text())
    live.pop("latency_ms")
    assert live == doc


def kill_9(p: subprocess.Popen) -> None:
    p.kill()
    p.communicate(timeout=20)


def checkpoint_in(tmp: Path, n: int) -> bool:
    """Whether the checkpoint names day ``n``'s file (it is replaced atomically: never half written)."""
    try:
        doc = json.loads((tmp / "ck.json").read_bytes())
    except FileNotFoundError:
        return False
    return doc["input"] is not None and doc["input"]["path"] == str(day(tmp, n))


def write_day(tmp: Path, n: int, rows: list[tuple[str, str]], rng: random.Random, header: str = HEADER) -> None:
    """Start day ``n``'s file with its header and append ``rows`` in bursts split at random points."""
    append(day(tmp, n), header, rng)
    at = 0
    while at < len(rows):
        k = rng.randint(1, 15)
        append(day(tmp, n), text(rows[at : at + k]), rng)
        at += k


@pytest.fixture
def feeds(tmp_path: Path) -> Path:
    (tmp_path / "feeds").mkdir()
    return tmp_path


def test_kill_9_in_the_middle_of_the_second_file_gives_the_batch_runs_signals(feeds: Path) -> None:
    tmp, rng = feeds, random.Random(1)
    one, two, three = make_rows(60, 1), make_rows(80, 2, 61), make_rows(70, 3, 141)
    write_day(tmp, 1, one[:20], rng)
    p = start(tmp, *CKPT)
    try:
        append(day(tmp, 1), text(one[20:]), rng)
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 60, "the first day's rows")
        write_day(tmp, 2, two[:30], rng)  # the next day's file begins
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 90 and checkpoint_in(tmp, 2), "a checkpoint in day 2")
        append(day(tmp, 2), text(two[30:50]), rng)  # rows after the checkpoint: a restart cuts their signals back
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 110, "more of day 2")
    finally:
        kill_9(p)
    append(day(tmp, 2), text(two[50:65]), rng)  # written while no run follows
    p = start(tmp, *CKPT)
    try:
        append(day(tmp, 2), text(two[65:]), rng)
        write_day(tmp, 3, three, rng)
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 210, "every row of the three days")
    finally:
        code, _out, err = finish(p, signal.SIGTERM)
    assert code == 0, err
    assert_same_as_batch(tmp)
    log = log_of(tmp)
    assert log.count("moved on to the next file") == 2 and "resuming from the checkpoint" in log


@pytest.mark.parametrize("moment", ["is there", "moved on to the next file"])
def test_kill_9_as_the_next_file_appears_reads_every_file_once(feeds: Path, moment: str) -> None:
    tmp, rng = feeds, random.Random(2)
    one, two, three = make_rows(40, 4), make_rows(40, 5, 41), make_rows(40, 6, 81)
    write_day(tmp, 1, one, rng)
    p = start(tmp, *CKPT)
    try:
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 40 and checkpoint_in(tmp, 1), "day 1 and its checkpoint")
        append(day(tmp, 1), "41,100.3")  # a last line without its newline: complete once the next file begins
        write_day(tmp, 2, two, rng)
        wait_for(lambda: moment in log_of(tmp), f"the log line '{moment}'", timeout=30)
    finally:
        kill_9(p)
    write_day(tmp, 3, three, rng)  # and another file while no run follows: nothing between is skipped or read twice
    code, _out, err = finish(start(tmp, *CKPT, "--idle-timeout", "1.5"))
    assert code == 0, err
    assert signal_rows(tmp / "sig.csv") == 121
    assert_same_as_batch(tmp)


def test_a_late_file_and_a_file_changed_after_the_run_moved_on_are_reported_not_read(feeds: Path) -> None:
    pytest.importorskip("prometheus_client", reason="the serve extra (prometheus_client) is missing")
    from test_serve import families, port_from_log, scrape

    tmp, rng = feeds, random.Random(3)
    two, three = make_rows(30, 7), make_rows(30, 8, 31)
    write_day(tmp, 2, two, rng)
    p = start(tmp, *LIVE, "--metrics-port", "0")
    try:
        port = port_from_log(tmp / "run.log", p)
        write_day(tmp, 3, three, rng)
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 60, "days 2 and 3")
        write_day(tmp, 1, make_rows(10, 9), rng)  # day 1 comes late: the run is past it
        wait_for(lambda: "came late and is not read" in log_of(tmp), "the late file's warning")
        append(day(tmp, 2), text(make_rows(5, 10, 100)))  # day 2 grows after the run moved on from it
        wait_for(lambda: "after the run moved on from it" in log_of(tmp), "the changed file's warning")
        m = families(scrape(port)[1])
        skipped = {r: m[f"mlops_stream_files_skipped_total{{reason={r}}}"] for r in ("late", "changed", "replaced")}
        assert skipped == {"late": 1, "changed": 1, "replaced": 0}
    finally:
        code, _out, err = finish(p, signal.SIGTERM)
    assert code == 0, err
    log = log_of(tmp)
    assert f"input file {day(tmp, 1)} sorts before {day(tmp, 3)}, the file being read: it came late" in log
    assert log.count("came late") == 1 and log.count("after the run moved on from it") == 1  # each said once
    assert "rows were lost: 1 late file not read; 1 file changed after the run moved on, not read" in log
    (tmp / "two.csv").write_text(HEADER + text(two))  # what was read: days 2 and 3 as they were
    (tmp / "three.csv").write_text(HEADER + text(three))
    assert_same_as_batch(tmp, inputs=("--input", "two.csv", "--input", "three.csv"))


def test_a_file_with_another_header_ends_the_run_naming_both(feeds: Path) -> None:
    tmp, rng = feeds, random.Random(4)
    write_day(tmp, 1, make_rows(10, 11), rng)
    p = start(tmp, *LIVE)
    try:
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 10, "day 1")
        write_day(tmp, 2, make_rows(10, 12, 11), rng, header="time,price\n")
    finally:
        code, out, err = finish(p)  # no stop: the header ends it
    assert code == 1 and b"Traceback" not in err
    message = json.loads(out)["error_message"]
    assert "differs from the first one" in message and "time,price" in message and "timestamp,close" in message
    assert str(day(tmp, 2)) in message or "BTCUSDT-1m-2024-01-02.csv" in message


def test_the_idle_timeout_counts_time_without_data_in_any_file(feeds: Path) -> None:
    tmp, rng = feeds, random.Random(5)
    one, two = make_rows(20, 13), make_rows(20, 14, 21)
    write_day(tmp, 1, one, rng)
    write_day(tmp, 2, two, rng)
    # Shorter than the rotation grace: day 2's rows wait for day 1 to go quiet, and are read before the run stops.
    code, _out, err = finish(start(tmp, *LIVE, "--idle-timeout", "0.3"))
    assert code == 0, err
    assert_same_as_batch(tmp)
    assert "stopping: no new data for 0.3 s (--idle-timeout)" in log_of(tmp)
    # With no file at all yet, the run waits for the first one and then stops after the timeout without data.
    (tmp / "sig.csv").unlink()
    for n in (1, 2):
        day(tmp, n).unlink()
    p = start(tmp, *LIVE, "--idle-timeout", "4")
    wait_for(lambda: "no file matches the input pattern" in log_of(tmp), "the wait for a first file")
    write_day(tmp, 1, one, rng)
    code, _out, err = finish(p)
    assert code == 0, err
    assert_same_as_batch(tmp)


def test_a_keyed_run_killed_mid_file_continues_exactly_once(feeds: Path) -> None:
    tmp, rng = feeds, random.Random(6)
    header = "timestamp,symbol,close\n"

    def keyed(rows: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
        pick = random.Random(seed)
        return [(f"{t},{pick.choice(['BTC', 'ETH', 'SOL'])}", c) for t, c in rows]

    one, two, three = keyed(make_rows(50, 15), 1), keyed(make_rows(50, 16, 51), 2), keyed(make_rows(50, 17, 101), 3)
    write_day(tmp, 1, one, rng, header)
    write_day(tmp, 2, two[:20], rng, header)
    p = start(tmp, *CKPT, "--key", "symbol")
    try:
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 70 and checkpoint_in(tmp, 2), "a checkpoint in day 2")
        append(day(tmp, 2), text(two[20:35]), rng)
        wait_for(lambda: signal_rows(tmp / "sig.csv") == 85, "more of day 2")
    finally:
        kill_9(p)
    append(day(tmp, 2), text(two[35:]), rng)
    write_day(tmp, 3, three, rng, header)
    code, _out, err = finish(start(tmp, *CKPT, "--key", "symbol", "--idle-timeout", "1.5"))
    assert code == 0, err
    assert_same_as_batch(tmp, "--key", "symbol")


def test_a_single_file_checkpoint_continues_as_the_pattern(feeds: Path) -> None:
    tmp, rng = feeds, random.Random(7)
    one, two = make_rows(30, 18), make_rows(30, 19, 31)
    write_day(tmp, 1, one[:20], rng)
    alone = ("--input", str(day(tmp, 1).relative_to(tmp)), *CKPT[2:])
    code, _out, err = finish(start(tmp, *alone, "--idle-timeout", "0.3"))
    assert code == 0, err
    append(day(tmp, 1), text(one[20:]), rng)
    write_day(tmp, 2, two, rng)
    code, _out, err = finish(start(tmp, *CKPT, "--idle-timeout", "1.5"))
    assert code == 0, err
    assert_same_as_batch(tmp)
    assert "continuing the files matching" in log_of(tmp)
    # A checkpoint of the pattern is not one of a single file.
    code, out, _err = finish(start(tmp, *alone, "--idle-timeout", "0.3"))
    assert code == 1 and "it was written for the files matching" in json.loads(out)["error_message"]


def test_a_checkpoint_whose_file_was_archived_goes_on_with_the_next_file(feeds: Path) -> None:
    tmp, rng = feeds, random.Random(8)
    one, two = make_rows(30, 21), make_rows(30, 22, 31)
    write_day(tmp, 1, one, rng)
    code, _out, err = finish(start(tmp, *CKPT, "--idle-timeout", "0.3"))
    assert code == 0, err
    os.rename(day(tmp, 1), tmp / "archived.csv")  # out of its folder, as an archiver would
    code, out, _err = finish(start(tmp, *CKPT, "--idle-timeout", "0.3"))
    assert code == 1 and "which is gone" in json.loads(out)["error_message"]  # no next file yet: nothing to go on to
    write_day(tmp, 2, two, rng)
    code, _out, err = finish(start(tmp, *CKPT, "--idle-timeout", "0.3"))
    assert code == 0, err
    assert "is gone (removed, or moved out of its folder); going on with the next file" in log_of(tmp)
    os.rename(tmp / "archived.csv", tmp / "one.csv")
    os.rename(day(tmp, 2), tmp / "two.csv")
    assert_same_as_batch(tmp, inputs=("--input", "one.csv", "--input", "two.csv"))


def test_usage_errors_name_the_pattern(feeds: Path) -> None:
    tmp = feeds
    day(tmp, 1).write_text(HEADER + text(make_rows(3, 20)))
    code, _out, err = finish(start(tmp, *LIVE[:3], "--input", "other.csv"))
    assert code == 2 and b"--follow follows one input" in err and b"pattern of dated files" in err
    code, _out, err = finish(start(tmp, *LIVE[:3], "--signals", "feeds/BTCUSDT-1m-signals.csv"))
    assert code == 2 and b"matches the followed pattern" in err
    assert not (tmp / "feeds" / "BTCUSDT-1m-signals.csv").exists()
    code, out, _err = finish(start(tmp, "--input", "nowhere/*.csv", "--follow", "--idle-timeout", "0.3"))
    assert code == 1 and "nowhere" in json.loads(out)["error_message"]


def test_a_pattern_that_never_matches_is_reported(feeds: Path) -> None:
    code, out, err = finish(start(feeds, *LIVE, "--idle-timeout", "0.3"))
    assert code == 1, err
    assert "no file matches the input pattern" in json.loads(out)["error_message"]
    assert re.search(r"no file matches the input pattern .*; waiting for one to appear", log_of(feeds))
    assert os.path.isdir(feeds / "feeds")
