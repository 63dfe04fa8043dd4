"""Where the parallel plan's tasks run: worker processes on this machine, or a Dask cluster (an embedded
LocalCluster on 127.0.0.1, or an existing one at a scheduler address). Both take the same picklable tasks."""

from __future__ import annotations

import logging
import os
from typing import Any

from stream.logsink import LOGGER

DASK_MISSING = (
    "--cluster and --scheduler run the job on Dask, which is not installed: pip install 'mlops-stream[dask]' "
    "(or pip install 'dask[distributed]')"
)

log = logging.getLogger(LOGGER)


class ExecutorError(Exception):
    """An executor that cannot start; the message says why and what to do."""


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Processes:
    """Worker processes on this machine. A worker that dies (killed, out of memory) fails the run, never hangs it."""

    local = True  # the workers share this machine's file system (signals are spilled to files, not sent back)

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork starts workers in milliseconds with everything imported; spawn where the platform has no fork.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self.workers = workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        self.describe = f"{workers} worker processes"

    def submit(self, fn: Any, arg: Any) -> Any:
        return self.pool.submit(fn, arg)

    def result(self, handle: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return handle.result()
        except BrokenProcessPool:
            raise ExecutorError(
                "a worker process died while running (killed, or out of memory); no metrics were computed"
            ) from None

    def done(self, handle: Any) -> bool:
        return bool(handle.done())

    def close(self, abort: bool = False) -> None:
        """Stop the workers; ``abort`` (the run failed or was stopped) kills them instead of letting tasks finish."""
        if abort:
            for process in list(getattr(self.pool, "_processes", {}).values()):  # no public way to stop a task
                process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


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

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ExecutorError(DASK_MISSING) from None
        self.cluster: Any = None
        if scheduler is None:
            n = workers or cores()
            self.cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                silence_logs=logging.ERROR,
            )  # fmt: skip
            self.client = distributed.Client(self.cluster)
            self.local = True
            self.describe = f"an embedded Dask LocalCluster of {n} worker processes at {self.cluster.scheduler_address}"
        else:
            try:
                # How long to try is Dask's own setting (distributed.comm.timeouts.connect, 30 s unless configured).
                self.client = distributed.Client(scheduler)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExecutorError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            self.local = False  # its workers may be elsewhere: signals come back as task results
            self.describe = f"the Dask cluster at {scheduler}"
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.describe += f" ({self.workers} worker threads)"

    def submit(self, fn: Any, arg: Any) -> Any:
        return self.client.submit(fn, arg, pure=False)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def done(self, handle: Any) -> bool:
        return bool(handle.done())

    def close(self, abort: bool = False) -> None:
        # Closing the client releases its futures: the scheduler drops the tasks no client wants any more.
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
