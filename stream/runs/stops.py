"""Stopping a run: SIGINT and SIGTERM from the command's start to its end (``Signals``), and the live run's stop
request, which wakes a waiting follower at once (``Stop``)."""

from __future__ import annotations

import os
import signal
import sys
import time

TYPE_CHECKING = False  # typing is not imported: this module is loaded before the handlers it installs
if TYPE_CHECKING:
    from typing import Any, NoReturn

FORCE_AFTER = 3.0  # seconds after a run began to stop: a Ctrl-C from then on ends it at once
RETRY_AFTER = 0.005  # seconds between looks at whether the import a stop arrived in is over
AGAIN_AFTER = 0.05  # seconds between looks at whether a stop raised is still on its way to the command


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, as KeyboardInterrupt is: no ``except Exception`` may swallow it)."""


def stopped(exc: BaseException) -> tuple[str, int]:
    """The error document's message and the exit code of a batch run stopped by ``exc`` (SIGTERM or SIGINT)."""
    if isinstance(exc, Terminated):
        return "stopped by SIGTERM before the input was fully processed; no metrics were computed", 143
    return "interrupted before the input was fully processed; no metrics were computed", 130


class Signals:
    """SIGINT and SIGTERM for one command, from before its first slow step to its end; the first one stops the run and
    later ones are ignored, so they cannot cut its last document short.

    Held at first: the first signal is recorded while the arguments are read and a live run starts (which hands it
    to its ``Stop``). ``arm`` (a batch run's work) raises it, then or when it comes: KeyboardInterrupt for SIGINT,
    Terminated for SIGTERM, never inside an import, whose module cut in two would fail its next import: the stop
    waits, looked at again every ``RETRY_AFTER`` seconds (SIGALRM), until the import is over. ``finish`` ignores them
    while the last document is written, but for a Ctrl-C ``FORCE_AFTER`` seconds later: a person gets their terminal
    back from a run stuck while finishing (an output FIFO nobody reads).
    """

    def __init__(self) -> None:
        self.first: int | None = None  # the first signal's number
        self._armed = False
        self._unbroken = 0  # depth of the ``unbroken`` steps under way
        self._finishing_since: float | None = None
        self._before: dict[int, Any] = {}
        self._outer: Any = None  # the frame of the command, below which imports are looked for
        self._hook: Any = None  # the unraisable hook found at ``install``
        self._raised: BaseException | None = None  # the stop raised, until the command has ``taken`` it

    def install(self) -> None:
        # The command may itself run inside an import (a module that runs it as it loads): only the imports it
        # makes count.
        self._outer = sys._getframe(1)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            self._before[signum] = signal.signal(signum, self._on_signal)
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable

    def restore(self, then_ignore: bool = False) -> None:
        """Put back the handlers found at ``install`` (an in-process caller gets its own back); ``then_ignore``:
        ignore the signals from now on instead (a process whose job is over, see ``stream.cli.entry``)."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._raised = None
        for signum, handler in self._before.items():
            signal.signal(signum, signal.SIG_IGN if then_ignore else handler)
        self._before.clear()
        self._outer = None
        if not then_ignore and self._hook is not None:  # ignoring, the process keeps the hook to its end
            sys.unraisablehook = self._hook

    def _unraisable(self, args: Any) -> None:
        """sys.unraisablehook, but for Python's report of a signal that came just as its handler became SIG_IGN
        ("Signal 15 ignored due to race condition"): ignoring it was the point, and the report is a traceback; for a
        stop dropped by a finalizer, which is raised again; and for memory run out in a finalizer (the run says
        "ran out of memory" itself, and the report would be a traceback, or fail for want of memory as well)."""
        try:
            exc = args.exc_value
            if isinstance(exc, MemoryError):
                return
            if isinstance(exc, OSError) and "ignored due to race condition" in str(exc):
                return
            if exc is not None and exc is self._raised:
                return  # the stop was raised in a finalizer, which dropped it: it is raised again (see ``_stop``)
            (self._hook or sys.__unraisablehook__)(args)
        except MemoryError:
            return  # Python would print this hook's own failure as "Exception ignored in sys.unraisablehook"

    @property
    def reason(self) -> str | None:
        """The first signal's name (``SIGTERM``), None before one came."""
        return signal.Signals(self.first).name if self.first is not None else None

    def arm(self) -> None:
        """From now on the first signal stops the run where it is; one held so far does at once."""
        self._armed = True
        if self.first is not None:
            self._stop()

    def finish(self) -> None:
        """The work is done or stopping: nothing may stop the document now (but a late Ctrl-C, see the class)."""
        self._armed = False
        if self._outer is None:  # never installed (a library caller's run): the handlers are the caller's own
            return
        if self._finishing_since is None:
            self._finishing_since = time.monotonic()
        signal.signal(signal.SIGINT, self._on_late_signal)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def unbroken(self) -> Signals:
        """``with signals.unbroken():`` a step no stop may cut in two (a file created that the run does not own yet,
        to remove if it fails): a stop that comes meanwhile ends the run once the step is done."""
        return self

    def __enter__(self) -> None:
        self._unbroken += 1

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._unbroken -= 1
        if not self._unbroken and kind is None and self._armed and self.first is not None:
            self._stop()

    def stop_request(self) -> Stop:
        """A live run's stop request, which takes these signals over until it is closed; a signal held so far is
        handed to it, to take effect once the run has looked at its input (``Stop.begin``)."""
        stop = Stop()
        stop.hold()
        stop.install()
        stop.hold(self.reason)  # read once its handlers are in: no signal falls between the two
        return stop

    def taken(self) -> None:
        """The command has caught the stop raised: it is not raised again."""
        self._raised = None
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._raised is not None:
            not_now = _handling(self._raised) or self._unbroken or _importing(frame, self._outer)
            if signum == signal.SIGALRM and not not_now:  # on its way still, or in an import or unbroken step
                self._stop()  # the stop raised was dropped on its way (by a finalizer, say): raise it anew
            return
        if signum != signal.SIGALRM and self.first is None:
            self.first = signum
        if not self._armed or self.first is None or self._unbroken:
            return
        if _importing(frame, self._outer):
            signal.setitimer(signal.ITIMER_REAL, RETRY_AFTER)
            return
        self._stop()

    def _stop(self) -> NoReturn:
        self.finish()  # the ones after it (an impatient Ctrl-C, a supervisor repeating SIGTERM) are ignored
        stop = KeyboardInterrupt() if self.first == signal.SIGINT else Terminated()
        # Code between here and the command may drop it (a finalizer reports an exception and goes on): until the
        # command has taken it, a stop no longer on its way is raised again.
        self._raised = stop
        signal.setitimer(signal.ITIMER_REAL, AGAIN_AFTER, AGAIN_AFTER)
        raise stop

    def _on_late_signal(self, signum: int, frame: Any) -> None:
        since = self._finishing_since
        if since is not None and time.monotonic() - since >= FORCE_AFTER:
            message = "interrupted again while finishing; stopped at once, the last document may be missing"
            try:
                os.write(2, f"mlops-stream: error: {message}\n".encode())
            finally:
                os._exit(130)


