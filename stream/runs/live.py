"""The live run (``--follow``): rows go through the pipeline as they arrive; "running" metrics and checkpoints are
written in the background (saving.py); SIGINT, SIGTERM or ``--idle-timeout`` end it cleanly."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from typing import TYPE_CHECKING, Any

from stream.errors import SourceError
from stream.fs.atomic import is_stream
from stream.parsing.framing import SHOWN, InputError
from stream.parsing.layout import LayoutRequest
from stream.parsing.reader import Reader, ReaderState, batches
from stream.runs import checkpoint, resume
from stream.runs.context import Outcome, RunContext
from stream.runs.following import open_follower
from stream.runs.saving import Saver
from stream.runs.watched import LiveView
from stream.sinks.signals import SignalSink
from stream.sources.files import NewFile
from stream.sources.follow import FileFollower, StreamFollower
from stream.sources.globs import is_pattern
from stream.sources.series import SeriesFollower

if TYPE_CHECKING:
    from stream.core.batch import Batch
    from stream.runs.checkpoint import Checkpoint
    from stream.runs.pipeline import Pipeline
    from stream.runs.stops import Stop
    from stream.sinks.progress import Progress

HOUSEKEEPING_EVERY = 0.25  # seconds between the loop's periodic work: checkpoints, running metrics


class LiveRun:
    """One ``--follow`` run; returns its Outcome for the command to publish."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def run(self) -> Outcome:
        stop = self.ctx.stops.stop_request()  # takes SIGINT and SIGTERM over while the run lasts
        try:
            with ExitStack() as opened:  # what the run opens, closed however it ends
                return self._run(stop, opened)
        finally:
            stop.close(then_ignore=True)  # the stop is under way: later signals are ignored, not fatal

    def _run(self, stop: Stop, opened: ExitStack) -> Outcome:
        ctx, opts, cfg, log = self.ctx, self.ctx.options, self.ctx.cfg, self.ctx.log
        file, ckpt = self._checkpoint(opened)
        for path in (opts.output, opts.checkpoint, opts.signals):
            # This run writes them for hours; an earlier one killed mid-write may have left temporary files.
            if path and path != "-":
                ctx.remove_leftovers(path)
        reader = Reader(
            cfg.column, cfg.on_bad_row, report=ctx.bad_log, keep_text=opts.signals is not None,
            final_line_needs_newline=True, key=cfg.key, request=LayoutRequest.of(cfg),
        )  # fmt: skip
        if ckpt is not None:
            reader.restore(ReaderState.of(ckpt.reader))
        follower = open_follower(ctx, ckpt, stop)
        opened.callback(follower.close)
        out_fd = ctx.env.stdout_fd
        if opts.signals == "-" and out_fd is not None and stat.S_ISFIFO(os.fstat(out_fd).st_mode):
            follower.watch_output(out_fd)
        sink, signals_fh = self._sink(ckpt, opened)
        pipeline = ctx.pipeline(sink, ckpt.engine if ckpt is not None else None)
        if ckpt is not None:
            pipeline.restore(ckpt.tally)
            log.info(
                "resuming from the checkpoint %s: %d rows done (%d signals, %d skipped), input line %d, byte %d",
                opts.checkpoint, ckpt.tally.rows, ckpt.tally.signals, ckpt.tally.skipped,
                ckpt.reader["line"], ckpt.offset,
            )  # fmt: skip
        name = "<stdin>" if opts.input == "-" else str(opts.input)
        if isinstance(follower, SeriesFollower):
            name = f"the files matching {name}"
        display = self._announce(name, follower, pipeline)
        if display is not None:
            opened.enter_context(display)  # the summary line takes its place when the run ends well
        saver = Saver(ctx, file, follower, reader, pipeline, sink, signals_fh)
        opened.callback(saver.close)
        if file is not None and ckpt is None:
            saver.save(saver.snapshot())  # claims the checkpoint (and its lock) before any row is processed
        saver.running_metrics()
        view = LiveView(follower, reader, pipeline, saver, serving=ctx.server is not None)
        if ctx.server is not None:
            ctx.server.attach(view)
        loop = _Loop(ctx, stop, follower, reader, pipeline, saver, view)
        t_read = time.perf_counter()
        try:
            for batch in batches(reader, loop.events(), finish=False):  # the end is finish's to judge
                loop.consume(batch)
        except InputError as exc:
            if reader.layout is not None or not isinstance(follower, StreamFollower) or not cfg.header:
                raise
            # The usual cause on a pipe: `tail -F` sends a file's last 10 lines, and the header is not among them.
            raise InputError(f"{exc}; if the pipe is tail -F, use tail -n +1 -F FILE to send the header too") from None
        with view.lock or nullcontext():
            loop.finish()
        return Outcome(
            pipeline.tally, reader.layout, reader.skips, name, time.perf_counter() - t_read, pipeline.by_key,
            ckpt.tally.rows if ckpt is not None else 0, loop.lost(),
        )  # fmt: skip

    def _checkpoint(self, opened: ExitStack) -> tuple[checkpoint.File | None, Checkpoint | None]:
        """The checkpoint file (None without --checkpoint), locked, and the checkpoint it holds, checked against this
        run's settings (None: a first run)."""
        opts, cfg = self.ctx.options, self.ctx.cfg
        if not opts.checkpoint:
            return None, None
        if opts.signals not in (None, "-") and is_stream(opts.signals):
            raise SourceError(
                f"--checkpoint needs --signals to be a regular file (or -): {opts.signals} is a stream, which "
                "a restart cannot cut back to the checkpoint's rows"
            )
        file = checkpoint.File(opts.checkpoint)
        opened.callback(file.close)
        ckpt = file.load()
        resumed = ckpt is not None and ckpt.signals is not None  # a link there is refused as a replaced file
        if opts.signals not in (None, "-") and not resumed and os.path.islink(opts.signals):
            raise SourceError(
                f"--checkpoint needs --signals to be a regular file (or -), not a symbolic link: {opts.signals} is "
                f"{checkpoint.link_words(opts.signals)}, and a restart cuts back and appends to the file the "
                "checkpoint knew, never through a link; pass the file's own path"
            )
        if ckpt is not None:
            assert opts.input is not None
            resume.check_settings(
                ckpt, opts.checkpoint, input_path=opts.input, window=cfg.window, column=cfg.column,
                signals=opts.signals, fmt=opts.signals_format, key=cfg.key, pattern=is_pattern(opts.input),
            )  # fmt: skip
        return file, ckpt

    def _sink(self, ckpt: Checkpoint | None, opened: ExitStack) -> tuple[SignalSink | None, Any]:
        """The signals sink (None without --signals) and the file it writes: continued where a checkpoint left it."""
        opts, ctx = self.ctx.options, self.ctx
        if opts.signals is None:
            return None, None
        recorded = ckpt.signals if ckpt is not None else None
        if recorded is not None and opts.signals != "-":
            assert ckpt is not None and opts.checkpoint is not None
            resumed = resume.reopen_signals(ckpt, opts.signals, opts.checkpoint)
            sink = SignalSink(
                resumed, opts.signals_format, with_timestamp=recorded["timestamp"], key=ctx.cfg.key,
                header_written=int(recorded["bytes"]) > 0, name=opts.signals,
            )  # fmt: skip
            opened.callback(sink.close)
            return sink, resumed
        opened_sink = ctx.signals(recorded["timestamp"] if recorded is not None else None)
        fh = opened_sink.out if opened_sink is not None else None
        if opened_sink is not None and fh is not ctx.env.stdout_buffer:
            opened.callback(opened_sink.close)
        return opened_sink, fh

    def _announce(self, name: str, follower: FileFollower | StreamFollower, pipeline: Pipeline) -> Progress | None:
        """Say what is followed, and how; the progress display, when a person watches."""
        opts, env = self.ctx.options, self.ctx.env
        watching = getattr(follower, "watching", "a pipe")
        idle = f"; stopping after {opts.idle_timeout:g} s without data" if opts.idle_timeout else ""
        self.ctx.log.info("following %s (waiting with %s)%s; SIGINT or SIGTERM stops", name, watching, idle)
        from stream.sinks import progress

        if not progress.wanted(opts, env):
            return None
        return progress.Progress(pipeline, name, follower=follower, stream=env.stderr)


