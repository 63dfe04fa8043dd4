"""Benchmarks mlops-stream end to end beside the pandas and polars pipelines: wall-time ratios and peak memory.

Every command runs as its own subprocess, round-robin, ``--repeat`` times; the table shows the best wall time (the
least disturbed run on a shared machine) and the peak resident memory of the largest single process of each run
(``ru_maxrss`` from ``wait4``, which covers the process and the workers it waited for).

    python benchmarks/bench.py                         # 10k, 1M and 2M rows, plus the start-up budget
    python benchmarks/bench.py --sizes 10k,1m,2m,10m   # the full table
    python benchmarks/bench.py --baseline main         # also time the 10k run of an installed git ref

mlops-stream runs from a regular (non-editable) install in a temporary venv, as a user would run it; pandas, polars
(the ``bench`` extra) and a bare ``python -c pass`` run on that venv's interpreter too, which reads this interpreter's
packages. The row path is forced with ``MLOPS_STREAM_PATH=row``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"10k": 10_000, "1m": 1_000_000, "2m": 2_000_000, "10m": 10_000_000}
WINDOW = 5
# The start-up budget of the bundled 10,000-row run: its best time over pandas' and over a bare `python -c pass`.
BUDGET_PANDAS, BUDGET_BARE = 0.20, 4

PANDAS_JOB = """
import json, sys
import pandas as pd

df = pd.read_csv(sys.argv[1])
close = df["close"]
mean = close.rolling({window}).mean()
signal = (close > mean).astype(int)
json.dump({{"rows_processed": len(df), "value": round(float(signal.mean()), 4)}}, open(sys.argv[2], "w"))
"""

POLARS_JOB = """
import json, sys
import polars as pl

