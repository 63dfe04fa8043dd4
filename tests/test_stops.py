"""Signals in storms, stopped followers, idle stops and fast replacement, with real processes and real signals: the
first SIGINT/SIGTERM stops a run, later ones never cut its last document short; a follower stopped with SIGSTOP reads
what was appended meanwhile; a file replaced too fast is warned about, never lost silently."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TRACEBACK_MARKERS, env_with_repo, ohlcv_csv, write
from test_follow import HEADER, expected, make_rows, metrics_of, text, wait_for

STORM = [signal.SIGINT] * 5 + [signal.SIGTERM] * 2


def launch(cwd: Path, *args: str, stdin: int = subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stream", "--window", "4", "--log-file", "run.log", *args],
        cwd=cwd, env=env_with_repo(), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def log_has(cwd: Path, words: str) -> bool:
    try:
        return words in (cwd / "run.log").read_text()
    except FileNotFoundError:
        return False


def storm(p: subprocess.Popen, signals: list[int], gap: float = 0.002) -> None:
    for sig in signals:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(gap)


def no_traceback(err: bytes) -> None:
    text = err.decode("utf-8", "replace")
    assert not any(marker in text for marker in TRACEBACK_MARKERS), text
    assert "lost sys.stderr" not in text


@pytest.mark.parametrize("order", ["as given", "terms first"])
def test_a_follow_run_survives_a_storm_of_signals_with_its_final_metrics(tmp_path: Path, order: str) -> None:
    rows = make_rows(300, 5)
    (tmp_path / "live.csv").write_text(HEADER + text(rows))
    p = launch(tmp_path, "--input", "live.csv", "--follow", "--output", "m.json", "--signals", "sig.csv")
    wait_for(lambda: log_has(tmp_path, "following live.csv"), "the run to follow its input", timeout=60)
    wait_for(lambda: (tmp_path / "sig.csv").exists() and len((tmp_path / "sig.csv").read_bytes().splitlines()) > 300,
             "every row's signal", timeout=60)  # fmt: skip
    storm(p, STORM if order == "as given" else STORM[::-1])
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    no_traceback(err)
    want_signals, want = expected(rows)
    assert metrics_of(tmp_path / "m.json") == {**want, "version": "v1", "seed": 42}
    assert json.loads(out)["status"] == "success"
    assert (tmp_path / "sig.csv").read_text() == want_signals
    assert (tmp_path / "run.log").read_text().rstrip().endswith("finished with exit code 0")


@pytest.mark.parametrize(("signals", "code"), [([signal.SIGTERM] * 2, 143), ([signal.SIGINT] * 5, 130)])
def test_a_batch_run_stopped_by_repeated_signals_writes_its_error_document(
    tmp_path: Path, signals: list[int], code: int
) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    p = launch(tmp_path, "--input", str(fifo), "--output", "m.json")
    with open(fifo, "w") as writer:  # the run reads what is written and waits for more: it is mid-input
        writer.write(ohlcv_csv(["100.5"] * 20))
        writer.flush()
        wait_for(lambda: log_has(tmp_path, "input opened"), "the run to read its input", timeout=60)
        storm(p, signals, gap=0.01)
        out, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    no_traceback(err)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["status"] == "error" and "before the input was fully processed" in doc["error_message"]
    assert json.loads(out) == doc


def test_a_run_started_as_a_module_loads_still_stops_at_once(tmp_path: Path) -> None:
    """A program that runs the command from its module's top level: the command's own code then runs inside an
    import, and its stop must still come at once, not wait for that import to end."""
    write(tmp_path / "runner.py", "import sys\nfrom stream.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen(
        [sys.executable, "-c", "import runner", "--input", str(fifo), "--output", "m.json", "--log-file", "run.log"],
        cwd=tmp_path, env=env_with_repo({"PYTHONFAULTHANDLER": "1"}), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    with open(fifo, "w") as writer:  # the run reads what is written and waits for more
        writer.write(ohlcv_csv(["100.5"] * 20))
        writer.flush()
        wait_for(lambda: log_has(tmp_path, "input opened"), "the run to read its input", timeout=60)
        p.send_signal(signal.SIGTERM)
        try:
            _out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGABRT)  # faulthandler prints where every thread of the run is
            stuck = p.communicate(timeout=30)[1].decode(errors="replace")
            raise AssertionError(f"the run did not stop; its threads:\n{stuck[-4000:]}\nits log:\n"
                                 f"{(tmp_path / 'run.log').read_text()[-2000:]}") from None  # fmt: skip
    assert p.returncode == 143, err
    assert "stopped by SIGTERM" in json.loads((tmp_path / "m.json").read_text())["error_message"]


def stopped_while(tmp_path: Path, first: list[Any], later: list[Any], meanwhile: Callable[[Path], None]) -> None:
    """Follow a file of ``first`` rows, SIGSTOP the run for well past its idle timeout while ``meanwhile(live)`` puts
    the ``later`` rows in place, SIGCONT it: the final metrics must be those of every row."""
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(first))
    p = launch(tmp_path, "--input", "live.csv", "--follow", "--idle-timeout", "1", "--output", "m.json")
    wait_for(lambda: log_has(tmp_path, "following live.csv"), "the run to follow its input", timeout=60)
    os.kill(p.pid, signal.SIGSTOP)
    try:
        meanwhile(live)
        time.sleep(2.5)  # well past the idle timeout, while the process cannot run
    finally:
        os.kill(p.pid, signal.SIGCONT)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    _, want = expected(first + later)
    assert metrics_of(tmp_path / "m.json") == {**want, "version": "v1", "seed": 42}


def test_a_follower_stopped_longer_than_its_idle_timeout_reads_what_was_appended_meanwhile(tmp_path: Path) -> None:
    first, later = make_rows(10, 1), make_rows(1000, 2, start=11)

    def append(live: Path) -> None:
        with open(live, "a") as fh:
            fh.write(text(later))

    stopped_while(tmp_path, first, later, append)


def test_a_follower_stopped_while_its_file_was_rotated_reads_the_new_file(tmp_path: Path) -> None:
    first, later = make_rows(10, 1), make_rows(100, 2, start=11)

    def rotate(live: Path) -> None:
        os.rename(live, tmp_path / "live.csv.1")  # as logrotate does
        live.write_text(HEADER + text(later))

    stopped_while(tmp_path, first, later, rotate)


def test_a_tiny_idle_timeout_still_reads_the_whole_file(tmp_path: Path) -> None:
    rows = make_rows(10_000, 3)
    (tmp_path / "live.csv").write_text(HEADER + text(rows))
    p = launch(tmp_path, "--input", "live.csv", "--follow", "--idle-timeout", "0.001", "--output", "m.json")
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    _, want = expected(rows)
    assert metrics_of(tmp_path / "m.json") == {**want, "version": "v1", "seed": 42}


def test_a_file_replaced_faster_than_the_rotation_grace_is_warned_about(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(make_rows(50, 0)))
    p = launch(tmp_path, "--input", "live.csv", "--follow", "--idle-timeout", "3", "--output", "m.json")
    wait_for(lambda: log_has(tmp_path, "following live.csv"), "the run to follow its input", timeout=60)
    for k in range(1, 11):
        write(tmp_path / "next.csv", HEADER + text(make_rows(50, k, start=1 + 50 * k)))
        os.replace(tmp_path / "next.csv", live)
        if k == 1:  # the run has seen the first replacement: the next ones come within its grace
            wait_for(lambda: log_has(tmp_path, "now names another file"), "the first replacement to be seen")
        time.sleep(0.05)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    stderr = err.decode()
    assert "was replaced again before the file that replaced it could be read" in stderr
    last = (tmp_path / "run.log").read_text().rstrip().splitlines()[-1]
    assert "finished with exit code 0; rows were lost:" in last and "replaced file" in last
    assert json.loads((tmp_path / "m.json").read_text())["rows_processed"] < 550


def test_files_replaced_between_two_looks_are_counted_as_lost(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    live.write_text(HEADER + text(make_rows(50, 0)))
    p = launch(tmp_path, "--input", "live.csv", "--follow", "--idle-timeout", "3", "--output", "m.json")
    wait_for(lambda: log_has(tmp_path, "following live.csv"), "the run to follow its input", timeout=60)
    replacements = 20
    for k in range(1, replacements + 1):  # back to back: most are replaced before the run can even look
        write(tmp_path / "next.csv", HEADER + text(make_rows(50, k, start=1 + 50 * k)))
        os.replace(tmp_path / "next.csv", live)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    log = (tmp_path / "run.log").read_text()
    if "(waiting with inotify)" not in log:
        pytest.skip("inotify is not available here: files replaced between two polls cannot be counted")
    switches = log.count("switched to the new file")
    last = log.rstrip().splitlines()[-1]
    found = re.search(r"rows were lost: (\d+) replaced files? skipped", last)
    assert found is not None, last
    # Every file that took the name was either read whole or reported as skipped.
    assert int(found.group(1)) + switches == replacements
    assert json.loads((tmp_path / "m.json").read_text())["rows_processed"] == 50 * (1 + switches)


def test_ctrl_c_again_after_a_grace_ends_a_run_stuck_while_finishing(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["100.5"] * 20))
    os.mkfifo(tmp_path / "m.fifo")  # nobody reads it: the run waits to write its document there
    p = launch(tmp_path, "--input", "in.csv", "--output", "m.fifo")
    wait_for(lambda: log_has(tmp_path, "processed 20 rows"), "the run to finish its rows", timeout=60)
    storm(p, [signal.SIGINT, signal.SIGTERM, signal.SIGINT])  # at once: ignored, the run is finishing
    time.sleep(0.5)
    assert p.poll() is None
    deadline = time.monotonic() + 60
    while p.poll() is None:  # Ctrl-C, again and again, as a person would: one of them comes after the grace
        assert time.monotonic() < deadline, "a late Ctrl-C did not end the run"
        storm(p, [signal.SIGINT])
        time.sleep(0.5)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 130
    no_traceback(err)
    assert "interrupted again while finishing" in err.decode()


class Sweep:
    """One run of the SIGTERM sweep: what it reads, when the signal comes, and how it ended."""

    def __init__(self, cwd: Path, kind: str, delay: float, times: int) -> None:
        self.cwd, self.kind, self.delay, self.times = cwd, kind, delay, times
        self.code: int | None = None
        self.err = b""
        self.out = b""

    def start(self, rows: str) -> subprocess.Popen:
        args = ["--window", "4", "--log-file", "run.log", "--output", "m.json", "--signals", "s.csv"]
        env = env_with_repo({"MLOPS_STREAM_PATH": "block"} if self.kind == "block path" else None)
        if self.kind == "follow":  # a file: only a stop ends the run, well before its idle timeout
            write(self.cwd / "live.csv", rows)
            args += ["--input", "live.csv", "--follow", "--idle-timeout", "30"]
        p = subprocess.Popen(
            [sys.executable, "-m", "stream", *args], cwd=self.cwd, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        if self.kind != "follow":  # batch runs read a pipe that stays open: only a stop ends them
            try:
                p.stdin.write(rows.encode())  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
            except BrokenPipeError:  # killed already, before the command started
                pass
        return p

    def problem(self) -> str | None:
        """What is wrong with how the run ended; None: it ended as documented."""
        err = self.err.decode("utf-8", "replace")
        if "internal error" in err or any(marker in err for marker in TRACEBACK_MARKERS):
            return f"stderr: {err[-600:]}"
        if self.code == -signal.SIGTERM:  # before the command's handlers: Python's default, as documented
            return None
        try:
            doc = json.loads((self.cwd / "m.json").read_text())
        except (OSError, ValueError) as exc:
            return f"exit {self.code}, no metrics document ({exc})"
        if self.kind == "follow":
            log = (self.cwd / "run.log").read_text()
            if self.code != 0 or doc["status"] != "success" or "stopping: SIGTERM" not in log:
                return f"exit {self.code}, {doc}, log ends {log[-300:]!r}"
        elif self.code != 143 or "stopped by SIGTERM" not in doc.get("error_message", ""):
            return f"exit {self.code}, {doc}"
        elif json.loads(self.out) != doc:
            return f"stdout {self.out[-300:]!r} is not the document"
        return None


def test_sigterm_at_any_moment_of_a_run_start_ends_it_as_documented_under_load(tmp_path: Path) -> None:
    """SIGTERM, once or twice 2 ms apart, at moments spread over the first 0.6 s of 48 real runs (the row path; the
    block path, which imports numpy on the way; --follow), four at a time on one core, so each starts at a fraction of
    a core's speed and the signal lands in Python's start, the imports, the config, the checks and the reading: a
    batch run ends with exit 143 and its error document, a live run with exit 0 and its success document (or, before
    the command's handlers are in, as Python's defaults end it), never with an internal error."""
    rows = ohlcv_csv([f"{100 + i % 7}.{i % 100:02d}" for i in range(800)])  # a pipe's buffer holds it whole
    runs = [
        Sweep(tmp_path / f"run{i}", ("row path", "block path", "follow")[i % 3], 0.6 * i / 48, 1 + (i // 3) % 2)
        for i in range(48)
    ]
    # The runs load each other: started from this thread while it is bound to one core, they share that core (busy
    # processes on every core slowed them as much, at the cost of burning the cores for the whole sweep).
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        waiting, active = list(runs), []
        deadline = time.monotonic() + 240
        while waiting or active:
            assert time.monotonic() < deadline, "the sweep did not end"
            while waiting and len(active) < 4:
                run = waiting.pop(0)
                run.cwd.mkdir()
                active.append((run, run.start(rows), time.monotonic() + run.delay))
            now = time.monotonic()
            for k, (run, p, due) in enumerate(active):
                if run.times and now >= due:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGTERM)
                    run.times -= 1
                    active[k] = (run, p, now + 0.002)
            for item in [a for a in active if not a[0].times]:
                run, p, _ = item
                if p.poll() is not None or time.monotonic() > item[2] + 60:
                    run.out, run.err = p.communicate(timeout=60)
                    run.code = p.returncode
                    active.remove(item)
            time.sleep(0.001)
    finally:
        os.sched_setaffinity(0, cores)
    problems = [f"{r.kind}, SIGTERM at {r.delay:.3f} s: {r.problem()}" for r in runs if r.problem() is not None]
    assert not problems, "\n".join(problems)
    # Most signals land once the command runs (the rest in Python's own start): the sweep reached the command.
    assert sum(r.code != -signal.SIGTERM for r in runs) >= 5, [r.code for r in runs]


def test_a_signal_that_lands_as_its_handler_becomes_ignore_prints_no_traceback(monkeypatch) -> None:
    # A SIGTERM tripped in C just before its handler became SIG_IGN is reported by Python as an unraisable
    # "OSError: Signal 15 ignored due to race condition", a traceback on stderr; ignoring it was the intent. So is a
    # MemoryError in a finalizer of a run that ran out of memory (its document says so), and a hook that runs out.
    from types import SimpleNamespace

    from stream.runs.stops import Signals

    reported: list[BaseException] = []

    def recording(args: Any) -> None:
        if isinstance(args.exc_value, KeyError):
            raise MemoryError  # the hook itself runs out of memory
        reported.append(args.exc_value)

    monkeypatch.setattr(sys, "unraisablehook", recording)
    signals = Signals()
    signals.install()
    try:
        for exc in (OSError("Signal 15 ignored due to race condition"), MemoryError(), KeyError("k"), ValueError("v")):
            sys.unraisablehook(SimpleNamespace(exc_type=type(exc), exc_value=exc, exc_traceback=None, err_msg=None,
                                               object=None))  # fmt: skip
        assert [str(e) for e in reported] == ["v"]  # other reports are made as before
    finally:
        signals.restore()
    assert sys.unraisablehook is recording  # an in-process caller gets its own hook back


# A stop whose signal lands while the garbage collector frees an object: Python reports an exception raised in a
# finalizer and drops it, so the run must raise it again rather than carry on to a success.
STOP_IN_A_FINALIZER = """
import signal, sys, time
from stream.runs.stops import Signals, Terminated
signals = Signals()
signals.install()
signals.arm()
class Freed:
    def __del__(self):
        signal.raise_signal(getattr(signal, sys.argv[1]))
try:
    Freed()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("not stopped")
except (Terminated, KeyboardInterrupt) as exc:
    print("stopped:", type(exc).__name__)
"""


@pytest.mark.parametrize(("signum", "raised"), [("SIGTERM", "Terminated"), ("SIGINT", "KeyboardInterrupt")])
def test_a_stop_that_lands_in_a_finalizer_still_stops_the_run(signum: str, raised: str) -> None:
    p = subprocess.run([sys.executable, "-c", STOP_IN_A_FINALIZER, signum], capture_output=True, env=env_with_repo(),
                       timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert p.stdout.decode().strip() == f"stopped: {raised}"
    assert p.stderr == b""  # no "Exception ignored in" report
