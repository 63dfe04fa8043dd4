"""The log sink in this process: record format, levels, tracebacks, forks, and stderr as it is at each write."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.sinks import log as logsink
from stream.sinks.log import log

RECORD = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) (.*)$")


@pytest.fixture(autouse=True)
def fresh_log() -> Iterator[None]:
    """Each test starts and leaves the process's one log as it is before any setup: stderr only."""
    logsink.setup(None)
    yield
    logsink.setup(None)


def records(path: Path) -> list[tuple[str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = RECORD.match(line)
        assert m, line
        found.append((m.group(1), m.group(2)))
    return found


def test_before_setup_warnings_reach_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log.info("not shown")
    log.warning("shown %d", 1)
    assert capsys.readouterr().err == "mlops-stream: warning: shown 1\n"


def test_levels_formatting_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.log"
    assert logsink.setup(str(path)) is log
    log.debug("d %s", "x")
    log.info("i %d%%", 5)
    log.warning("%(rows)d rows", {"rows": 3})  # a single mapping argument, as logging takes it
    log.error("e %s %s", "a")  # a call that does not match its format keeps its arguments rather than failing
    assert records(path) == [
        ("DEBUG", "d x"),
        ("INFO", "i 5%"),
        ("WARNING", "3 rows"),
        ("ERROR", "e %s %s ('a',) (unformattable: not enough arguments for format string)"),
    ]
    err = capsys.readouterr().err.splitlines()
    assert err == ["mlops-stream: warning: 3 rows", "mlops-stream: error: " + records(path)[3][1]]
    logsink.setup(str(path), quiet=True)  # appended to, as logging's file handler did
    log.warning("quiet warning")
    log.error("quiet error")
    assert capsys.readouterr().err == "mlops-stream: error: quiet error\n"
    assert records(path)[-2:] == [("WARNING", "quiet warning"), ("ERROR", "quiet error")]


def test_an_unopenable_log_file_raises_and_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    logsink.setup(str(path))
    with pytest.raises(OSError):
        logsink.setup(str(tmp_path))  # a folder
    log.info("still here")
    assert records(path) == [("INFO", "still here")]


def test_exc_info_writes_the_traceback_to_the_file_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.log"
    logsink.setup(str(path))
    try:
        raise ValueError("boom")
    except ValueError:
        log.error("it failed")
        log.debug("details", exc_info=True)
    log.debug("no exception now", exc_info=True)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1].endswith(" DEBUG details")
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-2] == "ValueError: boom"
    assert lines[-1].endswith(" DEBUG no exception now")  # nothing to add outside an exception
    assert capsys.readouterr().err == "mlops-stream: error: it failed\n"


def test_a_file_name_that_is_not_utf8_does_not_cost_the_record(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    logsink.setup(str(path))
    log.info("input opened: %s", os.fsdecode(b"a\xff.csv"))  # how argv carries such a name
    log.info("next")
    assert records(path) == [("INFO", "input opened: a\\udcff.csv"), ("INFO", "next")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="worker processes are forked")
def test_a_forked_worker_neither_repeats_nor_loses_records(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    logsink.setup(str(path))
    log.info("before the fork")
    pid = os.fork()
    if pid == 0:  # a worker: it ends with os._exit, as multiprocessing's do, so nothing is flushed at its exit
        try:
            log.info("in the worker")
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    log.info("after the fork")
    assert [text for _, text in records(path)] == ["before the fork", "in the worker", "after the fork"]


def test_stderr_is_the_one_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.warning("one")
    monkeypatch.setattr(sys, "stderr", second)
    log.warning("two")
    assert (first.getvalue(), second.getvalue()) == ("mlops-stream: warning: one\n", "mlops-stream: warning: two\n")


def test_warnings_go_through_the_progress_display_while_it_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich")
    from rich.file_proxy import FileProxy

    from stream.core.engine import RollingSignal
    from stream.runs.pipeline import Pipeline
    from stream.sinks import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    through_rich: list[str] = []
    write = FileProxy.write

    def spy(self: FileProxy, text: str) -> int:
        through_rich.append(text)
        return write(self, text)

    terminal = Terminal()
    monkeypatch.setattr(FileProxy, "write", spy)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("TERM", "xterm")
    display = progress.Progress(Pipeline(RollingSignal(3), None), "in.csv", delay=None)
    display.show()
    try:
        assert isinstance(sys.stderr, FileProxy)
        log.warning("while the display is up")
    finally:
        display.close()
    assert sys.stderr is terminal
    log.warning("after it")
    assert "".join(through_rich) == "mlops-stream: warning: while the display is up\n"
    assert "mlops-stream: warning: while the display is up" in terminal.getvalue()  # printed by rich, above it
    assert terminal.getvalue().endswith("mlops-stream: warning: after it\n")  # straight to the terminal again


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full: it opens, and every write fails")
def test_a_log_file_that_stops_accepting_lines_is_said_once_even_when_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    logsink.setup("/dev/full", quiet=True)
    log.info("first")
    log.warning("second")  # quiet: not on stderr, and the file is gone
    log.error("third")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "mlops-stream: warning: the log file /dev/full cannot be written (no space left on device); the rest of the "
        "log is lost",
        "mlops-stream: error: third",
    ]