df = pl.read_csv(sys.argv[1])
signal = (pl.col("close") > pl.col("close").rolling_mean({window})).fill_null(False).cast(pl.Int8)
value = df.select(signal.mean()).item()
json.dump({{"rows_processed": df.height, "value": round(float(value), 4)}}, open(sys.argv[2], "w"))
"""


@dataclass
class Timing:
    walls: list[float] = field(default_factory=list)
    peak_kib: int = 0
    result: dict = field(default_factory=dict)

    @property
    def best(self) -> float:
        return min(self.walls)


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of the largest process in the command's tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()}")
    return wall, usage.ru_maxrss


def install(work: Path, name: str, ref: str | None = None) -> Path:
    """A regular install of this checkout (or of git ``ref``) in a fresh venv; numpy & co. come from this
    interpreter's site-packages. Installed, the modules are byte-compiled, as a user's would be."""
    venv = work / f"venv-{name}"
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # This interpreter's packages as plain path entries: ``--system-site-packages`` would give the base interpreter's
    # (not a venv's), and their .pth files (an editable install's finder, say) would run at every start.
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site, "_bench_packages.pth").write_text("".join(f"{path}\n" for path in sorted(ours)))
    build = work / f"src-{name}"
    if build.exists():
        shutil.rmtree(build)
    if ref is None:
        shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__", ".*"))
    else:
        build.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(build)], input=archive.stdout, check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(build)]
    # The build backend comes from the package index; offline, fall back to the interpreter's own setuptools.
    if subprocess.run(pip, capture_output=True).returncode != 0:
        subprocess.run([*pip, "--no-build-isolation"], check=True)
    return venv / "bin" / "mlops-stream"


def generate(work: Path, rows: int) -> Path:
    path = work / f"candles-{rows}.csv"
    if not path.exists():
        tmp = path.with_suffix(".part")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "stream", "generate", "--rows", str(rows), "--seed", "42", "--output", str(tmp)],
            check=True,
            env=env,
        )
        tmp.rename(path)
    return path


def run_all(commands: dict[str, tuple[list[str], dict[str, str] | None, Path]], repeat: int) -> dict[str, Timing]:
    timings = {name: Timing() for name in commands}
    for _ in range(repeat):
        for name, (cmd, env, out) in commands.items():
            wall, peak = measure(cmd, env)
            t = timings[name]
            t.walls.append(wall)
            t.peak_kib = max(t.peak_kib, peak)
            t.result = json.loads(out.read_text()) if out.exists() else {}
    return timings


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10k,1m,2m", help="comma-separated among 10k, 1m, 2m, 10m (default 10k,1m,2m)")
    p.add_argument("--repeat", type=int, default=3, help="runs per command and size (best is shown; 10M: at most 2)")
    p.add_argument("--workdir", help="keep generated files here between runs (default: a temporary folder)")
    p.add_argument("--baseline", metavar="REF", help="also time the 10k run of this git ref (e.g. main)")
    p.add_argument("--sizes-only", action="store_true", help="only the size table (no start-up budget, no row path)")
    args = p.parse_args()
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        p.error(f"unknown size {unknown[0]!r}; choose among {', '.join(SIZES)}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mlops-stream-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# mlops-stream benchmark — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, work dir {work}")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    exe = str(install(work, "current"))
    python = str(Path(exe).with_name("python"))  # pandas, polars and a bare start run on the same set-up as ours
    config = work / "config.yaml"
    config.write_text(f"seed: 42\nwindow: {WINDOW}\nversion: bench\n")
    pandas_job, polars_job = work / "pandas_job.py", work / "polars_job.py"
    pandas_job.write_text(PANDAS_JOB.format(window=WINDOW))
    polars_job.write_text(POLARS_JOB.format(window=WINDOW))
    row_env = {**os.environ, "MLOPS_STREAM_PATH": "row"}

    def ours(src: Path, tag: str, *extra: str) -> tuple[list[str], dict[str, str] | None, Path]:
        out = work / f"ours-{tag}.json"
        cmd = [exe, "--input", str(src), "--config", str(config), "--output", str(out), "--log-file",
               str(work / f"ours-{tag}.log"), "--quiet", *extra]  # fmt: skip
        return cmd, None, out

    def ref(job: Path, src: Path, tag: str) -> tuple[list[str], dict[str, str] | None, Path]:
        out = work / f"{tag}.json"
        return [python, str(job), str(src), str(out)], None, out

    print("| rows | mlops-stream | 1 process | pandas | polars | ours ÷ pandas | ours ÷ polars "
          "| peak MiB ours / 1 proc / pandas / polars | signal rate ours / pandas / polars |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|")
    peak_any = 0  # the largest peak of any run of ours, default or one process, at any size
    for size in sizes:
        src = generate(work, SIZES[size])
        repeat = min(args.repeat, 2) if size == "10m" else args.repeat
        cmds = {
            "ours": ours(src, size),
            "one": ours(src, size + "-1", "--workers", "1"),
            "pandas": ref(pandas_job, src, f"pandas-{size}"),
            "polars": ref(polars_job, src, f"polars-{size}"),
        }
        t = run_all(cmds, repeat)
        o, one, pd_, pl_ = t["ours"], t["one"], t["pandas"], t["polars"]
        peak_any = max(peak_any, o.peak_kib, one.peak_kib)
        print(
            f"| {SIZES[size]:,} | {o.best:.3f} s | {one.best:.3f} s | {pd_.best:.3f} s | {pl_.best:.3f} s "
            f"| {o.best / pd_.best:.2f} | {o.best / pl_.best:.2f} "
            f"| {mib(o.peak_kib)} / {mib(one.peak_kib)} / {mib(pd_.peak_kib)} / {mib(pl_.peak_kib)} "
            f"| {o.result.get('value')} / {pd_.result.get('value')} / {pl_.result.get('value')} |",
            flush=True,
        )
    if args.sizes_only:
        return 0

    print("\n## Start-up budget and the bundled 10,000-row data.csv\n")
    data = ROOT / "data.csv"
    cmds = {
        "ours": ours(data, "data"),
        "pandas": ref(pandas_job, data, "pandas-data"),
        "bare": ([python, "-c", "pass"], None, work / "none"),
    }
    # The assessment's own export (whole-line quoted, CRLF, trailing zeros dropped), when ../shared is beside us.
    assessment = next((p / "shared/data/assessment-data.csv" for p in ROOT.parents
                       if (p / "shared/data/assessment-data.csv").is_file()), None)  # fmt: skip
    if assessment is not None:
        cmds["assessment"] = ours(assessment, "assessment")
    if args.baseline:
        base_exe = str(install(work, "baseline", args.baseline))
        cmds["base"] = ([base_exe, "--input", str(data), "--config", str(config), "--output",
                         str(work / "base.json"), "--log-file", str(work / "base.log"), "--quiet"], None,
                        work / "base.json")  # fmt: skip
    t = run_all(cmds, max(args.repeat, 5))
    o, pd_, bare = t["ours"], t["pandas"], t["bare"]
    print("| figure | measured | target |\n|---|---:|---:|")
    print(f"| mlops-stream, regular install | {o.best * 1000:.0f} ms | |")
    print(f"| pandas pipeline | {pd_.best * 1000:.0f} ms | |")
    print(f"| bare `python -c pass` | {bare.best * 1000:.0f} ms | |")
    # The one start-up check: a small file's run is mostly start-up, so imports that creep in show here.
    over = []
    if o.best / pd_.best > BUDGET_PANDAS:
        over.append(f"{o.best / pd_.best:.3f} of pandas (budget {BUDGET_PANDAS})")
    if o.best / bare.best > BUDGET_BARE:
        over.append(f"{o.best / bare.best:.2f}x bare python (budget {BUDGET_BARE}x)")
    print(f"| mlops-stream ÷ pandas | {o.best / pd_.best:.3f} | ≤ {BUDGET_PANDAS} |")
    print(f"| mlops-stream ÷ bare python | {o.best / bare.best:.2f} | ≤ {BUDGET_BARE} |")
    if assessment is not None:
        a = t["assessment"]
        print(f"| the assessment dataset ({a.result.get('rows_processed')} rows, value {a.result.get('value')}; "
              f"pandas' read_csv sees one column) | {a.best * 1000:.0f} ms, {a.best / pd_.best:.3f} of pandas "
              "on data.csv | |")  # fmt: skip
    print(f"| peak memory, mlops-stream, this file | {mib(o.peak_kib)} MiB | ≤ 40 MiB |")
    if peak_any:
        print(
            f"| peak memory, mlops-stream, largest of the runs above ({', '.join(sizes)}; default and one process) "
            f"| {mib(peak_any)} MiB | ≤ 40 MiB |"
        )
    if args.baseline:
        base = t["base"]
        print(f"| 10k run, this checkout ÷ {args.baseline}, both installed | {o.best / base.best:.2f} "
              f"({o.best * 1000:.0f} / {base.best * 1000:.0f} ms) | ≤ 1 (no worse) |")  # fmt: skip

    # The row path on its own, on the 7-column layout: the job's own rows/s figure (reading + parsing + window).
    src = generate(work, SIZES["1m"])
    best = 0.0
    for _ in range(max(1, args.repeat)):
        log = work / "row.log"
        log.unlink(missing_ok=True)  # the log appends: read this run's figure only
        cmd = [exe, "--input", str(src), "--config", str(config), "--workers", "1", "--quiet", "--log-file", str(log)]
        measure(cmd, row_env)
        m = re.search(r"processed (\d+) rows .* in ([\d.]+) s", log.read_text())
        assert m, "the log has no 'processed' line"
        best = max(best, int(m.group(1)) / float(m.group(2)))
    print(f"| row path (MLOPS_STREAM_PATH=row), 1M rows, 7 columns | {best:,.0f} rows/s | ≥ 400,000 |")
    if over:
        print(f"\nOVER THE START-UP BUDGET: the 10k run takes {' and '.join(over)}")
        return 1
    print("\nstart-up budget: within both limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
