"""Where the parallel plan's tasks run: forked worker processes on this machine, or a Dask cluster (an embedded
LocalCluster on 127.0.0.1, or an existing one at a scheduler address). Both take the same picklable tasks through
``submit(fn, arg)`` -> handle, ``result(handle)``, ``done(handle)`` and ``close(abort)``."""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from stream.errors import MlopsStreamError
from stream.records import NamedTuple

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from stream.runs.plan.meter import Meter

# A task is a picklable function and its picklable argument; what either holds is the plan's business, not ours.
Task = Callable[[Any], Any]

# prctl(2)'s option that has the kernel signal a process when its parent ends (linux/prctl.h).
PR_SET_PDEATHSIG = 1

# Beyond Dask's connect timeout, how long the handshake may take before the address is given up on.
CONNECT_GRACE = 2.0

DASK_MISSING = (
    "--cluster and --scheduler run the job on Dask, which is not installed: pip install '.[dask]' in the "
    "mlops-stream checkout, or pip install 'dask[distributed]'"
)


class Executor(Protocol):
    """What runs the plan's tasks: ``submit`` gives an opaque handle, ``result`` waits for its answer, ``done`` asks
    without waiting; ``local``: the workers share this machine's files; ``workers``: how many run at once; ``meter``:
    the bytes its tasks have read so far (None: not known before each task ends)."""

    local: bool
    workers: int
    describe: str
    meter: Meter | None

    def submit(self, fn: Task, arg: Any) -> Any: ...

    def result(self, handle: Any) -> Any: ...

    def done(self, handle: Any) -> bool: ...

    def close(self, abort: bool = False) -> None: ...


class ExecutorError(MlopsStreamError):
    """An executor that cannot start or went wrong; the message says why and what to do."""


class WorkerError(ExecutorError):
    """A worker process ended without an answer (killed, or out of memory); the message says what to do."""


class Inline:
    """Runs each task at once, in this process: the plan without processes (tests, debugging)."""

    local = True
    workers = 1
    describe = "this process, task by task"
    meter: Meter | None = None

    def __init__(self) -> None:
        self.tasks = 0

    def submit(self, fn: Task, arg: Any) -> Any:
        self.tasks += 1
        return fn(arg)

    def result(self, handle: Any) -> Any:
        return handle

    def done(self, handle: Any) -> bool:
        return True

    def close(self, abort: bool = False) -> None:
        pass


