"""The live pieces in-process: the file follower (inotify and polling) against real files and a writer thread, the
reader across new files and restarts, and checkpoint documents."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.core.engine import RollingSignal
from stream.core.tally import Tally
from stream.parsing.framing import InputError
from stream.parsing.reader import Reader
from stream.runs import checkpoint
from stream.runs.checkpoint import Checkpoint, CheckpointError
from stream.runs.stops import Stop
from stream.sources import follow
from stream.sources.files import NewFile
from stream.sources.follow import FileFollower


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rotation waits for the old file to go quiet; a tenth of the default keeps these tests quick.
    monkeypatch.setattr(follow, "ROTATE_GRACE", 0.1)


def run_follower(path: Path, script: Callable[[], None], use_inotify: bool, idle: float = 0.4, **kw) -> list:
    """Follow ``path`` while ``script`` runs in a writer thread; return the events, data joined per file."""
    stop = Stop()
    fd = os.open(path, os.O_RDONLY)  # opened before the writer starts, as the command does
    f = FileFollower(str(path), stop, idle, fd=fd, use_inotify=use_inotify, **kw)
    segments = followed_while(f, script)
    assert f.watching == ("inotify" if use_inotify else "polling")
    return segments


def followed_while(f: FileFollower, script: Callable[[], None]) -> list:
    """Follow ``f`` to its idle timeout while ``script`` runs in a writer thread: the data joined per file, each
    file begun with its NewFile's reason (and its file name, when the marker names one)."""
    writer = threading.Thread(target=script)
    writer.start()
    segments: list = [b""]
    try:
        for event in f:
            if isinstance(event, NewFile):
                named = event.name is not None
                segments += [(event.reason, os.path.basename(event.name)) if named else event.reason, b""]
            else:
                segments[-1] += event
    finally:
        writer.join()
        f.close()
        f.stop.close()  # type: ignore[attr-defined]
    assert f.stopped_by is not None and "idle-timeout" in f.stopped_by
    return segments


def write(path: Path, data: bytes, mode: str = "ab") -> None:
    with open(path, mode) as fh:
        fh.write(data)


MODES = pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "polling"])


@MODES
def test_appended_bytes_arrive_in_order(tmp_path: Path, use_inotify: bool) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n")
    rng = random.Random(1)
    pieces = [bytes(rng.choices(b"0123456789,\n", k=rng.randint(1, 300))) for _ in range(60)]

    def script() -> None:
        for piece in pieces:
            write(path, piece)
            time.sleep(rng.choice([0, 0.001, 0.01]))

    assert run_follower(path, script, use_inotify) == [b"a\n" + b"".join(pieces)]


@MODES
def test_rotation_drains_the_old_file_then_reads_the_new(tmp_path: Path, use_inotify: bool) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"old1\n")

    def script() -> None:
        time.sleep(0.1)
        old = open(path, "ab")  # noqa: SIM115 - the writer keeps its handle across the rename
        os.rename(path, tmp_path / "f.csv.1")
        write(path, b"new1\n")
        for i in range(3):  # the old writer goes on for a moment
            old.write(b"old%d\n" % (i + 2))
            old.flush()
            time.sleep(0.03)
        old.close()
        time.sleep(0.2)
        write(path, b"new2\n")

    assert run_follower(path, script, use_inotify) == [b"old1\nold2\nold3\nold4\n", "rotated", b"new1\nnew2\n"]


@MODES
def test_truncation_and_rewrite_past_our_position(tmp_path: Path, use_inotify: bool) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"first\n")
    stop = Stop()
    f = FileFollower(str(path), stop, 0.3, use_inotify=use_inotify)
    events = iter(f)
    assert next(events) == b"first\n"
    # While the follower waits, the file is replaced in place by longer content: its size alone would not tell.
    path.write_bytes(b"SECOND, longer than the first\n")
    rest = list(events)
    f.close()
    stop.close()
    data = [e for e in rest if e]
    assert data == [NewFile("truncated"), b"SECOND, longer than the first\n"]


