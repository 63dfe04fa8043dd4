"""Live byte sources: a file followed by name like ``tail -F`` (rotation, truncation) or a pipe read as it arrives.

A follower is iterated: it yields non-empty ``bytes`` as they are written, ``NewFile`` where another file (or the
start of a truncated one) begins, and ``b""`` when it woke without data, so the consumer can do periodic work. It
ends when its ``Stop`` is set (SIGINT/SIGTERM), after ``idle_timeout`` seconds without data, or at the end of a pipe;
``stopped_by`` says which. Followers know nothing of lines or CSV.
"""

from __future__ import annotations

import errno
import math
import os
import select
import time
from collections.abc import Iterator
from typing import Any, Protocol

from stream.errors import SourceError
from stream.sources.chunks import CHUNK
from stream.sources.files import NewFile
from stream.sources.named import Named
from stream.sources.watch import Watcher

# Wake-up when nothing happens: bounds how late periodic work (metrics, checkpoints) and the idle timeout run.
TICK = 0.5
# After the name points at a new file, the old one must stay quiet this long before we switch: a writer that has
# not reopened yet still appends to it, and its rows come before the new file's.
ROTATE_GRACE = 1.0
# Bytes just before our position, kept to notice a file that was truncated and rewritten past it between looks.
TAIL = 256
# A look at the clock this much later than the one before, when the loop never waits longer than TICK: the process
# was stopped (SIGSTOP, a paused VM, a sleeping laptop). Time it did not watch does not count as time without data.
PAUSE = 4 * TICK


class StopRequest(Protocol):
    """What a follower needs of a stop request: why it was made (None: not yet), and a pipe ``fd`` that becomes
    readable when it is made, so a wait ends at once; ``drain`` empties that pipe."""

    reason: str | None
    fd: int

    def drain(self) -> None: ...


class _Follower:
    """What both followers share: the stop request, the idle timeout and the waiting clock."""

    def __init__(self, stop: StopRequest, idle_timeout: float | None) -> None:
        self.stop = stop
        self.idle_timeout = idle_timeout
        self.stopped_by: str | None = None
        self.last_data = self._last_look = time.monotonic()
        self.bytes_read = 0  # since the start of this run (metrics)
        self.waiting_since: float | None = None  # when the input last ran dry (progress display); None while busy
        # A pipe the run writes to (signals on stdout): its reader going away ends the wait, as with `tail -f`,
        # instead of leaving the run to notice at the next row, maybe hours later.
        self.out_fd: int | None = None
        self.fresh = True  # no data read yet (of the current file, when a follower reads several)
        self.what = "the input"  # what it reads, in messages

    def watch_output(self, fd: int) -> None:
        """Stop waiting when the reader of the pipe ``fd`` (the run's signals on stdout) goes away."""
        self.out_fd = fd

    def _should_end(self, now: float) -> bool:
        if self.stop.reason is not None:
            self.stopped_by = self.stop.reason
            return True
        unseen = now - self._last_look - TICK
        self._last_look = now
        if unseen > PAUSE - TICK:
            self.last_data = min(self.last_data + unseen, now)
        if self.idle_timeout is not None and now - self.last_data >= self.idle_timeout:
            # Idle is measured on the data, not on the clock alone: bytes that are there are read before any stop.
            if self._data_waiting():
                return False
            self.stopped_by = f"no new data for {self.idle_timeout:g} s (--idle-timeout)"
            return True
        return False

    def _data_waiting(self) -> bool:
        """Whether a read now would return data (or the end of a pipe)."""
        raise NotImplementedError

    def _timeout(self, now: float, limit: float) -> float:
        if self.idle_timeout is not None:
            limit = min(limit, self.last_data + self.idle_timeout - now)
        return max(limit, 0.0)

    def _got(self, data: bytes, now: float) -> None:
        self.last_data = now
        self.bytes_read += len(data)
        self.waiting_since = None
        if self.fresh:
            self.fresh = False
            from stream.sources.magic import kind_of

            kind = kind_of(data)
            if kind is not None:  # a pipe's or a redirected file's first bytes: a path was refused before the run
                raise SourceError(f"--follow reads plain CSV as it grows, and {self.what} is {kind}-compressed")

    def _poller(self) -> select.poll:
        poller = select.poll()
        poller.register(self.stop.fd, select.POLLIN)
        if self.out_fd is not None:
            poller.register(self.out_fd, 0)  # POLLERR and POLLHUP are reported without asking
        return poller

    def _check_out(self, ready: list[tuple[int, int]]) -> None:
        for fd, events in ready:
            if fd == self.out_fd and events & (select.POLLERR | select.POLLHUP):
                raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")
        if any(fd == self.stop.fd for fd, _ in ready):
            self.stop.drain()