class Processes:
    """Forked processes, each serving one task at a time over its own pipe.

    Unlike a pool, a worker that dies is noticed at once (its sentinel), and stopping kills the others right away. A
    task waits in the parent until a worker is idle: a worker slowed down by the rest of the machine takes fewer tasks
    instead of holding the others up, and the parent never sends to a worker that may be sending (a task and a result
    both bigger than the pipe's buffer would block both sides for ever). The workers end with this process however it
    ends (``_end_with_parent``); on Linux with the thread that makes them, so the run's own thread makes them.
    """

    local = True  # the workers share this machine's files: signals go to spill files, not through the pipes

    def __init__(self, count: int) -> None:
        import multiprocessing

        from stream.runs.plan.meter import Meter

        ctx = multiprocessing.get_context("fork")
        self.workers = count
        meter = Meter(count)
        self.meter: Meter | None = meter
        self.describe = f"worker processes: {count}"
        self.conns: list[Connection] = []
        self.procs: list[BaseProcess] = []
        # Only this process holds the write end: the workers see its end (EOF) when this process ends, however.
        alive, self._alive = os.pipe()
        life = _Life(os.getpid(), alive, self._alive, _prctl())
        try:
            for i in range(count):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_serve, args=(theirs, [*self.conns, mine], life, meter, i), daemon=True)
                proc.start()
                theirs.close()
                self.conns.append(mine)
                self.procs.append(proc)
        finally:
            os.close(alive)
        self._todo: deque[tuple[int, Task, Any]] = deque()
        self._running: list[int | None] = [None] * count  # each worker's task handle; None: idle
        self._done: dict[int, Any] = {}
        self._next = 0

    def submit(self, fn: Task, arg: Any) -> int:
        handle = self._next
        self._next += 1
        self._todo.append((handle, fn, arg))
        self._give()
        return handle

    def result(self, handle: int) -> Any:
        while handle not in self._done:
            self._collect(None)
        return self._done.pop(handle)

    def done(self, handle: int) -> bool:
        if handle not in self._done:
            self._collect(0)
        return handle in self._done

    def _give(self) -> None:
        """Send waiting tasks to idle workers: an idle worker is reading its pipe, so the send cannot block for good."""
        for i, running in enumerate(self._running):
            if not self._todo:
                return
            if running is None:
                handle, fn, arg = self._todo.popleft()
                try:
                    self.conns[i].send((fn, arg))
                except OSError:  # BrokenPipeError too: that is the worker's pipe, not the signals output
                    raise self._died(self.procs[i]) from None
                self._running[i] = handle

    def _collect(self, timeout: float | None) -> None:
        """Take the answers that are ready (waiting up to ``timeout``; None: until one is)."""
        from multiprocessing.connection import wait

        busy = {i: running for i, running in enumerate(self._running) if running is not None}
        if not busy:
            return
        ready = wait([self.conns[i] for i in busy] + [self.procs[i].sentinel for i in busy], timeout)
        for i, handle in busy.items():
            if self.conns[i] not in ready and self.procs[i].sentinel not in ready:
                continue
            try:
                status, value = self.conns[i].recv()
            except (EOFError, OSError):
                raise self._died(self.procs[i]) from None
            if status == "error":
                raise value
            self._done[handle] = value
            self._running[i] = None
        self._give()

    @staticmethod
    def _died(proc: BaseProcess) -> WorkerError:
        proc.join(1)
        return WorkerError(
            f"worker process {proc.pid} ended without finishing its part (exit code {proc.exitcode}; "
            "killed or out of memory?); run again, or with --workers 1"
        )

    def close(self, abort: bool = False) -> None:
        """Stop the workers: at once, whatever they were doing (their answers are no longer wanted either way)."""
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        if self._alive >= 0:
            os.close(self._alive)
            self._alive = -1


class _Life(NamedTuple):
    """How a worker ends with its parent: the parent's pid, the pipe only the parent writes to (read end, write end),
    and Linux's prctl (None elsewhere)."""

    parent: int
    alive: int
    held: int
    prctl: Callable[..., int] | None


def _prctl() -> Callable[..., int] | None:
    """Linux's prctl(2), through ctypes (looked up once, before the workers fork); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return cast("Callable[..., int]", ctypes.CDLL(None, use_errno=True).prctl)
    except (ImportError, OSError, AttributeError):
        return None


def _end_with_parent(life: _Life) -> None:
    """End this worker when its parent ends, even in the middle of a task (``kill -9`` of the parent included): it
    would otherwise finish its task holding the run's files, the signals file's lock among them."""
    import signal
    import threading

    os.close(life.held)  # inherited from the fork: only the parent may hold the write end
    if life.prctl is not None:
        life.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the kernel kills this worker as the parent ends
    if os.getppid() != life.parent:  # the parent ended before that was set
        os._exit(1)
    threading.Thread(target=_watch, args=(life.alive,), name="parent-watch", daemon=True).start()


def _watch(alive: int) -> None:
    """Wait for the end of the parent's pipe (nothing is ever written to it), then end this worker at once."""
    while True:
        try:
            if not os.read(alive, 1):
                break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        except OSError:
            break
    os._exit(1)


