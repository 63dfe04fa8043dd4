"""Benchmarks compressed history: one ``.csv.gz`` and twelve monthly zips of the same candles, mlops-stream (one
process and ``--workers 2``) beside pandas and polars; best wall time and peak memory of the largest process.

    python benchmarks/compressed.py                    # 10,000,000 rows
    python benchmarks/compressed.py --rows 1000000     # quicker, for a look

A last line reads one zip of ``--members`` members (100,000 by default; the same candles, each member with its
header), the shape of a folder of small daily files zipped together.

Each command is its own subprocess, round-robin, ``--repeat`` times (best wall time shown; peak resident memory from
``ru_maxrss`` of ``wait4``, as benchmarks/bench.py measures it). pandas reads the ``.gz`` with ``read_csv`` and the zips
in a loop (one ``read_csv`` per zip, then ``concat``); polars reads the ``.gz`` with ``read_csv`` and each zip's member
bytes. mlops-stream runs from a regular install in a temporary venv; the ``.gz`` is also read by a second install
with the ``zlib-ng`` extra (when pip can fetch it).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import generate, install, mib, run_all  # the sibling benchmark's helpers

WINDOW = 5
MONTHS = 12

PANDAS_JOB = """
import glob, json, sys
import pandas as pd

src = sys.argv[1]
if src.endswith(".gz"):
    df = pd.read_csv(src)
else:  # a loop over the zips, each read by read_csv, then one frame
    df = pd.concat([pd.read_csv(p) for p in sorted(glob.glob(src))], ignore_index=True)
close = df["close"]
signal = (close > close.rolling({window}).mean()).astype(int)
json.dump({{"rows_processed": len(df), "value": round(float(signal.mean()), 4)}}, open(sys.argv[2], "w"))
"""

POLARS_JOB = """
import glob, json, sys, zipfile
import polars as pl

src = sys.argv[1]
if src.endswith(".gz"):
    df = pl.read_csv(src)
else:  # polars reads no zip: each member's bytes, then one frame
    frames = []
    for p in sorted(glob.glob(src)):
        with zipfile.ZipFile(p) as z:
            frames.append(pl.read_csv(z.read(z.namelist()[0])))
    df = pl.concat(frames)
signal = (pl.col("close") > pl.col("close").rolling_mean({window})).fill_null(False).cast(pl.Int8)
value = df.select(signal.mean()).item()
json.dump({{"rows_processed": df.height, "value": round(float(value), 4)}}, open(sys.argv[2], "w"))
"""


def compressed_copies(work: Path, rows: int) -> tuple[Path, str]:
    """The generated candles as one .csv.gz and as twelve monthly zips (each with the header); made once per workdir."""
    src = generate(work, rows)
    gz = work / f"candles-{rows}.csv.gz"
    if not gz.exists():
        tmp = gz.with_suffix(".part")
        with open(src, "rb") as fh, open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
        tmp.rename(gz)
    folder = work / f"zips-{rows}"
    if not folder.exists():
        tmp_folder = work / f"zips-{rows}.part"
        tmp_folder.mkdir(exist_ok=True)
        per = -(-rows // MONTHS)
        with open(src, "rb") as fh:
            header = fh.readline()
            for month in range(1, MONTHS + 1):
                name = f"candles-2024-{month:02d}"
                with (
                    zipfile.ZipFile(tmp_folder / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive,
                    archive.open(f"{name}.csv", "w", force_zip64=True) as member,
                ):
                    member.write(header)
                    for _ in range(per):
                        line = fh.readline()
                        if not line:
                            break
                        member.write(line)
        tmp_folder.rename(folder)
    return gz, str(folder / "candles-2024-*.zip")


MANY_MEMBERS = """
import sys, zipfile

