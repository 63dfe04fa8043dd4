"""The progress display: driven with counts and a fake clock and drawn on a rich console in memory (its stages, bar,
rates, waiting and summary line), the parallel plan's progress reports, and one real run on a pseudo-terminal."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

import pytest
from conftest import env_with_repo, http_server, on_terminal

from stream.core.engine import RollingSignal
from stream.core.tally import Tally
from stream.parsing.reader import Reader
from stream.runs import parallel
from stream.runs.pipeline import Pipeline
from stream.runs.plan.executors import Inline, Processes
from stream.runs.plan.merge import Reached
from stream.sinks.progress import Progress, Work
from stream.sinks.signals import SignalSink
from stream.sources.files import Spec

pytest.importorskip("rich")
from rich.console import Console

ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+")


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Feed:
    """What the display reads of a live input's follower."""

    def __init__(self) -> None:
        self.waiting_since: float | None = None


def drawn(display: Progress) -> str:
    """One frame as text, on a console of 120 columns."""
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    console.print(display.frame())
    return console.export_text()


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after ``raw``: text, carriage returns, new lines, cursor-up and erase-line (what
    rich's live display writes); other escape codes (colours, the cursor's visibility) change no text."""
    lines, row, col = [""], 0, 0
    for m in ESCAPE.finditer(raw):
        token = m.group(0)
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif m.group(2) == "A":
            row = max(0, row - int(m.group(1) or 1))
        elif m.group(2) == "K":
            lines[row] = ""
        elif m.group(2) is None:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
    return [line.rstrip() for line in lines if line.strip()]


def pipeline() -> Pipeline:
    return Pipeline(RollingSignal(3), None)


# ---- the bar and its stages ---------------------------------------------------------------------------------------


def test_a_planning_stage_shows_its_label_then_the_measured_work_its_bar() -> None:
    clock, done = Clock(), [0]
    display = Progress(pipeline(), "big.csv", work=lambda: Work(done[0], 1000), clock=clock, delay=None)
    display.stage("planning: reading the header")
    text = drawn(display)
    assert "reading big.csv" in text and "planning: reading the header" in text
    assert "%" not in text and "ETA" not in text
    display.stage(None)
    assert "0%" in drawn(display) and "ETA -" in drawn(display)  # nothing measured yet
    for step in range(1, 5):
        clock.now += 1
        done[0] = 100 * step
        text = drawn(display)
    assert "40%" in text and "400 bytes of 1.0 kB" in text
    assert "ETA 6.0 s" in text  # 400 in 4 s: 600 more in 6 s


def test_the_eta_counts_the_work_since_its_stage_started_not_the_planning_before() -> None:
    clock, done = Clock(), [0]
    display = Progress(pipeline(), "big.csv", work=lambda: Work(done[0], 100, "blocks"), clock=clock, delay=None)
    display.stage("starting 2 worker processes")
    clock.now += 30  # a slow start is no part of the pace of the work
    display.stage(None)
    drawn(display)
    clock.now += 2
    done[0] = 50
    assert "ETA 2.0 s" in drawn(display)


def test_a_stream_of_unknown_size_shows_what_was_read() -> None:
    display = Progress(pipeline(), "<stdin>", work=lambda: Work(2_500_000, None), clock=Clock(), delay=None)
    text = drawn(display)
    assert "2.5 MB read" in text and "%" not in text and "ETA" not in text


# ---- the plan's progress reports -----------------------------------------------------------------------------------


def plan_input(tmp_path: Path, rows: int = 4000) -> tuple[Spec, int]:
    data = tmp_path / "in.csv"
    data.write_text("timestamp,close\n" + "".join(f"{i},{100 + i % 13}.25\n" for i in range(rows)))
    return Spec(str(data)), data.stat().st_size


def run_plan(tmp_path: Path, executor: object, signals: bool, hooks: dict) -> list[Reached]:
    spec, size = plan_input(tmp_path)
    states: list[Reached] = []
    sink = SignalSink(io.BytesIO(), "csv") if signals else None
    reader = Reader("close", "fail", keep_text=signals)
    options = parallel.Reading(2, block_size=4096, executor=executor)  # type: ignore[arg-type]
    parallel.run([spec], [size], reader, Pipeline(RollingSignal(5), sink), options,
                 parallel.Hooks(reached=states.append, **hooks))  # fmt: skip
    return states


@pytest.mark.parametrize("signals", [True, False], ids=["two passes", "one pass"])
def test_the_plan_reports_every_block_of_every_pass(tmp_path: Path, signals: bool) -> None:
    stages: list[str | None] = []
    states = run_plan(tmp_path, Inline(), signals, {"stage": stages.append})
    blocks = states[0].blocks
    assert blocks >= 10
    planning = ["planning: reading the header", "planning: cutting the input into blocks"]
    assert stages == [*planning, None, "stopping the workers"]
    work = [state.work() for state in states]
    done = [d for d, _ in work]
    assert done == sorted(done) and done[0] == 0 and work[-1][0] == work[-1][1]
    assert len(set(done)) == (2 if signals else 1) * blocks + 1  # a step for each block of each pass
    assert (states[-1].passes, states[-1].written) == (2 if signals else 1, blocks)


def test_worker_processes_count_the_bytes_they_read_in_each_pass(tmp_path: Path) -> None:
    executor = Processes(2)
    try:
        states = run_plan(tmp_path, executor, True, {})
    finally:
        executor.close(abort=True)  # the plan closed it as it ended; this is for a plan that failed
    last = states[-1]
    assert last.meter is not None and last.meter.read() == (last.size, last.size)


def test_worker_processes_started_for_the_plan_are_a_stage(tmp_path: Path) -> None:
    stages: list[str | None] = []
    run_plan(tmp_path, None, False, {"stage": stages.append})
    assert stages[2:] == ["starting 2 worker processes", None, "stopping the workers"]


# ---- the end of the run -------------------------------------------------------------------------------------------


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, force_terminal=True, color_system=None, legacy_windows=False), out


def test_the_summary_line_takes_the_place_of_the_bar() -> None:
    console, out = terminal()
    clock, p = Clock(), pipeline()
    display = Progress(p, "big.csv", work=lambda: Work(p.rows * 50, 100_000), console=console, clock=clock, delay=None)
    display.show()
    clock.now += 1
    p.restore(Tally(1000, 500, 0))
    display.frame()
    clock.now += 1
    p.restore(Tally(2000, 1000, 3))
    display.close()
    assert "100%" in out.getvalue() and "reading big.csv" in out.getvalue()  # the bar was drawn...
    assert screen(out.getvalue()) == ["processed 2,000 rows in 2.0 s (1,000 rows/s), 3 skipped"]  # ...and is gone


def test_a_failed_run_leaves_no_summary_and_an_unshown_display_prints_nothing() -> None:
    console, out = terminal()
    with (
        pytest.raises(RuntimeError),
        Progress(pipeline(), "a.csv", console=console, clock=Clock(), delay=None) as shown,
    ):
        shown.show()
        raise RuntimeError("the run failed")
    assert "reading a.csv" in out.getvalue() and screen(out.getvalue()) == []
    quick = Progress(pipeline(), "a.csv", console=console, clock=Clock(), delay=None)
    before = out.getvalue()
    quick.close()
    assert out.getvalue() == before and not quick.shown


def test_the_display_shows_itself_after_its_delay() -> None:
    console, out = terminal()
    display = Progress(pipeline(), "a.csv", console=console, delay=0.05)
    deadline = time.monotonic() + 30
    while not display.shown and time.monotonic() < deadline:
        time.sleep(0.01)
    display.close()
    assert display.shown is False and "reading a.csv" in out.getvalue()


# ---- a live input -------------------------------------------------------------------------------------------------


def test_receiving_while_rows_arrive_waiting_after_a_second_and_the_rate_falls_to_zero() -> None:
    clock, feed, p = Clock(), Feed(), pipeline()
    display = Progress(p, "live.csv", follower=feed, clock=clock, delay=None)
    text = ""
    for burst in range(1, 21):  # 200 rows/s in bursts, the follower waiting (briefly) between them, as it does
        clock.now += 0.25
        p.restore(Tally(50 * burst, 0, 0))
        feed.waiting_since = clock.now - 0.01
        text = drawn(display)
        assert "receiving rows" in text and "waiting" not in text
    assert "200 rows/s" in text
    stopped = clock.now
    feed.waiting_since = stopped
    rates = []
    while clock.now < stopped + 5:
        clock.now += 0.25
        text = drawn(display)
        rates.append(float(re.search(r"([\d.,]+) rows/s", text)[1].replace(",", "")))  # type: ignore[index]
        if clock.now - stopped < 1:
            assert "receiving rows" in text
    assert "waiting for new rows for 5.0 s" in text
    assert rates == sorted(rates, reverse=True) and rates[0] > 100 and rates[-1] == 0


# ---- on a real terminal -------------------------------------------------------------------------------------------


def test_a_parallel_run_on_a_terminal_ends_with_its_summary_line(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="fsspec's HTTP client is not installed (the test extra has it)")
    rows = 400_000
    body = ("timestamp,close\n" + "".join(f"{i},{100 + i % 13}.25\n" for i in range(rows))).encode()
    late = len(body) * 3 // 4
    drawn = threading.Event()

    def frames(seen: bytes) -> None:
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
        if "reading http://" in plain and "%" in plain:
            drawn.set()

    # A web address whose server holds the bytes from three quarters of the file on back until the display has drawn
    # its bar: the run outlasts the display's delay however loaded the machine is. Reads ahead of 64 KiB (not fsspec's
    # 5 MiB) keep the first megabyte's reads, which find the header, clear of it. Whichever read reaches the held
    # bytes first (one that cuts the blocks, or a worker's), the bar shows while it waits.
    def answer(method: str, path: str) -> tuple[int, list]:
        return 200, [body[:late], lambda: drawn.wait(60), body[late:]]

    env = env_with_repo({"FSSPEC_HTTP": '{"block_size": 65536}'})
    with http_server(answer, ranges=True) as host:
        args = ["--input", f"http://{host}/in.csv", "--workers", "2", "--block-size", "256K", "--signals", "s.csv",
                "--output", "m.json"]  # fmt: skip
        code, seen = on_terminal(args, tmp_path, env, size=(40, 160), watch=frames)
    assert code == 0
    raw = seen.decode("utf-8", "replace")
    assert drawn.is_set(), raw
    final = screen(raw)
    assert any(re.fullmatch(rf"processed {rows:,} rows in [\d.]+ s \([\d,.]+ rows/s\)", line) for line in final)
    assert not any("ETA" in line or "%" in line for line in final), final
