"""The parallel plan gives the one-process output byte for byte: in-process over random quirky inputs and block
sizes, then end to end with --workers 2, an embedded --cluster local:2 and a real two-worker Dask LocalCluster
(separate processes on loopback) reached with --scheduler; a missing Dask is a clear error."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import TRACEBACK_MARKERS, env_with_repo, run_command, start_command, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.batch import BadRow
from stream.core.engine import RollingSignal
from stream.core.keyed import KeyedSignal
from stream.parsing.framing import InputError
from stream.parsing.reader import Reader
from stream.runs import parallel
from stream.runs.pipeline import Pipeline
from stream.runs.plan import cut
from stream.runs.plan.executors import Inline
from stream.sinks.log import SHOW_BAD_ROWS
from stream.sinks.signals import SignalSink
from stream.sources.files import Spec

HAVE_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="dask[distributed] is not installed (the test extra has it)")


# ---- random inputs --------------------------------------------------------------------------------------------

VALUES = ["100", "100.0", "100.10", "100.1", "99.9", "100.2", "1.001e2", "-0.5", "123456789012345678901.5", "abc", ""]
KEYS = ["A", "B", "C", '"D,E"', " A ", ""]


def line(rng: random.Random, i: int, keyed: bool) -> str:
    kind = rng.random()
    if kind < 0.03:
        return ""  # blank line
    if kind < 0.05:
        return f"t{i},A"  # too few fields
    if kind < 0.06:
        return f't{i},"A,{rng.choice(VALUES)}'  # a quote that does not close on its line
    key = rng.choice(KEYS) + "," if keyed else ""
    text = f"t{i},{key}{rng.choice(VALUES)}"
    return f'"{text}"' if kind > 0.95 and '"' not in text else text


def files(seed: int, count: int, rows: int, keyed: bool) -> list[bytes]:
    rng = random.Random(seed)
    header = "timestamp,sym,close" if keyed else "timestamp,close"
    out = []
    for f in range(count):
        nl = "\r\n" if rng.random() < 0.3 else "\n"
        lines = [line(rng, i, keyed) for i in range(rng.randint(0, rows))]
        head = [header] if f == 0 or rng.random() < 0.8 else []
        if rng.random() < 0.2:
            head = ["", *head]
        text = nl.join(head + lines) + (nl if rng.random() < 0.8 else "")
        out.append((b"\xef\xbb\xbf" if f == 0 and rng.random() < 0.2 else b"") + text.encode())
    return out


def run(specs: list[Spec], keyed: bool, window: int, skip: bool, fmt: str | None, executor: Any, block: int) -> Any:
    """One process (``executor`` None) or the plan on ``executor``: the tally, each key's, signals, the bad rows a log
    shows (the first ``SHOW_BAD_ROWS``, and one more for its "more bad rows" line: all a task sends of them), or the
    error message."""
    bad: list[BadRow] = []
    out = io.BytesIO()
    key = "sym" if keyed else None
    reader = Reader(
        on_bad_row="skip" if skip else "fail", report=bad.append, keep_text=fmt is not None, key=key,
        file=specs[0].label if len(specs) > 1 else None,
    )  # fmt: skip
    sink = SignalSink(out, fmt, key=key) if fmt is not None else None
    pipeline = Pipeline(KeyedSignal(window) if keyed else RollingSignal(window), sink)
    sizes = [Path(s.name).stat().st_size for s in specs]
    try:
        options = parallel.Reading(1, block_size=block, executor=executor)
        tally, by_key = parallel.run(specs, sizes, reader, pipeline, options)
    except InputError as exc:
        return ("error", str(exc), bad[: SHOW_BAD_ROWS + 1])
    return (tally, by_key, out.getvalue(), bad[: SHOW_BAD_ROWS + 1])


@given(
    seed=st.integers(0, 2**32),
    count=st.integers(1, 4),
    keyed=st.booleans(),
    window=st.integers(1, 6),
    skip=st.booleans(),
    fmt=st.sampled_from(["csv", "jsonl", None]),
    block=st.integers(1, 400),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_plan_gives_the_one_process_output(tmp_path_factory, seed, count, keyed, window, skip, fmt, block) -> None:
    tmp = tmp_path_factory.mktemp("plan")
    specs = [Spec(str(write(tmp / f"in{i}.csv", data))) for i, data in enumerate(files(seed, count, 40, keyed))]
    one = run(specs, keyed, window, skip, fmt, None, block)
    inline = Inline()
    many = run(specs, keyed, window, skip, fmt, inline, block)
    if one[0] == "error":
        assert many[:2] == one[:2]  # the same first error, with the same line (and file)
        return
    assert many == one
    # Only an input whose header is not found (all blank, or missing) is left to one process.
    assert inline.tasks or not one[0].rows


@given(
    seed=st.integers(0, 2**32),
    window=st.integers(2, 8),
    skip=st.booleans(),
    block=st.integers(1, 300),
    rows=st.integers(0, 120),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_one_unkeyed_input_without_signals_reads_each_blocks_context_backwards(
    tmp_path_factory, seed, window, skip, block, rows
) -> None:
    # Neither row numbers nor keys are needed: no first pass, each block reads the rows before it from the file.
    tmp = tmp_path_factory.mktemp("context")
    specs = [Spec(str(write(tmp / "in.csv", files(seed, 1, rows, False)[0])))]
    one = run(specs, False, window, skip, None, None, block)
    inline = Inline()
    many = run(specs, False, window, skip, None, inline, block)
    assert many[:2] == one[:2] if one[0] == "error" else many == one


def test_cuts_fall_at_line_starts_after_each_files_header(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "\n \nclose\n" + "".join(f"{i}\n" for i in range(100)))
    b = write(tmp_path / "b.csv", "close\n1\n2\n")
    c = write(tmp_path / "c.csv", "close\n" + "".join(f"{i}\n" for i in range(50)))
    specs = [Spec(str(p)) for p in (a, b, c)]
    sizes = [p.stat().st_size for p in (a, b, c)]
    tasks = cut.blocks(specs, sizes, 64)
    data = {str(p): p.read_bytes() for p in (a, b, c)}
    pieces = [piece for task in tasks for piece in task]
    assert [p.name for p in pieces if p.first] == [str(a), str(b), str(c)]
    assert (b_piece := next(p for p in pieces if p.name == str(b))).end - b_piece.start == 10  # never cut, being small
    for p in pieces:
        assert p.start == 0 or data[p.path][p.start - 1 : p.start] == b"\n"
        assert p.last == (p.end == len(data[p.path]))
    assert pieces[0].end >= len(b"\n \nclose\n")  # the header is in the file's first piece
    # The small file shares a task with its neighbours instead of being a task of its own.
    assert any(len(task) > 1 and any(p.name == str(b) for p in task) for task in tasks)
    assert sum(p.end - p.start for p in pieces) == sum(sizes)


# ---- the command, with every executor ---------------------------------------------------------------------------


def symbol_files(folder: Path, count: int = 3, rows: int = 3000) -> list[str]:
    from stream import generate

    names = []
    for i in range(count):
        buf = io.BytesIO()
        generate.write(buf, rows, 100 + i, symbols=7)
        data = buf.getvalue()
        if i == 1:  # bad rows and a last line without a newline, in the middle of the stream
            lines = data.split(b"\n")
            lines[40] = b"2024-01-01 00:05:00,SYM1,1,1,1,oops,1,1"
            lines[41] = b"2024-01-01 00:05:00,,1,1,1,100.5,1,1"
            data = b"\n".join(lines).rstrip(b"\n")
        names.append(write(folder / f"day{i}.csv", data).name)
    return names


def outputs(run_cli, folder: Path, args: list[str], extra: list[str]) -> tuple[dict, bytes, str]:
    (folder / "run.log").unlink(missing_ok=True)  # the log is appended to
    run = run_cli([*args, *extra, "--signals", "sig.out", "--output", "m.json", "--log-file", "run.log"], cwd=folder)
    assert run.code == 0, run.stderr
    run.assert_no_traceback()
    if "--quiet" in extra:
        assert run.stderr == ""  # the bad rows are in the log, not on the terminal; nor is any word of Dask's
    doc = run.file_doc("m.json")
    doc.pop("latency_ms")
    log = run.log()
    bad = [ln.split(" WARNING ", 1)[1] for ln in log.splitlines() if " WARNING " in ln]
    return doc, (folder / "sig.out").read_bytes(), "\n".join(bad)


def blocks(folder: Path) -> int:
    found = re.search(r" over (\d+) blocks of about", (folder / "run.log").read_text())
    assert found, "the run should have used the parallel plan"
    return int(found.group(1))


CASES = {
    "keyed csv": ["--key", "symbol", "--window", "4", "--on-bad-row", "skip"],
    "unkeyed jsonl": ["--window", "9", "--on-bad-row", "skip", "--signals-format", "jsonl"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_workers_give_the_one_process_output(run_main, tmp_path: Path, case: str) -> None:
    names = symbol_files(tmp_path)
    args = [a for n in names for a in ("--input", n)] + CASES[case]
    want = outputs(run_main, tmp_path, args, [])
    got = outputs(run_main, tmp_path, args, ["--workers", "2", "--block-size", "20K"])
    assert got == want
    assert blocks(tmp_path) >= 30  # 20 KiB blocks of three ~230 KB files


@needs_dask
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_dask_cluster_gives_the_one_process_output(run_main, tmp_path: Path, dask_scheduler: str, case: str) -> None:
    # In this process: the cluster's workers are processes of their own, and the run is only their client.
    names = symbol_files(tmp_path)
    args = [a for n in names for a in ("--input", n)] + CASES[case]
    want = outputs(run_main, tmp_path, args, [])
    got = outputs(run_main, tmp_path, args, ["--scheduler", dask_scheduler, "--block-size", "20K"])
    assert got == want
    assert f"the Dask cluster at {dask_scheduler} (2 worker threads)" in (tmp_path / "run.log").read_text()
    assert blocks(tmp_path) >= 30


@needs_dask
def test_an_embedded_cluster_gives_the_one_process_output_and_is_quiet_when_the_dashboard_port_is_taken(
    run_cli, run_main, tmp_path: Path
) -> None:
    import socket

    names = symbol_files(tmp_path, count=2, rows=1500)
    args = [a for n in names for a in ("--input", n)] + CASES["keyed csv"]
    want = outputs(run_main, tmp_path, args, [])
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))  # Dask's default dashboard port
        holder.listen()
    except OSError:
        pass  # something else holds it already: the same situation
    try:
        got = outputs(run_cli, tmp_path, args, ["--cluster", "local:2", "--block-size", "16K", "--quiet"])
    finally:
        holder.close()
    assert got == want
    assert (
        "an embedded Dask LocalCluster of 2 worker processes at tcp://127.0.0.1:" in (tmp_path / "run.log").read_text()
    )


def test_the_first_bad_row_in_input_order_stops_every_executor(run_main, tmp_path: Path) -> None:
    names = symbol_files(tmp_path)
    args = [a for n in names for a in ("--input", n)] + ["--key", "symbol"]
    messages = set()
    for extra in ([], ["--workers", "2", "--block-size", "8K"]):
        run = run_main([*args, *extra])
        assert run.code == 1
        messages.add(run.doc()["error_message"])
    assert messages == {"bad row at day1.csv line 41: bad close value: 'oops' is not a decimal number: "
                        "'2024-01-01 00:05:00,SYM1,1,1,1,oops,1,1' (fix the row, or run with --on-bad-row skip to "
                        "leave such rows out)"}  # fmt: skip


def test_a_missing_dask_is_a_clear_error(run_cli, tmp_path: Path) -> None:
    # A module that fails to import exactly as an absent one does, first on the child's path.
    shadow = tmp_path / "shadow"
    (shadow / "distributed").mkdir(parents=True)
    write(shadow / "distributed" / "__init__.py", "raise ModuleNotFoundError(\"No module named 'distributed'\")\n")
    env = env_with_repo()
    env["PYTHONPATH"] = f"{shadow}:{env['PYTHONPATH']}"
    write(tmp_path / "in.csv", "close\n1\n2\n3\n")
    for option in (["--cluster", "local:2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        run = run_cli(["--input", "in.csv", *option, "--output", "m.json"], env=env)
        assert run.code == 1
        assert run.file_doc("m.json")["error_message"] == (
            "--cluster and --scheduler run the job on Dask, which is not installed: pip install '.[dask]' in the "
            "mlops-stream checkout, or pip install 'dask[distributed]'"
        )
        run.assert_no_traceback()


@needs_dask
def test_an_unreachable_scheduler_is_a_clear_error(run_cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write(tmp_path / "in.csv", "close\n1\n2\n3\n")
    # Dask's own setting of how long to try, so the test does not wait its default 30 s.
    env = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    run = run_cli(["--input", "in.csv", "--scheduler", f"tcp://127.0.0.1:{port}"], env=env, timeout=90)
    assert run.code == 1
    assert run.doc()["error_message"].startswith(f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    run.assert_no_traceback()


@needs_dask
def test_an_address_that_is_no_dask_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    # An HTTP server accepts Dask's connection and waits for a request line that never comes; a server that greets
    # every connection (an SSH banner) sends bytes Dask would read as message lengths.
    import socket
    import subprocess
    import sys
    import threading

    http = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    greeter = socket.create_server(("127.0.0.1", 0))

    def greet() -> None:
        while True:
            try:
                conn, _ = greeter.accept()
            except OSError:  # closed: the test is over
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n")

    threading.Thread(target=greet, daemon=True).start()
    try:
        assert http.stdout is not None
        found = re.search(r" port (\d+)", http.stdout.readline())  # "Serving HTTP on 127.0.0.1 port N ..."
        assert found, "http.server should say its port"
        write(tmp_path / "in.csv", "close\n1\n2\n3\n")
        env = env_with_repo({"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})

        # Both runs at once: each waits out the connect timeout.
        def start(address: str) -> subprocess.Popen:
            args = [sys.executable, "-m", "stream", "--input", "in.csv", "--scheduler", address]
            pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
            return subprocess.Popen(args, cwd=tmp_path, env=env, **pipes)

        addresses = [f"tcp://127.0.0.1:{port}" for port in (int(found.group(1)), greeter.getsockname()[1])]
        runs = {address: start(address) for address in addresses}
        for address, proc in runs.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 1
            message = json.loads(out)["error_message"]
            assert message.startswith(f"cannot reach the Dask scheduler at {address}: "), message
            for marker in TRACEBACK_MARKERS:
                assert marker not in err.decode() and marker.encode() not in out
    finally:
        greeter.close()
        http.kill()
        http.wait(timeout=30)


def test_scale_out_usage_errors(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", "close\n1\n")
    for args in (
        ["--workers", "2", "--follow"],
        ["--cluster", "remote"],
        ["--cluster", "local:0"],
        ["--workers", "2", "--cluster", "local"],
        ["--block-size", "12Q"],
    ):
        run = run_main(["--input", "in.csv", *args])
        assert run.code == 2, (args, run.stderr)


def test_a_stream_input_runs_in_one_process(run_cli, tmp_path: Path) -> None:
    data = "close\n" + "".join(f"{i % 7}\n" for i in range(500))
    one = run_cli(["--input", "-"], stdin=data.encode())
    run = run_cli(["--input", "-", "--workers", "2", "--log-file", "run.log"], stdin=data.encode())
    assert run.code == 0 and json.loads(run.out)["value"] == one.doc()["value"]
    assert "an input is a stream, not a regular file (<stdin>); reading it with one process" in run.log()


def big_keyed_input(shared_input, folder: Path) -> Path:
    """big.csv in ``folder``: 400,000 rows of 50 symbols (32 MB), long enough a run to stop in the middle: a walk of
    40,000 rows ten times over (generating them all took 2 s of CPU; only the first rows' times are ever checked)."""
    from stream import generate

    def make(fh: Any) -> None:
        walk = io.BytesIO()
        generate.write(walk, 40_000, 3, symbols=50)
        header, rows = walk.getvalue().split(b"\n", 1)
        fh.write(header + b"\n" + rows * 10)

    return shared_input("keyed-400k.csv", make, folder / "big.csv")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue  # it ended while we looked
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as fh:
                    kids = [int(p) for p in fh.read().split()]
            except OSError:
                kids = []
            found += kids
            todo += kids
    return found


@pytest.mark.parametrize("how", ["kill a worker", "SIGTERM the run"])
def test_a_dying_worker_or_a_stop_ends_the_run_clearly(tmp_path: Path, shared_input, how: str) -> None:
    import signal
    import subprocess
    import sys
    import time

    big_keyed_input(shared_input, tmp_path)
    p = subprocess.Popen(
        [sys.executable, "-m", "stream", "--input", "big.csv", "--key", "symbol", "--workers", "2", "--block-size",
         "256K", "--signals", "sig.csv", "--output", "m.json"],
        cwd=tmp_path, env=env_with_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(_descendants(p.pid)) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.01)
    assert p.poll() is None, "the run should still be going"
    workers = _descendants(p.pid)
    if how == "kill a worker":
        os.kill(workers[0], signal.SIGKILL)
    else:
        p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=30)  # a hang fails the test instead of blocking the suite
    doc = json.loads((tmp_path / "m.json").read_text())
    if how != "kill a worker" and doc["status"] == "success":
        # The signal landed after the last block was done, while the workers were being stopped: a finished run
        # ignores it and publishes its result (a loaded machine can get there first).
        assert p.returncode == 0 and doc["rows_processed"] == 400_000
        return
    assert doc["status"] == "error"
    if how == "kill a worker":
        assert p.returncode == 1
        assert doc["error_message"].startswith(f"worker process {workers[0]} ended without finishing its part")
    else:
        assert p.returncode == 143
        assert "stopped by SIGTERM" in doc["error_message"]
    assert b"Traceback" not in err
    deadline = time.monotonic() + 10  # the kernel reaps them a moment after the run ends
    while [w for w in workers if Path(f"/proc/{w}").exists()] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "no worker may outlive the run"
    assert not list(tmp_path.glob(".mlops-stream-*")), "the spill folder is removed"


