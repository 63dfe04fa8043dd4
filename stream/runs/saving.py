"""A live run's durable state, written off the row path: its checkpoints and its "running" metrics documents."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stream.fs.atomic import is_stream
from stream.runs import checkpoint
from stream.runs.checkpoint import Checkpoint
from stream.sinks import metrics
from stream.sources.follow import FileFollower
from stream.sources.series import SeriesFollower

if TYPE_CHECKING:
    from stream.parsing.reader import Reader
    from stream.runs.context import RunContext
    from stream.runs.pipeline import Pipeline
    from stream.sinks.signals import SignalSink
    from stream.sources.follow import StreamFollower

CHECKPOINT_EVERY = 1.0  # seconds between checkpoints while rows flow
METRICS_EVERY = 2.0  # seconds between "running" metrics documents


class _Background:
    """Durable writes off the row path: an fsync or a rename can take milliseconds a row's latency should not pay.

    Only the newest pending document of each kind is written; an error is raised on the row path's next call.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Callable[[], None]] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="mlops-stream-writer", daemon=True)
        self._thread.start()

    def submit(self, kind: str, job: Callable[[], None]) -> None:
        self.check()
        with self._cond:
            self._pending[kind] = job
            self._cond.notify()

    def check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                jobs = list(self._pending.values())
                self._pending.clear()
            for job in jobs:
                try:
                    job()
                except BaseException as exc:  # handed to the row path, which reports it
                    if self._error is None:
                        self._error = exc

    def close(self) -> None:
        """Write what is pending and stop; raise the first error the writes met."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self.check()


class Saver:
    """A live run's checkpoints (the state after the rows processed so far, taken between pushes of bytes and saved
    in the background, at most once a second while rows flow) and its "running" metrics documents (every 2 s)."""

    def __init__(
        self,
        ctx: RunContext,
        file: checkpoint.File | None,
        follower: FileFollower | StreamFollower,
        reader: Reader,
        pipeline: Pipeline,
        sink: SignalSink | None,
        signals_fh: Any,
    ) -> None:
        """``file``: the checkpoint's (None without --checkpoint); ``signals_fh``: the signals file the run writes,
        synced before a checkpoint that counts its rows."""
        self.ctx = ctx
        self.file = file
        self.follower = follower
        self.reader = reader
        self.pipeline = pipeline
        self.sink = sink
        self.signals_fh = signals_fh
        self.checkpoints = 0  # saved so far (the metrics server shows them)
        self.checkpoint_time: float | None = None  # the wall-clock time of the last one
        self._id_cache: checkpoint.InputId | None = None
        output = ctx.options.output
        self._output_is_stream = is_stream(output) if output else False
        self._last_checkpoint = self._last_metrics = time.monotonic()
        self._writer: _Background | None = _Background()

    def due(self, now: float, dirty: bool) -> bool:
        """Hand the writer what is due at ``now``: a checkpoint when rows came since the last one (``dirty``), the
        running metrics; raise an error a write met. Returns whether a checkpoint was taken."""
        writer = self._writer
        assert writer is not None
        writer.check()
        taken = False
        if self.file is not None and dirty and now - self._last_checkpoint >= CHECKPOINT_EVERY:
            snapshot = self.snapshot()
            writer.submit("checkpoint", lambda: self.save(snapshot))
            taken = True
            self._last_checkpoint = now
        if now - self._last_metrics >= METRICS_EVERY:
            self.running_metrics()
            self._last_metrics = now
        return taken

    def running_metrics(self) -> None:
        output = self.ctx.options.output
        if not output or self._output_is_stream:  # a FIFO or device gets the final document only
            return
        cfg, pipeline = self.ctx.cfg, self.pipeline
        latency_ms = int((time.perf_counter() - self.ctx.started) * 1000)
        doc = metrics.running(
            cfg.version, cfg.seed, pipeline.tally, latency_ms, cfg.on_bad_row == "skip", pipeline.by_key
        )
        assert self._writer is not None
        self._writer.submit("metrics", lambda: metrics.write(output, doc))

    def snapshot(self) -> Checkpoint:
        """The state after the rows processed so far; taken between pushes of bytes, after the signals flush."""
        f, reader, opts = self.follower, self.reader, self.ctx.options
        ident = None
        if isinstance(f, FileFollower) and f.fd is not None and f.path is not None:
            cached = self._id_cache
            if (
                cached is not None
                and cached.size == checkpoint.FINGERPRINT
                and f.identity == (cached.device, cached.inode)
                and reader.offset >= cached.size
            ):
                ident = cached  # the fingerprint of a file's first bytes does not change while it grows
            else:
                ident = self._id_cache = checkpoint.identify(f.fd, f.path, reader.offset)
        signals = None
        if self.sink is not None and opts.signals is not None:
            to_stdout = opts.signals == "-"
            signals = {
                "path": "-" if to_stdout else os.path.abspath(opts.signals),
                "format": opts.signals_format,
                "bytes": None if to_stdout else self.signals_fh.tell(),
                "timestamp": self.sink.with_timestamp,
            }
            if not to_stdout:  # a restart continues this file, and no other put at its name
                st = os.fstat(self.signals_fh.fileno())
                signals |= {"device": st.st_dev, "inode": st.st_ino}
        files = None
        if isinstance(f, SeriesFollower):
            files = checkpoint.FileSet(f.pattern, time.time())
        cfg = self.ctx.cfg
        return Checkpoint(
            ident,
            reader.state().document(),
            self.pipeline.engine.state(),
            self.pipeline.tally,
            cfg.column,
            signals,
            cfg.key,
            files,
        )

    def save(self, snapshot: Checkpoint) -> None:
        # The rows a checkpoint covers must be on disk before it says so.
        if self.signals_fh is not None and self.ctx.options.signals != "-":
            os.fsync(self.signals_fh.fileno())
        assert self.file is not None
        self.file.save(snapshot)
        self.checkpoints += 1
        self.checkpoint_time = time.time()

    def finish(self) -> None:
        """Write what is pending, raising an error a write met, and the last checkpoint."""
        writer, self._writer = self._writer, None
        assert writer is not None
        writer.close()
        if self.file is not None:
            self.save(self.snapshot())

    def close(self) -> None:
        """Stop the writer of a run that is failing already: its own error is the one to report."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except BaseException:
                pass
