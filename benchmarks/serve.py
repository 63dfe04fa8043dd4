"""What serving metrics (--metrics-port) costs a batch run: the same file with and without it, runs alternated.

    python benchmarks/serve.py [--input FILE | --rows 2000000] [--repeat 7] [--workdir /tmp] [--scrape] [-- ARGS]

Each run is a subprocess of ``python -m stream --input FILE --quiet`` (default workers); it prints the median wall
time and CPU time (user + system, workers included: steadier than wall time on a shared machine) of each side and
their ratios. ``--scrape`` also scrapes /metrics every 0.5 s (a busy Prometheus) during the
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


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
