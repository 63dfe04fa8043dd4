"""Live mode end to end: the command in a subprocess follows a file a separate writer appends to, rotates and
truncates; it is stopped by signals, idle timeouts and kill -9; every result is compared with an exact reference."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import http_server, on_terminal

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("NO_COLOR", None)
WINDOW = 4
HEADER = "timestamp,close\n"
# Few distinct prices, written in several ways, so exact ties with the mean are frequent.
PRICES = ["100.1", "100.10", "100.2", "99.9", "100.15", "1.001e2", "100", "100.05", "99.95"]

Row = tuple[str, str]


def make_rows(n: int, seed: int, start: int = 1) -> list[Row]:
    rng = random.Random(seed)
    return [(str(i), rng.choice(PRICES)) for i in range(start, start + n)]


def text(rows: list[Row]) -> str:
    return "".join(f"{t},{c}\n" for t, c in rows)


def expected(rows: list[Row], window: int = WINDOW) -> tuple[str, dict]:
    """The signals file and metrics of one uninterrupted run over ``rows``, computed with Fractions."""
    lines = ["row,timestamp,close,rolling_mean,signal"]
    held: deque[Fraction] = deque(maxlen=window)
    hits = 0
    for i, (stamp, close) in enumerate(rows, 1):
        value = Fraction(close)
        held.append(value)
        if len(held) == window:
            mean = sum(held) / window
            sig = int(value > mean)
            lines.append(f"{i},{stamp},{close},{float(mean)!r},{sig}")
        else:
            sig = 0
            lines.append(f"{i},{stamp},{close},,0")
        hits += sig
    doc = {
        "rows_processed": len(rows),
        "metric": "signal_rate",
        "value": float(round(Fraction(hits, len(rows)), 4)),
        "status": "success",
    }
    return "\n".join(lines) + "\n", doc


def append(path: Path, data: str, rng: random.Random | None = None, pause: float = 0.0) -> None:
    """Append like a writer process: in pieces split at random points, so lines arrive in parts."""
    raw = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, 6))) if rng and len(raw) > 1 else []
        at = 0
        for cut in [*cuts, len(raw)]:
            os.write(fd, raw[at:cut])
            at = cut
            if pause:
                time.sleep(pause)
    finally:
        os.close(fd)


def start(
    cwd: Path,
    *args: str,
    stdin: int = subprocess.DEVNULL,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
    env: dict | None = None,
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stream", "--window", str(WINDOW), "--log-file", "run.log", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env or ENV, stdin=stdin, stdout=stdout, stderr=stderr)


def finish(p: subprocess.Popen, sig: int | None = None) -> tuple[int, bytes, bytes]:
    if sig is not None:
        p.send_signal(sig)
        if p.stdin is not None:
            p.wait(timeout=20)  # before communicate() closes stdin, which would end a piped input too
    out, err = p.communicate(timeout=20)  # a hang fails the test instead of blocking the suite
    return p.returncode, out, err


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def signal_rows(path: Path) -> int:
    try:
        return max(path.read_bytes().count(b"\n") - 1, 0)
    except FileNotFoundError:
        return 0


def metrics_of(path: Path) -> dict:
    doc = json.loads(path.read_text())
    doc.pop("latency_ms")
    return doc


def check(tmp: Path, rows: list[Row], signals: str = "sig.csv", output: str = "m.json") -> None:
    want_signals, want_doc = expected(rows)
    assert (tmp / signals).read_text() == want_signals
    doc = metrics_of(tmp / output)
    assert doc == {"version": "v1", **want_doc, "seed": 42}


LIVE = ("--input", "live.csv", "--follow", "--signals", "sig.csv", "--output", "m.json")


# ---- stdin is incremental --------------------------------------------------------------------------------------


def test_stdin_rows_are_signalled_before_the_input_ends(tmp_path: Path) -> None:
    rows = make_rows(6, 1)
    p = start(tmp_path, "--signals", "-", stdin=subprocess.PIPE)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write((HEADER + text(rows[:5])).encode())
    p.stdin.flush()
    got = [p.stdout.readline() for _ in range(6)]  # header + 5 rows, while stdin is still open
    want, _ = expected(rows)
    assert b"".join(got).decode() == "".join(want.splitlines(keepends=True)[:6])
    p.stdin.write(text(rows[5:]).encode())
    p.stdin.close()
    rest = p.stdout.read()
    assert p.wait(timeout=20) == 0
    assert b"".join(got).decode() + rest.decode() == want


def test_follow_stdin_stops_on_sigterm_and_at_end_of_pipe(tmp_path: Path) -> None:
    rows = make_rows(30, 2)
    p = start(tmp_path, "--follow", "--signals", "sig.csv", "--output", "m.json", stdin=subprocess.PIPE)
    assert p.stdin is not None
    p.stdin.write((HEADER + text(rows)).encode() + b"31,10")  # a partial last line is held
    p.stdin.flush()
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 30, "30 signal rows")
    code, _out, err = finish(p, signal.SIGTERM)
    assert code == 0, err
    check(tmp_path, rows)
    log = (tmp_path / "run.log").read_text()
    assert "stopping: SIGTERM" in log
    assert "line 32 has no newline yet" in log and "not processed" in log

    # At the end of the pipe the input is over: its last line is complete without a newline.
    p = start(tmp_path, "--follow", "--signals", "sig.csv", "--output", "m.json", stdin=subprocess.PIPE)
    code, _out, err = finish_with_input(p, (HEADER + text(rows)).encode() + b"31,100.2")
    assert code == 0, err
    check(tmp_path, [*rows, ("31", "100.2")])


def test_a_named_fifo_waits_for_its_writer_and_a_stop_ends_the_wait(tmp_path: Path) -> None:
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    # No writer ever comes: SIGTERM still ends the wait (opening a FIFO blocks until a writer appears).
    p = start(tmp_path, "--input", "feed", "--follow", "--output", "m.json")
    log = tmp_path / "run.log"
    wait_for(lambda: log.exists() and "following" in log.read_text(), "the follow to start")
    code, _out, err = finish(p, signal.SIGTERM)  # a wait that ignored the stop would time out here
    assert code == 1 and b"Traceback" not in err
    assert "is empty" in json.loads((tmp_path / "m.json").read_text())["error_message"]
    # A writer comes, writes, and goes: its rows are the input, and its end ends the run.
    rows = make_rows(25, 5)
    p = start(tmp_path, "--input", "feed", "--follow", "--signals", "sig.csv", "--output", "m.json")
    time.sleep(0.3)
    with open(fifo, "w") as writer:
        writer.write(HEADER + text(rows))
    code, _out, err = finish(p)
    assert code == 0, err
    check(tmp_path, rows)
    assert "stopping: end of input" in (tmp_path / "run.log").read_text()


def test_temporary_files_of_a_run_killed_mid_write_are_removed_at_the_next_start(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(10, 8)))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)  # a process that has ended: what kill -9 leaves behind is named with such a pid
    stale = [f".m.json.{dead}.3.tmp", f".c.ckpt.{dead}.0.tmp", f".m.json.{dead}.0.probe"]
    kept = [f".m.json.{os.getpid()}.0.tmp", ".m.json.notes.txt", "m.json.1.tmp"]  # being written; not ours by name
    for name in stale + kept:
        (tmp_path / name).write_text("{")
    import fcntl

    writing = os.open(tmp_path / kept[0], os.O_RDONLY)
    fcntl.flock(writing, fcntl.LOCK_EX)  # as its writer holds it while it lives
    p = start(tmp_path, "--input", "live.csv", "--follow", "--output", "m.json", "--checkpoint", "c.ckpt",
              "--idle-timeout", "0.5")  # fmt: skip
    code, _out, err = finish(p)
    os.close(writing)
    assert code == 0, err
    assert not [n for n in stale if (tmp_path / n).exists()]
    assert all((tmp_path / n).exists() for n in kept)
    log = (tmp_path / "run.log").read_text()
    assert all(f"removed {n}, a temporary file an interrupted run left" in log for n in stale)


def test_a_resumed_run_logs_its_own_rate_beside_the_totals(tmp_path: Path) -> None:
    rows = make_rows(30, 9)
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(rows[:20]))
    ckpt = ("--input", "live.csv", "--follow", "--output", "m.json", "--checkpoint", "c.ckpt", "--idle-timeout", "0.5")
    assert finish(start(tmp_path, *ckpt))[0] == 0
    append(live, text(rows[20:]))
    (tmp_path / "run.log").unlink()
    assert finish(start(tmp_path, *ckpt))[0] == 0
    line = next(ln for ln in (tmp_path / "run.log").read_text().splitlines() if " processed " in ln)
    m = re.search(
        r"processed 30 rows .*, 20 of them before a restart from the checkpoint, in ([\d.]+) s \((\d+) rows/s", line
    )
    assert m, line
    assert abs(int(m.group(2)) - 10 / float(m.group(1))) <= 1  # this run's 10 rows, not all 30


def finish_with_input(p: subprocess.Popen, data: bytes) -> tuple[int, bytes, bytes]:
    out, err = p.communicate(data, timeout=20)
    return p.returncode, out, err


def test_a_closed_signals_pipe_ends_a_waiting_run(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(20, 26)))
    p = start(tmp_path, "--input", "live.csv", "--follow", "--signals", "-")
    assert p.stdout is not None
    assert p.stdout.readline().startswith(b"row,")
    p.stdout.close()  # like `| head -1`: the reader goes away while the run waits for rows that may never come
    assert p.wait(timeout=20) == 141
    assert b"Traceback" not in p.stderr.read()  # type: ignore[union-attr]
    assert "closed it before the input was fully processed" in (tmp_path / "run.log").read_text()


def test_a_file_that_never_appears_is_reported_as_missing(tmp_path: Path) -> None:
    assert "does not exist" in _refusal(tmp_path, "--input", "nothere.csv", "--follow", "--idle-timeout", "0.3")


# ---- following a file ------------------------------------------------------------------------------------------


def test_bursts_with_lines_split_across_writes(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text("")
    rows = make_rows(400, 3)
    p = start(tmp_path, *LIVE)
    rng = random.Random(3)
    append(live, HEADER, rng, pause=0.01)
    at = 0
    while at < len(rows):
        n = rng.randint(1, 60)
        append(live, text(rows[at : at + n]), rng, pause=rng.choice([0, 0.002, 0.01]))
        at += n
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == len(rows), "every row's signal")
    code, _out, err = finish(p, signal.SIGTERM)
    assert code == 0, err
    assert b"Traceback" not in err
    check(tmp_path, rows)


def test_sigint_stops_with_success_and_running_metrics_meanwhile(tmp_path: Path) -> None:
    # (SIGTERM ends most other tests here.)
    sig = signal.SIGINT
    live = tmp_path / "live.csv"
    rows = make_rows(50, 4)
    live.write_text(HEADER + text(rows[:20]))
    p = start(tmp_path, *LIVE)

    def running(n: int) -> bool:
        try:
            doc = json.loads((tmp_path / "m.json").read_text())
        except (FileNotFoundError, ValueError):
            return False
        assert doc["status"] == "running", doc  # never a half-written document, never "success" while following
        return doc["rows_processed"] == n

    wait_for(lambda: running(20), "a running metrics document with 20 rows")
    append(live, text(rows[20:]), random.Random(4))
    wait_for(lambda: running(50), "a running metrics document with 50 rows")
    code, out, err = finish(p, sig)
    assert code == 0, err
    check(tmp_path, rows)
    assert json.loads(out)["status"] == "success"
    assert f"stopping: {signal.Signals(sig).name}" in (tmp_path / "run.log").read_text()


def test_idle_timeout_ends_the_run(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    rows = make_rows(12, 5)
    live.write_text(HEADER + text(rows[:6]))
    p = start(tmp_path, *LIVE, "--idle-timeout", "1")
    time.sleep(0.3)
    append(live, text(rows[6:]), random.Random(5))
    code, _out, err = finish(p)
    assert code == 0, err
    check(tmp_path, rows)
    assert "no new data for 1 s (--idle-timeout)" in (tmp_path / "run.log").read_text()


def test_a_file_that_appears_later_is_followed(tmp_path: Path) -> None:
    rows = make_rows(10, 6)
    p = start(tmp_path, *LIVE, "--idle-timeout", "1.5")
    wait_for(lambda: (tmp_path / "run.log").exists() and "waiting for it" in (tmp_path / "run.log").read_text(), "wait")
    append(tmp_path / "live.csv", HEADER + text(rows), random.Random(6))
    code, _out, err = finish(p)
    assert code == 0, err
    check(tmp_path, rows)


def test_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    a, b, c, d = make_rows(10, 7), make_rows(5, 8, 11), make_rows(5, 9, 16), make_rows(5, 10, 21)
    live.write_text(HEADER + text(a))
    p = start(tmp_path, *LIVE)
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 10, "the first file's rows")
    old = os.open(live, os.O_WRONLY | os.O_APPEND)
    os.rename(live, tmp_path / "live.csv.1")
    live.write_text(HEADER + text(c))  # the new file, with its header, while the old handle still writes
    for line in text(b).splitlines(keepends=True):
        os.write(old, line.encode())
        time.sleep(0.04)
    os.close(old)
    append(live, text(d), random.Random(10))
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 25, "all rows of both files")
    code, _out, err = finish(p, signal.SIGTERM)
    assert code == 0, err
    check(tmp_path, a + b + c + d)
    log = (tmp_path / "run.log").read_text()
    assert "now names another file" in log and "switched to the new file" in log


def test_truncation_continues_from_the_start(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    a, b, c = make_rows(30, 11), make_rows(10, 12, 31), make_rows(50, 13, 41)
    live.write_text(HEADER + text(a))
    p = start(tmp_path, *LIVE)
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 30, "the rows before the truncation")
    with open(live, "r+b") as fh:  # copytruncate: the file is emptied in place, then written again
        fh.truncate(0)
    wait_for(lambda: "truncated" in (tmp_path / "run.log").read_text(), "the truncation to be noticed")
    append(live, HEADER + text(b), random.Random(12))
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 40, "the rows after the truncation")
    # Rewritten past our position in one go, with other bytes before it: noticed by the bytes before our position.
    live.write_text(HEADER + text(c))
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 90, "the rewritten file's rows")
    code, _out, err = finish(p, signal.SIGTERM)
    assert code == 0, err
    check(tmp_path, a + b + c)


def test_a_different_header_in_a_new_file_is_an_error_that_says_so(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(make_rows(5, 14)))
    p = start(tmp_path, *LIVE)
    wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 5, "the first rows")
    live.write_text("time,price,close\n1,2,3\n")
    code, out, err = finish(p)
    assert code == 1
    doc = json.loads(out)
    assert doc["status"] == "error"
    assert "differs from the first one" in doc["error_message"] and "time,price,close" in doc["error_message"]
    assert b"Traceback" not in err


# ---- checkpoints -----------------------------------------------------------------------------------------------

CKPT = (*LIVE, "--checkpoint", "ck.json")


def write_in_bursts(
    path: Path, lines: list[str], rng: random.Random, pause: float
) -> tuple[threading.Thread, threading.Event]:
    """A writer thread appending ``lines`` in bursts of 5-40, each split at random points; the event is set when
    it is done."""
    done = threading.Event()

    def writer() -> None:
        at = 0
        while at < len(lines):
            n = rng.randint(5, 40)
            append(path, "".join(lines[at : at + n]), rng)
            at += n
            time.sleep(pause)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    return thread, done


def kill_and_restart(
    tmp: Path, args: tuple[str, ...], done: threading.Event, rng: random.Random, min_kills: int, short_every: int
) -> None:
    """Start the command and kill -9 it while rows flow, at times before and after a first checkpoint (every
    ``short_every``-th run is killed early), until the writer is done and restarts from checkpoints have happened (a
    loaded machine starts slowly, so they are counted rather than assumed)."""
    kills = 0

    def resumes() -> int:
        return (tmp / "run.log").read_text().count("resuming from the checkpoint")

    while (not done.is_set() or kills < min_kills or resumes() < 2) and kills < 12:
        p = start(tmp, *args)
        time.sleep(rng.uniform(1.2, 2.0) if kills % short_every else rng.uniform(0.2, 0.5))
        p.kill()
        p.communicate(timeout=20)
        kills += 1
    assert resumes() >= 2, "the test should exercise restarts from checkpoints"


def test_repeated_kill_9_and_restart_give_exactly_once_results(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    rows = make_rows(3000, 15)
    live.write_text(HEADER)
    thread, done = write_in_bursts(live, [text([row]) for row in rows], random.Random(15), 0.03)
    try:
        kill_and_restart(tmp_path, CKPT, done, random.Random(16), min_kills=4, short_every=3)
    finally:
        thread.join()
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "1"))
    assert code == 0, err
    check(tmp_path, rows)


def test_stop_and_restart_holds_a_partial_line_for_the_next_run(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    rows = make_rows(8, 17)
    live.write_text(HEADER + text(rows) + "9,10")
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "0.5"))
    assert code == 0, err
    check(tmp_path, rows)
    assert "line 10 has no newline yet" in (tmp_path / "run.log").read_text()
    append(live, "0.25\n10,100.3\n")
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "0.5"))
    assert code == 0, err
    check(tmp_path, [*rows, ("9", "100.25"), ("10", "100.3")])


def test_rotation_while_not_running_is_picked_up_from_the_old_file(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    a, b, c = make_rows(10, 18), make_rows(6, 19, 11), make_rows(7, 20, 17)
    live.write_text(HEADER + text(a))
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "0.5"))
    assert code == 0, err
    append(live, text(b))
    os.rename(live, tmp_path / "live.csv.1")
    live.write_text(HEADER + text(c))
    # An idle timeout shorter than the wait for the old file to go quiet still reads the new file.
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "0.3"))
    assert code == 0, err
    check(tmp_path, a + b + c)
    assert "replaced while mlops-stream was not running" in (tmp_path / "run.log").read_text()


def _refusal(tmp: Path, *args: str) -> str:
    code, out, err = finish(start(tmp, *args))
    assert code == 1, err
    assert b"Traceback" not in err
    doc = json.loads(out)
    assert doc["status"] == "error"
    return doc["error_message"]


def test_a_checkpoint_that_does_not_match_is_refused(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(make_rows(10, 21)))
    (tmp_path / "other.csv").write_text(HEADER + text(make_rows(10, 21)))
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "0.3"))
    assert code == 0, err
    before = (tmp_path / "ck.json").read_bytes()

    other = ("--input", "other.csv", "--follow", "--signals", "sig.csv", "--checkpoint", "ck.json")
    assert "written for the input" in _refusal(tmp_path, *other) and "other.csv" in _refusal(tmp_path, *other)
    message = _refusal(tmp_path, *CKPT, "--window", "7")
    assert "window 4" in message and "window 7" in message
    (tmp_path / "cfg.yaml").write_text("seed: 42\nwindow: 4\nversion: v1\ncolumn: price\n")
    assert "column 'close'" in _refusal(tmp_path, *CKPT, "--config", "cfg.yaml")
    assert "--signals" in _refusal(tmp_path, *LIVE[:3], "--checkpoint", "ck.json")
    assert (tmp_path / "ck.json").read_bytes() == before  # a refused checkpoint is left as it was
    signals = tmp_path / "sig.csv"
    whole = signals.read_bytes()
    signals.write_bytes(whole[:-5])  # rows the checkpoint counts as delivered are gone
    assert "shorter than the" in _refusal(tmp_path, *CKPT)
    signals.write_bytes(whole)

    # The same name, but another file, and the old one is gone.
    (tmp_path / "new.csv").write_text(HEADER + text(make_rows(10, 22)))
    os.replace(tmp_path / "new.csv", live)
    assert "is now another file" in _refusal(tmp_path, *CKPT)
    # Another file that got the old one's inode number: its first bytes tell them apart.
    (tmp_path / "ck.json").unlink()
    assert finish(start(tmp_path, *CKPT, "--idle-timeout", "0.3"))[0] == 0
    inode = live.stat().st_ino
    live.unlink()
    live.write_text(HEADER + text(make_rows(10, 23)))
    if live.stat().st_ino == inode:
        assert "rewritten while mlops-stream was not running" in _refusal(tmp_path, *CKPT)
    # The same file rewritten in place while the command was not running.
    (tmp_path / "ck.json").unlink()
    assert finish(start(tmp_path, *CKPT, "--idle-timeout", "0.3"))[0] == 0
    with open(live, "r+b") as fh:
        fh.seek(len(HEADER))
        fh.write(b"9")
    assert "does not begin with the same" in _refusal(tmp_path, *CKPT)
    # A file that is not a checkpoint.
    (tmp_path / "ck.json").write_text("{}")
    assert "not a checkpoint" in _refusal(tmp_path, *CKPT)


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER)
    for args in (("--checkpoint", "ck.json"), ("--idle-timeout", "1"), ("--follow", "--idle-timeout", "0")):
        code, _out, err = finish(start(tmp_path, "--input", "live.csv", *args))
        assert code == 2, (args, err)
    code, _out, err = finish(start(tmp_path, "--input", "-", "--follow", "--checkpoint", "ck.json"))
    assert code == 2 and b"--checkpoint needs --input PATH" in err


# ---- the display -----------------------------------------------------------------------------------------------

ESC = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
COLOR = re.compile(rb"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|9[0-7]|38;)")


def test_no_escape_codes_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(make_rows(10, 23)) + "11,oops\n")
    code, _out, err = finish(start(tmp_path, *LIVE, "--on-bad-row", "skip", "--idle-timeout", "1"))
    assert code == 0
    assert b"skipped bad row at line 12" in err  # stderr does carry the warning...
    assert b"\x1b" not in err  # ...but nothing meant for a terminal


def _on_pty(
    tmp: Path,
    *args: str,
    env: dict | None = None,
    stdout_too: bool = False,
    watch: Callable[[bytes], object] | None = None,
) -> tuple[int, bytes]:
    cmd = ("--window", str(WINDOW), "--log-file", "run.log", *args)
    return on_terminal(cmd, tmp, {**ENV, **(env or {})}, stdout_too=stdout_too, watch=watch)


def test_live_display_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(10, 24)))
    code, seen = _on_pty(tmp_path, *LIVE, "--idle-timeout", "1.2")
    assert code == 0
    screen = ESC.sub(b"", seen)
    assert b"following live.csv" in screen and b"waiting for new rows" in screen
    assert b"rows 10" in screen and b"signal rate" in screen and b"last close" in screen
    assert COLOR.search(seen), "colours on a terminal"
    check(tmp_path, make_rows(10, 24))  # the display changes nothing in the results


def test_no_color_and_no_progress_are_respected(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(10, 25)) + "11,oops\n")
    args = (*LIVE, "--idle-timeout", "1.2", "--on-bad-row", "skip")
    code, seen = _on_pty(tmp_path, *args, env={"NO_COLOR": "1"})
    assert code == 0
    assert b"following live.csv" in ESC.sub(b"", seen)
    assert not COLOR.search(seen)
    code, seen = _on_pty(tmp_path, *args, "--no-progress")
    assert code == 0
    assert b"skipped bad row at line 12" in seen  # warnings still reach the terminal...
    assert b"\x1b" not in seen and b"following" not in seen  # ...the display does not


def test_no_display_when_signals_go_to_the_same_terminal(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(10, 27)))
    code, seen = _on_pty(
        tmp_path, "--input", "live.csv", "--follow", "--idle-timeout", "1", "--signals", "-", stdout_too=True
    )
    assert code == 0
    assert b"\x1b" not in seen and b"following" not in seen  # redraws would tear up the rows
    assert seen.replace(b"\r\n", b"\n").decode() == expected(make_rows(10, 27))[0]


def test_batch_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="fsspec's HTTP client is not installed (the test extra has it)")
    # A web address whose server holds the second half of the file back until the bar has shown: the run outlasts
    # the display's delay however loaded the machine is.
    body = (HEADER + "".join(f"{i},{100 + i % 7}.5\n" for i in range(1000)) * 20).encode()
    half = len(body) // 2
    shown = threading.Event()

    def bar(seen: bytes) -> None:
        plain = ESC.sub(b"", seen)
        if b"reading http://" in plain and b"ETA" in plain and b"%" in plain:
            shown.set()

    with http_server(lambda method, path: (200, [body[:half], lambda: shown.wait(60), body[half:]])) as host:
        code, seen = _on_pty(tmp_path, "--input", f"http://{host}/big.csv", "--output", "m.json", watch=bar)
    assert code == 0
    assert shown.is_set(), ESC.sub(b"", seen)
    assert json.loads((tmp_path / "m.json").read_text())["rows_processed"] == 20_000
