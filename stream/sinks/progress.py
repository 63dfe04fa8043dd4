"""The progress sink: a rich live view on stderr (a terminal only) of rows, rates, the last value and how far the work
has got, replaced by one summary line when the run ends.

The row path never calls it: a timer shows it after a short delay (rich is imported only then, so quick runs never pay
for it), and rich's own thread reads the run's counters a few times a second.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from stream.core.exact import format_decimal
from stream.records import NamedTuple
from stream.text import line

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.table import Table

    from stream.core.tally import Running


DELAY = 0.2  # runs shorter than this never show (nor import) the display
REFRESH = 4  # times a second
RATE_WINDOW = 3.0  # seconds of row counts rows/s is taken over: it falls to 0 this long after the rows stop
QUIET = 1.0  # a live input counts as waiting only after this long without data, not in the gaps between a feed's rows
ETA_AFTER = 1.0  # seconds of measured work before an ETA is shown: the first moments' pace says little
BAR_WIDTH = 30  # with the share and the ETA, 50 columns: what it counts fits beside them on 80


class Work(NamedTuple):
    """How far the work has got: ``done`` of ``total`` (None: a stream of unknown size), in bytes or in bytes weighted
    by what each pass over them costs; ``note`` says what is counted (None: the bytes read)."""

    done: float
    total: float | None
    note: str | None = None


class Waiting(Protocol):
    """What the display reads of a live input's follower: since when it has had no new data (None: receiving)."""

    waiting_since: float | None


class Asked(Protocol):
    """What the choice of the display reads of a run's options."""

    @property
    def quiet(self) -> bool: ...
    @property
    def no_progress(self) -> bool: ...
    @property
    def signals(self) -> str | None: ...


class Terminals(Protocol):
    """Which of a run's standard streams are terminals."""

    @property
    def stderr_isatty(self) -> bool: ...
    @property
    def stdout_isatty(self) -> bool: ...


def wanted(options: Asked, terminals: Terminals) -> bool:
    """The display is for a person watching a terminal: never when asked not to, or when stderr goes elsewhere."""
    if options.quiet or options.no_progress or not terminals.stderr_isatty:
        return False
    # Signals printed to the same terminal would be torn up by the redraws.
    return not (options.signals == "-" and terminals.stdout_isatty)


