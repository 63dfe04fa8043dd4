"""A followed name replaced by what is not a regular file (a FIFO): the run never blocks on it. It warns once, as
``tail -F`` does, keeps reading the file it has open, follows a regular file put back at the name, and ends on its
idle timeout, SIGTERM or SIGINT as it would without the FIFO."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
from test_follow import HEADER, LIVE, append, check, finish, make_rows, signal_rows, start, text, wait_for

WARNING = "input live.csv is now a FIFO, not a regular file, so it cannot be followed"


def replace_with_fifo(tmp: Path, times: int = 1) -> None:
    """Put a FIFO at the name, at once as a rotation would, and wait for the run's ``times``-th warning of one."""
    fifo = tmp / "live.fifo"
    os.mkfifo(fifo)
    os.rename(fifo, tmp / "live.csv")
    wait_for(lambda: (tmp / "run.log").read_text().count(WARNING) == times, "the warning that the name is a FIFO")


def test_the_idle_timeout_ends_a_run_whose_file_became_a_fifo(tmp_path: Path) -> None:
    rows = make_rows(12, 21)
    (tmp_path / "live.csv").write_text(HEADER + text(rows[:6]))
    p = start(tmp_path, *LIVE, "--idle-timeout", "2")
    try:
        wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 6, "the first rows")
        old = os.open(tmp_path / "live.csv", os.O_WRONLY | os.O_APPEND)
        replace_with_fifo(tmp_path)
        os.write(old, text(rows[6:]).encode())  # the writer still has the old file open: its rows are read
        os.close(old)
    finally:
        code, _out, err = finish(p)  # no signal: the idle timeout alone must end it
    assert code == 0, err
    check(tmp_path, rows)
    log = (tmp_path / "run.log").read_text()
    assert log.count(WARNING) == 1
    assert "no new data for 2 s (--idle-timeout)" in log


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_ends_the_wait_and_a_regular_file_put_back_is_followed(tmp_path: Path, stop: int) -> None:
    first, second = make_rows(8, 22), make_rows(5, 23, 9)
    (tmp_path / "live.csv").write_text(HEADER + text(first))
    p = start(tmp_path, *LIVE)
    try:
        wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 8, "the first file's rows")
        replace_with_fifo(tmp_path)
        new = tmp_path / "live.new"
        new.write_text(HEADER)
        os.rename(new, tmp_path / "live.csv")  # a regular file again: followed from its start
        append(tmp_path / "live.csv", text(second), random.Random(24))
        wait_for(lambda: signal_rows(tmp_path / "sig.csv") == 13, "the new file's rows")
        replace_with_fifo(tmp_path, times=2)  # a FIFO again, while the run waits for rows
    finally:
        code, _out, err = finish(p, stop)
    assert code == 0, err
    check(tmp_path, first + second)
    assert "switched to the new file" in (tmp_path / "run.log").read_text()


def test_a_fifo_put_back_after_a_regular_file_is_warned_of_again(tmp_path: Path) -> None:
    # The same FIFO (as a new one reusing a freed inode number looks): once a regular file was followed between
    # the two, the second is a new event for the person reading the log.
    from stream.sources.named import Named

    warnings: list[str] = []
    named = Named(str(tmp_path / "live.csv"), lambda message, *args: warnings.append(message % args))
    os.mkfifo(tmp_path / "live.csv")
    os.link(tmp_path / "live.csv", tmp_path / "kept.fifo")  # the FIFO's inode, kept for later
    assert named.target() is None and named.target() is None and len(warnings) == 1  # said once
    (tmp_path / "live.new").write_text(HEADER)
    os.rename(tmp_path / "live.new", tmp_path / "live.csv")
    assert named.target() is not None
    os.rename(tmp_path / "kept.fifo", tmp_path / "live.csv")
    assert named.open() is None and len(warnings) == 2 and "is now a FIFO" in warnings[1]
