"""Stopping a run: SIGINT and SIGTERM turned into a stop request that wakes a waiting follower at once."""

from __future__ import annotations

import os
import signal
from typing import Any


class Stop:
    """A stop request: set by SIGINT/SIGTERM once ``install``-ed, or by ``set``; it wakes a waiting follower at once.

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

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.reason is None:
            self.reason = signal.Signals(signum).name

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
