"""Live-mode figures: append-to-signal latency (p50/p99), idle CPU, and what the terminal display costs the row path.

    python benchmarks/latency.py [--rows 1000] [--rate 200] [--idle 10] [--display-rows 500000]

Latency: a writer appends one row at a time (random gaps around --rate rows/s) to a file that
``mlops-stream --follow --signals -`` follows; a reader of the signals pipe stamps each line's arrival. Both clocks
are this process's monotonic clock. Idle CPU: the follower's user+system time (/proc) over --idle quiet seconds,
without and with the display. Display cost: a batch run of a large file with stderr on a pseudo-terminal (display on)
versus --no-progress, side by side, as a ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
CMD = [sys.executable, "-m", "stream", "--window", "5", "--quiet"]


def latency(folder: Path, rows: int, rate: float) -> list[float]:
    live = folder / "live.csv"
    live.write_bytes(b"timestamp,close\n")
    p = subprocess.Popen(
        [*CMD, "--input", str(live), "--follow", "--signals", "-", "--no-progress"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=folder,
    )  # fmt: skip
    assert p.stdout is not None
    written: dict[int, float] = {}
    arrived: dict[int, float] = {}

    def read() -> None:
        assert p.stdout is not None
        p.stdout.readline()  # the signals header
        for line in p.stdout:
            arrived[int(line.split(b",", 1)[0])] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)  # start-up is not latency
    rng = random.Random(42)
    fd = os.open(live, os.O_WRONLY | os.O_APPEND)
    for i in range(1, rows + 1):
        line = f"{i},{100 + rng.randint(-50, 50) / 100:.2f}\n".encode()
        written[i] = time.monotonic()
        os.write(fd, line)
        time.sleep(rng.expovariate(rate))
    os.close(fd)
    deadline = time.monotonic() + 10
    while len(arrived) < rows and time.monotonic() < deadline:
        time.sleep(0.05)
    p.terminate()
    p.wait(timeout=10)
    missing = rows - len(arrived)
    if missing:
        print(f"  warning: {missing} rows never arrived")
    return sorted((arrived[i] - written[i]) * 1000 for i in arrived)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(folder: Path, seconds: float, display: bool) -> float:
    live = folder / "idle.csv"
    live.write_bytes(b"timestamp,close\n1,100\n")
    args = [*CMD[:-1], "--input", str(live), "--follow", "--output", str(folder / "m.json")]
    master = None
    if display:
        import pty

        master, slave = pty.openpty()
        p = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=slave, cwd=folder)
        os.close(slave)
        threading.Thread(target=_drain, args=(master,), daemon=True).start()
    else:
        p = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    time.sleep(1.5)
    before, t0 = cpu_seconds(p.pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(p.pid) - before, time.monotonic() - t0
    p.terminate()
    p.wait(timeout=10)
    return 100 * used / elapsed


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def display_cost(folder: Path, rows: int, repeats: int = 5) -> tuple[float, float]:
    import pty

    data = (ROOT / "data.csv").read_bytes().splitlines(keepends=True)
    header, body = data[0], data[1:]
    big = folder / "big.csv"
    with open(big, "wb") as fh:
        fh.write(header)
        for i in range(rows):
            fh.write(body[i % len(body)])
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for display in (False, True):
            args = [*CMD[:-1], "--input", str(big), "--output", str(folder / "m.json")]
            t0 = time.perf_counter()
            if display:
                master, slave = pty.openpty()
                p = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=slave, cwd=folder)
                os.close(slave)
                _drain(master)
                os.close(master)
            else:
                p = subprocess.Popen(
                    [*args, "--no-progress"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder
                )
            p.wait()
            times[display].append(time.perf_counter() - t0)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="rows per second, on average")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idleness measured")
    ap.add_argument("--display-rows", type=int, default=500_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lat = latency(folder, args.rows, args.rate)
        q = statistics.quantiles(lat, n=100)
        print(f"append-to-signal latency over {len(lat)} rows at ~{args.rate:g} rows/s (inotify, signals to a pipe):")
        print(
            f"  p50 {q[49]:.2f} ms  p90 {q[89]:.2f} ms  p99 {q[98]:.2f} ms  max {lat[-1]:.2f} ms  (target p99 <= 20 ms)"
        )
        plain = idle_cpu(folder, args.idle, display=False)
        shown = idle_cpu(folder, args.idle, display=True)
        print(f"idle CPU over {args.idle:g} s (% of one core): {plain:.2f}% without display, {shown:.2f}% with the")
        print("  terminal display (target < 1%)")
        off, on = display_cost(folder, args.display_rows)
        print(f"batch run of {args.display_rows:,} rows: {off:.3f} s with --no-progress, {on:.3f} s with the display")
        print(f"  on a pseudo-terminal: ratio {on / off:.3f} (median of 5 each)")


if __name__ == "__main__":
    main()
