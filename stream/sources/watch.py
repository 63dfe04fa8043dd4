"""Waiting for a followed file to change: inotify on the open file and on its folder (Linux), else short adaptive
polling."""

from __future__ import annotations

import errno
import math
import os
import select
import struct
import time
from collections.abc import Callable
from typing import Any

# Without inotify: poll this soon after data, backing off to the maximum while the file stays quiet.
POLL_MIN, POLL_MAX = 0.002, 0.05

_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
_IN_ONLYDIR, _IN_NONBLOCK, _IN_CLOEXEC = 0x1000000, 0o4000, 0o2000000
_FILE_EVENTS = _IN_MODIFY | _IN_ATTRIB | _IN_MOVE_SELF | _IN_DELETE_SELF
_DIR_EVENTS = _IN_CREATE | _IN_MOVED_TO | _IN_MOVED_FROM | _IN_DELETE | _IN_ONLYDIR
_EVENT = struct.Struct("iIII")


class _Inotify:
    """The three inotify calls through ctypes (Linux); raises OSError where they are missing or refuse."""

    def __init__(self) -> None:
        import ctypes  # only live runs pay for ctypes

        self._ctypes = ctypes
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._init1, self._add, self._rm = libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
        except (OSError, AttributeError) as exc:
            raise OSError(errno.ENOSYS, "inotify is not available on this platform") from exc
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.fd = self._call(self._init1, _IN_NONBLOCK | _IN_CLOEXEC)

    def _call(self, fn: Any, *args: Any) -> int:
        result = fn(*args)
        if result < 0:
            err = self._ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(result)

    def add(self, path: str, mask: int) -> int:
        return self._call(self._add, self.fd, os.fsencode(path), mask)

    def remove(self, wd: int) -> None:
        try:
            self._call(self._rm, self.fd, wd)
        except OSError:  # already gone: the file was deleted, or the watch was dropped by the kernel
            pass

    def events(self) -> list[tuple[int, int, bytes]]:
        """The queued events as (watch, mask, name)."""
        out: list[tuple[int, int, bytes]] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            at = 0
            while at + _EVENT.size <= len(buf):
                wd, mask, _cookie, size = _EVENT.unpack_from(buf, at)
                name = buf[at + _EVENT.size : at + _EVENT.size + size].rstrip(b"\0")
                out.append((wd, mask, name))
                at += _EVENT.size + size

    def close(self) -> None:
        os.close(self.fd)


class Watcher:
    """Waits until the followed file may have changed: written to, replaced or removed. ``name`` is its name in
    ``folder`` (None: an open file without a name, or a folder not watched); ``also`` says which other names in the
    folder matter (the files of a glob pattern): an event for one of them ends a wait and counts in ``listed``.
    ``kind`` says how it waits ("inotify" or "polling"); ``say`` logs a line for a person."""

    def __init__(
        self,
        name: str | None,
        folder: str | None,
        use_inotify: bool,
        say: Callable[..., None],
        also: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = os.fsencode(name) if name else b""
        self._also = also
        self._say = say
        self._inotify: _Inotify | None = None
        self._file_wd: int | None = None
        self._folder_wd: int | None = None
        self._poll_wait = POLL_MIN
        self.arrived = 0  # files created or moved to the name, as inotify reports them
        self.listed = 0  # events for the other names ``also`` wants (or events lost), as inotify reports them
        self.kind = "polling"
        if use_inotify:
            try:
                self._inotify = _Inotify()
                if folder is not None:
                    self._folder_wd = self._inotify.add(folder, _DIR_EVENTS)
                self.kind = "inotify"
            except OSError as exc:
                self._stop_inotify()
                say("inotify is not available (%s); polling every %g-%g s instead", exc, POLL_MIN, POLL_MAX)

    def follow_name(self, name: str) -> None:
        """Follow the file called ``name`` in the folder from now on (the next file of a glob pattern)."""
        self.name = os.fsencode(name)
        self.arrived = 0

    def _stop_inotify(self) -> None:
        self._close_inotify()
        self.kind = "polling"

    def _close_inotify(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def watch_file(self, fd: int, label: str) -> None:
        """Watch the open file ``fd`` (named ``label`` in messages) for writes."""
        if self._inotify is None:
            return
        # Watching through /proc/self/fd names exactly the file we hold, even if the path moved on meanwhile.
        try:
            self._file_wd = self._inotify.add(f"/proc/self/fd/{fd}", _FILE_EVENTS)
        except OSError as exc:
            # The folder watch alone would not report writes (the watch limit may be reached): poll instead.
            self._say("cannot watch %s with inotify (%s); polling instead", label, exc.strerror)
            self._stop_inotify()

    def unwatch_file(self) -> None:
        if self._inotify is not None and self._file_wd is not None:
            self._inotify.remove(self._file_wd)
        self._file_wd = None

    def close(self) -> None:
        self.unwatch_file()
        self._close_inotify()

    def busy(self) -> None:
        """Data came: the next poll looks again soon."""
        self._poll_wait = POLL_MIN

    def wait(self, poller: select.poll, timeout: float, check: Callable[[list[tuple[int, int]]], None]) -> None:
        """Wait at most ``timeout`` seconds for a change, or for one of ``poller``'s descriptors (``check`` is given
        those that are ready)."""
        if self._inotify is None:
            timeout = min(timeout, self._poll_wait)
            self._poll_wait = min(self._poll_wait * 2, POLL_MAX)
            check(poller.poll(math.ceil(timeout * 1000)))
            return
        poller.register(self._inotify.fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            ready = poller.poll(math.ceil(max(deadline - time.monotonic(), 0.0) * 1000))
            if not ready:
                return
            check(ready)
            if any(fd != self._inotify.fd for fd, _ in ready):
                return
            if self._relevant(self._inotify.events()):
                return

    def _relevant(self, events: list[tuple[int, int, bytes]]) -> bool:
        """Count the files that arrived at the name, and the events for names ``also`` wants; whether any event
        concerns the followed file, its name or those names. Folder events for other files (our own metrics and
        checkpoint, say) are no reason to look."""
        relevant = False
        also = self._also
        for wd, mask, name in events:
            if name == self.name and mask & (_IN_CREATE | _IN_MOVED_TO):
                self.arrived += 1
            # Without a name: an event of the folder itself, or events lost (an overflow, reported with watch -1).
            lost = not name and wd in (self._folder_wd, -1)
            if also is not None and (lost or (name and name != self.name and also(os.fsdecode(name)))):
                self.listed += 1
                relevant = True
            relevant = relevant or wd == self._file_wd or name == self.name or not name
        return relevant

    def arrivals(self) -> int | None:
        """Files that arrived at the name so far, as inotify reports them; None without inotify, which cannot tell."""
        if self._inotify is None:
            return None
        self._relevant(self._inotify.events())
        return self.arrived
