"""The live run (``--follow``): rows go through the pipeline as they arrive; "running" metrics and checkpoints are
written in the background; SIGINT, SIGTERM or ``--idle-timeout`` end it cleanly."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from stream.core.batch import Batch
from stream.errors import SourceError
from stream.fs.atomic import is_stream, remove_leftovers
from stream.parsing.framing import SHOWN
from stream.parsing.layout import LayoutRequest
from stream.parsing.reader import Reader, ReaderState, batches
from stream.runs import checkpoint
from stream.runs.checkpoint import Checkpoint
from stream.runs.context import Outcome, RunContext
from stream.runs.stops import Stop
from stream.sinks import metrics
from stream.sinks.signals import SignalSink
from stream.sources.chunks import CHUNK
from stream.sources.files import NewFile, open_input
from stream.sources.follow import FileFollower, StreamFollower

if TYPE_CHECKING:
    from stream.sinks.progress import Progress
    from stream.sinks.serve import Sample
    from stream.sinks.topkeys import TopKeys

CHECKPOINT_EVERY = 1.0  # seconds between checkpoints while rows flow
METRICS_EVERY = 2.0  # seconds between "running" metrics documents
HOUSEKEEPING_EVERY = 0.25
# Seconds without a turn of the follow loop before /healthz reports it stuck (it turns at least twice a second).
STUCK_AFTER = 10.0


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


class LiveRun:
    """One ``--follow`` run; returns its Outcome for the command to publish."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.args = ctx.args
        self.log = ctx.log
        self.cfg = ctx.cfg
        self.t0 = ctx.started
        self.display: Progress | None = None
        self.writer: _Background | None = None
        self.follower: FileFollower | StreamFollower | None = None
        self.signals_fh: Any = None
        self.dirty = False
        self.checkpoint_file: checkpoint.File | None = None
        self._id_cache: checkpoint.InputId | None = None
        # What the metrics server reads (--metrics-port); the lock is held while a batch is processed.
        self.lock: threading.Lock | None = None
        self.top_keys: TopKeys | None = None  # what a scrape reads of a keyed run's counts
        self.last_row_at: float | None = None
        self.started_at = 0.0
        self.checkpoints = 0
        self.checkpoint_time: float | None = None
        self.rotations = self.truncations = 0

    def run(self) -> Outcome:
        stop = Stop()
        stop.install()
        try:
            return self._run(stop)
        finally:
            stop.close(then_ignore=True)  # the stop is under way: later signals are ignored, not fatal
            if self.display is not None:
                self.display.close()
            if self.writer is not None:
                try:
                    self.writer.close()
                except BaseException:  # the run is failing already; its own error is the one to report
                    pass
            if self.follower is not None:
                self.follower.close()
            if self.signals_fh is not None and self.signals_fh is not sys.stdout.buffer:
                self.signals_fh.close()
            if self.checkpoint_file is not None:
                self.checkpoint_file.close()

    def _run(self, stop: Stop) -> Outcome:
        args, cfg, log = self.args, self.cfg, self.log
        ckpt = None
        if args.checkpoint:
            if args.signals not in (None, "-") and is_stream(args.signals):
                raise SourceError(
                    f"--checkpoint needs --signals to be a regular file (or -): {args.signals} is a stream, which "
                    "a restart cannot cut back to the checkpoint's rows"
                )
            self.checkpoint_file = checkpoint.File(args.checkpoint)
            ckpt = self.checkpoint_file.load()
        if ckpt is not None:
            checkpoint.check_settings(
                ckpt, args.checkpoint, input_path=args.input, window=cfg.window, column=cfg.column,
                signals=args.signals, fmt=args.signals_format, key=cfg.key,
            )  # fmt: skip
        for path in (args.output, args.checkpoint):
            # This run rewrites them for hours; an earlier one killed mid-write may have left temporary files.
            for name in remove_leftovers(path) if path else ():
                log.info("removed %s, a temporary file an interrupted run left beside %s", name, path)
        self.bad_log = self.ctx.bad_log
        reader = Reader(
            cfg.column, cfg.on_bad_row, report=self.bad_log, keep_text=args.signals is not None,
            final_line_needs_newline=True, key=cfg.key, request=LayoutRequest.of(cfg),
        )  # fmt: skip
        if ckpt is not None:
            reader.restore(ReaderState.of(ckpt.reader))
        self.reader = reader
        self.follower = follower = self._follower(ckpt, stop)
        if args.signals == "-" and stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
            follower.watch_output(sys.stdout.fileno())
        self.sink = self._sink(ckpt)
        self.pipeline = self.ctx.pipeline(self.sink, ckpt.engine if ckpt is not None else None)
        if ckpt is not None:
            self.pipeline.restore(ckpt.tally)
            log.info(
                "resuming from the checkpoint %s: %d rows done (%d signals, %d skipped), input line %d, byte %d",
                args.checkpoint, ckpt.tally.rows, ckpt.tally.signals, ckpt.tally.skipped,
                ckpt.reader["line"], ckpt.offset,
            )  # fmt: skip
        name = "<stdin>" if args.input == "-" else args.input
        watching = getattr(follower, "watching", "a pipe")
        idle = f"; stopping after {args.idle_timeout:g} s without data" if args.idle_timeout else ""
        log.info("following %s (waiting with %s)%s; SIGINT or SIGTERM stops", name, watching, idle)
        from stream.sinks import progress

        if progress.wanted(args):
            self.display = progress.Progress(self.pipeline, name, follower=follower)
        self.writer = _Background()
        now = time.monotonic()
        self.last_checkpoint = self.last_metrics = now
        self.next_housekeeping = now + HOUSEKEEPING_EVERY
        self.output_is_stream = bool(args.output) and is_stream(args.output)
        if args.checkpoint and ckpt is None:
            self._save(self._snapshot())  # claims the checkpoint (and its lock) before any row is processed
        self._running_metrics()
        if self.ctx.server is not None:
            from stream.sinks.topkeys import TopKeys

            self.lock = threading.Lock()
            self.top_keys = TopKeys.of(self.pipeline)
            self.started_at = time.monotonic()
            self.ctx.server.attach(self)
        t_read = time.perf_counter()
        consume = self._consume
        for batch in batches(reader, self._events(follower), finish=False):  # the end is _finish's to judge
            consume(batch)
        with self.lock or nullcontext():
            self._finish()
        return Outcome(
            self.pipeline.tally, reader.layout, reader.skips, name, time.perf_counter() - t_read,
            self.pipeline.by_key, ckpt.tally.rows if ckpt is not None else 0, self._lost(),
        )  # fmt: skip

    # ---- set-up ---------------------------------------------------------------------------------------------------

    def _follower(self, ckpt: Checkpoint | None, stop: Stop) -> FileFollower | StreamFollower:
        args, log = self.args, self.log
        idle = args.idle_timeout
        if args.input == "-":
            stdin = sys.stdin.fileno()
            if stat.S_ISREG(os.fstat(stdin).st_mode):  # a file redirected into stdin: followed through its descriptor
                return FileFollower(None, stop, idle, fd=os.dup(stdin), offset=os.lseek(stdin, 0, os.SEEK_CUR), log=log)
            return StreamFollower(stdin, stop, idle)
        path = args.input
        offset = 0
        fd: int | None = None
        if ckpt is not None:
            fd, found = checkpoint.open_input(ckpt, path, args.checkpoint)
            offset = ckpt.offset if fd is not None else 0
            if found != path:
                log.warning(
                    "%s was replaced while mlops-stream was not running; reading the rest of the old file, now "
                    "named %s, before the new one",
                    path, found,
                )  # fmt: skip
        elif os.path.lexists(path):
            if _is_fifo(path):
                # Opening a FIFO waits for a writer inside open(), where SIGTERM cannot end the wait. Opened without
                # blocking, the follower's poll does the waiting, and a stop ends it.
                if args.checkpoint:
                    raise SourceError(f"--checkpoint needs a regular file as input; {path} is a stream")
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    open_input(path)  # raises with the batch mode's message (no permission, ...)
                    raise
                return StreamFollower(fd, stop, idle, owns_fd=True)
            inp = open_input(path)  # its errors (a folder, no permission) are the batch mode's
            fd = os.dup(inp.fh.fileno())
            inp.fh.close()
            if inp.size is None:  # a FIFO or a device: read as a stream, no name to follow
                if args.checkpoint:
                    os.close(fd)
                    raise SourceError(f"--checkpoint needs a regular file as input; {path} is a stream")
                return StreamFollower(fd, stop, idle, owns_fd=True)
        else:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise SourceError(f"input file {path} does not exist, and neither does its folder {folder}")
            log.warning("input %s does not exist yet; waiting for it to appear", path)
        return FileFollower(path, stop, idle, fd=fd, offset=offset, log=log)

    def _sink(self, ckpt: Checkpoint | None) -> SignalSink | None:
        args = self.args
        if args.signals is None:
            return None
        recorded = ckpt.signals if ckpt is not None else None
        if recorded is not None and args.signals != "-":
            self.signals_fh = checkpoint.reopen_signals(ckpt, args.signals, args.checkpoint)  # type: ignore[arg-type]
            return SignalSink(
                self.signals_fh, args.signals_format, with_timestamp=recorded["timestamp"], key=self.cfg.key,
                header_written=int(recorded["bytes"]) > 0,
            )  # fmt: skip
        sink = self.ctx.signals(recorded["timestamp"] if recorded is not None else None)
        self.signals_fh = sink.out if sink is not None else None
        return sink

    # ---- the row path -----------------------------------------------------------------------------------------

    def _events(self, follower: FileFollower | StreamFollower) -> Iterator[bytes | NewFile]:
        """The follower's data and new files, each followed, once its rows are consumed, by the housekeeping that is
        due; the waits' empty reads are left out."""
        for event in self._turns(follower):
            if isinstance(event, NewFile):
                self._new_file(event)
                yield event
                self.dirty = True
            elif event:
                yield event
                self.dirty = True
            now = time.monotonic()
            if now >= self.next_housekeeping:
                self._housekeeping(now)

    def _consume(self, batch: Batch) -> None:
        self.pipeline.consume(batch)
        if len(batch):
            self.last_row_at = time.monotonic()
            if self.sink is not None:
                self.sink.flush()
        self.dirty = True

    def _new_file(self, event: NewFile) -> None:
        """Count a rotation or truncation, and say so when a truncation cuts a line short (the reader drops it)."""
        reader = self.reader
        truncated = event.reason == "truncated"
        if truncated:
            self.truncations += 1
        else:
            self.rotations += 1
        if truncated and reader.pending:
            self.log.warning(
                "line %d was cut short by the truncation of %s and is dropped: %r",
                reader.line_no + 1, self.args.input, reader.pending[:SHOWN].decode("utf-8", "replace"),
            )  # fmt: skip

    def _housekeeping(self, now: float) -> None:
        self.next_housekeeping = now + HOUSEKEEPING_EVERY
        self.ctx.announce(self.reader.layout)
        assert self.writer is not None
        self.writer.check()
        if self.args.checkpoint and self.dirty and now - self.last_checkpoint >= CHECKPOINT_EVERY:
            snapshot = self._snapshot()
            self.writer.submit("checkpoint", lambda: self._save(snapshot))
            self.dirty = False
            self.last_checkpoint = now
        if now - self.last_metrics >= METRICS_EVERY:
            self._running_metrics()
            self.last_metrics = now
        if self.display is not None:
            self.display.tick()

    # ---- durable state ------------------------------------------------------------------------------------------

    def _running_metrics(self) -> None:
        output = self.args.output
        if not output or self.output_is_stream:  # a FIFO or device gets the final document only
            return
        cfg = self.cfg
        latency_ms = int((time.perf_counter() - self.t0) * 1000)
        doc = metrics.running(
            cfg.version, cfg.seed, self.pipeline.tally, latency_ms, cfg.on_bad_row == "skip", self.pipeline.by_key
        )
        assert self.writer is not None
        self.writer.submit("metrics", lambda: metrics.write(output, doc))

    def _snapshot(self) -> Checkpoint:
        """The state after the rows processed so far; taken between pushes of bytes, after the signals flush."""
        f, reader = self.follower, self.reader
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
        if self.sink is not None:
            to_stdout = self.args.signals == "-"
            signals = {
                "path": "-" if to_stdout else os.path.abspath(self.args.signals),
                "format": self.args.signals_format,
                "bytes": None if to_stdout else self.signals_fh.tell(),
                "timestamp": self.sink.with_timestamp,
            }
        return Checkpoint(
            ident,
            reader.state().document(),
            self.pipeline.engine.state(),
            self.pipeline.tally,
            self.cfg.column,
            signals,
            self.cfg.key,
        )

    def _save(self, snapshot: Checkpoint) -> None:
        # The rows a checkpoint covers must be on disk before it says so.
        if self.signals_fh is not None and self.args.signals != "-":
            os.fsync(self.signals_fh.fileno())
        assert self.checkpoint_file is not None
        self.checkpoint_file.save(snapshot)
        self.checkpoints += 1
        self.checkpoint_time = time.time()

    def _lost(self) -> str | None:
        f = self.follower
        if not isinstance(f, FileFollower):
            return None
        unseen = f.unseen_files()
        if unseen:
            self.log.warning(
                "%d more files were created at %s and replaced before the run could look at them; their rows are "
                "not read", unseen, self.args.input,
            )  # fmt: skip
        if not (f.lost_bytes or f.lost_files or unseen):
            return None
        files = f.lost_files + unseen
        skipped = f"{files} replaced file{'s' if files != 1 else ''} skipped, " if files else ""
        bytes_ = f"at least {f.lost_bytes} bytes" if unseen else f"{f.lost_bytes} bytes"
        return f"rows were lost: {skipped}{bytes_} of {self.args.input} not read (see the warnings above)"

    def _finish(self) -> None:
        f, reader, log = self.follower, self.reader, self.log
        if isinstance(f, FileFollower) and f.identity is None and f.path is not None:
            raise SourceError(f"input file {f.path} does not exist (it did not appear before the run stopped)")
        log.info("stopping: %s", f.stopped_by if f is not None else "done")
        if isinstance(f, StreamFollower) and f.ended:
            # The pipe is closed: a last line without a newline is complete, as in batch mode.
            self._consume(reader.finish(ended=True))
        elif reader.pending:
            later = "left for the next run" if self.args.checkpoint else "not processed"
            log.warning(
                "line %d has no newline yet (%d bytes: %r); it is %s",
                reader.line_no + 1, len(reader.pending), reader.pending[:SHOWN].decode("utf-8", "replace"), later,
            )  # fmt: skip
        self.ctx.announce(reader.layout)
        if self.sink is not None:
            self.sink.flush()
        assert self.writer is not None
        writer, self.writer = self.writer, None
        writer.close()
        if self.args.checkpoint:
            self._save(self._snapshot())
            log.info("checkpoint written to %s at input byte %d", self.args.checkpoint, reader.offset)
        self.bad_log.summary()

    # ---- what the metrics server reads (stream/serve.py) ------------------------------------------------------

    def _turns(self, follower: Iterable[bytes | NewFile]) -> Iterable[bytes | NewFile]:
        """The follower's events; when serving, with the lock held while each one is processed."""
        return follower if self.lock is None else _holding(self.lock, follower)

    def sample(self) -> Sample:
        from stream.sinks.serve import sample_of

        s = sample_of(self.pipeline, self.reader.skips, self.top_keys)
        f = self.follower
        assert f is not None
        s.bytes_read = f.bytes_read
        if isinstance(f, FileFollower):
            s.bytes_unread = self._unread(f)
            s.rotations, s.truncations = self.rotations, self.truncations
        # Before its first row, since the run started: a feed that never resumes after a restart shows as stalled.
        s.last_row_age = time.monotonic() - (self.last_row_at or self.started_at)
        if self.args.checkpoint:
            s.checkpoints, s.last_checkpoint = self.checkpoints, self.checkpoint_time
        return s

    def _stopping(self) -> str | None:
        f = self.follower
        return "the run is stopping" if f is None or f.stop.reason is not None or f.stopped_by is not None else None

    def health(self) -> str | None:
        if stopping := self._stopping():
            return stopping
        quiet = time.monotonic() - (self.next_housekeeping - HOUSEKEEPING_EVERY)
        return f"the follow loop has not turned for {quiet:.0f} s" if quiet > STUCK_AFTER else None

    def readiness(self) -> str | None:
        f = self.follower
        if stopping := self._stopping():
            return stopping
        if isinstance(f, FileFollower):
            unread = self._unread(f)
            if unread is None:
                return f"waiting for the input {f.label} to appear"
            if unread >= CHUNK:
                return f"reading the backlog: {unread} bytes to go"
        return None

    @staticmethod
    def _unread(f: FileFollower) -> int | None:
        fd = f.fd
        try:
            return max(os.fstat(fd).st_size - f.pos, 0) if fd is not None else None
        except OSError:  # closed by the follow loop at a rotation, between our look and the call
            return None


def _holding(lock: threading.Lock, events: Iterable[bytes | NewFile]) -> Iterator[bytes | NewFile]:
    """``events`` with ``lock`` held from each event until the next is asked for: released only while waiting."""
    it = iter(events)
    lock.acquire()
    try:
        while True:
            lock.release()
            try:
                event = next(it)
            except StopIteration:
                return
            finally:
                lock.acquire()
            yield event
    finally:
        lock.release()


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False