def test_workers_pass_large_states_and_results_both_ways(tmp_path: Path) -> None:
    # 20,000 keys: each block's starting state and each block's result are far bigger than a pipe's buffer, so a
    # task sent to a worker that is sending back its last result would block both sides.
    import subprocess
    import sys

    # Two rows a key: a few lines here, where generate's walk of 20,000 symbols takes seconds.
    with open(tmp_path / "k.csv", "w") as fh:
        fh.write("timestamp,symbol,close\n")
        fh.writelines(f"2024-01-{1 + i // 1440:02d} {i // 60 % 24:02d}:{i % 60:02d}:00,S{i % 20_000:05d},"
                      f"{100 + i * 7919 % 97}.{i % 100:02d}\n" for i in range(40_000))  # fmt: skip
    outputs = []
    for workers in ("1", "2"):
        signals = f"s{workers}.csv"
        subprocess.run(
            [sys.executable, "-m", "stream", "--input", "k.csv", "--key", "symbol", "--signals", signals,
             "--output", f"m{workers}.json", "--quiet", "--workers", workers, "--block-size", "500K",
             "--log-file", f"run{workers}.log"],
            cwd=tmp_path, env=env_with_repo(), check=True, timeout=60,  # a hang fails the test instead of blocking
        )  # fmt: skip
        doc = json.loads((tmp_path / f"m{workers}.json").read_text())
        outputs.append(({k: v for k, v in doc.items() if k != "latency_ms"}, (tmp_path / signals).read_bytes()))
    assert outputs[0][0]["rows_processed"] == 40_000 and len(outputs[0][0]["by_key"]) == 20_000
    assert outputs[1] == outputs[0]
    assert " over 3 blocks of about " in (tmp_path / "run2.log").read_text()


