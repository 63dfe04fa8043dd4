"""The files a glob pattern matches (one a day, an hour), followed in name order as one stream: the current file like
``tail -F``, the next from its start once it is there and the current one is done; a file that sorts before the
current one is reported, never read."""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Iterator
from typing import Any

from stream.sources import follow
from stream.sources.files import NewFile, open_failed
from stream.sources.follow import TICK, FileFollower, StopRequest
from stream.sources.globs import fixed_folder, matches, name_matcher
from stream.sources.named import Named
from stream.sources.watch import Watcher

# With inotify on the pattern's folder, a new file is seen at once; a look this often catches what events cannot
# tell (a file written to after the run moved on from it).
RESCAN = 5.0
# A look at the folder takes at most this share of the time between looks (a pattern matching 100,000 files).
SCAN_SHARE = 0.02
# A file before the checkpoint's that changed this little before the checkpoint was written may have come while
# the run that wrote it could not yet see it: it is reported again rather than not at all (files the run read and
# moved on from were quiet for the rotation grace, which is longer).
SEEN_MARGIN = TICK


class SeriesFollower(FileFollower):
    """The files ``pattern`` matches, followed in name order as one stream.

    - The current file is followed by its name as ``FileFollower`` does (rotation, truncation).
    - The next file (the first that sorts after the current one) is read from its start, after a ``NewFile("next",
      name)``, once the current one is done: read to its end, and either quiet for ``ROTATE_GRACE`` since the next
      file appeared, or followed by two files (its writer has moved on twice).
    - A file that sorts before the current one and was not there before (a late file) is reported, not read; so is a
      file the run moved on from that changes afterwards. ``skipped`` counts them by reason.

    ``at``, ``fd`` and ``offset`` resume from a checkpoint: the name of the file it was written in, that file open,
    and the position in it (``fd`` None: the file is gone, and the run goes on with the next one, if there is one);
    ``seen``: when the checkpoint was written (files before ``at`` changed since are late).
    """

    def __init__(
        self,
        pattern: str,
        stop: StopRequest,
        idle_timeout: float | None = None,
        *,
        at: str | None = None,
        fd: int | None = None,
        offset: int = 0,
        seen: float | None = None,
        use_inotify: bool = True,
        log: Any = None,
    ) -> None:
        self.pattern = os.path.abspath(pattern)
        self._folder = fixed_folder(self.pattern)
        self.skipped = {"late": 0, "changed": 0}
        self.later_bytes = 0  # in the files after the current one, as last seen (metrics: the lag)
        self._known: set[str] = set()  # the files before the current one that are accounted for
        self._passed: dict[str, tuple[int, int, int, int]] = {}  # files moved on from: device, inode, size, mtime
        self._unopened: set[str] = set()  # matches that are not regular files (Named warned of each)
        self._later: list[str] = []  # the files after the current one, in order, as last seen
        self._later_since: float | None = None  # when a next file was first seen
        self._scan_at = 0.0  # when the folder is looked at next
        self._listed = 0  # the watcher's count of events for the pattern's files, as of the last look
        self._unseen_elsewhere = 0  # files replaced too fast at names followed before the current one
        self._begun: NewFile | None = None  # the next file, begun before the first event: its marker comes first
        super().__init__(at, stop, idle_timeout, fd=fd, offset=offset, use_inotify=use_inotify, log=log)
        self.label = at or self.pattern
        if at is not None:
            self.what = f"the input file {at}"
            self._catch_up(at, seen)
        if fd is None:
            self._begun = self._appear()  # the first file (or the one after a checkpoint's), when it is there

    def _watcher(self, use_inotify: bool) -> Watcher:
        name = os.path.basename(self.path) if self.path else None
        return Watcher(name, self._folder, use_inotify, self._say, name_matcher(self.pattern))

    # ---- looking at the folder ----------------------------------------------------------------------------------

    def _catch_up(self, at: str, seen: float | None) -> None:
        """The files before ``at`` are accounted for; those that came or changed after ``seen`` are reported."""
        found = matches(self.pattern)
        for name in found[: bisect.bisect_left(found, at)]:
            self._known.add(name)
            if seen is None:
                continue
            try:
                changed = os.stat(name).st_ctime > seen - SEEN_MARGIN
            except OSError:
                continue
            if changed:
                self.skipped["late"] += 1
                self._warn(
                    "input file %s sorts before %s, where the checkpoint left off, and came or changed after the "
                    "checkpoint was written (while mlops-stream was not running): it is not read",
                    name, at,
                )  # fmt: skip
        self._look(time.monotonic(), found)

    def _due(self, now: float) -> bool:
        return now >= self._scan_at or self.watcher.listed != self._listed

    def _look(self, now: float, found: list[str] | None = None) -> None:
        """Look at what the pattern matches now: late files, files changed after the run moved on, the next ones."""
        started = time.monotonic()
        self._listed = self.watcher.listed
        if found is None:
            found = matches(self.pattern)
        current = self.path
        after = bisect.bisect_right(found, current) if current is not None else 0
        for name in found[:after]:
            if name not in self._known and name != current:
                self._late(name)
        self._later = [name for name in found[after:] if name not in self._unopened]
        if not self._later:
            self._later_since = None
        self.later_bytes = sum(_size(name) for name in self._later)
        self._check_passed()
        every = RESCAN if self._folder is not None and self.watcher.kind == "inotify" else TICK
        self._scan_at = now + max(every, (time.monotonic() - started) / SCAN_SHARE)

    def _late(self, name: str) -> None:
        self._known.add(name)
        self.skipped["late"] += 1
        self._warn(
            "input file %s sorts before %s, the file being read: it came late and is not read (the files of a "
            "pattern are read once, in name order)",
            name, self.path,
        )  # fmt: skip

    def _check_passed(self) -> None:
        """Report, once, each file the run moved on from that was written to or replaced since."""
        for name, (dev, ino, size, mtime) in list(self._passed.items()):
            try:
                st = os.stat(name)
            except FileNotFoundError:  # removed or renamed (compressed, archived): nothing more to read there
                del self._passed[name]
                continue
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (dev, ino):
                what = "was replaced by another file"
            elif (st.st_size, st.st_mtime_ns) != (size, mtime):
                what = f"was changed ({st.st_size} bytes now, {size} when it was read)"
            else:
                continue
            del self._passed[name]
            self.skipped["changed"] += 1
            self._warn("input file %s %s after the run moved on from it: the change is not read", name, what)

    # ---- moving on ----------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes | NewFile]:
        begun, self._begun = self._begun, None
        if begun is not None:
            yield begun
        yield from super().__iter__()

    def _appear(self) -> NewFile | None:
        now = time.monotonic()
        if self._due(now):
            self._look(now)
        return self._move(now) if self._later else None

    def _advance(self, now: float) -> NewFile | None:
        if self._due(now):
            self._look(now)
        moved = super()._advance(now)
        if moved is not None or self._replaced_since is not None:  # a rotation at the current name comes first
            return moved
        assert self.fd is not None
        if not self._later or os.fstat(self.fd).st_size != self.pos:  # written to since the last read: read it first
            return None
        if len(self._later) > 1:  # the writer has moved on twice: the current file is history
            return self._move(now)
        if self._later_since is None:
            self._later_since = now
            self._say(
                "the next file %s is there; moving on once %s has been quiet for %g s",
                self._later[0], self.path, follow.ROTATE_GRACE,
            )  # fmt: skip
        if now - max(self._later_since, self.last_data) < follow.ROTATE_GRACE:
            return None
        return self._move(now)

    def _move(self, now: float) -> NewFile | None:
        """Read the next file from its start; None when it cannot be opened (gone, or not a regular file)."""
        name = self._later[0]
        named = Named(name, self._warn)
        try:
            fd = named.open()
        except OSError as exc:
            raise open_failed(exc, f"file {name}") from None
        if fd is None:
            if os.path.lexists(name):  # passed over for good, and not late once the run is past it
                self._unopened.add(name)
                self._known.add(name)
            self._scan_at = 0.0  # look again before anything else
            self._later.pop(0)
            return None
        first = self.path is None  # no file before: the reader is at the start of its input
        if self.fd is not None:
            assert self.path is not None
            st = os.fstat(self.fd)
            self._passed[self.path] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            self._known.add(self.path)
            self._unseen_elsewhere += super().unseen_files()
            self._lost_elsewhere = self.lost_files
            self._release()
        self.path = self.label = name
        self.named = named
        self.watcher.follow_name(os.path.basename(name))
        self._adopt(fd, 0)
        self._adopted = 0
        self._later.pop(0)
        self._later_since = None
        self.later_bytes = max(self.later_bytes - os.fstat(fd).st_size, 0)
        self.fresh, self.what = True, f"the input file {name}"
        self.last_data = now  # the idle clock starts again with the new file, whose rows are read next
        if first:
            self._say("input file %s matches %s; following it", name, self.pattern)
            return None
        self._say("moved on to the next file %s, reading it from its start", name)
        return NewFile("next", name)

    # ---- waiting and stopping -----------------------------------------------------------------------------------

    def _wake_in(self, now: float) -> float:
        limit = min(super()._wake_in(now), self._scan_at - now)
        if self._later_since is not None:
            limit = min(limit, max(self._later_since, self.last_data) + follow.ROTATE_GRACE - now)
        return limit

    def _should_end(self, now: float) -> bool:
        # Not idle while the next file, with rows in it, waits for the current one to go quiet.
        if self._later_since is not None and self.stop.reason is None and self._later and _size(self._later[0]):
            self._last_look = now
            return False
        return super()._should_end(now)

    def _data_waiting(self) -> bool:
        if self.fd is not None and super()._data_waiting():
            return True
        self._look(time.monotonic())
        if self.fd is None:
            return bool(self._later)
        return bool(self._later) and _size(self._later[0]) > 0

    def unseen_files(self) -> int:
        return self._unseen_elsewhere + super().unseen_files()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
