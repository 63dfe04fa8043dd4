"""Serves a running job's Prometheus metrics, liveness and readiness over HTTP (``--metrics-port``); every scrape
copies the run's own counters, so nothing is counted twice."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from stream.errors import MlopsStreamError
from stream.sinks.log import log
from stream.sinks.topkeys import OTHER, TopKeys

if TYPE_CHECKING:
    from stream.core.tally import Running, Skips
    from stream.sinks.listener import Answer
    from stream.sinks.topkeys import KeyCounts, Taken

PREFIX = "mlops_stream_"
EXTRA = "pip install '.[serve]' in the mlops-stream checkout"
# Why rows are skipped (the reasons' kinds). Each is exported from the start, at 0, so rate() sees the first one.
REASONS = ("fields", "value", "missing", "encoding", "too_long", "quote", "key", "json", OTHER)
TEXT = "text/plain; charset=utf-8"
BUSY_WAIT = 5.0  # seconds a scrape waits for the row path to finish the batch in hand
KEYS_EVERY = 1.0  # seconds between two takes of the top keys in a batch run, which takes them on its row path
BACKLOG = 1024  # connections the kernel holds until the server accepts them: a burst waits rather than being refused


class ServeError(MlopsStreamError):
    """The metrics server cannot start; phrased for a person."""


class Sample:
    """What one scrape exports: the run's counters read at one consistent point (between two batches). None: not
    known to this kind of run, and not exported."""

    # Plain slots, not a dataclass: the dataclasses module's imports cost a batch run more than its server does.
    __slots__ = (
        "bytes_read", "bytes_unread", "checkpoints", "files_skipped", "keys", "last_checkpoint", "last_close",
        "last_row_age", "last_signal", "mean", "rotations", "rows", "signals", "skipped", "truncations",
    )  # fmt: skip

    def __init__(
        self,
        rows: int,
        signals: int,
        skipped: dict[str, int],
        last_close: float | None = None,
        last_signal: int | None = None,
        mean: float | None = None,
    ) -> None:
        self.rows = rows
        self.signals = signals
        self.skipped = skipped  # by the kind of their reason
        self.last_close = last_close
        self.last_signal = last_signal
        self.mean = mean  # None during the warm-up
        self.keys: Taken | None = None  # the top keys' counts, taken under the lock and merged outside it
        self.bytes_read: int | None = None
        self.bytes_unread: int | None = None  # None: not known (a pipe)
        self.last_row_age: float | None = None  # seconds since the last row was processed (or the run started)
        self.checkpoints: int | None = None
        self.last_checkpoint: float | None = None  # Unix time
        self.rotations: int | None = None
        self.truncations: int | None = None
        self.files_skipped: dict[str, int] | None = None  # input files not read, by reason (--follow on a file)


def sample_of(pipeline: Running, skips: Skips | None, keys: TopKeys | None = None) -> Sample:
    """The counters every run has: rows, signals, skipped rows by reason, the latest value and its mean, and with
    ``keys`` a take of the top keys (the counts of the keys shown and of those that passed them, not of every key)."""
    latest = pipeline.engine.latest()
    close = signal = None
    if latest is not None:
        units, scale, signal = latest
        close = units / 10**scale  # int / int: the exact value's nearest float
    kinds = dict(skips.counts) if skips is not None else {}
    # Rows skipped before a restart from a checkpoint: the checkpoint keeps their number, not their reasons.
    unseen = pipeline.skipped - sum(kinds.values())
    if unseen > 0:
        kinds[OTHER] = kinds.get(OTHER, 0) + unseen
    s = Sample(
        rows=pipeline.rows, signals=pipeline.hits, skipped=kinds, last_close=close, last_signal=signal,
        mean=pipeline.engine.mean(),
    )  # fmt: skip
    s.keys = keys.take() if keys is not None else None
    return s


class Observed(Protocol):
    """A run the server watches. ``sample`` is called with ``lock`` held (the row path holds it while it works on a
    batch); ``health`` and ``readiness`` are called without it, so a stuck row path cannot stall a probe. They
    return None when healthy (ready), else the reason."""

    lock: threading.Lock | None

    def sample(self) -> Sample: ...

    def health(self) -> str | None: ...

    def readiness(self) -> str | None: ...


class BatchView:
    """A batch run as the server sees it: the counters are copied after every batch or finished block (the points
    where they agree with the signals written), which costs one small object per batch and only when serving; the top
    keys are taken at most every ``KEYS_EVERY`` seconds."""

    lock: threading.Lock | None = None

    def __init__(
        self, pipeline: Running, skips: Callable[[], Skips], position: Callable[[], int], total: int | None
    ) -> None:
        """``skips()``: the run's skipped rows by reason so far (the reader's, which a parallel run adds blocks to)."""
        self.pipeline = pipeline
        self.skips = skips
        self.position = position
        self.total = total
        self.finished = False
        self._sample: Sample | None = None
        self._row_at = time.monotonic()  # when the rows last grew; before the first row, when the run started
        self._keys_at = -KEYS_EVERY
        self._top = TopKeys.of(pipeline)
        self._keys: Taken | None = None

    def publish(self) -> None:
        now = time.monotonic()
        due = self._top is not None and now - self._keys_at >= KEYS_EVERY
        s = sample_of(self.pipeline, self.skips(), self._top if due else None)
        if s.keys is not None:
            s.keys.counts()  # merged here: the server reads the sample without a lock
            self._keys, self._keys_at = s.keys, now
        s.keys = self._keys
        if self._sample is None or s.rows != self._sample.rows:
            self._row_at = now
        s.bytes_read = self.position()
        s.bytes_unread = max(self.total - s.bytes_read, 0) if self.total is not None else None
        self._sample = s

    def sample(self) -> Sample:
        s = self._sample
        if s is None:
            return Sample(0, 0, {})
        s.last_row_age = time.monotonic() - self._row_at
        return s

    def finish(self) -> None:
        """The run is finishing: health says so from now on."""
        self.finished = True

    def health(self) -> str | None:
        return "the run is finishing" if self.finished else None

    def readiness(self) -> str | None:
        return None if self._sample is not None else "the input is not open yet"


class Server:
    """An HTTP server on a background thread: ``/metrics`` (Prometheus text format), ``/healthz``, ``/readyz``.

    It binds at once, so a port in use fails the run before any work; it answers 503 until a run is attached. The
    connections are served by one selector loop (stream/sinks/listener.py), bounded in number, time and memory;
    /metrics is rendered on one helper thread, so a busy row path never delays a probe. The Prometheus modules (about
    60 ms of imports) load at the first scrape, so a run nobody scrapes never pays for them.
    """

    def __init__(self, host: str, port: int, mode: str) -> None:
        import importlib.util
        import socket

        from stream.sinks.listener import Listener

        if importlib.util.find_spec("prometheus_client") is None:
            raise ServeError(
                f"serving metrics (--metrics-port) needs the prometheus_client package, which is not installed: {EXTRA}"
            )
        self.run: Observed | None = None
        self.mode = mode
        self.stopping = False
        self.registry: Any = None  # built at the first scrape
        self._collector = _Collector(self)
        try:
            # An ASCII name as bytes: a str would load the idna codec (and unicodedata) for nothing.
            name = host.encode() if host.isascii() else host
            family = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
            self.sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        except OSError as exc:
            # create_server() appends the address to strerror; the errno's own words are enough beside ours.
            reason = (os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)).lower()
            raise ServeError(f"cannot serve metrics on {host}:{port}: {reason}") from None
        address = self.sock.getsockname()
        self.host, self.port = str(address[0]), int(address[1])
        self._listener = Listener(self.sock, self._quick, self._scrape)
        self._thread = threading.Thread(target=self._listener.run, name="mlops-stream-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def attach(self, run: Observed) -> None:
        self.run = run

    def _quick(self, path: str) -> Answer | None:
        """The answer to ``path`` on the server's loop; None for /metrics, which the helper thread renders."""
        if path == "/metrics":
            return None
        if path in ("/healthz", "/readyz"):
            try:
                why = self.health() if path == "/healthz" else self.readiness()
            except Exception:
                log.debug("a request to the metrics server failed", exc_info=True)
                return 500, b"internal error; the log file has the details\n", TEXT
            return (200, b"ok\n", TEXT) if why is None else (503, why.encode() + b"\n", TEXT)
        return 404, b"not found: try /metrics, /healthz or /readyz\n", TEXT

    def _scrape(self, path: str) -> Answer:
        from prometheus_client import CONTENT_TYPE_LATEST

        body = self.metrics()
        if body is None:
            return 503, b"the run is busy with a batch; try again\n", TEXT
        return 200, body, CONTENT_TYPE_LATEST

    def metrics(self) -> bytes | None:
        """The exposition text; None when the row path held its batch for longer than ``BUSY_WAIT``. Only the sample
        is taken under the run's lock (plain numbers and the counts of the keys that may be shown); the rest is done
        after."""
        from prometheus_client import generate_latest

        if self.registry is None:
            self.registry = _registry(self._collector)
        run = self.run
        s = None
        if run is not None:
            lock = run.lock
            if lock is not None and not lock.acquire(timeout=BUSY_WAIT):
                return None
            try:
                s = run.sample()
            finally:
                if lock is not None:
                    lock.release()
            if s.keys is not None:
                s.keys.counts()
        self._collector.sample = s
        return bytes(generate_latest(self.registry))

    def health(self) -> str | None:
        if self.stopping:
            return "the run is stopping"
        return self.run.health() if self.run is not None else None

    def readiness(self) -> str | None:
        if self.stopping:
            return "the run is stopping"
        return self.run.readiness() if self.run is not None else "the run is starting"

    def close(self) -> None:
        """Stop answering and free the port; waits for the server thread."""
        self.stopping = True
        self._listener.stop()
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._listener.close()
        self.sock.close()