def test_far_more_workers_than_blocks_start_no_more_than_the_blocks(run_main, tmp_path: Path) -> None:
    data = (Path(__file__).parent.parent / "data.csv").read_bytes()
    write(tmp_path / "big.csv", data)  # 730 KB
    write(tmp_path / "small.csv", data[: data.index(b"\n", 60_000) + 1])  # 60 KB
    for name in ("small.csv", "big.csv"):
        (tmp_path / "run.log").unlink(missing_ok=True)  # the log is appended to
        want = run_main(["--input", name, "--workers", "1", "--signals", "one.csv", "--output", "one.json"])
        got = run_main(["--input", name, "--workers", "16", "--signals", "two.csv", "--output", "two.json",
                        "--log-file", "run.log"])  # fmt: skip
        assert want.code == got.code == 0, got.stderr
        assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
        assert want.file_doc("one.json")["value"] == got.file_doc("two.json")["value"]
        log = (tmp_path / "run.log").read_text()
        if name == "small.csv":  # one block of at least the smallest size: one process
            assert "the input is too small for 16 workers over a window of 5 rows; using one process" in log
            assert " blocks of about " not in log
            continue
        count = blocks(tmp_path)
        assert 2 <= count <= len(data) // parallel.SMALLEST_BLOCK + 1
        most = parallel.WORKERS_PER_CORE * len(os.sched_getaffinity(0))
        if count <= most:
            assert f"the input makes {count} blocks, fewer than the 16 workers; starting {count} " in log
        else:
            assert f"16 workers asked for on {most // parallel.WORKERS_PER_CORE} cores; starting {most} " in log
        assert f"worker processes: {min(count, most)} over {count} blocks" in log


