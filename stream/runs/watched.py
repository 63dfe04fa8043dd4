"""A live run as the metrics server watches it (stream/sinks/serve.py): its counts and bytes, rotations, checkpoints,
health and readiness."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from stream.sources.chunks import CHUNK
from stream.sources.files import NewFile
from stream.sources.follow import FileFollower
from stream.sources.series import SeriesFollower

if TYPE_CHECKING:
    from stream.parsing.reader import Reader
    from stream.runs.pipeline import Pipeline
    from stream.runs.saving import Saver
    from stream.sinks.serve import Sample
    from stream.sinks.topkeys import TopKeys
    from stream.sources.follow import StreamFollower

# Seconds without a turn of the follow loop before /healthz reports it stuck (it turns at least twice a second);
# MLOPS_STREAM_STUCK_AFTER sets another (a probe that wants to know sooner; the tests).
STUCK_AFTER = 10.0


def stuck_after() -> float:
    """``MLOPS_STREAM_STUCK_AFTER`` when it is a positive number of seconds, else ``STUCK_AFTER``.

    >>> os.environ["MLOPS_STREAM_STUCK_AFTER"] = "2.5"; stuck_after()
    2.5
    >>> os.environ["MLOPS_STREAM_STUCK_AFTER"] = "soon"; stuck_after()
    10.0
    >>> del os.environ["MLOPS_STREAM_STUCK_AFTER"]
    """
    try:
        value = float(os.environ.get("MLOPS_STREAM_STUCK_AFTER", STUCK_AFTER))
    except ValueError:
        return STUCK_AFTER
    return value if 0 < value < float("inf") else STUCK_AFTER


class LiveView:
    """What the server reads of a live run; the row path tells it of each row, new file and turn of its loop.

    ``lock`` (serving only; None otherwise) is held by the row path while it works on an event, so a sample never
    sees one half done: ``turns`` hands the follower's events out with it held.
    """

    def __init__(
        self,
        follower: FileFollower | StreamFollower,
        reader: Reader,
        pipeline: Pipeline,
        saver: Saver,
        serving: bool,
    ) -> None:
        self.follower = follower
        self.reader = reader
        self.pipeline = pipeline
        self.saver = saver
        self.lock: threading.Lock | None = threading.Lock() if serving else None
        self.top_keys: TopKeys | None = None  # what a scrape reads of a keyed run's counts
        if serving:
            from stream.sinks.topkeys import TopKeys

            self.top_keys = TopKeys.of(pipeline)
        self.started_at = time.monotonic()
        self.last_row_at: float | None = None
        self.last_turn = self.started_at  # the last time the loop did its periodic work
        self.stuck_after = stuck_after()
        self.rotations = self.truncations = 0

    def rows_at(self, now: float) -> None:
        self.last_row_at = now

    def turned(self, now: float) -> None:
        self.last_turn = now

    def new_file(self, reason: str) -> None:
        """Count a file begun for ``reason`` (NewFile's): a truncation or a rotation; the next file of a glob pattern
        is neither."""
        if reason == "truncated":
            self.truncations += 1
        elif reason == "rotated":
            self.rotations += 1

    def turns(self, follower: Iterable[bytes | NewFile]) -> Iterable[bytes | NewFile]:
        """The follower's events; when serving, with the lock held while each one is processed."""
        return follower if self.lock is None else _holding(self.lock, follower)

    def sample(self) -> Sample:
        from stream.sinks.serve import sample_of

        s = sample_of(self.pipeline, self.reader.skips, self.top_keys)
        f = self.follower
        s.bytes_read = f.bytes_read
        if isinstance(f, FileFollower):
            s.bytes_unread = _unread(f)
            s.rotations, s.truncations = self.rotations, self.truncations
            skipped = dict(f.skipped) if isinstance(f, SeriesFollower) else {"late": 0, "changed": 0}
            s.files_skipped = {**skipped, "replaced": f.lost_files}
        # Before its first row, since the run started: a feed that never resumes after a restart shows as stalled.
        s.last_row_age = time.monotonic() - (self.last_row_at or self.started_at)
        if self.saver.file is not None:
            s.checkpoints, s.last_checkpoint = self.saver.checkpoints, self.saver.checkpoint_time
        return s

    def _stopping(self) -> str | None:
        f = self.follower
        return "the run is stopping" if f.stop.reason is not None or f.stopped_by is not None else None

    def health(self) -> str | None:
        if stopping := self._stopping():
            return stopping
        quiet = time.monotonic() - self.last_turn
        return f"the follow loop has not turned for {quiet:.0f} s" if quiet > self.stuck_after else None

    def readiness(self) -> str | None:
        f = self.follower
        if stopping := self._stopping():
            return stopping
        if isinstance(f, FileFollower):
            unread = _unread(f)
            if unread is None:
                return f"waiting for the input {f.label} to appear"
            if unread >= CHUNK:
                return f"reading the backlog: {unread} bytes to go"
        return None


def _unread(f: FileFollower) -> int | None:
    """Bytes not read yet: of the open file, and of the files of a glob pattern after it."""
    fd = f.fd
    later = f.later_bytes if isinstance(f, SeriesFollower) else 0
    try:
        return max(os.fstat(fd).st_size - f.pos, 0) + later if fd is not None else None
    except OSError:  # closed by the follow loop at a rotation, between our look and the call
        return None


def _holding(lock: threading.Lock, events: Iterable[bytes | NewFile]) -> Iterator[bytes | NewFile]:
    """``events`` with ``lock`` held from each event until the next is asked for: released only while waiting."""
    it = iter(events)
    lock.acquire()
    try:
        while True:
            lock.release()
            try:
                event = next(it)
            except StopIteration:
                return
            finally:
                lock.acquire()
            yield event
    finally:
        lock.release()
