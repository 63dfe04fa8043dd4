"""What every run (batch, live) receives from the command: the config, the log, the outputs and the metrics server;
and the Outcome it hands back, turned here into the metrics document."""

from __future__ import annotations

import os
import time

from stream.errors import JobError, reason
from stream.records import NamedTuple
from stream.sinks.log import BadRowLog, Log

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from stream.config import Config
    from stream.core.engine import WindowState
    from stream.core.keyed import KeyedState
    from stream.core.tally import Skips, Tally
    from stream.fs.atomic import Staged
    from stream.parsing.layout import Layout
    from stream.runs.options import Environment, Options
    from stream.runs.pipeline import Pipeline
    from stream.runs.stops import Signals
    from stream.sinks.serve import Server
    from stream.sinks.signals import SignalSink


class Outcome(NamedTuple):
    """What a finished run hands back: its counts, the layout it read (None: the input was empty), its skipped rows."""

    tally: Tally
    layout: Layout | None
    skips: Skips
    name: str
    elapsed: float
    by_key: dict[str, Tally] | None = None
    resumed: int = 0  # rows counted before this run, restored from a checkpoint
    lost: str | None = None  # what the run could not read (files replaced too fast), for the final log line


class RunContext:
    """One run's settings and sinks. A run calls these; it never reaches into the command or into another run."""

    # A plain class: the dataclasses module would cost every batch run its import.
    def __init__(
        self,
        options: Options,
        cfg: Config,
        log: Log,
        env: Environment,
        stops: Signals,
        started: float,
        server: Server | None = None,
    ) -> None:
        """``options``: the run's, checked; ``cfg``: the config with the flags' overrides; ``env``: the standard
        streams the run was given; ``stops``: the command's SIGINT and SIGTERM handling; ``started``: the
        ``time.perf_counter()`` the run's latency counts from; ``server``: the metrics server (--metrics-port) a run
        attaches its view to, None when not serving."""
        self.options = options
        self.env = env
        self.stops = stops
        self.cfg = cfg
        self.log = log
        self.started = started
        self.server = server
        self.bad_log = BadRowLog(log)
        self._announced = False
        self._sink: SignalSink | None = None
        self._staged: Staged | None = None  # a batch run's signals file, renamed into place once the run succeeds
        self._held: BinaryIO | None = None  # the file it replaces, locked against a live run writing it

    def announce(self, layout: Layout | None) -> None:
        """Log the input's layout once it is known."""
        if self._announced or layout is None:
            return
        self._announced = True
        log = self.log
        log.info("input layout: %s", layout.describe())
        for note in layout.notes:
            log.info("%s", note)
        for warning in layout.warnings:
            log.warning("%s", warning)
        each = f" of each {self.cfg.key} value" if self.cfg.key is not None else ""
        log.info("warm-up: the first %d rows%s have no rolling mean (signal 0)", self.cfg.window - 1, each)

    def pipeline(self, sink: SignalSink | None, state: WindowState | KeyedState | None = None) -> Pipeline:
        """The run's pipeline: one engine, or one per key (``cfg.key``), new or from a checkpoint's ``state``."""
        from stream.core.engine import RollingSignal, WindowState
        from stream.core.keyed import KeyedSignal, KeyedState
        from stream.runs.pipeline import Pipeline
        from stream.text import excerpt

        cfg = self.cfg
        if cfg.key is None:
            engine = RollingSignal.from_state(state) if isinstance(state, WindowState) else RollingSignal(cfg.window)
            return Pipeline(engine, sink)
        if isinstance(state, KeyedState):
            keyed = KeyedSignal.from_state(state, cfg.max_keys, cfg.key)
        else:
            keyed = KeyedSignal(cfg.window, cfg.max_keys, cfg.key)

        def many_keys(n: int) -> None:
            self.log.warning(
                "the key column %s has %d distinct values so far (a run stops past max_keys, %d): if it is not the "
                "column that names each series (a symbol, say), --key names the wrong column",
                excerpt(cfg.key), n, cfg.max_keys,
            )  # fmt: skip

        return Pipeline(keyed, sink, many_keys)

    def signals(self, with_timestamp: bool | None = None, staged: bool = False) -> SignalSink | None:
        """The ``--signals`` output opened (and emptied, under its lock), or None without it; ``close_signals`` closes
        it. ``staged`` (batch runs): a regular file is written beside its path and takes its place only at
        ``close_signals``, so a run that fails (``abandon_signals``) leaves an earlier signals file as it was."""
        opts, key = self.options, self.cfg.key
        if opts.signals is None:
            return None
        from stream.fs.atomic import Staged, is_stream
        from stream.sinks.signals import HEADER, SignalSink, is_regular, open_file

        if key in HEADER:
            raise JobError(
                f"the key column {key!r} has the name of a column of the signals output ({', '.join(HEADER)}); "
                "rename it in the input to write signals"
            )
        path = opts.signals
        if path == "-":
            stdout = self.env.stdout_buffer
            if stdout is None:
                raise JobError("--signals - writes the signals to stdout, which is closed; pass a file to --signals")
            out = stdout
        else:
            try:
                if staged and not is_stream(path):
                    self.remove_leftovers(path)  # a run killed mid-way (kill -9) left its staged file beside it
                    with self.stops.unbroken():  # a stop waits until the staged file is the run's to remove
                        self._held = open_file(path, create=False) if os.path.lexists(path) else None
                        self._staged = Staged(path)
                    out = self._staged.fh
                else:
                    out = open_file(path)
                    if is_regular(out):
                        out.truncate(0)  # only now that this run holds the file's lock
            except OSError as exc:
                raise JobError(f"the signals file {path} cannot be written: {reason(exc)}") from None
        self._sink = SignalSink(out, opts.signals_format, with_timestamp, key=key, name=path)
        return self._sink

    def remove_leftovers(self, path: str) -> None:
        """Remove the temporary files that runs killed mid-write left beside ``path`` (those no process holds), and
        log each."""
        from stream.fs.atomic import remove_leftovers

        for name in remove_leftovers(path):
            self.log.info("removed %s, a temporary file an interrupted run left beside %s", name, path)

    def close_signals(self) -> None:
        """Flush and close the signals output of a run that succeeded (stdout stays open for the metrics document);
        a staged file takes its place now."""
        sink, self._sink = self._sink, None
        if sink is None:
            return
        sink.flush()
        if self._staged is not None:
            try:
                self._staged.commit()
            except OSError as exc:
                raise JobError(f"the signals file {self.options.signals} cannot be written: {reason(exc)}") from None
        elif sink.out is not self.env.stdout_buffer:
            sink.close()
        self._release()

    def abandon_signals(self) -> None:
        """A run that failed: a staged signals file is removed, leaving the one it would have replaced."""
        if self._staged is not None:
            self._staged.discard()
        self._release()

    def _release(self) -> None:
        self._staged = None
        if self._held is not None:
            self._held.close()
            self._held = None

    def conclude(self, out: Outcome) -> dict[str, Any]:
        """The end of every successful run: refuse an input without rows, log the totals, build the metrics."""
        from stream.sinks import metrics

        cfg, log, tally = self.cfg, self.log, out.tally
        if out.layout is None:
            raise JobError(f"the input {out.name} is empty: expected a header line naming the columns")
        if tally.rows == 0:
            skipped = f" ({tally.skipped} bad rows were skipped)" if tally.skipped else ""
            raise JobError(f"the input {out.name} has a header but no usable data rows{skipped}")
        self._check_skipped(tally, out.skips)
        self._check_window(tally, out.by_key)
        mine = tally.rows - out.resumed
        earlier = f", {out.resumed} of them before a restart from the checkpoint," if out.resumed else ""
        log.info(
            "processed %d rows (%d signals, %d skipped)%s in %.3f s (%.0f rows/s)",
            tally.rows, tally.signals, tally.skipped, earlier, out.elapsed, mine / out.elapsed if out.elapsed else 0.0,
        )  # fmt: skip
        latency_ms = int((time.perf_counter() - self.started) * 1000)
        if out.by_key is not None:
            log.info("keys: %d distinct values of the column %s", len(out.by_key), cfg.key)
        return metrics.success(cfg.version, cfg.seed, tally, latency_ms, cfg.on_bad_row == "skip", out.by_key)

    def _check_window(self, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        """Warn when the window is longer than the rows (of the whole input, or of some keys): a row without a rolling
        mean has signal 0, so the signal rate says little. Not an error: it is the answer for the window asked for."""
        window, log = self.cfg.window, self.log
        if by_key is None:
            if tally.rows < window:
                log.warning(
                    "0 of %d rows had a rolling mean: the window (%d rows) is longer than the input, so every signal "
                    "is 0; pass a smaller --window (or config window)", tally.rows, window,
                )  # fmt: skip
            return
        short = sum(1 for t in by_key.values() if t.rows < window)
        if short:
            had = sum(t.rows - window + 1 for t in by_key.values() if t.rows >= window)
            log.warning(
                "%d of %d keys (%s values) have fewer rows than the window (%d) and never had a rolling mean: their "
                "signals are all 0; %d of %d rows had a mean",
                short, len(by_key), self.cfg.key, window, had, tally.rows,
            )  # fmt: skip

    def _check_skipped(self, tally: Tally, skips: Skips) -> None:
        """Fail a run that skipped more than ``max_skipped`` of its data rows (the file is most likely misread: a
        success document would be garbage); warn when it skipped more than 1 %."""
        data = tally.rows + tally.skipped
        if not tally.skipped or not data:
            return
        share = tally.skipped / data
        common = skips.commonest()
        why = ""
        if common is not None:
            count, bad = common
            why = f"; the commonest reason ({count} rows) first at {bad.describe()}"
        max_skipped = self.cfg.max_skipped
        if tally.skipped > max_skipped * data:
            raise JobError(
                f"{tally.skipped} of {data} data rows ({share:.1%}) were bad and skipped, more than the "
                f"{max_skipped:g} allowed (--max-skipped, config max_skipped){why}: the input is probably misread "
                "(check --column, --delimiter, --decimal)"
            )
        if share > 0.01:
            self.log.warning(
                "%d of %d data rows (%.1f%%) were bad and skipped%s", tally.skipped, data, 100 * share, why
            )
