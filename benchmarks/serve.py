"""What serving metrics (--metrics-port) costs a batch run: the same file with and without it, runs alternated.

    python benchmarks/serve.py [--input FILE | --rows 2000000] [--repeat 7] [--workdir /tmp] [--scrape] [-- ARGS]
    python benchmarks/serve.py --keys 90000 [--rows 200000] [--scrapers 4] [--batch] [--repeat 5]

Each run is a subprocess of ``python -m stream --input FILE --quiet`` (default workers); it prints the median wall
time and CPU time (user + system, workers included: steadier than wall time on a shared machine) of each side and
their ratios. ``--scrape`` also scrapes /metrics every 0.5 s (a busy Prometheus) during the
served runs. Arguments after ``--`` go to both commands (``-- --workers 1``, say).

``--keys N``: a keyed run (``--key symbol``, N distinct keys over ``--rows`` rows) served on both sides, alone and with
``--scrapers`` clients scraping /metrics in a loop; it prints the throughput ratio (with ÷ without). The rows go to a
``--follow`` run through a pipe, timed from the first byte written to the run's exit; ``--batch`` times a one-process
batch run of the same file instead.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Compiled modules cached outside the checkout, as an installed package has them (both sides alike).
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "serve-bench-pyc"),
}
ENV.pop("PYTHONDONTWRITEBYTECODE", None)


def timed(cmd: list[str], log: Path | None, scrape: bool) -> tuple[float, float]:
    """Wall time and CPU time (user + system, of the command and its workers) of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if scrape and log is not None:
        threading.Thread(target=_scraper, args=(p, log), daemon=True).start()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {p.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _scraper(p: subprocess.Popen, log: Path) -> None:
    port = None
    while p.poll() is None:
        if port is None and log.exists():
            hit = re.search(r"serving metrics on http://[^:]+:(\d+)/", log.read_text())
            port = int(hit.group(1)) if hit else None
        if port is not None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            except OSError:
                pass
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", help="an existing CSV (default: generate --rows rows with seed 7)")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--scrape", action="store_true")
    ap.add_argument("--keys", type=int, help="compare a keyed run with N keys alone and with scrapers in a loop")
    ap.add_argument("--scrapers", type=int, default=4)
    ap.add_argument("--batch", action="store_true", help="with --keys: a batch run instead of --follow from a pipe")
    ap.add_argument("extra", nargs="*", help="more arguments for both commands, after --")
    args = ap.parse_args()
    if args.keys:
        rows = args.rows if args.rows != ap.get_default("rows") else 200_000
        keyed(args.keys, rows, args.scrapers, args.batch, args.repeat, Path(args.workdir))
        return
    data = Path(args.input) if args.input else Path(args.workdir, f"serve-bench-{args.rows}.csv")
    if not data.exists():
        subprocess.run(
            [sys.executable, "-m", "stream", "generate", "--rows", str(args.rows), "--seed", "7",
             "--output", str(data)], env=ENV, check=True,
        )  # fmt: skip
    log = Path(args.workdir, "serve-bench.log")
    base = [sys.executable, "-m", "stream", "--input", str(data), "--quiet", *args.extra]
    served = [*base, "--metrics-port", "0", "--log-file", str(log)]
    plain: list[tuple[float, float]] = []
    served_runs: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        plain.append(timed(base, None, False))
        log.unlink(missing_ok=True)
        served_runs.append(timed(served, log, args.scrape))
    scraped = " (scraped every 0.5 s)" if args.scrape else ""
    print(f"{data} {' '.join(args.extra)}, {args.repeat} runs each, alternated{scraped}")
    for i, what in enumerate(("wall", "CPU")):
        a = [r[i] for r in plain]
        b = [r[i] for r in served_runs]
        pairs = statistics.median(y / x for x, y in zip(a, b))
        print(f"{what} s without --metrics-port: median {statistics.median(a):.3f}  (all: {_list(a)})")
        print(f"{what} s with --metrics-port:    median {statistics.median(b):.3f}  (all: {_list(b)})")
        print(
            f"{what} ratio with / without: {statistics.median(b) / statistics.median(a):.3f} (of the medians), "
            f"{pairs:.3f} (median of the alternated pairs' ratios)"
        )