src, out, members = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = sum(1 for _ in open(src, "rb")) - 1
per = -(-rows // members)
with open(src, "rb") as fh, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
    header = fh.readline()
    for i in range(members):
        archive.writestr(f"part-{i:06d}.csv", header + b"".join(fh.readline() for _ in range(per)))
"""


def many_members(work: Path, rows: int, members: int) -> Path:
    """The generated candles as one zip of ``members`` members in name order, each with the header; made once, by a
    process of its own (a peak resident size survives fork and exec: the commands measured after would inherit it)."""
    path = work / f"members-{rows}-{members}.zip"
    if not path.exists():
        tmp = path.with_suffix(".part")
        subprocess.run(
            [sys.executable, "-c", MANY_MEMBERS, str(generate(work, rows)), str(tmp), str(members)], check=True
        )
        tmp.rename(path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000, help="candles in all (default 10,000,000)")
    p.add_argument("--repeat", type=int, default=2, help="runs per command (best is shown; default 2)")
    p.add_argument("--workdir", help="keep generated files here between runs (default: a temporary folder)")
    p.add_argument("--members", type=int, default=100_000, help="members of the last line's zip (default 100,000)")
    args = p.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mlops-stream-compressed-"))
    work.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# compressed inputs, {args.rows:,} rows — {stamp}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; work dir {work}\n")
    exe = str(install(work, "current"))
    ng_exe: str | None = str(install(work, "zlib-ng"))
    pip = [str(Path(str(ng_exe)).with_name("python")), "-m", "pip", "install", "-q", "zlib-ng"]
    if subprocess.run(pip, capture_output=True).returncode != 0:
        print("# zlib-ng could not be installed: no zlib-ng row\n")
        ng_exe = None
    config = work / "config.yaml"
    config.write_text(f"seed: 42\nwindow: {WINDOW}\nversion: bench\n")
    pandas_job, polars_job = work / "pandas_compressed.py", work / "polars_compressed.py"
    pandas_job.write_text(PANDAS_JOB.format(window=WINDOW))
    polars_job.write_text(POLARS_JOB.format(window=WINDOW))
    gz, zips = compressed_copies(work, args.rows)

    def ours(src: str, tag: str, workers: str, program: str = exe) -> tuple[list[str], dict[str, str] | None, Path]:
        out = work / f"ours-{tag}.json"
        cmd = [program, "--input", src, "--config", str(config), "--output", str(out), "--log-file",
               str(work / f"ours-{tag}.log"), "--quiet", "--workers", workers]  # fmt: skip
        return cmd, None, out

    def ref(job: Path, src: str, tag: str) -> tuple[list[str], dict[str, str] | None, Path]:
        out = work / f"{tag}.json"
        return [sys.executable, str(job), src, str(out)], None, out

    size = {"gz": gz.stat().st_size, "zips": sum(os.path.getsize(z) for z in Path(zips).parent.glob("*.zip"))}
    print("| input | ours, 1 process | ours, --workers 2 | pandas | polars | 1 proc ÷ pandas | --workers 2 ÷ polars "
          "| peak MiB ours 1 / 2 / pandas / polars | signal rate ours / pandas / polars |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for tag, src in (("gz", str(gz)), ("zips", zips)):
        commands = {
            "one": ours(src, f"{tag}-1", "1"),
            "two": ours(src, f"{tag}-2", "2"),
            "pandas": ref(pandas_job, src, f"pandas-{tag}"),
            "polars": ref(polars_job, src, f"polars-{tag}"),
        }
        if tag == "gz" and ng_exe is not None:
            commands["ng"] = ours(src, "gz-ng", "1", ng_exe)
        t = run_all(commands, args.repeat)
        one, two, pd_, pl_ = t["one"], t["two"], t["pandas"], t["polars"]
        what = f"one .csv.gz ({size['gz'] / 2**20:.0f} MiB)" if tag == "gz" else (
            f"{MONTHS} monthly zips ({size['zips'] / 2**20:.0f} MiB)"
        )  # fmt: skip
        print(
            f"| {what} | {one.best:.2f} s | {two.best:.2f} s | {pd_.best:.2f} s | {pl_.best:.2f} s "
            f"| {one.best / pd_.best:.2f} | {two.best / pl_.best:.2f} "
            f"| {mib(one.peak_kib)} / {mib(two.peak_kib)} / {mib(pd_.peak_kib)} / {mib(pl_.peak_kib)} "
            f"| {one.result.get('value')} / {pd_.result.get('value')} / {pl_.result.get('value')} |",
            flush=True,
        )
        if "ng" in t:
            ng = t["ng"]
            print(f"| the same .csv.gz, with the zlib-ng extra | {ng.best:.2f} s | | | | {ng.best / pd_.best:.2f} | "
                  f"| {mib(ng.peak_kib)} | {ng.result.get('value')} |", flush=True)  # fmt: skip
    many = many_members(work, args.rows, args.members)
    t = run_all({"one": ours(str(many), "members", "1")}, args.repeat)["one"]
    print(
        f"| one zip of {args.members:,} members ({many.stat().st_size / 2**20:.0f} MiB) | {t.best:.2f} s | | | | | "
        f"| {mib(t.peak_kib)} | {t.result.get('value')} |",
        flush=True,
    )
    print("\nGoals: the .gz on one process at most 0.5x pandas; the zips on --workers 2 at most polars (1.0x); "
          "at most 64 MiB per process of ours.")  # fmt: skip
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
