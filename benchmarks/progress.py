"""The progress display as a person at a terminal sees it: when its first frame appears, and how far its ETA is from the
run's actual end at 20%, 50% and 80% of the work; then what the display costs a batch run.

    python -m stream generate --rows 2000000 --seed 7 --output /tmp/m2m.csv
    python benchmarks/progress.py --input /tmp/m2m.csv -- --workers 2 --signals /tmp/m2m-signals.csv
    python benchmarks/progress.py --cost-rows 500000      # only the display's cost

The command runs --repeat times with stderr on a pseudo-terminal of 160x40; every read of it is stamped with this
process's monotonic clock. A frame is the text between two of rich's erased lines; its share ("61%") and "ETA 2.4 s"
are read from it. The first frame's time counts from the start of the process. The ETA error at a share is (ETA shown
- time actually left) / time actually left, for the first frame at or past that share; the end is when the summary
line arrives. The cost is benchmarks/latency.py's: a batch run of
--cost-rows rows with the display on a pseudo-terminal against --no-progress, median of 5 each.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from latency import ENV, display_cost

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A frame's bar line: "  61%  first pass 8/8 blocks, ...  ETA 2.4 s" (or m:ss, h:mm:ss).
BAR = re.compile(r"(\d+)%\s.*?ETA (-|[\d.]+ s|\d+:\d\d(?::\d\d)?)")
SHARES = (20, 50, 80)


def seconds(text: str) -> float | None:
    if text == "-":
        return None
    if text.endswith(" s"):
        return float(text[:-2])
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def record(args: list[str], deadline: float = 600.0) -> tuple[float, list[tuple[float, str]], int]:
    """Run ``args`` with stderr on a pseudo-terminal; its start time and the (time, text) of every read."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**ENV, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    start = time.monotonic()
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    reads: list[tuple[float, str]] = []
    while time.monotonic() - start < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed its side
            break
        if not data:
            break
        reads.append((time.monotonic(), data.decode("utf-8", "replace")))
    os.close(leader)
    return start, reads, p.wait(timeout=60)


def frames(reads: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Each frame's text (escape codes taken out) with the time its last byte was read."""
    out: list[tuple[float, str]] = []
    text = ""
    for at, data in reads:
        text += data
        parts = re.split(r"\x1b\[2K", text)  # rich erases each line of the last frame before drawing the next
        for part in parts[:-1]:
            if part.strip():
                out.append((at, ESCAPE.sub("", part)))
        text = parts[-1]
    if text.strip():
        out.append((reads[-1][0], ESCAPE.sub("", text)))
    return out


def measure(cmd: list[str]) -> tuple[float, float, dict[int, float | None]]:
    """One run: the first frame's time, the run's time, and the ETA error at each of ``SHARES`` (None: no ETA)."""
    start, reads, code = record(cmd)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}")
    seen = frames(reads)
    first = next(at for at, text in seen if "reading" in text) - start
    end = next(at for at, text in seen if text.lstrip().startswith("processed"))
    bars = [(at, int(m[1]), seconds(m[2])) for at, text in seen for m in [BAR.search(text)] if m]
    errors: dict[int, float | None] = {}
    for share in SHARES:
        found = next(((at, eta) for at, got, eta in bars if got >= share and eta is not None), None)
        errors[share] = None if found is None else (found[1] - (end - found[0])) / (end - found[0])
    return first, end - start, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help="the file to read (make it with python -m stream generate)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of the command (default 5)")
    ap.add_argument("--cost-rows", type=int, default=500_000, help="rows of the display-cost run (0: skip it)")
    ap.add_argument("options", nargs="*", help="more options of the command, after --")
    args = ap.parse_args()
    if args.input:
        cmd = [sys.executable, "-m", "stream", "--input", args.input, "--output", os.devnull, *args.options]
        print(" ".join(["mlops-stream", *cmd[3:]]))
        runs = [measure(cmd) for _ in range(args.repeat)]
        for first, took, errors in runs:
            shown = "  ".join(f"{s}%: {'-' if e is None else f'{e:+.0%}'}" for s, e in errors.items())
            print(f"  first frame {first:.2f} s, run {took:.2f} s; ETA error at {shown}")
        firsts = [first for first, _, _ in runs]
        medians = "  ".join(
            f"{s}%: {statistics.median(abs(e) for _, _, errs in runs if (e := errs[s]) is not None):.0%}"
            for s in SHARES
        )
        print(f"  median of {len(runs)}: first frame {statistics.median(firsts):.2f} s (worst {max(firsts):.2f} s); "
              f"ETA error (absolute) at {medians}")  # fmt: skip
    if args.cost_rows:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            off, on = display_cost(Path(tmp), args.cost_rows)
        print(f"batch run of {args.cost_rows:,} rows: {off:.3f} s with --no-progress, {on:.3f} s with the display on a")
        print(f"  pseudo-terminal: ratio {on / off:.3f} (median of 5 each)")


if __name__ == "__main__":
    main()
