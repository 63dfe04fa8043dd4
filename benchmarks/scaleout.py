"""Scale-out figures: one keyed job over a generated multi-symbol history in many files, run in one process, on
--workers N and on an embedded Dask cluster (--cluster local:N); wall time, peak memory of the main process and of
the largest worker, and a check that every run wrote the same metrics and signals. Also the memory each key costs.

    python benchmarks/scaleout.py            # modest: 4 files, 120 symbols, ~55 MB (a minute or so)
    python benchmarks/scaleout.py --full     # 30 files, 120 symbols, ~420 MB
    python benchmarks/scaleout.py --workers 4 --symbols 500 --files 10 --rows-per-file 200000

The history is one continuous multi-symbol walk (``mlops-stream generate --symbols``) cut into day files, each with
its header. Peak memory is each process's VmHWM, sampled from /proc every 20 ms while the run lasts (the main
process, and every descendant: workers, Dask nannies and the scheduler's helpers). Runs repeat round-robin and the
best wall time of each is shown. The command runs from this checkout (``python -m stream``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def make_history(folder: Path, files: int, rows_per_file: int, symbols: int, seed: int = 7) -> list[Path]:
    from stream import generate

    header = ("timestamp,symbol," + ",".join(generate.COLUMNS[1:]) + "\n").encode()
    paths = [folder / f"day{i:03d}.csv" for i in range(files)]
    current, left, index = None, 0, -1
    for block in generate.multi_candles(files * rows_per_file, seed, symbols):
        at = 0
        while at < len(block):
            if left == 0:
                if current is not None:
                    current.close()
                index += 1
                current = open(paths[index], "wb")  # noqa: SIM115 - closed when the next file starts
                current.write(header)
                left = rows_per_file
            take = block[at : at + left]
            current.write(("\n".join(take) + "\n").encode())  # type: ignore[union-attr]
            at += len(take)
            left -= len(take)
    if current is not None:
        current.close()
    return paths


def _children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (Dask starts its workers from threads other than the main one)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(p) for p in fh.read().split()]
        except OSError:
            pass
    return found


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(cmd: list[str], cwd: Path) -> tuple[float, int, int, int]:
    """Wall seconds, peak bytes of the main process, of the largest other process, and how many others ran."""
    peaks: dict[int, int] = {}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            todo = [p.pid]
            while todo:
                pid = todo.pop()
                peaks[pid] = max(peaks.get(pid, 0), _hwm(pid))
                todo += _children(pid)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = p.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.decode()[-2000:]}")
    main = peaks.pop(p.pid, 0)
    return wall, main, max(peaks.values(), default=0), len(peaks)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:12]


def memory_per_key(windows: tuple[int, ...] = (5, 20, 100)) -> list[tuple[int, float]]:
    """Bytes each key holds (its engine, counts and dict entry) with 8-character keys and cent-priced closes."""
    import random
    import tracemalloc

    from stream.core.keyed import KeyedSignal

    out = []
    for w in windows:
        n = 20_000
        keys = [f"SYM{i:05d}" for i in range(n)]
        rng = random.Random(1)
        tracemalloc.start()
        keyed = KeyedSignal(w)
        for _ in range(w + 1):
            for key in keys:
                keyed.update(key, rng.randrange(1_00, 50_000_00), 2)
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out.append((w, used / n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the big history: 30 files of 172,800 rows (~420 MB)")
    ap.add_argument("--files", type=int, help="number of files (default 4, or 30 with --full)")
    ap.add_argument("--rows-per-file", type=int, default=120 * 1440, help="rows per file (default: a day of 120)")
    ap.add_argument("--symbols", type=int, default=120, help="instruments (default 120)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for --workers and --cluster (default 2)")
    ap.add_argument("--window", type=int, default=20, help="rolling window (default 20)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each mode; the best wall time is shown")
    ap.add_argument("--keep", metavar="DIR", help="generate (or reuse) the history in DIR instead of a temporary one")
    args = ap.parse_args()
    files = args.files or (30 if args.full else 4)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="scaleout-"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("day*.csv"))
    if len(paths) != files:
        for old in paths:
            old.unlink()
        t = time.perf_counter()
        paths = make_history(folder, files, args.rows_per_file, args.symbols)
        print(f"generated {files} files in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    size = sum(p.stat().st_size for p in paths)
    rows = files * args.rows_per_file
    print(f"history: {files} files, {rows:,} rows, {args.symbols} symbols, {size / 1e6:.0f} MB; window {args.window}")
    base = [sys.executable, "-m", "stream", "--input", str(folder / "day*.csv"), "--key", "symbol"]
    base += ["--window", str(args.window), "--output", "m.json", "--quiet"]
    n = args.workers
    modes = {
        "one process": ["--workers", "1"],  # (by default a big input gets every core)
        f"--workers {n}": ["--workers", str(n)],
        f"--cluster local:{n}": ["--cluster", f"local:{n}"],
    }
    for signals in (False, True):
        extra = ["--signals", "sig.csv"] if signals else []
        best: dict[str, tuple[float, int, int, int]] = {}
        outputs: dict[str, tuple[str, str]] = {}
        for _ in range(args.repeat):
            for name, opts in modes.items():
                result = measure([*base, *extra, *opts], folder)
                if name not in best or result[0] < best[name][0]:
                    best[name] = result
                doc = json.loads((folder / "m.json").read_text())
                doc.pop("latency_ms")
                sig = digest(folder / "sig.csv") if signals else "-"
                outputs[name] = (hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:12], sig)
        same = len(set(outputs.values())) == 1
        print()
        print(f"{'with signals (CSV)' if signals else 'metrics only'}; identical outputs: {same}")
        print("| run | wall s | vs one process | rows/s | main process peak | largest worker peak | processes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        ref = best["one process"][0]
        for name, (wall, main_peak, worker_peak, others) in best.items():
            print(
                f"| {name} | {wall:.2f} | {ref / wall:.2f}x | {rows / wall:,.0f} | {main_peak / 2**20:.0f} MiB | "
                f"{worker_peak / 2**20:.0f} MiB | {1 + others} |"
            )
        if not same:
            print(f"OUTPUTS DIFFER: {outputs}")
    print()
    print("memory per key (engine, counts, dict entry; 8-character keys, closes in cents):")
    for w, per_key in memory_per_key():
        print(f"  window {w}: {per_key:,.0f} bytes per key ({per_key * 10_000 / 2**20:.1f} MiB for 10,000 keys)")


if __name__ == "__main__":
    main()
