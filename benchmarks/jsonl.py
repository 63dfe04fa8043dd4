"""Benchmarks JSON Lines beside CSV: the same candles written both ways, read by mlops-stream on the row path and on
the block path (numpy), one process; rows/s as the run's log reports it (reading only, start-up aside).

    python benchmarks/jsonl.py                    # 1,000,000 rows
    python benchmarks/jsonl.py --rows 200000      # quicker, for a look

The JSON Lines come in two forms of the same rows: every value a string, as exchange feeds write prices
(``{"timestamp":"2024-01-01 00:00:00","open":"42000.00",...}``), and every price a JSON number written with the CSV's
digits (``"open":42000.00``). Each command is its own subprocess, round-robin, ``--repeat`` times; the table shows
the best rate of each, and every run's metrics must be the same.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("row", "block")
FORMATS = {"csv": "CSV", "strings": "JSON Lines, strings", "numbers": "JSON Lines, numbers"}


def write_inputs(work: Path, rows: int) -> dict[str, Path]:
    """The candles as CSV (``mlops-stream generate``) and as JSON Lines in both forms, from the same rows."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    src = work / f"candles-{rows}.csv"
    if not src.exists():
        cmd = [sys.executable, "-m", "stream", "generate", "--rows", str(rows), "--seed", "7", "--output", str(src)]
        subprocess.run(cmd, check=True, env=env)
    paths = {"csv": src, "strings": work / f"candles-{rows}.jsonl", "numbers": work / f"candles-{rows}-numbers.jsonl"}
    if not paths["numbers"].exists():
        with open(src, newline="") as fh, open(paths["strings"], "w") as strings, open(paths["numbers"], "w") as nums:
            reader = csv.reader(fh)
            names = next(reader)
            keys = [json.dumps(k) for k in names]
            for row in reader:
                strings.write("{" + ",".join(f"{k}:{json.dumps(v)}" for k, v in zip(keys, row)) + "}\n")
                # The prices as JSON numbers, their digits as the CSV has them (never through a float).
                fields = [f"{k}:{json.dumps(v) if n == 'timestamp' else v}" for n, k, v in zip(names, keys, row)]
                nums.write("{" + ",".join(fields) + "}\n")
    return paths


def rate(src: Path, path: str, work: Path, tag: str) -> tuple[float, dict]:
    """rows/s of one run, from its log, and its metrics document (latency aside)."""
    log, out = work / f"{tag}.log", work / f"{tag}.json"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "stream", "--input", str(src), "--workers", "1", "--quiet", "--output", str(out),
           "--log-file", str(log)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLOPS_STREAM_PATH": path}
    subprocess.run(cmd, check=True, env=env, cwd=work)
    found = re.search(r"processed \d+ rows .* \((\d+) rows/s\)", log.read_text())
    assert found is not None, log.read_text()
    doc = json.loads(out.read_text())
    doc.pop("latency_ms")
    return float(found.group(1)), doc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="candles (default 1,000,000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per command (the best is shown)")
    p.add_argument("--workdir", help="keep the generated files here between runs (default: a temporary folder)")
    args = p.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mlops-stream-jsonl-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = write_inputs(work, args.rows)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())  # before the runs
    best: dict[tuple[str, str], float] = {}
    docs = set()
    for _ in range(args.repeat):
        for path in PATHS:
            for fmt, src in inputs.items():
                got, doc = rate(src, path, work, f"{fmt}-{path}")
                best[fmt, path] = max(best.get((fmt, path), 0.0), got)
                docs.add(json.dumps(doc, sort_keys=True))
    if len(docs) != 1:
        raise SystemExit(f"the runs disagree: {sorted(docs)}")
    print(f"`python benchmarks/jsonl.py --rows {args.rows} --repeat {args.repeat}` — {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, load average {load} before the runs\n")  # fmt: skip
    sizes = {fmt: f"{src.stat().st_size / 2**20:.0f} MiB" for fmt, src in inputs.items()}
    print("| path | " + " | ".join(f"{FORMATS[f]} ({sizes[f]})" for f in inputs) + " | " +
          " | ".join(f"{FORMATS[f]} ÷ CSV" for f in inputs if f != "csv") + " |")  # fmt: skip
    print("|---|" + "---:|" * (2 * len(inputs) - 1))
    for path in PATHS:
        rates = [f"{best[f, path]:,.0f} rows/s" for f in inputs]
        ratios = [f"{best[f, path] / best['csv', path]:.2f}" for f in inputs if f != "csv"]
        print(f"| {path} | " + " | ".join(rates + ratios) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
