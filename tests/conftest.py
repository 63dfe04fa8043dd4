"""Shared helpers: run the real command in a subprocess, build CSV inputs, and find the assessment dataset."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Plain `pytest` (not `python -m pytest`) on a checkout that is not installed must still import this package.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
ASSESSMENT_NAME = Path("shared", "data", "assessment-data.csv")


def _cache_bytecode() -> None:
    """Where PYTHONDONTWRITEBYTECODE is set, every Python the tests start would compile the package from source again:
    half of a small run's CPU. The tests cache it as Python does by default, in the checkout's ``__pycache__`` folders
    (ignored by git and by the image's build). A cache folder elsewhere (PYTHONPYCACHEPREFIX) would hide the bytecode
    pip wrote for the dependencies too, and a fresh machine would compile numpy, pandas and Dask again in every worker
    at once, some 5 s of CPU each."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        sys.dont_write_bytecode = False  # this process: the test modules and doctests


_cache_bytecode()

SUCCESS_KEYS = ["version", "rows_processed", "metric", "value", "latency_ms", "seed", "status"]
ERROR_KEYS = ["version", "status", "error_message"]
OHLCV_HEADER = "timestamp,open,high,low,close,volume_btc,volume_usd"

# A child that runs the command and reports its own peak memory on stderr as "MAXRSS_KIB N". VmHWM is this process's
# own peak RSS (getrusage's ru_maxrss survives exec, so it would count the test runner's).
RSS_PROBE = """
import sys
from stream.cli import main
code = main(sys.argv[1:])
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
sys.stderr.write("MAXRSS_KIB %s\\n" % peak)
raise SystemExit(code)
"""

# Python's own run-time error output; none of it may reach a user's terminal.
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "--- Logging error ---")


