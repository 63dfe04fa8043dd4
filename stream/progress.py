"""The progress sink: a rich live view on stderr (a terminal only) of rows, rates, the last value and the input.

The row path only bumps counters it already keeps; rich's own thread reads them a few times a second. rich is
imported when the display starts, after a short delay, so quick runs never pay for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stream.exact import format_decimal

if TYPE_CHECKING:
    from stream.pipeline import Pipeline

DELAY = 0.3  # runs shorter than this never show (nor import) the display
REFRESH = 4  # times a second


def wanted(args: Any) -> bool:
    """The display is for a person watching a terminal: never when asked not to, or when stderr goes elsewhere."""
    if args.quiet or args.no_progress:
        return False
    try:
        if not sys.stderr.isatty():
            return False
        # Signals printed to the same terminal would be torn up by the redraws.
        return not (args.signals == "-" and sys.stdout.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Progress:
    """Shows a run's progress; ``position``/``total`` give a bar (a regular file read to its end), ``follower`` the
    waiting state of a live input."""

    def __init__(
        self,
        pipeline: Pipeline,
        name: str,
        *,
        position: Callable[[], int] | None = None,
        total: int | None = None,
        follower: Any = None,
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.position = position
        self.total = total
        self.follower = follower
        self.started = time.monotonic()
        self._live: Any = None
        self._sample = (self.started, pipeline.rows, 0)
        self._rows_rate = 0.0
        self._bytes_rate = 0.0

    def tick(self) -> None:
        """Called from the row path now and then: starts the display once the run has lasted ``DELAY``."""
        if self._live is None and time.monotonic() - self.started >= DELAY:
            self._start()

    def _start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        # rich honours NO_COLOR itself; stderr is the terminal, stdout stays for data.
        console = Console(stderr=True)
        self._live = Live(
            get_renderable=self._render,
            console=console,
            refresh_per_second=REFRESH,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        # redirect_stderr: warnings logged while the display is up print above it, not through it (the log sink
        # writes to whatever sys.stderr is at the time, and Live.stop() puts the terminal's back).
        self._live.start()

    def close(self) -> None:
        if self._live is None:
            return
        self._live.stop()
        self._live = None

    # ---- rendering (rich's refresh thread) ---------------------------------------------------------------------

    def _rates(self, now: float, rows: int, done: int) -> None:
        t0, rows0, done0 = self._sample
        if now - t0 >= 0.5:
            # Smoothed over the last seconds, so the figure is readable while it moves.
            self._rows_rate = 0.5 * self._rows_rate + 0.5 * (rows - rows0) / (now - t0)
            self._bytes_rate = 0.5 * self._bytes_rate + 0.5 * (done - done0) / (now - t0)
            self._sample = (now, rows, done)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        p = self.pipeline
        now = time.monotonic()
        rows = p.rows
        done = self.position() if self.position is not None else 0
        self._rates(now, rows, done)
        lines: list[Any] = []
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
        counts = Text(f"rows {rows:,}  {self._rows_rate:,.0f} rows/s  signal rate {rate}")
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
            grid = Table.grid(padding=(0, 1))
            left = self.total - done
            eta = _duration(left / self._bytes_rate) if self._bytes_rate > 0 else "-"
            grid.add_row(
                ProgressBar(total=self.total, completed=done, width=40),
                Text(f"{100 * done / self.total:3.0f}%  {_size(done)} of {_size(self.total)}  ETA {eta}"),
            )
            lines.append(grid)
        return Group(*lines)


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