class _Loop:
    """A live run's row path: the follower's events through the reader into the pipeline, the periodic work between
    them (checkpoints, running metrics), and the run's end."""

    def __init__(
        self,
        ctx: RunContext,
        stop: Stop,
        follower: FileFollower | StreamFollower,
        reader: Reader,
        pipeline: Pipeline,
        saver: Saver,
        view: LiveView,
    ) -> None:
        self.ctx = ctx
        self.stop = stop
        self.follower = follower
        self.reader = reader
        self.pipeline = pipeline
        self.saver = saver
        self.view = view
        self.dirty = False  # rows or files came since the last checkpoint
        self.next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY

    def events(self) -> Iterator[bytes | NewFile]:
        """The follower's data and new files, each followed, once its rows are consumed, by the housekeeping that is
        due; the waits' empty reads are left out."""
        for event in self.view.turns(self.follower):
            self.stop.begin()  # the input was looked at: a stop that came while the run started takes effect
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

    def consume(self, batch: Batch) -> None:
        self.pipeline.consume(batch)
        if len(batch):
            self.view.rows_at(time.monotonic())
            sink = self.pipeline.signals
            if sink is not None:
                sink.flush()
        self.dirty = True

    def _new_file(self, event: NewFile) -> None:
        """Count a rotation or truncation, and say so when a truncation cuts a line short (the reader drops it)."""
        reader = self.reader
        truncated = event.reason == "truncated"
        self.view.new_file(event.reason)
        if truncated and reader.pending:
            f = self.follower
            where = f.label if isinstance(f, SeriesFollower) else self.ctx.options.input
            self.ctx.log.warning(
                "line %d was cut short by the truncation of %s and is dropped: %r",
                reader.line_no + 1, where, reader.pending[:SHOWN].decode("utf-8", "replace"),
            )  # fmt: skip

    def _housekeeping(self, now: float) -> None:
        self.next_housekeeping = now + HOUSEKEEPING_EVERY
        self.view.turned(now)
        self.ctx.announce(self.reader.layout)
        if self.saver.due(now, self.dirty):
            self.dirty = False

    def finish(self) -> None:
        f, reader, log = self.follower, self.reader, self.ctx.log
        if isinstance(f, SeriesFollower) and f.identity is None:
            raise SourceError(
                f"no file matches the input pattern {self.ctx.options.input} (none appeared before the run stopped)"
            )
        if isinstance(f, FileFollower) and f.identity is None and f.path is not None:
            raise SourceError(f"input file {f.path} does not exist (it did not appear before the run stopped)")
        log.info("stopping: %s", f.stopped_by)
        if isinstance(f, StreamFollower) and f.ended:
            # The pipe is closed: a last line without a newline is complete, as in batch mode.
            self.consume(reader.finish(ended=True))
        elif reader.pending:
            later = "left for the next run" if self.ctx.options.checkpoint else "not processed"
            log.warning(
                "line %d has no newline yet (%d bytes: %r); it is %s",
                reader.line_no + 1, len(reader.pending), reader.pending[:SHOWN].decode("utf-8", "replace"), later,
            )  # fmt: skip
        self.ctx.announce(reader.layout)
        if self.pipeline.signals is not None:
            self.pipeline.signals.flush()
        self.saver.finish()
        if self.ctx.options.checkpoint:
            log.info("checkpoint written to %s at input byte %d", self.ctx.options.checkpoint, reader.offset)
        self.ctx.bad_log.summary()

    def lost(self) -> str | None:
        """What the run could not read (files replaced too fast), for the final log line; None: nothing."""
        f, where = self.follower, self.ctx.options.input
        if not isinstance(f, FileFollower):
            return None
        unseen = f.unseen_files()
        if unseen:
            self.ctx.log.warning(
                "%d more files were created at %s and replaced before the run could look at them; their rows are "
                "not read", unseen, where,
            )  # fmt: skip
        clauses = []
        if f.lost_bytes or f.lost_files or unseen:
            files = f.lost_files + unseen
            skipped = f"{files} replaced file{'s' if files != 1 else ''} skipped, " if files else ""
            bytes_ = f"at least {f.lost_bytes} bytes" if unseen else f"{f.lost_bytes} bytes"
            clauses.append(f"{skipped}{bytes_} of {where} not read")
        if isinstance(f, SeriesFollower):
            late, changed = f.skipped["late"], f.skipped["changed"]
            if late:
                clauses.append(f"{late} late file{'s' if late != 1 else ''} not read")
            if changed:
                clauses.append(f"{changed} file{'s' if changed != 1 else ''} changed after the run moved on, not read")
        if not clauses:
            return None
        return f"rows were lost: {'; '.join(clauses)} (see the warnings above)"
