"""What serving metrics (--metrics-port) costs a batch run: the same file with and without it, runs alternated.

    python benchmarks/serve.py [--input FILE | --rows 2000000] [--repeat 7] [--workdir /tmp] [--scrape] [-- ARGS]

Each run is a subprocess of ``python -m stream --input FILE --quiet`` (default workers); the table shows the median
wall time of each side and their ratio. ``--scrape`` also scrapes /metrics every 0.5 s (a busy Prometheus) during the
served runs. Arguments after ``--`` go to both commands (``-- --workers 1``, say).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def timed(cmd: list[str], log: Path | None, scrape: bool) -> float:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if scrape and log is not None:
        threading.Thread(target=_scraper, args=(p, log), daemon=True).start()
    p.wait()
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {p.returncode}")
    return elapsed


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
    ap.add_argument("extra", nargs="*", help="more arguments for both commands, after --")
    args = ap.parse_args()
    data = Path(args.input) if args.input else Path(args.workdir, f"serve-bench-{args.rows}.csv")
    if not data.exists():
        subprocess.run(
            [sys.executable, "-m", "stream", "generate", "--rows", str(args.rows), "--seed", "7",
             "--output", str(data)], env=ENV, check=True,
        )  # fmt: skip
    log = Path(args.workdir, "serve-bench.log")
    base = [sys.executable, "-m", "stream", "--input", str(data), "--quiet", *args.extra]
    served = [*base, "--metrics-port", "0", "--log-file", str(log)]
    plain_times, served_times = [], []
    for _ in range(args.repeat):
        plain_times.append(timed(base, None, False))
        log.unlink(missing_ok=True)
        served_times.append(timed(served, log, args.scrape))
    a, b = statistics.median(plain_times), statistics.median(served_times)
    scraped = " (scraped every 0.5 s)" if args.scrape else ""
    print(f"{data} {' '.join(args.extra)}, {args.repeat} runs each, alternated{scraped}")
    print(f"without --metrics-port: median {a:.3f} s  (all: {', '.join(f'{t:.3f}' for t in plain_times)})")
    print(f"with --metrics-port:    median {b:.3f} s  (all: {', '.join(f'{t:.3f}' for t in served_times)})")
    print(f"ratio with / without: {b / a:.3f}")


if __name__ == "__main__":
    main()
