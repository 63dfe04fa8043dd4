"""The follower of a glob pattern's files in-process, against real files and a writer thread, with inotify and with
polling: name order, the move to the next file, late and changed files, files that are not regular, patterns with
wildcards in a folder's name, rotation of the current file, and a start from a checkpoint's file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_follow_source import followed_while

from stream.runs.stops import Stop
from stream.sources import follow
from stream.sources.series import SeriesFollower

MODES = pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "polling"])


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "ROTATE_GRACE", 0.1)


class Said(logging.Handler):
    """The log lines a follower writes, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, words: str) -> int:
        return sum(words in line for line in self.lines)


def said() -> tuple[logging.Logger, Said]:
    log = logging.getLogger(f"series-test-{id(object())}")
    handler = Said()
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, handler


def write(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def wait_until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@MODES
def test_files_are_read_in_name_order_late_and_changed_ones_reported(tmp_path: Path, use_inotify: bool) -> None:
    (tmp_path / "d-1.csv").write_bytes(b"one\n")
    (tmp_path / "d-2.csv").write_bytes(b"two\n")
    log, lines = said()
    f = SeriesFollower(str(tmp_path / "d-*.csv"), Stop(), 2.0, use_inotify=use_inotify, log=log)

    def script() -> None:
        wait_until(lambda: lines.count("moved on to the next file") == 1)
        write(tmp_path / "d-3.csv", b"three\n")
        write(tmp_path / "d-3.csv", b"three again\n")
        wait_until(lambda: lines.count("moved on to the next file") == 2)
        # The next file right after the late and the changed one: the idle timeout counts from the last data, and
        # waiting for their reports first would leave the next file to the machine's load.
        write(tmp_path / "d-0.csv", b"late\n")  # sorts before the current file
        write(tmp_path / "d-2.csv", b"two, later\n")  # the run moved on from it
        write(tmp_path / "d-4.csv", b"four\n")

    got = followed_while(f, script)
    assert got == [
        b"one\n", ("next", "d-2.csv"), b"two\n", ("next", "d-3.csv"), b"three\nthree again\n", ("next", "d-4.csv"),
        b"four\n",
    ]  # fmt: skip
    assert f.skipped == {"late": 1, "changed": 1}
    assert f.watching == ("inotify" if use_inotify else "polling")


@MODES
def test_a_match_that_is_not_a_regular_file_is_passed_over(tmp_path: Path, use_inotify: bool) -> None:
    (tmp_path / "d-1.csv").write_bytes(b"one\n")
    os.mkfifo(tmp_path / "d-2.csv")  # never opened for reading: it would wait for a writer
    (tmp_path / "d-3.csv").write_bytes(b"three\n")
    log, lines = said()
    f = SeriesFollower(str(tmp_path / "d-*.csv"), Stop(), 1.0, use_inotify=use_inotify, log=log)

    def script() -> None:
        wait_until(lambda: lines.count("moved on to the next file") == 1)
        write(tmp_path / "d-4.csv", b"four\n")  # the folder is looked at again, past the FIFO

    got = followed_while(f, script)
    assert got == [b"one\n", ("next", "d-3.csv"), b"three\n", ("next", "d-4.csv"), b"four\n"]
    assert lines.count("is now a FIFO, not a regular file") == 1
    assert f.skipped == {"late": 0, "changed": 0}


def test_a_pattern_with_wildcards_in_a_folder_finds_new_folders(tmp_path: Path) -> None:
    (tmp_path / "2024-01-01").mkdir()
    (tmp_path / "2024-01-01" / "btc.csv").write_bytes(b"one\n")

    def script() -> None:
        (tmp_path / "2024-01-02").mkdir()
        write(tmp_path / "2024-01-02" / "btc.csv", b"two\n")

    f = SeriesFollower(str(tmp_path / "*" / "btc.csv"), Stop(), 1.5)
    assert followed_while(f, script) == [b"one\n", ("next", "btc.csv"), b"two\n"]


@MODES
def test_the_current_file_rotates_as_a_followed_file_does(tmp_path: Path, use_inotify: bool) -> None:
    (tmp_path / "d-1.csv").write_bytes(b"old\n")
    log, lines = said()
    f = SeriesFollower(str(tmp_path / "d-*.csv"), Stop(), 1.0, use_inotify=use_inotify, log=log)

    def script() -> None:
        os.rename(tmp_path / "d-1.csv", tmp_path / "d-1.csv.old")  # out of the pattern: not a later file
        write(tmp_path / "d-1.csv", b"new\n")
        wait_until(lambda: lines.count("switched to the new file") == 1)
        write(tmp_path / "d-2.csv", b"next\n")

    assert followed_while(f, script) == [b"old\n", "rotated", b"new\n", ("next", "d-2.csv"), b"next\n"]


def test_files_behind_a_checkpoint_are_read_at_once_but_the_newest_waits(tmp_path: Path) -> None:
    for n in range(1, 6):
        (tmp_path / f"d-{n}.csv").write_bytes(b"%d\n" % n)
    log, lines = said()
    f = SeriesFollower(str(tmp_path / "d-*.csv"), Stop(), 0.5, log=log)
    got = followed_while(f, lambda: None)
    assert [e for e in got if isinstance(e, bytes)] == [b"1\n", b"2\n", b"3\n", b"4\n", b"5\n"]
    # Only the last file could still be written to: a file with two after it is history, and is left at once.
    assert lines.count("is there; moving on once") == 1 and lines.count("d-5.csv is there") == 1


def test_a_start_from_a_checkpoint_reports_earlier_files_that_came_since(tmp_path: Path) -> None:
    for n in (1, 2, 3):
        (tmp_path / f"d-{n}.csv").write_bytes(b"row %d\n" % n)
    made = os.stat(tmp_path / "d-3.csv").st_ctime
    wait_until(lambda: time.time() > made + 2 * follow.TICK)  # the files were there well before the checkpoint...
    written = time.time()  # ...written in d-2.csv after its first row
    (tmp_path / "d-0.csv").write_bytes(b"late\n")  # and d-0.csv came after it
    log, lines = said()
    path = str(tmp_path / "d-2.csv")
    fd = os.open(path, os.O_RDONLY)
    f = SeriesFollower(str(tmp_path / "d-*.csv"), Stop(), 0.5, at=path, fd=fd, offset=4, seen=written, log=log)
    assert followed_while(f, lambda: None) == [b"2\n", ("next", "d-3.csv"), b"row 3\n"]
    assert f.skipped == {"late": 1, "changed": 0}
    assert lines.count("d-0.csv sorts before") == 1 and lines.count("d-1.csv") == 0