def keyed(keys: int, rows: int, scrapers: int, batch: bool, repeat: int, workdir: Path) -> None:
    """Time a keyed run alone and with ``scrapers`` clients scraping /metrics in a loop, runs alternated."""
    data = Path(workdir, f"serve-bench-keys-{keys}-{rows}.csv")
    if not data.exists():
        rng = random.Random(7)
        names = [f"S{i:06d}" for i in range(keys)]
        # Every key at least once, then keys at random: the scrape sees all of them from the first rows on.
        order = names + [rng.choice(names) for _ in range(max(rows - keys, 0))]
        body = "".join(f"{i},{k},{100 + rng.randrange(1000) / 100}\n" for i, k in enumerate(order[:rows]))
        data.write_text("timestamp,symbol,close\n" + body)
    alone: list[tuple[float, float]] = []
    scraped: list[tuple[float, float]] = []
    rates: list[float] = []
    for _ in range(repeat):
        alone.append(_keyed_run(data, 0, batch, workdir)[:2])
        seconds, cpu, scrapes = _keyed_run(data, scrapers, batch, workdir)
        scraped.append((seconds, cpu))
        rates.append(scrapes / seconds)
    what = "a one-process batch run" if batch else "a --follow run fed through a pipe"
    print(f"{data}: {rows} rows, {keys} keys, {what}; {repeat} runs each, alternated")
    print(f"scrapes answered per second: median {statistics.median(rates):.1f}")
    for i, name in enumerate(("wall", "CPU (the run's user + system)")):
        a = [r[i] for r in alone]
        b = [r[i] for r in scraped]
        print(f"{name} s alone:                  median {statistics.median(a):.3f}  (all: {_list(a)})")
        print(f"{name} s with {scrapers} scrapers in a loop: median {statistics.median(b):.3f}  (all: {_list(b)})")
        pairs = statistics.median(x / y for x, y in zip(a, b))
        print(
            f"{name} throughput ratio with / without scrapers: {statistics.median(a) / statistics.median(b):.3f} "
            f"(of the medians), {pairs:.3f} (median of the alternated pairs' ratios)"
        )


def _keyed_run(data: Path, scrapers: int, batch: bool, workdir: Path) -> tuple[float, float, int]:
    """Seconds from the first row offered to the run's exit, the run's CPU seconds, and the scrapes answered."""
    log = Path(workdir, "serve-bench-keys.log")
    log.unlink(missing_ok=True)
    common = ["--key", "symbol", "--quiet", "--metrics-port", "0", "--log-file", str(log)]
    if batch:
        cmd = [sys.executable, "-m", "stream", "--input", str(data), "--workers", "1", *common]
    else:
        cmd = [sys.executable, "-m", "stream", "--input", "-", "--follow", *common]
    stop = threading.Event()
    count = [0]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=ENV, stdin=None if batch else subprocess.PIPE, stdout=subprocess.DEVNULL)
    port = _port(p, log)
    threads = [threading.Thread(target=_scrape_loop, args=(port, stop, count), daemon=True) for _ in range(scrapers)]
    for t in threads:
        t.start()
    if not batch:
        assert p.stdin is not None
        while scrapers and count[0] < scrapers:  # every scraper going (the first pays the imports) before any row
            time.sleep(0.01)
        t0 = time.perf_counter()
        with open(data, "rb") as fh:
            p.stdin.write(fh.read())
        p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = code = os.waitstatus_to_exitcode(status)
    stop.set()
    for t in threads:
        t.join()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}")
    return elapsed, usage.ru_utime + usage.ru_stime, count[0]


def _port(p: subprocess.Popen, log: Path) -> int:
    while True:
        text = log.read_text() if log.exists() else ""
        hit = re.search(r"serving metrics on http://[^:]+:(\d+)/", text)
        if hit:
            return int(hit.group(1))
        if p.poll() is not None:
            raise SystemExit(f"the run ended before it served: exit code {p.returncode}")
        time.sleep(0.01)


def _scrape_loop(port: int, stop: threading.Event, count: list[int]) -> None:
    """One scraper: /metrics again as soon as the last answer is read, until ``stop``."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
                while conn.recv(1 << 16):
                    pass
            count[0] += 1
        except OSError:  # the run ended
            return


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
