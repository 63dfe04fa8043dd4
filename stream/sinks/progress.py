"""The progress sink: a rich live view on stderr (a terminal only) of rows, rates, the last value and the input.

The row path only bumps counters it already keeps; rich's own thread reads them a few times a second. rich is
imported when the display starts, after a short delay, so quick runs never pay for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TextIO

from stream.core.exact import format_decimal
from stream.text import line

if TYPE_CHECKING:
    from rich.console import Group, RenderableType
    from rich.live import Live
    from rich.progress import Progress as RichProgress

    from stream.core.tally import Running


DELAY = 0.3  # runs shorter than this never show (nor import) the display
REFRESH = 4  # times a second


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
    """Shows a run's progress; ``position``/``total`` give a bar (a regular file read to its end), ``follower`` the
    waiting state of a live input."""

    def __init__(
        self,
        pipeline: Running,
        name: str,
        *,
        position: Callable[[], int] | None = None,
        total: int | None = None,
        follower: Waiting | None = None,
        stream: TextIO | None = None,
    ) -> None:
        """``name``: the input's, shown as messages show it (credentials hidden, control characters escaped);
        ``stream``: the run's stderr, a terminal (default: the process's)."""
        self.stream = stream
        self.pipeline = pipeline
        self.name = line(name)
        self.position = position
        self.total = total
        self.follower = follower
        self.started = time.monotonic()
        self._live: Live | None = None
        self._bars: RichProgress | None = None  # rich's own bar, size, rate and ETA; and the rows' rate

    def tick(self) -> None:
        """Called from the row path now and then: starts the display once the run has lasted ``DELAY``."""
        if self._live is None and time.monotonic() - self.started >= DELAY:
            self._start()

    def _start(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        # rich honours NO_COLOR itself; stderr is the terminal, stdout stays for data.
        console = Console(file=self.stream) if self.stream is not None else Console(stderr=True)
        # Never started itself: it keeps the tasks' rates and renders the bar inside the display below.
        self._bars = RichProgress(
            BarColumn(bar_width=40), TaskProgressColumn(), DownloadColumn(), TransferSpeedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=console, auto_refresh=False,
        )  # fmt: skip
        self._rows = self._bars.add_task("rows", total=None, visible=False)
        self._bytes = self._bars.add_task("bytes", total=self.total, visible=bool(self.total))
        self._live = Live(
            get_renderable=self._render,
            console=console,
            refresh_per_second=REFRESH,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        # redirect_stderr: warnings logged while the display is up print above it, not through it (the log sink
        # writes through the proxy of the terminal rich puts in sys.stderr, and Live.stop() puts the terminal back).
        self._live.start()

    def close(self) -> None:
        if self._live is None:
            return
        self._live.stop()
        self._live = None

    # ---- rendering (rich's refresh thread) ---------------------------------------------------------------------

    def _render(self) -> Group:
        from rich.console import Group
        from rich.text import Text

        p, bars = self.pipeline, self._bars
        assert bars is not None
        now = time.monotonic()
        rows = p.rows
        bars.update(self._rows, completed=rows)
        if self.position is not None:
            bars.update(self._bytes, completed=self.position())
        lines: list[RenderableType] = []
        head = Text()
        if self.follower is not None:
            head.append("following ", style="bold")
            head.append(self.name, style="cyan")
            waiting = self.follower.waiting_since
            if waiting is not None:
                head.append(f"  waiting for new rows for {_duration(now - waiting)}", style="yellow")
            else:
                head.append("  receiving rows", style="green")
        else:
            head.append("reading ", style="bold")
            head.append(self.name, style="cyan")
        head.append(f"  ({_duration(now - self.started)})", style="dim")
        lines.append(head)
        rate = f"{p.hits / rows:.4f}" if rows else "-"
        counts = Text(f"rows {rows:,}  {bars.tasks[0].speed or 0:,.0f} rows/s  signal rate {rate}")
        if p.skipped:
            counts.append(f"  skipped {p.skipped:,}", style="red")
        lines.append(counts)
        latest = p.engine.latest()
        if latest is not None:
            units, scale, signal = latest
            mean = p.engine.mean()
            lines.append(
                Text(
                    f"last close {format_decimal(units, scale)}  "
                    f"mean {'warming up' if mean is None else f'{mean:.10g}'}  signal {signal}"
                )
            )
        if self.total:
            lines.append(bars)
        return Group(*lines)


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