def env_with_repo(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python that imports the package from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONWARNINGS", None)
    if extra:
        env.update(extra)
    return env


# Files with the tests that wait longest (a stuck loop's seconds, idle timeouts, kill -9 and restarts, a 66,000-member
# zip), run first: started last, one of them would keep a worker busy after the others had finished.
FIRST = ("test_serve.py", "test_compressed.py", "test_follow_glob.py", "test_follow.py", "test_s3.py", "test_stops.py",
         "test_scaleout.py", "test_jsonl.py", "test_serve_limits.py", "test_storage_errors.py", "test_follow_series.py",
         "test_block.py", "test_keyed.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``FIRST`` first, in that order; every other test after them, in the order collected."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, a worker that is free takes the next test, one at a time (``--maxschedchunk 1`` unless told
    otherwise): xdist's default hands out runs of a sixteenth of the suite at once, and one worker then got most of
    the long waits of ``FIRST`` and ran 15 s after the others had finished."""
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's, which a run without it does not know
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` starts three workers a core: most tests wait on subprocesses, files, sockets and timeouts rather
    than compute (on 2 cores, 6 workers take the suite from 95 s with 4 to 85 s; 8 are no faster)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 3 * cores


@dataclass
class Run:
    """The outcome of one command run: exit code, raw stdout, decoded stderr, and the folder it ran in."""

    args: list[str]
    code: int
    stdout: bytes
    stderr: str
    cwd: Path

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8")

    def doc(self) -> dict[str, Any]:
        """The metrics document printed on stdout."""
        return json.loads(self.stdout)

    def file_doc(self, name: str = "metrics.json") -> dict[str, Any]:
        return json.loads((self.cwd / name).read_text(encoding="utf-8"))

    def log(self, name: str = "run.log") -> str:
        return (self.cwd / name).read_text(encoding="utf-8")

    def assert_no_traceback(self) -> None:
        for marker in TRACEBACK_MARKERS:
            assert marker not in self.stderr, f"stderr of {self.args} shows a traceback:\n{self.stderr}"
            assert marker.encode() not in self.stdout, f"stdout of {self.args} shows a traceback"


def run_command(
    args: Sequence[str],
    cwd: Path,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    python_args: Sequence[str] = (),
) -> Run:
    """Run ``python -m stream ARGS`` in ``cwd``; ``stdin`` bytes arrive through a real pipe (None: /dev/null)."""
    cmd = [sys.executable, *python_args, "-m", "stream", *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env_with_repo(env),
        timeout=timeout,
    )
    return Run(list(args), proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"), cwd)


def start_command(
    args: Sequence[str], cwd: Path, code: str | None = None, stdin: int | None = subprocess.PIPE
) -> subprocess.Popen:
    """Start ``python -m stream ARGS`` (or ``python -c CODE ARGS``) with pipes, for tests that talk to it live."""
    head = ["-c", code] if code is not None else ["-m", "stream"]
    return subprocess.Popen(
        [sys.executable, *head, *args],
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_with_repo(),
    )


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Run]:
    """``run_cli(args, stdin=b"...")`` runs the command in a fresh temporary folder (no config.yaml unless written)."""

    def run(args: Sequence[str], stdin: bytes | None = None, **kw: Any) -> Run:
        return run_command([str(a) for a in args], kw.pop("cwd", tmp_path), stdin=stdin, **kw)

    return run


def call_main(args: Sequence[str], cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Run:
    """Run the command in this process: ``stream.cli.main(args, stdin=..., stdout=..., stderr=...)`` in ``cwd``, with
    streams in memory (``stdin`` None: an empty one) and ``env`` added to the environment for the call."""
    import io

    from stream.cli import main

    def stream(data: bytes = b"") -> io.TextIOWrapper:
        # What the interpreter gives a process whose streams are pipes: UTF-8 text over a binary buffer.
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="backslashreplace", write_through=True)

    out, err = stream(), stream()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        code = main(list(args), stdin=stream(stdin or b""), stdout=out, stderr=err)
    out.flush()
    err.flush()
    stdout = out.buffer.getvalue()  # type: ignore[attr-defined]
    stderr = err.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]
    return Run(list(args), code, stdout, stderr, cwd)


@pytest.fixture
def run_main(tmp_path: Path) -> Callable[..., Run]:
    """``run_main(args, stdin=b"...")``: ``run_cli`` in this process, for behaviour that needs no process of its own
    (arguments, config, bad rows, documents, the outputs of --workers); signals, pipes, follow, stopped or killed
    workers, a run that could hang and exit-by-signal keep ``run_cli``."""

    def run(args: Sequence[str], stdin: bytes | None = None, **kw: Any) -> Run:
        kw.pop("timeout", None)  # run_cli's; a run in this process is not timed out
        return call_main([str(a) for a in args], kw.pop("cwd", tmp_path), stdin=stdin, **kw)

    return run


class KeptWorkers:
    """``count`` forked worker processes (``stream.runs.plan.executors.Processes``), for ``parallel.Reading(executor=
    ...)``, that run the plans of many runs: a run closes its executor as it ends, which here keeps them for the next
    run (forking the test's process for each example of a property was most of its CPU); a run that ends early
    (``abort``) ends them, and the next run forks new ones."""

    local = True
    meter = None

    def __init__(self, count: int) -> None:
        self.workers = count
        self.describe = f"worker processes: {count}, kept from run to run"
        self.pool: Any = None

    def submit(self, fn: Any, arg: Any) -> Any:
        if self.pool is None:
            from stream.runs.plan.executors import Processes

            self.pool = Processes(self.workers)
        return self.pool.submit(fn, arg)

    def result(self, handle: Any) -> Any:
        return self.pool.result(handle)

    def done(self, handle: Any) -> bool:
        return bool(self.pool.done(handle))

    def close(self, abort: bool = False) -> None:
        if abort:
            self.end()

    def end(self) -> None:
        if self.pool is not None:
            self.pool.close(abort=True)
            self.pool = None


@pytest.fixture(scope="module")
def kept_workers() -> Iterator[Callable[[int], KeptWorkers]]:
    """``kept_workers(count)``: the module's ``KeptWorkers`` of ``count`` processes, ended with the module."""
    made: dict[int, KeptWorkers] = {}
    yield lambda count: made.setdefault(count, KeptWorkers(count))
    for kept in made.values():
        kept.end()


Body = bytes | Sequence[bytes | Callable[[], object]]


@contextlib.contextmanager
def http_server(answer: Callable[[str, str], tuple[int, Body]], ranges: bool = False) -> Iterator[str]:
    """An HTTP server on a free loopback port that answers each GET and HEAD with the status and body
    ``answer(method, path)`` gives (HEAD: the headers alone); yields its address, ``127.0.0.1:PORT``. A body may be
    parts: bytes, and callables the sending calls where they stand (a slow server: one may wait). ``ranges``: a GET
    asking for a byte range gets those bytes (206), and only the callables inside the range are called."""
    import http.server
    import re
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.command, self.path)
            parts = [body] if isinstance(body, bytes) else list(body)
            size = sum(len(part) for part in parts if isinstance(part, bytes))
            start, end = 0, size - 1
            asked = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")) if ranges else None
            if asked and status == 200 and int(asked[1]) < size:
                start, end = int(asked[1]), min(size - 1, int(asked[2] or size - 1))
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(end + 1 - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if self.command == "HEAD":
                return
            at = 0  # where the next part stands in the whole body
            try:
                for part in parts:
                    if not isinstance(part, bytes):
                        if start <= at <= end:
                            part()
                        continue
                    self.wfile.write(part[max(start - at, 0) : max(end + 1 - at, 0)])
                    at += len(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client had what it wanted (a streamed read of the head) and hung up

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# A real two-worker Dask LocalCluster on loopback whose workers import this checkout (the environment of
# ``shared_service``'s processes). Dask's monitors (a 20 ms event-loop tick, a 10 ms profiler, memory and system
# polls, a 2 s memory manager) would cost it about a tenth of a core as it idles through the session; its workers
# take these settings. Workers beat twice a second (not a setting: the scheduler's heartbeat_interval), every 5 s
# here (idle: 13 -> 5 ms of CPU a second); a worker that dies is still seen at once, by its closed connection.
DASK_CLUSTER = """
import logging, sys
import dask
import distributed.scheduler
from distributed import LocalCluster

distributed.scheduler.heartbeat_interval = lambda workers: 5.0

monitors = {
    "distributed.admin.tick.interval": "5s", "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s", "distributed.worker.memory.monitor-interval": "5s",
    "distributed.scheduler.active-memory-manager.interval": "10s",
}
with dask.config.set(monitors):
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR,
    )
print(cluster.scheduler_address, flush=True)
sys.stdin.read()
cluster.close()
"""


@pytest.fixture(scope="session")
def dask_scheduler(shared_service: Callable[[str, str], str]) -> str:
    """The address of the test session's Dask cluster (``DASK_CLUSTER``), for ``--scheduler`` runs."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed (the test extra has it)")
    return shared_service("dask-cluster", DASK_CLUSTER)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on return


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """The folder ``name`` of this test session, the same for all the workers of ``-n``."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def shared_input(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[Any], None], Path], Path]:
    """``shared_input(name, make, at)``: the file ``make(binary_file)`` writes, made once per test session (the
    workers of ``-n`` share it) and hard-linked at ``at``, for big inputs that tests only read."""
    import fcntl

    folder = shared_folder(tmp_path_factory, "shared-inputs")

    def get(name: str, make: Callable[[Any], None], at: Path) -> Path:
        made = folder / name
        with open(folder / f"{name}.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker makes it; the others wait for it
            if not made.exists():
                part = folder / f"{name}.part"
                with open(part, "wb") as fh:
                    make(fh)
                part.rename(made)
        os.link(made, at)
        return at

    return get


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str], str]]:
    """``shared_service(name, code)``: the line ``python -c CODE`` prints first (a service's address), from one
    process that the workers of ``-n`` share, for services that take seconds of CPU to start. The first worker to
    ask starts it; at the end of its session it closes the process's stdin (which CODE then waits on, to end) once
    every worker that took the address has ended its session; a worker that asks after that starts another."""
    import fcntl

    folder = shared_folder(tmp_path_factory, "shared-services")
    known: dict[str, str] = {}
    taken: list[Any] = []  # a shared lock on each service's users file, held for this worker's session
    started: list[tuple[str, Path, subprocess.Popen]] = []

    def get(name: str, code: str) -> str:
        if name in known:
            return known[name]
        with open(folder / f"{name}.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = folder / f"{name}.address"
            if not found.exists():
                with open(folder / f"{name}.log", "ab") as log:
                    proc = subprocess.Popen([sys.executable, "-c", code], cwd=folder, env=env_with_repo(),
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)  # fmt: skip
                assert proc.stdout is not None
                address = proc.stdout.readline().decode().strip()
                if not address:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"the {name} service did not start: {(folder / f'{name}.log').read_text()[-2000:]}")
                users = folder / f"{name}.{proc.pid}.users"
                found.write_text(f"{address}\n{users}")
                started.append((name, users, proc))
            known[name], users_file = found.read_text().split("\n")
            users = open(users_file, "ab")  # noqa: SIM115 (held until the session ends)
            fcntl.flock(users, fcntl.LOCK_SH)
            taken.append(users)
        return known[name]

    yield get
    for users in taken:
        users.close()
    for name, users_file, proc in started:
        with open(folder / f"{name}.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            (folder / f"{name}.address").unlink()
        with open(users_file, "ab") as every:
            fcntl.flock(every, fcntl.LOCK_EX)  # the last of its users has ended its session
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=120)


def on_terminal(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    size: tuple[int, int] = (30, 110),
    stdout_too: bool = False,
    watch: Callable[[bytes], object] | None = None,
) -> tuple[int, bytes]:
    """Run ``python -m stream ARGS`` with its stderr (and its stdout, ``stdout_too``) on a pseudo-terminal of
    ``size`` (rows, columns), ``TERM=xterm-256color``; its exit code and every byte the terminal received. ``watch``
    is called with every byte received so far after each read (to let a held input go once a frame shows)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", *args], cwd=cwd, env={**env, "TERM": "xterm-256color"},
        stdin=subprocess.DEVNULL, stdout=follower if stdout_too else subprocess.DEVNULL, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed its side
                break
            if not data:
                break
            seen += data
            if watch is not None:
                watch(seen)
    finally:
        os.close(leader)
    return proc.wait(timeout=60), seen


def ohlcv_csv(closes: Iterable[str], newline: str = "\n", header: str = OHLCV_HEADER) -> str:
    """A 7-column candle file whose close column carries ``closes`` as written; the other fields are plausible."""
    lines = [header]
    for i, c in enumerate(closes):
        lines.append(f"2024-01-01 {i // 60 % 24:02d}:{i % 60:02d}:00,100.00,101.00,99.00,{c},1.500000,150.00")
    return newline.join(lines) + newline


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def write_config(folder: Path, text: str = 'seed: 42\nwindow: 5\nversion: "v1"\n', name: str = "config.yaml") -> Path:
    return write(folder / name, text)


def find_assessment_data() -> Path | None:
    """``../shared/data/assessment-data.csv`` beside the repository (or beside a folder holding this worktree)."""
    for parent in ROOT.parents:
        candidate = parent / ASSESSMENT_NAME
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture
def assessment_data() -> Path:
    path = find_assessment_data()
    if path is None:
        pytest.skip(f"the assessment dataset ../{ASSESSMENT_NAME.as_posix()} is not present beside the repository")
    return path


def read_signals_csv(text: str) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def exact_signals(closes: Sequence[str], window: int) -> tuple[list[int], list[Any]]:
    """The reference: per-row signal and exact mean (Fraction, None in warm-up) computed with fractions."""
    from fractions import Fraction

    values = [Fraction(c.strip()) for c in closes]
    signals, means = [], []
    for i, v in enumerate(values):
        if i + 1 < window:
            signals.append(0)
            means.append(None)
            continue
        mean = sum(values[i + 1 - window : i + 1], Fraction(0)) / window
        signals.append(1 if v > mean else 0)
        means.append(mean)
    return signals, means