def _serve(conn: Connection, parent_ends: list[Connection], life: _Life, meter: Meter, index: int) -> None:
    """Worker ``index``'s loop: run tasks until the parent closes its end (or goes away), counting their reads in
    its counters of ``meter``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: a terminated worker just ends
    for other in parent_ends:
        other.close()  # inherited from the fork: holding them would hide the parent's going away
    _end_with_parent(life)
    meter.adopt(index)
    while True:
        try:
            fn, task = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(task))
        except Exception as exc:
            reply = ("error", exc)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # an exception that does not pickle
            conn.send(("error", WorkerError(f"a worker process failed: {type(exc).__name__}: {exc}")))


def parse_cluster(text: str) -> int | None:
    """``local`` or ``local:N`` -> N (None: as many workers as cores); raises ValueError otherwise."""
    kind, _, count = text.partition(":")
    if kind != "local":
        raise ValueError(f"expected local or local:N, got {text!r} (an existing cluster is --scheduler ADDRESS)")
    if not count:
        return None
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"expected local:N with N a number of workers of at least 1, got {text!r}")
    return int(count)


class Dask:
    """A Dask cluster: embedded (``workers`` processes on 127.0.0.1, no dashboard) or at ``scheduler``."""

    meter: Meter | None = None  # its workers share no memory with this process: blocks are seen as they finish

    def __init__(self, workers: int, scheduler: str | None = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ExecutorError(DASK_MISSING) from None
        self.cluster: Any = None
        if scheduler is None:
            import logging  # Dask's own logging, for silence_logs: only a Dask run imports it

            # No dashboard; the scheduler's other HTTP routes still need a port: any free one on loopback, not
            # Dask's default 8787 (taken by another cluster, Dask warns on stderr and picks another anyway). Its
            # logs stay quiet but for the critical: a worker whose scheduler closes first logs a heartbeat error with
            # a traceback, and a task's failure reaches the run through its future anyway.
            self.cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL,
            )  # fmt: skip
            self.client = distributed.Client(self.cluster)
            self.local = True
            self.describe = f"an embedded Dask LocalCluster of {workers} worker processes at "
            self.describe += str(self.cluster.scheduler_address)
        else:
            self.client = _connect(distributed, scheduler)
            self.local = False  # its workers may be elsewhere: signals come back as task results
            self.describe = f"the Dask cluster at {scheduler}"
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.describe += f" ({self.workers} worker threads)"

    def submit(self, fn: Task, arg: Any) -> Any:
        return self.client.submit(fn, arg, pure=False)

    def result(self, handle: Any) -> Any:
        from distributed.scheduler import KilledWorker

        try:
            return handle.result()
        except KilledWorker:
            raise WorkerError(
                "Dask workers died running a task, again and again (killed, or out of memory?); the cluster's logs "
                "say why; no metrics were computed"
            ) from None

    def done(self, handle: Any) -> bool:
        return bool(handle.done())

    def close(self, abort: bool = False) -> None:
        # Closing the client releases its futures: the scheduler drops the tasks no client wants any more.
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _connect(distributed: Any, scheduler: str) -> Any:
    """A client of the Dask scheduler at ``scheduler``, or an ExecutorError within about Dask's connect timeout
    (distributed.comm.timeouts.connect, 30 s unless configured).

    Dask's handshake waits for ever on a server that accepts and never answers (an HTTP server), and reads whatever
    another one sends as message lengths (an SSH banner: an allocation of petabytes), so the attempt runs in a thread
    that is given up on, and anything it raises means the same: no Dask scheduler there."""
    import threading

    import dask
    from dask.utils import parse_timedelta

    limit = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")
    outcome: list[Any] = []

    def attempt() -> None:
        try:
            outcome.append(distributed.Client(scheduler, timeout=limit))
        except Exception as exc:  # whatever it is, the address holds no scheduler this run can use
            outcome.append(exc)

    thread = threading.Thread(target=attempt, name="dask-connect", daemon=True)
    thread.start()
    thread.join(limit + CONNECT_GRACE)
    if not outcome:
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {scheduler}: something accepted the connection but gave no Dask "
            f"handshake within {limit + CONNECT_GRACE:g} s (is that address a Dask scheduler's?)"
        )
    found = outcome[0]
    if isinstance(found, (OSError, TimeoutError, ValueError)):
        raise ExecutorError(f"cannot reach the Dask scheduler at {scheduler}: {found}")
    if isinstance(found, Exception):
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {scheduler}: what answers there does not speak Dask's protocol "
            f"({type(found).__name__}: {found})"
        )
    return found