# The command, counting the processes it forks (os.fork's hook runs in the parent after each one).
COUNT_FORKS = """
import os, sys
forks = []
os.register_at_fork(after_in_parent=lambda: forks.append(1))
from stream.cli import main
code = main(sys.argv[1:])
sys.stderr.write("FORKS %d\\n" % len(forks))
raise SystemExit(code)
"""


def test_worker_processes_are_bounded_by_the_cores_whatever_is_asked(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", "close\n" + "".join(f"{i % 7}.{i % 3}\n" for i in range(200)))
    want = run_main(["--input", "in.csv", "--signals", "one.csv", "--output", "one.json"])
    p = start_command(["--input", "in.csv", "--workers", "100000", "--block-size", "1", "--signals", "two.csv",
                       "--output", "two.json", "--log-file", "run.log"], tmp_path, code=COUNT_FORKS)  # fmt: skip
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and want.code == 0, err
    found = re.search(rb"FORKS (\d+)", err)
    assert found, err
    forks = int(found.group(1))
    cores = len(os.sched_getaffinity(0))
    assert 2 <= forks <= parallel.WORKERS_PER_CORE * cores
    log = (tmp_path / "run.log").read_text()
    assert f"100000 workers asked for on {cores} cores; starting {forks} " in log
    assert f"worker processes: {forks} over " in log
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert want.file_doc("one.json")["value"] == want.file_doc("two.json")["value"]


def _running(pid: int) -> bool:
    """Whether process ``pid`` is still there (a zombie is not: it holds nothing, only its exit status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def test_workers_end_with_a_killed_run_and_the_next_run_takes_its_signals_file(tmp_path: Path, shared_input) -> None:
    import signal
    import subprocess
    import sys
    import time

    big_keyed_input(shared_input, tmp_path)
    write(tmp_path / "sig.csv", "an earlier run's signals\n")  # the run locks it while it stages the new ones
    args = ["--input", "big.csv", "--key", "symbol", "--workers", "2", "--block-size", "256K", "--signals", "sig.csv",
            "--output", "m.json"]  # fmt: skip
    p = subprocess.Popen([sys.executable, "-m", "stream", *args], cwd=tmp_path, env=env_with_repo(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def reading() -> list[int]:
        """The workers that have the input open: past their start, into their tasks."""
        found = []
        for pid in _descendants(p.pid):
            try:
                fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                continue
            if str(tmp_path / "big.csv") in fds:
                found.append(pid)
        return found

    deadline = time.monotonic() + 60
    workers = reading()  # the two seen at one look: a worker closes the input between its tasks
    while len(workers) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.005)
        workers = reading()
    assert p.poll() is None and len(workers) == 2, "the run should be going, its workers in their tasks"
    try:
        for pid in workers:  # stopped, they stand for workers in the middle of a long task: it never ends
            os.kill(pid, signal.SIGSTOP)
        p.kill()
        p.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [w for w in workers if _running(w)], "the workers end with their run"
    finally:
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    again = run_command(args, tmp_path)
    assert again.code == 0, again.stderr
    assert again.file_doc("m.json")["rows_processed"] == 400_000


HOLD_AND_LEAVE = """
import os, signal, sys
from stream.sinks.signals import open_file
held = open_file("sig.csv")  # locked, as a run holds its signals file
if os.fork() == 0:
    sys.stdin.buffer.read()  # what the run leaves behind: it holds the file until the test closes its stdin
    os._exit(0)
print("ready", flush=True)
signal.pause()
"""


def test_a_signals_file_held_by_what_an_ended_run_left_is_refused_saying_so(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", "close\n1\n2\n3\n")
    holder = start_command([], tmp_path, code=HOLD_AND_LEAVE)
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline() == b"ready\n"
        holder.kill()
        holder.wait(timeout=30)
        refused = run_cli(["--input", "in.csv", "--signals", "sig.csv"])
        assert refused.code == 1
        assert refused.doc()["error_message"] == (
            f"the signals file sig.csv is held by processes left by an mlops-stream run (process {holder.pid}) that "
            "has ended; stop them first, or pass another path"
        )
    finally:
        holder.stdin.close()  # the process left behind ends
    taken = run_cli(["--input", "in.csv", "--signals", "sig.csv"])
    assert taken.code == 0, taken.stderr