class StreamFollower(_Follower):
    """A pipe or terminal read as it arrives (``--follow`` on stdin); its end is the end of the input."""

    def __init__(self, fd: int, stop: StopRequest, idle_timeout: float | None = None, *, owns_fd: bool = False) -> None:
        super().__init__(stop, idle_timeout)
        self.fd = fd
        self.owns_fd = owns_fd
        self.ended = False

    def close(self) -> None:
        if self.owns_fd:
            os.close(self.fd)
            self.owns_fd = False

    def _data_waiting(self) -> bool:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(0))

    def __iter__(self) -> Iterator[bytes | NewFile]:
        poller = self._poller()
        poller.register(self.fd, select.POLLIN)
        while True:
            now = time.monotonic()
            if self._should_end(now):
                return
            ready = poller.poll(math.ceil(self._timeout(now, TICK) * 1000))
            self._check_out(ready)
            if self.stop.reason is not None:
                continue  # a stop wins over data that came with it: the row in hand is finished already
            if any(fd == self.fd for fd, _ in ready):
                try:
                    data = os.read(self.fd, CHUNK)
                except BlockingIOError:  # a FIFO opened without blocking: ready, yet nothing to read after all
                    continue
                if not data:
                    self.ended = True
                    self.stopped_by = "end of input"
                    return
                self._got(data, time.monotonic())
                yield data
            else:
                if self.waiting_since is None:
                    self.waiting_since = self.last_data
                yield b""