class Progress:
    """Shows a run's progress: ``work()`` gives the bar (a batch run), ``follower`` the waiting state of a live input.

    ``stage(label)`` shows what the run is doing before its work can be measured (planning the blocks, starting
    workers); ``close()`` takes the view away and, when it was shown and the run went well, prints the summary line.
    Used as a context manager, it closes as the block ends, with the summary only when no exception ends it.
    """

    def __init__(
        self,
        pipeline: Running,
        name: str,
        *,
        work: Callable[[], Work] | None = None,
        follower: Waiting | None = None,
        stream: TextIO | None = None,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        delay: float | None = DELAY,
    ) -> None:
        """``name``: the input's, shown as messages show it (credentials hidden, control characters escaped);
        ``stream``: the run's stderr, a terminal (default: the process's); ``console``: a rich console to draw on
        instead; ``delay``: seconds before the view shows itself (None: only when ``show()`` is called)."""
        self.pipeline = pipeline
        self.name = line(name)
        self.work = work
        self.follower = follower
        self.stream = stream
        self.console = console
        self.clock = clock
        self.started = clock()
        self._from = (pipeline.rows, pipeline.skipped)  # a resumed run's summary counts this run's rows
        self._rows: deque[tuple[float, int]] = deque([(self.started, pipeline.rows)])  # (time, rows) samples
        self._stage: str | None = None
        self._base: tuple[float, float] | None = None  # when the measured work began (or resumed), and its amount
        self._live: Live | None = None
        self._closed = False
        self._lock = threading.Lock()  # the timer's show() against close()
        self._timer: threading.Timer | None = None
        if delay is not None:
            self._timer = threading.Timer(delay, self.show)
            self._timer.name = "progress-display"
            self._timer.daemon = True
            self._timer.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.close(ok=kind is None)

    def stage(self, label: str | None) -> None:
        """Show ``label`` in place of the bar until the next stage; None: the measured work starts (again) now."""
        self._stage = label
        self._base = None

    def show(self) -> None:
        """Start the live view now (the timer calls this after the delay)."""
        with self._lock:
            if self._closed or self._live is not None:
                return
            from rich.console import Console
            from rich.live import Live

            console = self.console
            if console is None:  # rich honours NO_COLOR itself; stderr is the terminal, stdout stays for data
                console = Console(file=self.stream) if self.stream is not None else Console(stderr=True)
            # transient: the last frame is taken away at the end, for the summary line in its place. redirect_stderr:
            # warnings logged while the view is up print above it, not through it (the log sink writes through the
            # proxy of the terminal rich puts in sys.stderr, and Live.stop() puts the terminal back).
            live = Live(
                get_renderable=self.frame, console=console, refresh_per_second=REFRESH, transient=True,
                redirect_stdout=False, redirect_stderr=True,
            )  # fmt: skip
            _Forks.watch(live)
            live.start(refresh=True)
            self._live = live

    @property
    def shown(self) -> bool:
        return self._live is not None

    def close(self, ok: bool = True) -> None:
        """Take the view away; print the summary line in its place when it was shown and ``ok``."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            live, self._live = self._live, None
        if live is None:
            return
        live.stop()
        _Forks.watch(None)
        if ok:
            from rich.text import Text

            live.console.print(Text(self.summary()), soft_wrap=True)

    def summary(self) -> str:
        """One line on the run as it stands: rows, time, rate, and skipped rows if any."""
        rows, skipped = self.pipeline.rows - self._from[0], self.pipeline.skipped - self._from[1]
        took = self.clock() - self.started
        text = f"processed {rows:,} rows in {_duration(took)} ({_per_second(rows / took if took > 0 else 0.0)} rows/s)"
        return text + (f", {skipped:,} skipped" if skipped else "")

    # ---- one frame (rich's refresh thread, or a caller of frame()) ----------------------------------------------

    def frame(self) -> Group:
        """The view as of now: what is read, its rows and rates, the last value, and the bar."""
        from rich.console import Group
        from rich.text import Text

        p = self.pipeline
        now = self.clock()
        rows = p.rows
        head = Text()
        head.append("following " if self.follower is not None else "reading ", style="bold")
        head.append(self.name, style="cyan")
        if self.follower is not None:
            waiting = self.follower.waiting_since
            if waiting is not None and now - waiting >= QUIET:
                head.append(f"  waiting for new rows for {_duration(now - waiting)}", style="yellow")
            else:
                head.append("  receiving rows", style="green")
        head.append(f"  ({_duration(now - self.started)})", style="dim")
        rate = f"{p.hits / rows:.4f}" if rows else "-"
        counts = Text(f"rows {rows:,}  {_per_second(self._rate(now, rows))} rows/s  signal rate {rate}")
        if p.skipped:
            counts.append(f"  skipped {p.skipped:,}", style="red")
        lines: list[Text | Table] = [head, counts]
        latest = p.engine.latest()
        if latest is not None:
            units, scale, signal = latest
            mean = p.engine.mean()
            mean_text = "warming up" if mean is None else f"{mean:.10g}"
            lines.append(Text(f"last close {format_decimal(units, scale)}  mean {mean_text}  signal {signal}"))
        bar = self._bar(now)
        if bar is not None:
            lines.append(bar)
        return Group(*lines)

    def _rate(self, now: float, rows: int) -> float:
        """Rows a second over the last ``RATE_WINDOW`` seconds of samples (one per frame)."""
        samples = self._rows
        samples.append((now, rows))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()  # the first sample left is the newest one at least a window old
        then, before = samples[0]
        return (rows - before) / (now - then) if now > then else 0.0

    def _bar(self, now: float) -> Table | None:
        """The bar, its share and the time left, then what it counts (cut short first on a narrow terminal); a moving
        bar and the stage's label before the work can be measured, or what was read of a stream of unknown size."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        if self.work is None:
            return None
        row = Table.grid(padding=(0, 2))
        if self._stage is not None:
            row.add_row(ProgressBar(total=None, width=BAR_WIDTH), Text(self._stage, no_wrap=True, overflow="ellipsis"))
            return row
        done, total, note = self.work()
        if total is None:
            row.add_row(ProgressBar(total=None, width=BAR_WIDTH), Text(note or f"{_size(done)} read"))
            return row
        eta = self._eta(now, done, total)
        share = done / total if total else 1.0
        row.add_row(
            ProgressBar(total=max(total, 1), completed=done, width=BAR_WIDTH), Text(f"{share:4.0%}"),
            Text(f"ETA {'-' if eta is None else _duration(eta)}"),
            Text(note or f"{_size(done)} of {_size(total)}", no_wrap=True, overflow="ellipsis"),
        )  # fmt: skip
        return row

    def _eta(self, now: float, done: float, total: float) -> float | None:
        """Seconds left at the pace of the work measured so far (None until it has moved): the whole of it, not a
        recent window, as work reported in steps (the parallel plan's blocks) makes any window's pace jump."""
        if self._base is None:
            self._base = (now, done)
            return None
        then, before = self._base
        if done <= before or now - then < ETA_AFTER:
            return None
        return max(total - done, 0.0) * (now - then) / (done - before)


class _Forks:
    """Worker processes forked while the view is up: the fork waits for a frame being drawn to finish (a child would
    otherwise inherit the terminal's locks held), and the child writes to the terminal itself, not to rich's proxy."""

    live: Live | None = None
    registered = False

    @classmethod
    def watch(cls, live: Live | None) -> None:
        cls.live = live
        if live is not None and not cls.registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=cls._before, after_in_parent=cls._after, after_in_child=cls._in_child)
            cls.registered = True

    @classmethod
    def _before(cls) -> None:
        if cls.live is not None:
            cls.live._lock.acquire()  # rich's refresh thread draws holding it

    @classmethod
    def _after(cls) -> None:
        if cls.live is not None:
            cls.live._lock.release()

    @classmethod
    def _in_child(cls) -> None:
        cls._after()
        cls.live = None
        proxied = getattr(sys.stderr, "rich_proxied_file", None)
        if proxied is not None:
            sys.stderr = proxied


def _duration(seconds: float) -> str:
    """``12.3 s`` under a minute, ``4:05`` under an hour, ``1:02:03`` beyond."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _per_second(rate: float) -> str:
    """A rate to three significant figures: ``588,000``, ``12,300``, ``199``, ``3.5``."""
    if rate >= 1000:
        digits = len(str(int(rate))) - 3
        return f"{round(rate, -digits):,.0f}"
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 10 else f"{rate:.2g}"


def _size(count: float) -> str:
    """``512 bytes``, ``12.3 kB``, ``146.4 MB``, ``2.1 GB``."""
    units = ("bytes", "kB", "MB", "GB")
    i = 0
    while count >= 1000 and i < len(units) - 1:
        count /= 1000
        i += 1
    return f"{count:.0f} bytes" if i == 0 else f"{count:.1f} {units[i]}"
