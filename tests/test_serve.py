"""--metrics-port: a real HTTP client scrapes a running command while a writer appends rows; every scrape parses with
prometheus_client's own parser and agrees with an exact Fraction reference for a prefix of the rows appended."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TRACEBACK_MARKERS, env_with_repo, run_command, write_config

prometheus_client = pytest.importorskip("prometheus_client", reason="the serve extra (prometheus_client) is missing")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 3
PRICES = ["100.1", "100.10", "100.2", "99.9", "100.15", "1.001e2", "100", "100.05", "99.95"]
# Bad rows of each kind the reader reports, as the line a feed would write (without its newline).
BAD = {
    "fields": b"x,100.1,7",
    "value": b"x,abc",
    "missing": b"x,",
    "quote": b'x,"100.1',
    "encoding": b"x,100.\xff",
}

Line = tuple[str | None, bytes, str | None]  # (bad kind or None, line, close)


def make_lines(n: int, seed: int, bad_every: int = 7) -> list[Line]:
    rng = random.Random(seed)
    out: list[Line] = []
    for i in range(1, n + 1):
        if i % bad_every == 0:
            kind = rng.choice(sorted(BAD))
            out.append((kind, BAD[kind].replace(b"x", str(i).encode(), 1), None))
        else:
            close = rng.choice(PRICES)
            out.append((None, f"{i},{close}".encode(), close))
    return out


class Reference:
    """Exact counts after each prefix of the lines: rows, signals, skipped by kind, last close and mean."""

    def __init__(self, lines: list[Line], window: int = WINDOW) -> None:
        self.prefixes: list[dict[str, Any]] = []
        held: deque[Fraction] = deque(maxlen=window)
        rows = hits = 0
        skipped: dict[str, int] = {}
        close = mean = None
        state = {"rows": 0, "signals": 0, "skipped": {}, "close": None, "mean": None}
        self.prefixes.append(state)
        for kind, _, text in lines:
            if kind is not None:
                skipped = {**skipped, kind: skipped.get(kind, 0) + 1}
            else:
                value = Fraction(text)
                held.append(value)
                rows += 1
                close = value
                mean = sum(held) / window if len(held) == window else None
                hits += int(mean is not None and value > mean)
            self.prefixes.append({"rows": rows, "signals": hits, "skipped": skipped, "close": close, "mean": mean})

    def matching(self, rows: int, signals: int, skipped: dict[str, int]) -> dict[str, Any] | None:
        for p in self.prefixes:
            if p["rows"] == rows and p["signals"] == signals and p["skipped"] == skipped:
                return p
        return None


def scrape(port: int, path: str = "/metrics", timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def families(text: str) -> dict[str, Any]:
    """Sample name (with labels folded in) -> value."""
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{label}}}" if label else s.name] = s.value
    return out


def skipped_of(m: dict[str, Any]) -> dict[str, int]:
    found = {}
    for name, value in m.items():
        hit = re.fullmatch(r"mlops_stream_rows_skipped_total\{reason=(\w+)\}", name)
        if hit and value:
            found[hit.group(1)] = int(value)
    return found


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def port_from_log(log: Path, p: subprocess.Popen) -> int:
    def found() -> int | None:
        if p.poll() is not None:
            raise AssertionError(f"the run ended early: {p.returncode} {p.stderr.read() if p.stderr else ''}")
        text = log.read_text() if log.exists() else ""
        hit = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", text)
        return int(hit.group(1)) if hit else None

    return wait_for(found, "the metrics server's address in the log")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def start(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: Any = subprocess.DEVNULL
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stream", *args], cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env_with_repo(env),
    )  # fmt: skip


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def signals_file_rows(path: Path) -> list[int]:
    """The signal column of the complete rows of a signals CSV, in order."""
    lines = path.read_bytes().split(b"\n")[1:-1]  # no header, no unfinished last line
    return [int(line.rsplit(b",", 1)[1]) for line in lines]


def check_scrape(m: dict[str, Any], ref: Reference, signals_path: Path | None, values: bool = True) -> dict[str, Any]:
    """Everything one scrape says agrees with the reference for some prefix of the lines, and with the signals file.
    ``values=False``: a run on workers, whose parent has counts but no latest value."""
    rows, hits = int(m["mlops_stream_rows_processed_total"]), int(m["mlops_stream_signals_total"])
    skipped = skipped_of(m)
    p = ref.matching(rows, hits, skipped)
    assert p is not None, f"no prefix of the appended lines has rows={rows} signals={hits} skipped={skipped}"
    if rows:
        assert m["mlops_stream_signal_rate"] == hits / rows  # int / int: the exact rate's nearest float
    if not values:
        assert "mlops_stream_last_close" not in m and "mlops_stream_rolling_mean" not in m
    else:
        assert m.get("mlops_stream_last_close") == (float(p["close"]) if rows else None)
        assert m.get("mlops_stream_rolling_mean") == (float(p["mean"]) if p["mean"] is not None else None)
    if signals_path is not None:
        written = signals_file_rows(signals_path)
        assert len(written) >= rows
        assert sum(written[:rows]) == hits
    return p


def test_scrapes_of_a_live_run_equal_the_exact_reference_while_rows_arrive(tmp_path: Path) -> None:
    lines = make_lines(600, seed=11)
    ref = Reference(lines)
    live = tmp_path / "live.csv"
    live.write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in lines[:100]))
    args = [
        "--input", "live.csv", "--follow", "--metrics-port", "0", "--window", str(WINDOW), "--on-bad-row", "skip",
        "--signals", "signals.csv", "--checkpoint", "live.ckpt", "--log-file", "run.log", "--no-progress",
    ]  # fmt: skip
    p = start(args, tmp_path)
    try:
        port = port_from_log(tmp_path / "run.log", p)
        wait_for(lambda: scrape(port, "/readyz")[0] == 200, "readiness")
        assert scrape(port, "/healthz")[0] == 200
        done = threading.Event()
        scrapes = [0]

        def writer() -> None:
            rng = random.Random(5)
            rest = b"".join(ln + b"\n" for _, ln, _ in lines[100:])
            at = 0
            while at < len(rest):
                step = rng.randint(1, 400)  # pieces that cut lines anywhere
                append(live, rest[at : at + step])
                at += step
                after = scrapes[0] + 2  # scrapes between pieces, however slow the machine
                wait_for(lambda n=after: scrapes[0] >= n or done.is_set(), "scrapes between the pieces")
            done.set()

        t = threading.Thread(target=writer)
        t.start()
        seen = set()
        try:
            while not done.is_set():
                code, text = scrape(port)
                assert code == 200
                seen.add(check_scrape(families(text), ref, tmp_path / "signals.csv")["rows"])
                scrapes[0] += 1
        finally:
            done.set()
            t.join()
        final = ref.prefixes[-1]
        m = wait_for(
            lambda: (lambda m: m if m["mlops_stream_rows_processed_total"] == final["rows"] else None)(
                families(scrape(port)[1])
            ),
            "every appended row in the metrics",
        )
        check_scrape(m, ref, tmp_path / "signals.csv")
        assert skipped_of(m) == final["skipped"] and set(final["skipped"]) == set(BAD)
        assert m["mlops_stream_input_bytes_read_total"] == live.stat().st_size
        assert m["mlops_stream_input_lag_bytes"] == 0
        assert m["mlops_stream_input_rotations_total"] == 0 and m["mlops_stream_input_truncations_total"] == 0
        assert m["mlops_stream_last_row_age_seconds"] >= 0
        assert m["mlops_stream_last_signal"] in (0, 1)
        assert "mlops_stream_build_info{mode=live,version=" in "".join(m)
        wait_for(lambda: families(scrape(port)[1])["mlops_stream_checkpoints_written_total"] >= 1, "a checkpoint")
        assert families(scrape(port)[1])["mlops_stream_last_checkpoint_timestamp_seconds"] <= time.time()
        assert len(seen) > 1, "the scrapes never saw the run between two states"
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    doc = json.loads(out)
    assert doc["rows_processed"] == final["rows"] and doc["rows_skipped"] == sum(final["skipped"].values())
    assert refused(port), "the metrics port is still open after the run ended"


def test_rotations_and_truncations_are_counted(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    rows = make_lines(30, seed=1, bad_every=10**9)
    first, second, third = rows[:10], rows[10:20], rows[20:]
    live.write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in first))
    p = start(
        ["--input", "live.csv", "--follow", "--metrics-port", "0", "--window", str(WINDOW), "--log-file", "run.log",
         "--signals", "signals.csv", "--no-progress"], tmp_path,
    )  # fmt: skip
    try:
        port = port_from_log(tmp_path / "run.log", p)

        def metrics_when(rows: int) -> dict[str, Any]:
            return wait_for(
                lambda: (lambda m: m if m.get("mlops_stream_rows_processed_total") == rows else None)(
                    families(scrape(port)[1])
                ),
                f"{rows} rows in the metrics",
            )

        m = metrics_when(10)
        assert (m["mlops_stream_input_rotations_total"], m["mlops_stream_input_truncations_total"]) == (0, 0)
        live.write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in second[:2]))  # shorter: truncated
        append(live, b"".join(ln + b"\n" for _, ln, _ in second[2:]))
        m = metrics_when(20)
        assert (m["mlops_stream_input_rotations_total"], m["mlops_stream_input_truncations_total"]) == (0, 1)
        live.rename(tmp_path / "live.csv.1")
        (tmp_path / "live.csv").write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in third))
        m = metrics_when(30)
        assert (m["mlops_stream_input_rotations_total"], m["mlops_stream_input_truncations_total"]) == (1, 1)
        check_scrape(m, Reference(rows), tmp_path / "signals.csv")
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err


def test_scrapers_that_hang_up_or_send_garbage_leave_no_traceback(tmp_path: Path) -> None:
    import struct

    (tmp_path / "live.csv").write_text("timestamp,close\n1,100\n")
    p = start(["--input", "live.csv", "--follow", "--metrics-port", "0", "--log-file", "run.log"], tmp_path)
    try:
        port = port_from_log(tmp_path / "run.log", p)
        # The row counted, not just a 200: /metrics answers before the run attaches and before it reads its row.
        wait_for(lambda: families(scrape(port)[1]).get("mlops_stream_rows_processed_total") == 1, "the row counted")
        for request in (b"GET /metr", b"GET /metrics HTTP/1.1\r\n", b"\x16\x03\x01 not http\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
                conn.sendall(request)
        code, text = scrape(port)
        assert code == 200 and families(text)["mlops_stream_rows_processed_total"] == 1
        assert scrape(port, "/nothing-here")[0] == 404
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0
    assert not any(m in err.decode() for m in TRACEBACK_MARKERS), err.decode()


def test_readiness_waits_for_the_input_and_its_backlog(tmp_path: Path) -> None:
    p = start(
        ["--input", "later.csv", "--follow", "--metrics-port", "0", "--log-file", "run.log", "--no-progress"], tmp_path
    )
    try:
        port = port_from_log(tmp_path / "run.log", p)
        assert scrape(port, "/readyz")[0] == 503  # starting, then waiting for the input
        wait_for(lambda: scrape(port, "/readyz") == (503, "waiting for the input later.csv to appear\n"), "the reason")
        assert scrape(port, "/healthz")[0] == 200
        lines = make_lines(20000, seed=3, bad_every=10**9)  # about 240 KB: several chunks of backlog
        (tmp_path / "later.csv").write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in lines))
        wait_for(lambda: scrape(port, "/readyz")[0] == 200, "readiness once the backlog is read")
        m = families(scrape(port)[1])
        assert m["mlops_stream_input_lag_bytes"] < 32 << 10
        wait_for(lambda: families(scrape(port)[1])["mlops_stream_rows_processed_total"] == 20000, "every row")
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert refused(port)


def test_a_stuck_loop_fails_healthz_and_a_stop_fails_it_at_once(tmp_path: Path) -> None:
    """Signals to a named pipe nobody reads: the writes block, the loop stops turning, /healthz says so."""
    fifo = tmp_path / "signals.pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that never reads
    try:
        lines = make_lines(200, seed=9, bad_every=10**9)
        (tmp_path / "live.csv").write_bytes(b"timestamp,close\n")
        p = start(
            ["--input", "live.csv", "--follow", "--metrics-port", "0", "--signals", str(fifo), "--log-file", "run.log",
             "--no-progress"], tmp_path, {"MLOPS_STREAM_STUCK_AFTER": "2"},
        )  # fmt: skip
        port = port_from_log(tmp_path / "run.log", p)
        wait_for(lambda: scrape(port, "/healthz")[0] == 200, "health")
        # Far more signals than a pipe holds (64 KiB): the run blocks in a write with the batch in hand.
        for _ in range(30):
            append(tmp_path / "live.csv", b"".join(ln + b"\n" for _, ln, _ in lines))
        _, why = wait_for(
            lambda: (lambda r: r if r[0] == 503 else None)(scrape(port, "/healthz")), "healthz to fail", timeout=60
        )
        assert "has not turned" in why
        assert scrape(port)[0] == 503  # a scrape does not wait forever for the batch in hand
        p.send_signal(signal.SIGTERM)
        wait_for(lambda: scrape(port, "/healthz") == (503, "the run is stopping\n"), "healthz to say it is stopping")
        assert scrape(port, "/readyz")[0] == 503
    finally:
        # Drain the pipe so the run can finish.
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            try:
                os.read(reader, 1 << 16)
            except BlockingIOError:
                time.sleep(0.01)
        os.close(reader)
        p.communicate(timeout=60)
    assert p.returncode == 0
    assert refused(port)


def test_a_batch_run_from_a_pipe_serves_while_it_reads(tmp_path: Path) -> None:
    lines = make_lines(300, seed=21)
    ref = Reference(lines)
    p = start(
        ["--metrics-port", "0", "--window", str(WINDOW), "--on-bad-row", "skip", "--log-file", "run.log",
         "--no-progress"], tmp_path, stdin=subprocess.PIPE,
    )  # fmt: skip
    assert p.stdin is not None
    try:
        p.stdin.write(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in lines[:150]))
        p.stdin.flush()
        port = port_from_log(tmp_path / "run.log", p)
        m = wait_for(
            lambda: (lambda m: m if m.get("mlops_stream_rows_processed_total") == ref.prefixes[150]["rows"] else None)(
                families(scrape(port)[1])
            ),
            "the first rows in the metrics",
        )
        check_scrape(m, ref, None)
        assert skipped_of(m) == ref.prefixes[150]["skipped"]
        assert "mlops_stream_build_info{mode=batch,version=" in "".join(m)
        assert scrape(port, "/healthz")[0] == 200 and scrape(port, "/readyz")[0] == 200
        out, err = p.communicate(b"".join(ln + b"\n" for _, ln, _ in lines[150:]), timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert json.loads(out)["rows_processed"] == ref.prefixes[-1]["rows"]
    assert refused(port)


def test_a_dask_run_serves_while_it_runs(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    lines = make_lines(40000, seed=6, bad_every=101)
    ref = Reference(lines)
    (tmp_path / "in.csv").write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in lines))
    p = start(
        ["--input", "in.csv", "--window", str(WINDOW), "--on-bad-row", "skip", "--block-size", "64K", "--cluster",
         "local:1", "--metrics-port", "0", "--log-file", "run.log"], tmp_path,
    )  # fmt: skip
    scraped = []
    try:
        port = port_from_log(tmp_path / "run.log", p)
        while p.poll() is None:  # the cluster takes seconds to start: the server answers meanwhile
            try:
                code, text = scrape(port)
            except OSError:  # the run ended between the check and the scrape
                break
            assert code == 200
            scraped.append(check_scrape(families(text), ref, None, values=False)["rows"])
            assert "mlops_stream_build_info{mode=batch,version=" in "".join(families(text))
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=0.05)  # scrapes a few times a second, as Prometheus would, not as fast as it can
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert json.loads(out)["rows_processed"] == ref.prefixes[-1]["rows"]
    assert scraped, "no scrape answered while the run lasted"
    assert scraped == sorted(scraped)
    assert refused(port)


def test_a_run_on_workers_serves_and_gives_the_same_metrics(tmp_path: Path) -> None:
    lines = make_lines(40000, seed=2, bad_every=997)
    data = b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in lines)
    (tmp_path / "in.csv").write_bytes(data)
    base = ["--input", "in.csv", "--window", str(WINDOW), "--on-bad-row", "skip", "--block-size", "64K"]
    plain = run_command(base, tmp_path)
    assert plain.code == 0, plain.stderr
    served = run_command([*base, "--workers", "2", "--metrics-port", "0", "--log-file", "run.log"], tmp_path)
    assert served.code == 0, served.stderr
    keep = ("rows_processed", "value", "rows_skipped")
    assert {k: served.doc()[k] for k in keep} == {k: plain.doc()[k] for k in keep}
    assert "serving metrics on http://127.0.0.1:" in served.log()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_runs_counters_by_reason_are_exact_on_workers_too(tmp_path: Path, workers: int) -> None:
    """What a batch run's server reads after each batch (one process) or block (workers): every skipped row with its
    reason, though workers send back only their first few bad rows in full."""
    from stream.core.engine import RollingSignal
    from stream.core.tally import Tally
    from stream.parsing.reader import Reader
    from stream.runs import parallel
    from stream.runs.pipeline import Pipeline
    from stream.sinks.log import BadRowLog, log
    from stream.sinks.serve import BatchView
    from stream.sources.files import Spec

    lines = make_lines(30000, seed=8, bad_every=23)  # about 1,300 bad rows: far more than 20 per block
    ref = Reference(lines)
    data = tmp_path / "in.csv"
    data.write_bytes(b"timestamp,close\n" + b"".join(ln + b"\n" for _, ln, _ in lines))
    bad_log = BadRowLog(log, show=0)
    reader = Reader(on_bad_row="skip", report=bad_log)
    pipeline = Pipeline(RollingSignal(WINDOW))
    planned: list[int] = []  # the parallel plan's bytes done; one process: the reader's position
    view = BatchView(
        pipeline, lambda: reader.skips, lambda: planned[0] if planned else reader.offset, data.stat().st_size
    )
    published = []

    def after() -> None:
        view.publish()
        published.append(view.sample())

    def blocks_done(done: int, tally: Tally, by_key: dict[str, Tally] | None) -> None:
        pipeline.take_counts(tally, by_key)  # as the batch run shows the finished blocks' counts
        planned[:] = [done]

    size = data.stat().st_size
    options = parallel.Reading(workers, block_size=64 << 10)
    parallel.run([Spec(str(data))], [size], reader, pipeline, options, parallel.Hooks(after, blocks_done=blocks_done))
    final = ref.prefixes[-1]
    s = view.sample()
    assert (s.rows, s.signals, s.skipped) == (final["rows"], final["signals"], final["skipped"])
    assert s.bytes_read == data.stat().st_size and s.bytes_unread == 0
    assert len(published) > 2
    for p in published:  # every copy the server could have served is the state after some prefix of the lines
        assert ref.matching(p.rows, p.signals, p.skipped) is not None


def test_a_port_in_use_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("timestamp,close\n1,100\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_command(
            ["--input", "in.csv", "--metrics-port", str(port), "--signals", "signals.csv", "--output", "m.json"],
            tmp_path,
        )
    assert r.code == 1
    doc = r.doc()
    assert doc["status"] == "error"
    assert doc["error_message"] == f"cannot serve metrics on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE).lower()}"
    assert json.loads((tmp_path / "m.json").read_text()) == doc
    assert not (tmp_path / "signals.csv").exists()
    r.assert_no_traceback()


def test_without_prometheus_client_the_message_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("timestamp,close\n1,100\n")
    code = "import sys; sys.modules['prometheus_client'] = None; from stream.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--input", "in.csv", "--metrics-port", "0"], cwd=tmp_path, capture_output=True,
        env=env_with_repo(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    message = json.loads(proc.stdout)["error_message"]
    assert "prometheus_client" in message and "pip install '.[serve]'" in message
    assert not any(m in proc.stderr.decode() for m in TRACEBACK_MARKERS)


def test_the_port_can_come_from_the_config_and_bad_values_are_refused(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("timestamp,close\n1,100\n")
    write_config(tmp_path, "seed: 1\nwindow: 2\nversion: v1\nmetrics_port: 0\nmetrics_host: 127.0.0.1\n")
    r = run_command(["--input", "in.csv", "--log-file", "run.log"], tmp_path)
    assert r.code == 0, r.stderr
    assert "serving metrics on http://127.0.0.1:" in r.log()
    write_config(tmp_path, "seed: 1\nwindow: 2\nversion: v1\nmetrics_port: 70000\n")
    r = run_command(["--input", "in.csv"], tmp_path)
    assert r.code == 1 and "'metrics_port' must be a port number from 0 to 65535" in r.doc()["error_message"]
    r = run_command(["--input", "in.csv", "--metrics-port", "65536"], tmp_path)
    assert r.code == 2 and "--metrics-port" in r.stderr
    r.assert_no_traceback()


# ---- the docs' dashboard and alert rules -------------------------------------------------------------------------


def exported_names() -> set[str]:
    text = (ROOT / "stream" / "sinks" / "serve.py").read_text()
    counters = set(re.findall(r'counter\(\s*"(\w+)"', text))
    gauges = set(re.findall(r'gauge\(\s*"(\w+)"', text))
    return {f"mlops_stream_{n}_total" for n in counters} | {f"mlops_stream_{n}" for n in gauges} | {
        "mlops_stream_rows_skipped_total", "mlops_stream_key_rows_processed_total", "mlops_stream_key_signals_total",
        "mlops_stream_keys", "mlops_stream_build_info",
    }  # fmt: skip


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bmlops_stream_\w+", expr))


def test_alert_rules_are_well_formed_and_use_served_metrics() -> None:
    doc = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())
    names = exported_names()
    counters = {"mlops_stream_rows_processed_total", "mlops_stream_signals_total", "mlops_stream_rows_skipped_total"}
    alerts = []
    for group in doc["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert re.fullmatch(r"\d+[smh]", rule["for"]) and rule["labels"]["severity"]
            assert {"summary", "description"} <= set(rule["annotations"])
            used = metric_names(rule["expr"])
            assert used <= names | {n.removesuffix("_total") for n in counters}, used
            assert used or rule["expr"].startswith("up{"), rule["expr"]
            assert rule["expr"].count("(") == rule["expr"].count(")")
            alerts.append(rule["alert"])
    assert {"MlopsStreamFeedStalled", "MlopsStreamLagGrowing", "MlopsStreamSkipRateHigh"} <= set(alerts)


def test_the_dashboard_has_its_panels_on_served_metrics() -> None:
    board = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    names = exported_names()
    titles = []
    for panel in board["panels"]:
        titles.append(panel["title"])
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used and used <= names, (panel["title"], used)
    for wanted in ("Rows/s", "Signal rate", "Lag", "Skipped rows by reason", "Last row age"):
        assert wanted in titles