class FileFollower(_Follower):
    """A file followed by name, like ``tail -F``.

    - Data: read to the end, then wait (inotify on the open file and on its folder, else short adaptive polling).
    - Rotation: the name points at another file (device and inode differ) -> keep reading the old file until it has
      been quiet for ``ROTATE_GRACE`` seconds, then switch to the new one from its start. A name that disappears
      without a replacement leaves the open file in use until one appears; so does one that points at what is not a
      regular file (a FIFO, never opened for reading: it would block), with a warning.
    - Truncation: the bytes just before our position are no longer those we read (the file shrank, or was
      rewritten) -> read it again from its start.

    ``fd``/``offset`` resume an already opened file (a checkpoint); otherwise ``path`` is opened when it exists.
    Without a ``path`` (a file redirected into stdin) the open file is followed, with no name to watch.
    """

    def __init__(
        self,
        path: str | None,
        stop: StopRequest,
        idle_timeout: float | None = None,
        *,
        fd: int | None = None,
        offset: int = 0,
        use_inotify: bool = True,
        log: Any = None,
    ) -> None:
        super().__init__(stop, idle_timeout)
        self.path = path
        self.label = path or "<stdin>"
        self.log = log
        self.fd: int | None = None
        self.identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self.pos = 0
        self._tail = b""
        self._replaced_since: float | None = None  # when the name was first seen pointing at another file
        self._next: tuple[int, int, int] | None = None  # (device, inode, size) of that file, as last seen
        self.lost_files = 0  # files that were at the name, replaced before they could be read
        self._adopted = 0  # files opened by their name after the start
        self._lost_elsewhere = 0  # of lost_files, those lost at names followed before this one (a glob's files)
        self.lost_bytes = 0  # bytes in them (as last seen), and bytes left behind in files switched away from
        self._gone_logged = False
        self.named = Named(path, self._warn)
        self.watcher = self._watcher(use_inotify)
        if fd is not None:
            self._adopt(fd, offset)

    def _watcher(self, use_inotify: bool) -> Watcher:
        path = self.path
        if path is None:
            return Watcher(None, None, use_inotify, self._say)
        return Watcher(os.path.basename(path), os.path.dirname(os.path.abspath(path)), use_inotify, self._say)

    def _say(self, msg: str, *args: Any) -> None:
        if self.log is not None:
            self.log.info(msg, *args)

    def _warn(self, msg: str, *args: Any) -> None:
        if self.log is not None:
            self.log.warning(msg, *args)

    def _data_waiting(self) -> bool:
        if self.fd is None:
            return self.path is not None and self.named.target() is not None
        if os.fstat(self.fd).st_size != self.pos:  # grown, or cut (read again from its start)
            return True
        if self.path is None:
            return False
        target = self.named.target()  # a new file at the name, with rows, not noticed yet
        return target is not None and target[:2] != self.identity and target[2] > 0

    # ---- the open file ------------------------------------------------------------------------------------------

    def _adopt(self, fd: int, offset: int) -> None:
        st = os.fstat(fd)
        self.fd, self.identity, self.pos = fd, (st.st_dev, st.st_ino), offset
        keep = min(TAIL, offset)
        self._tail = os.pread(fd, keep, offset - keep) if keep else b""
        os.lseek(fd, offset, os.SEEK_SET)
        self.watcher.watch_file(fd, self.label)

    def _release(self) -> None:
        self.watcher.unwatch_file()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self._release()
        self.watcher.close()

    def _rewritten(self) -> bool:
        if not self._tail or self.fd is None:
            return False
        return os.pread(self.fd, len(self._tail), self.pos - len(self._tail)) != self._tail

    def _remember(self, data: bytes) -> None:
        self._tail = data[-TAIL:] if len(data) >= TAIL else (self._tail + data)[-TAIL:]

    def _skipped(self, found: tuple[int, int, int] | None) -> None:
        """Note the file that waited at the name (if any) as lost when ``found`` (or nothing) replaced it first."""
        waiting = self._next
        if waiting is not None and (found is None or found[:2] != waiting[:2]):
            self.lost_files += 1
            self.lost_bytes += waiting[2]
            self._warn(
                "input %s was replaced again before the file that replaced it could be read: %d bytes of rows in "
                "it are skipped (a file must stay at its name for %g s after the one before it goes quiet)",
                self.label, waiting[2], ROTATE_GRACE,
            )  # fmt: skip
        self._next = found

    # ---- the loop ---------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes | NewFile]:
        while True:
            now = time.monotonic()
            if self._should_end(now):
                return
            got = False
            if self.fd is None:
                begun = self._appear()
                if begun is not None:
                    yield begun
            if self.fd is not None:
                while True:
                    # Before every read: once we read on, bytes rewritten behind our position would pass unnoticed.
                    if self._rewritten():
                        self._say("input %s was truncated or rewritten; reading it again from its start", self.label)
                        os.lseek(self.fd, 0, os.SEEK_SET)
                        self.pos, self._tail = 0, b""
                        yield NewFile("truncated")
                    data = os.read(self.fd, CHUNK)
                    if not data:
                        break
                    got = True
                    self.pos += len(data)
                    self._remember(data)
                    self._got(data, time.monotonic())
                    yield data
                    if self.stop.reason is not None:
                        break
                if self.stop.reason is None:
                    moved = self._advance(time.monotonic())
                    if moved is not None:
                        yield moved
                        continue
            if got:
                self.watcher.busy()
                continue
            now = time.monotonic()
            if self.waiting_since is None:
                self.waiting_since = now
            self.watcher.wait(self._poller(), self._timeout(now, self._wake_in(now)), self._check_out)
            yield b""

    def _appear(self) -> NewFile | None:
        """Without an open file: open the one at the name, if one is there now (the start of the input)."""
        fd = self.named.open()
        if fd is not None:
            self._adopt(fd, 0)
            self._adopted += 1
            self._say("input %s appeared; following it", self.label)
        return None

    def _advance(self, now: float) -> NewFile | None:
        """At the end of the open file: the marker of the file read from now on, if it is time to move to one."""
        return NewFile("rotated") if self._switch_if_due(now) else None

    def _wake_in(self, now: float) -> float:
        """How long a wait may last: until a switch becomes due, TICK at most."""
        if self._replaced_since is None:
            return TICK
        return min(TICK, max(self._replaced_since, self.last_data) + ROTATE_GRACE - now)

    def _should_end(self, now: float) -> bool:
        # Not idle while a new file waits for the old one to go quiet: its rows are there to be read.
        if self._replaced_since is not None and self.stop.reason is None:
            self._last_look = now
            return False
        return super()._should_end(now)

    def _switch_if_due(self, now: float) -> bool:
        """At the end of the open file: has the name moved on, and is it time to switch? Switches if so."""
        if self.path is None:
            return False
        target = self.named.target()
        if target is not None and target[:2] == self.identity:
            self._skipped(None)
            self._replaced_since = None
            return False
        self._skipped(target)
        if target is None:
            if not self._gone_logged:
                self._gone_logged = True
                self._say("input %s was removed or renamed; reading the open file until a new one appears", self.label)
            self._replaced_since = None
            return False
        if self._replaced_since is None:
            self._replaced_since = now
            self._say("input %s now names another file; reading the old one to its end first", self.label)
        if now - max(self._replaced_since, self.last_data) < ROTATE_GRACE:
            return False
        fd = self.named.open()
        if fd is None:  # gone again between the look and the open
            return False
        st = os.fstat(fd)
        self._skipped((st.st_dev, st.st_ino, st.st_size))
        self._next = None
        assert self.fd is not None
        behind = os.fstat(self.fd).st_size - self.pos
        if behind > 0:  # written to the old file between our last read and now: it is not read any more
            self.lost_bytes += behind
            self._warn("%d bytes appended to the old %s after its last read are left behind", behind, self.label)
        self._release()
        self._adopt(fd, 0)
        self._adopted += 1
        self._replaced_since = None
        self._gone_logged = False
        self.last_data = now  # the idle clock starts again with the new file, whose rows are read next
        self._say("switched to the new file %s, reading it from its start", self.label)
        return True

    @property
    def watching(self) -> str:
        """How the follower waits for the file to change: "inotify" or "polling"."""
        return self.watcher.kind

    def unseen_files(self) -> int:
        """Files that arrived at the name (inotify says so) yet were never opened nor seen: created and replaced
        between two looks. 0 without inotify, which cannot tell."""
        arrived = self.watcher.arrivals()
        if arrived is None:
            return 0
        lost_here = self.lost_files - self._lost_elsewhere
        return max(arrived - self._adopted - lost_here - (self._next is not None), 0)