def _handling(exc: BaseException) -> bool:
    """Whether ``exc`` is on its way up: an except or finally clause (or one a call came from) is handling it."""
    seen = sys.exc_info()[1]
    while seen is not None:
        if seen is exc:
            return True
        seen = seen.__context__
    return False


def _importing(frame: Any, outer: Any) -> bool:
    """Whether the code ``frame`` runs is inside an import (its module, or one it imports, being executed) made
    above the frame ``outer``."""
    while frame is not None and frame is not outer:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class Stop:
    """A live run's stop request: set by SIGINT/SIGTERM once ``install``-ed, or by ``set``; it wakes a waiting
    follower at once.

    Python retries a system call interrupted by a signal whose handler returns, so a flag alone would not end a
    wait; the interpreter's wake-up fd does (the signal number is written to a pipe the follower polls).
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        self._saved: dict[int, Any] = {}
        self._saved_wakeup: int | None = None
        self._held: str | None = None  # a stop that waits for ``begin``
        self._holding = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._on_signal)
        self._saved_wakeup = signal.set_wakeup_fd(self._w)

    def uninstall(self, then_ignore: bool = False) -> None:
        """Put the earlier handlers back; ``then_ignore``: ignore SIGINT and SIGTERM from now on instead (a run
        that is finishing, whose last documents no later signal may cut short)."""
        if self._saved_wakeup is not None:
            signal.set_wakeup_fd(self._saved_wakeup)
            self._saved_wakeup = None
        for sig, handler in self._saved.items():
            signal.signal(sig, signal.SIG_IGN if then_ignore else handler)
        self._saved.clear()

    def hold(self, reason: str | None = None) -> None:
        """Keep signals (and ``reason``, one that came earlier) from stopping the run until ``begin``: a run stopped
        while it starts still looks at its input once, and ends with what it read."""
        self._holding = True
        self._held = self._held or reason

    def begin(self) -> None:
        """The run has looked at its input: a stop held until now takes effect."""
        if self._holding:
            self._holding = False
            if self._held is not None:
                self.set(self._held)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._holding:
            self._held = self._held or name
        elif self.reason is None:
            self.reason = name

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        try:
            os.write(self._w, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def drain(self) -> None:
        try:
            while os.read(self.fd, 512):
                pass
        except BlockingIOError:
            pass

    def close(self, then_ignore: bool = False) -> None:
        self.uninstall(then_ignore)
        os.close(self.fd)
        os.close(self._w)