def _registry(collector: _Collector) -> Any:
    """The registry /metrics renders: the run's counters and the process's own."""
    from prometheus_client import ProcessCollector
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)  # the process's CPU, memory and open files (where /proc exists)
    return registry


class _Collector:
    """Builds the metric families from the sample the scrape took (the registry calls ``collect``); None: no run is
    attached yet."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sample: Sample | None = None

    def describe(self) -> list[Any]:
        return []  # no description up front: collect() would otherwise run at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        from stream import __version__

        yield InfoMetricFamily(
            PREFIX + "build",
            "The mlops-stream version and the kind of run.",
            {"version": __version__, "mode": self.server.mode},
        )
        s = self.sample
        if s is None:
            return

        def counter(name: str, doc: str, value: float | None) -> Iterator[Any]:
            if value is not None:
                yield CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float | None) -> Iterator[Any]:
            if value is not None:
                yield GaugeMetricFamily(PREFIX + name, doc, value=value)

        yield from counter("rows_processed", "Rows processed (each went through the window and got a signal).", s.rows)
        yield from counter("signals", "Rows whose signal is 1 (close above its rolling mean).", s.signals)
        skipped = CounterMetricFamily(
            PREFIX + "rows_skipped", "Bad rows skipped (--on-bad-row skip), by reason.", labels=["reason"]
        )
        for reason in (*REASONS, *sorted(k for k in s.skipped if k not in REASONS)):
            skipped.add_metric([reason], s.skipped.get(reason, 0))
        yield skipped
        yield from gauge("signal_rate", "Signals per processed row so far.", s.signals / s.rows if s.rows else None)
        yield from gauge("last_close", "The close of the latest row.", s.last_close)
        yield from gauge("last_signal", "The signal of the latest row (0 or 1).", s.last_signal)
        yield from gauge("rolling_mean", "The rolling mean of the latest row's window (absent in the warm-up).", s.mean)
        yield from counter("input_bytes_read", "Bytes read from the input.", s.bytes_read)
        yield from gauge("input_lag_bytes", "Bytes of the input not read yet.", s.bytes_unread)
        yield from gauge("last_row_age_seconds", "Seconds since the latest row was processed.", s.last_row_age)
        yield from counter("checkpoints_written", "Checkpoints written (--checkpoint).", s.checkpoints)
        yield from gauge(
            "last_checkpoint_timestamp_seconds",
            "When the latest checkpoint was written (Unix time).",
            s.last_checkpoint,
        )
        yield from counter("input_rotations", "Times the followed name moved to a new file.", s.rotations)
        yield from counter("input_truncations", "Times the followed file was truncated or rewritten.", s.truncations)
        if s.files_skipped is not None:
            files = CounterMetricFamily(
                PREFIX + "files_skipped",
                "Input files (or changes to them) not read, by reason: late, changed, replaced.",
                labels=["reason"],
            )
            for reason, n in s.files_skipped.items():
                files.add_metric([reason], n)
            yield files
        if s.keys is not None:
            yield from _keyed(s.keys.counts())


def _keyed(counts: KeyCounts) -> Iterator[Any]:
    """Per-key series for the top keys by rows; every other key adds to "other"."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    rows = CounterMetricFamily(PREFIX + "key_rows_processed", "Rows processed per key (--key).", labels=["key"])
    hits = CounterMetricFamily(PREFIX + "key_signals", "Signals per key (--key).", labels=["key"])
    for key, n, signals in counts.top:
        rows.add_metric([key], n)
        hits.add_metric([key], signals)
    if counts.other is not None:
        rows.add_metric([OTHER], counts.other[0])
        hits.add_metric([OTHER], counts.other[1])
    yield rows
    yield hits
    yield GaugeMetricFamily(PREFIX + "keys", "Distinct keys seen (--key).", value=counts.keys)