@MODES
def test_a_removed_file_is_read_until_a_new_one_appears(tmp_path: Path, use_inotify: bool) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"one\n")

    def script() -> None:
        old = open(path, "ab")  # noqa: SIM115
        os.unlink(path)
        time.sleep(0.05)
        old.write(b"two\n")
        old.close()
        time.sleep(0.15)
        write(path, b"three\n")

    assert run_follower(path, script, use_inotify) == [b"one\ntwo\n", "rotated", b"three\n"]


def test_a_stop_request_ends_the_wait_at_once(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"x\n")
    stop = Stop()
    f = FileFollower(str(path), stop, None)
    threading.Timer(0.2, stop.set, args=("test",)).start()
    events = list(f)
    f.close()
    stop.close()
    assert events[0] == b"x\n" and f.stopped_by == "test"


# ---- the reader across files and restarts ----------------------------------------------------------------------

HEADER = b"timestamp,close\n"


def test_a_new_file_with_the_same_header_quoted_differently_is_skipped() -> None:
    r = Reader(keep_text=True)
    assert r.feed(HEADER + b"1,10\n").closes == ["10"]
    r.new_file()
    assert r.feed(b'"timestamp,close"\r\n2,11\n').closes == ["11"]


def test_a_new_file_without_a_header_continues_the_data() -> None:
    r = Reader(keep_text=True)
    r.feed(HEADER + b"1,10\n")
    r.new_file()
    assert r.feed(b"2,11\n3,12\n").closes == ["11", "12"]


@pytest.mark.parametrize("header", [b"time,price\n", b"timestamp,last\n", b"a,b,c\n"])
def test_a_new_file_with_another_header_is_an_error(header: bytes) -> None:
    r = Reader(on_bad_row="skip")
    r.feed(HEADER + b"1,10\n")
    r.new_file()
    with pytest.raises(InputError, match="differs from the first one"):
        r.feed(header + b"2,11\n")


def test_a_partial_line_is_dropped_after_a_truncation_and_kept_after_a_rotation() -> None:
    r = Reader(keep_text=True, final_line_needs_newline=True)
    r.feed(HEADER + b"1,10\n2,1")
    assert r.new_file(complete_partial=False).closes == []
    r.feed(b"3,12\n4,1")
    assert r.new_file().closes == ["1"]


def test_restore_continues_exactly_where_state_was_taken() -> None:
    rng = random.Random(7)
    data = HEADER + b"".join(b"%d,%d.%02d\n" % (i, rng.randint(90, 110), rng.randint(0, 99)) for i in range(500))
    whole = Reader(keep_text=True).feed(data).closes
    for cut in sorted(rng.sample(range(len(data)), 20)):
        first = Reader(keep_text=True)
        got = first.feed(data[:cut]).closes
        state = first.state()
        second = Reader(keep_text=True)
        second.restore(state)
        got += second.feed(data[state.offset :]).closes
        assert got == whole, cut


# ---- checkpoints -------------------------------------------------------------------------------------------------


def test_a_checkpoint_round_trips_values_beyond_64_bits(tmp_path: Path) -> None:
    engine = RollingSignal(3)
    for units, scale in ((10**29 + 1, 30), (5, 0), (-(10**29), 30)):
        engine.update(units, scale)
    ckpt = Checkpoint(
        None, {"offset": 10, "line": 2, "header": "close", "at_file_start": False}, engine.state(),
        Tally(3, 1, 0), "close", None,
    )  # fmt: skip
    writer = checkpoint.File(str(tmp_path / "ck"))
    writer.save(ckpt)
    writer.close()
    back = checkpoint.File(str(tmp_path / "ck")).load()
    assert back == ckpt
    assert RollingSignal.from_state(back.engine).state() == engine.state()
    assert checkpoint.File(str(tmp_path / "none")).load() is None
    (tmp_path / "bad").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        checkpoint.File(str(tmp_path / "bad")).load()


def test_engine_latest_reports_the_signal_update_returned() -> None:
    rng = random.Random(3)
    engine = RollingSignal(5)
    for _ in range(300):
        units, scale = rng.randint(990, 1010), rng.choice([1, 1, 2])
        sig = engine.update(units * 10 ** (scale - 1), scale)
        latest = engine.latest()
        assert latest is not None and latest[2] == sig
