"""Start-up: the CPU time (user + system) of small commands, which is mostly the interpreter starting and importing.

Each command runs as its own subprocess, round-robin, ``--repeat`` times, after one run that writes the bytecode
cache; the table shows the median and the lowest CPU time of each (CPU, not wall time: on a shared machine the
wall time of a 60 ms command mostly measures the neighbours).

    python benchmarks/startup.py                       # this checkout, 41 runs of each command
    python benchmarks/startup.py --baseline main       # and a git ref beside it, interleaved

The checkout (and the ref, unpacked from ``git archive``) is put first on PYTHONPATH; with PYTHONDONTWRITEBYTECODE
set in the environment, the bytecode is cached under a temporary folder instead (PYTHONPYCACHEPREFIX), as an
installed package's would be.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "timestamp,open,high,low,close,volume_btc,volume_usd",
    "2024-01-01 00:00:00,42000.00,42014.86,41999.43,42005.96,1.349243,56677.31",
    "2024-01-01 00:01:00,42005.96,42042.94,41996.36,42035.74,1.234104,51863.23",
    "2024-01-01 00:02:00,42035.74,42042.95,41952.97,41986.25,6.786734,285002.45",
    "2024-01-01 00:03:00,41986.25,41996.45,41975.83,41976.48,2.162914,90805.45",
    "2024-01-01 00:04:00,41976.48,42020.94,41956.66,42003.78,1.153650,48446.14",
    "2024-01-01 00:05:00,42003.78,42016.97,42000.01,42005.89,3.985065,167403.10",
]
RUN = ["--output", "m.json", "--log-file", "run.log", "-q"]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "batch, 6 rows": ["-m", "stream", "--input", "tiny.csv", *RUN],
    "--signals": ["-m", "stream", "--input", "tiny.csv", *RUN, "--signals", "s.csv"],
    "JSON Lines": ["-m", "stream", "--input", "tiny.jsonl", *RUN],
    "--workers 2": ["-m", "stream", "--input", "tiny.csv", *RUN, "--workers", "2"],
    "bundled data.csv": ["-m", "stream", "--input", str(ROOT / "data.csv"), *RUN],
    "--help": ["-m", "stream", "--help"],
    "generate --rows 10": ["-m", "stream", "generate", "--rows", "10", "--output", "g.csv"],
}


def cpu_ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return 1000 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=41, help="runs of each command (default 41)")
    p.add_argument("--baseline", metavar="REF", help="also run a git ref of this checkout, interleaved")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlops-stream-startup-"))
    (work / "tiny.csv").write_text("\n".join(ROWS) + "\n")
    header = ROWS[0].split(",")
    lines = ['{"' + '", "'.join(f'{k}": "{v}' for k, v in zip(header, row.split(","))) + '"}' for row in ROWS[1:]]
    (work / "tiny.jsonl").write_text("\n".join(lines) + "\n")
    trees = {"this checkout": ROOT}
    if args.baseline:
        unpacked = work / "baseline"
        unpacked.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "stream"], check=True, stdout=-1)
        subprocess.run(["tar", "-x", "-C", str(unpacked)], input=archive.stdout, check=True)
        trees = {args.baseline: unpacked, **trees}
    envs = {}
    for name, path in trees.items():
        env = {**os.environ, "PYTHONPATH": str(path)}
        if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        envs[name] = env
    times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in trees for c in COMMANDS}
    for tree in trees:  # the first run of each writes its bytecode cache
        for argv in COMMANDS.values():
            cpu_ms([sys.executable, *argv], envs[tree], work)
    for _ in range(args.repeat):
        for command, argv in COMMANDS.items():
            for tree in trees:
                times[tree, command].append(cpu_ms([sys.executable, *argv], envs[tree], work))
    print(f"# CPU time per command, ms: median (lowest) of {args.repeat} runs; Python {sys.version.split()[0]}")
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| command | " + " | ".join(trees) + (" | change |" if len(trees) > 1 else " |"))
    print("|---|" + "---:|" * (len(trees) + (len(trees) > 1)))
    for command in COMMANDS:
        medians = [statistics.median(times[tree, command]) for tree in trees]
        cells = [f"{m:.1f} ({min(times[tree, command]):.1f})" for m, tree in zip(medians, trees)]
        change = [f"{100 * (medians[-1] - medians[0]) / medians[0]:+.0f} %"] if len(trees) > 1 else []
        print(f"| {command} | " + " | ".join(cells + change) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
