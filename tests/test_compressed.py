"""Compressed inputs: gzip (one or many members), bz2, xz, zip (one or several CSV members) and zstd, told by their
first bytes, from a path, a glob and stdin, on one process, --workers 2 and a Dask cluster — the exact answers of
the decompressed text, byte-identical signals; damaged archives and binary files are clear errors."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import json
import lzma
import random
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    RSS_PROBE,
    env_with_repo,
    exact_signals,
    ohlcv_csv,
    read_signals_csv,
    start_command,
    write,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_scaleout import files as random_files
from test_scaleout import run as run_plan

from stream import generate
from stream.runs.plan.executors import Inline
from stream.sources import decoders, magic
from stream.sources.decompress import unpack
from stream.sources.files import NewFile, Spec, concatenated
from stream.sources.magic import DecompressError

HAVE_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="dask[distributed] is not installed (the test extra has it)")
try:
    ZSTD = decoders.zstd_module()
except ImportError:
    ZSTD = None
needs_zstd = pytest.mark.skipif(ZSTD is None, reason="no zstd module: the zstd extra (or Python 3.14+) brings it")
PRICES = ["100.1", "100.10", "100.2", "99.9", "100.15", "1.001e2", "100", "100.05", "42005.96"]
WINDOW = 7


def closes(rng: random.Random, n: int, bad: bool = False) -> list[str]:
    return [rng.choice([*PRICES, "oops"] if bad else PRICES) for _ in range(n)]


def gz_members(data: bytes, cuts: int = 3) -> bytes:
    """``data`` as several gzip members back to back, as ``cat a.gz b.gz`` makes."""
    step = max(1, len(data) // cuts)
    return b"".join(gzip.compress(data[i : i + step], mtime=0) for i in range(0, len(data), step))


def zipped(members: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**members, **(extra or {})}.items():
            archive.writestr(name, data)
    return out.getvalue()


def zst(data: bytes) -> bytes:
    assert ZSTD is not None
    return bytes(ZSTD.compress(data))


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gz": lambda d: gzip.compress(d, mtime=0),
    "gz-members": gz_members,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zip": lambda d: zipped({"candles.csv": d}),
    "zst": zst,
}
KINDS = [pytest.param(k, marks=needs_zstd) if k == "zst" else k for k in COMPRESS]


def reference(all_closes: list[str], window: int = WINDOW) -> tuple[list[int], float]:
    """The Fraction reference: per-row signals and the signal rate the metrics round to."""
    signals, _ = exact_signals(all_closes, window)
    return signals, round(sum(signals) / len(signals), 4)


def check_exact(run, all_closes: list[str], signals_file: Path) -> None:
    assert run.code == 0, run.stderr
    run.assert_no_traceback()
    signals, rate = reference(all_closes)
    assert run.file_doc()["value"] == rate
    rows = read_signals_csv(signals_file.read_text())
    assert [r["close"] for r in rows] == all_closes
    assert [int(r["signal"]) for r in rows] == signals


# ---- the source hands on the text --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_every_kind_gives_the_text_inside_in_bounded_reads(tmp_path: Path, kind: str, chunk: int) -> None:
    text = ohlcv_csv(closes(random.Random(3), 2000)).encode()
    path = write(tmp_path / "in.bin", COMPRESS[kind](text))  # the name says nothing: the first bytes tell
    events = list(concatenated([Spec(str(path))], size=chunk))
    name = f"{path}:candles.csv" if kind == "zip" else str(path)
    assert events[0] == NewFile("next", name)  # a compressed input's messages name it (and its member)
    data = [e for e in events[1:] if isinstance(e, bytes)]
    assert b"".join(data) == text
    assert max(len(d) for d in data) <= chunk


def test_a_zip_is_its_csv_members_in_name_order(tmp_path: Path) -> None:
    rng = random.Random(5)
    parts = {name: ohlcv_csv(closes(rng, 40)).encode() for name in ("2024-02.csv", "2024-01.csv", "sub/2024-03.CSV")}
    extra = {"README.txt": b"not data", "__MACOSX/._2024-01.csv": b"\x00\x05", ".hidden.csv": b"x", "dir/": b""}
    path = write(tmp_path / "year.zip", zipped(parts, extra))
    events = list(concatenated([Spec(str(path))]))
    names = [e.name for e in events if isinstance(e, NewFile)]
    assert names == [f"{path}:2024-01.csv", f"{path}:2024-02.csv", f"{path}:sub/2024-03.CSV"]
    texts = b"".join(e if isinstance(e, bytes) else b"|" for e in events).split(b"|")[1:]
    assert texts == [parts["2024-01.csv"], parts["2024-02.csv"], parts["sub/2024-03.CSV"]]


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("zip", "gz-members")])
def test_compressed_members_of_a_zip_are_read_as_their_text(tmp_path: Path, kind: str) -> None:
    rng = random.Random(11)
    first, second = (ohlcv_csv(closes(rng, 30)).encode() for _ in range(2))
    suffix = {"gz": "gz", "bz2": "bz2", "xz": "xz", "zst": "zst"}[kind]
    path = write(tmp_path / "year.zip", zipped({f"2024-01.csv.{suffix}": COMPRESS[kind](first), "2024-02.csv": second}))
    events = list(concatenated([Spec(str(path))]))
    assert [e.name for e in events if isinstance(e, NewFile)] == [f"{path}:2024-01.csv.{suffix}", f"{path}:2024-02.csv"]
    assert b"".join(e if isinstance(e, bytes) else b"|" for e in events).split(b"|")[1:] == [first, second]


@pytest.mark.parametrize("member", ["inner.zip", "data.csv"])
def test_a_zip_inside_a_zip_is_named_not_read_as_text(run_main, tmp_path: Path, member: str) -> None:
    inner = zipped({"a.csv": ohlcv_csv(["1", "2"]).encode()})
    write(tmp_path / "outer.zip", zipped({member: inner}))
    run = run_main(["--input", "outer.zip", "--output", "m.json"])
    assert run.code == 1
    run.assert_no_traceback()
    assert run.file_doc("m.json")["error_message"] == (
        f"input outer.zip:{member} is a zip archive inside a zip; extract it first"
    )


def test_a_binary_member_says_what_it_looks_like(run_main, tmp_path: Path) -> None:
    write(tmp_path / "a.zip", zipped({"chart.csv": b"\x89PNG\r\n\x1a\n" + bytes(100)}))
    run = run_main(["--input", "a.zip", "--output", "m.json"])
    assert run.code == 1
    assert run.file_doc("m.json")["error_message"] == (
        "input a.zip:chart.csv is neither text nor a compressed file this reads (gzip, bz2, xz, zip, zstd): it looks "
        "like a PNG image, starting with bytes 89 50 4e 47 0d 0a 1a 0a"
    )


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_a_zip_of_many_members_is_read_in_memory_that_does_not_grow_with_them(tmp_path: Path) -> None:
    import subprocess
    import sys

    def peak_mib(members: int) -> float:
        # One row per member, in name order as archivers write them; past 65,535 members the zip has zip64 end records.
        path = tmp_path / f"m{members}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # a member's compression is beside the point
            for i in range(members):
                archive.writestr(f"part-{i:06d}.csv", f"timestamp,close\n{i},{100 + i % 7}\n")
        proc = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, "--input", str(path), "--output", "m.json", "--quiet"],
            cwd=tmp_path, capture_output=True, env=env_with_repo(), timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        err = proc.stderr.decode()
        assert proc.returncode == 0, err
        assert json.loads((tmp_path / "m.json").read_text())["rows_processed"] == members
        return int(err.split("MAXRSS_KIB ")[1].split()[0]) / 1024

    few, many = peak_mib(1000), peak_mib(66_000)
    print(f"peak RSS over a zip of 1,000 members: {few:.1f} MiB; of 66,000: {many:.1f} MiB")
    # A ZipFile would hold an object per member: some 45 MiB more for the 65,000 more.
    assert many - few < 10, (few, many)


def test_a_pipe_is_told_by_its_first_bytes_even_one_byte_at_a_time() -> None:
    text = ohlcv_csv(["1", "2", "3"]).encode()

    class Trickle(io.RawIOBase):
        """A pipe that hands over one byte per read."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            if not self.data:
                return 0
            b[0], self.data = self.data[0], self.data[1:]
            return 1

        def seekable(self) -> bool:
            return False

    for data in (text, gzip.compress(text), lzma.compress(text)):
        unpacked = unpack("<stdin>", Trickle(data))  # type: ignore[arg-type]
        _, fh = next(unpacked.parts)
        got = b"".join(iter(lambda fh=fh: fh.read1(3), b""))
        assert got == text


@pytest.mark.parametrize("backend", ["zlib", "zlib-ng"])
def test_gzip_reads_alike_through_zlib_and_zlib_ng(tmp_path: Path, monkeypatch, backend: str) -> None:
    if backend == "zlib":
        monkeypatch.setattr(decoders, "zlib_module", lambda: zlib)
    elif importlib.util.find_spec("zlib_ng") is None:
        pytest.skip("zlib-ng is not installed (the zlib-ng and test extras have it)")
    text = ohlcv_csv(closes(random.Random(8), 5000)).encode()

    def read(data: bytes) -> bytes:
        events = concatenated([Spec(str(write(tmp_path / "in.gz", data)))], size=1000)
        return b"".join(e for e in events if isinstance(e, bytes))

    assert read(gz_members(text, 7)) == text
    with pytest.raises(DecompressError, match=r"in\.gz is a gzip file that ends early \(truncated\?\)$"):
        read(gzip.compress(text)[:-10])
    damaged = bytearray(gzip.compress(text))
    damaged[300:340] = bytes(b ^ 0x55 for b in damaged[300:340])
    with pytest.raises(DecompressError, match=r"in\.gz is a damaged gzip file: "):
        read(bytes(damaged))


def test_text_that_starts_like_a_signature_is_text() -> None:
    assert magic.kind_of(b"BZh,close\n") is None
    assert magic.kind_of(b"BZh9" + bz2.compress(b"x")[4:]) == "bz2"
    assert magic.kind_of(b"PK,close\n") is None


def test_gzip_padding_between_members_is_allowed_and_garbage_after_is_not(tmp_path: Path) -> None:
    text = ohlcv_csv(["1", "2"]).encode()
    padded = gzip.compress(text[:20]) + b"\x00" * 512 + gzip.compress(text[20:])
    assert b"".join(e for e in concatenated([Spec(str(write(tmp_path / "p.gz", padded)))]) if isinstance(e, bytes)) == (
        text
    )
    with pytest.raises(DecompressError, match=r"has data after the end of its gzip stream that is not gzip"):
        list(concatenated([Spec(str(write(tmp_path / "g.gz", gzip.compress(text) + b"trailing junk")))]))


# ---- end to end: every kind, from a path and from stdin ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_compressed_file_and_pipe_give_the_exact_answers(run_main, run_cli, tmp_path: Path, kind: str) -> None:
    values = closes(random.Random(hash(kind) % 1000), 500)
    path = write(tmp_path / f"candles.{kind}", COMPRESS[kind](ohlcv_csv(values).encode()))
    args = ["--window", WINDOW, "--output", "metrics.json", "--signals", "signals.csv"]
    check_exact(run_main(["--input", path.name, *args]), values, tmp_path / "signals.csv")
    check_exact(run_cli(args, stdin=path.read_bytes()), values, tmp_path / "signals.csv")


def test_bad_rows_name_the_archive_and_member_with_lines_in_the_text(run_main, tmp_path: Path) -> None:
    text = ohlcv_csv(["1", "2", "oops", "4"]).encode()
    write(tmp_path / "a.zip", zipped({"m.csv": text}))
    write(tmp_path / "b.csv.gz", gzip.compress(text))
    failed = run_main(["--input", "a.zip"])
    assert failed.code == 1
    failed.assert_no_traceback()
    assert failed.doc()["error_message"].startswith("bad row at a.zip:m.csv line 4: bad close value: 'oops'")
    skipped = run_main(["--input", "b.csv.gz", "--on-bad-row", "skip", "--window", "1"])
    assert skipped.code == 0
    assert "skipped bad row at b.csv.gz line 4: bad close value" in skipped.stderr


# ---- many compressed files: one task each, byte-identical on every executor ----------------------------------------


def on(executor: str, request: pytest.FixtureRequest) -> list[str]:
    """The arguments of ``executor``: ``--workers N``, or ``--scheduler`` and the session's Dask cluster (its workers
    are processes of their own; the run, its client, runs in this process as the others do)."""
    if executor == "--scheduler":
        return [executor, request.getfixturevalue("dask_scheduler")]
    return executor.split()


def history(tmp_path: Path, rng: random.Random, keyed: bool = False) -> tuple[list[str], str]:
    """Six months in assorted compressions (zip months hold two members), and the closes in input order."""
    header = "timestamp,symbol,close" if keyed else "timestamp,close"
    ordered: list[str] = []
    folder = tmp_path / "history"
    folder.mkdir()
    kinds = ["gz", "zip", "bz2", "xz", "gz-members", "zip"]
    for month, kind in enumerate(kinds, start=1):
        halves = []
        for half in range(2):
            values = closes(rng, rng.randint(0, 400))
            ordered += values
            sym = (lambda i: f"{'AB'[i % 2]},") if keyed else (lambda i: "")
            lines = [f"2024-{month:02d}-{half + 1:02d}T{i:05d},{sym(i)}{c}" for i, c in enumerate(values)]
            halves.append((header + "\n" + "".join(line + "\n" for line in lines)).encode())
        if kind == "zip":
            data = zipped({f"m{month:02d}-b.csv": halves[1], f"m{month:02d}-a.csv": halves[0]})
        else:
            data = COMPRESS[kind](halves[0] + halves[1].split(b"\n", 1)[1])
        write(folder / f"2024-{month:02d}.{kind.split('-')[0]}", data)
    return ordered, str(folder / "2024-*")


@pytest.mark.parametrize("executor", ["--workers 2", pytest.param("--scheduler", marks=needs_dask)])
def test_many_compressed_files_run_one_per_task_with_byte_identical_signals(
    run_main, request, tmp_path: Path, executor: str
) -> None:
    executor_args = on(executor, request)
    ordered, pattern = history(tmp_path, random.Random(11))
    args = ["--input", pattern, "--window", WINDOW, "--output", "metrics.json", "--log-file", "run.log"]
    one = run_main([*args, "--signals", "one.csv", "--workers", "1"])
    check_exact(one, ordered, tmp_path / "one.csv")
    many = run_main([*args, "--signals", "many.csv", *executor_args])
    check_exact(many, ordered, tmp_path / "many.csv")
    assert (tmp_path / "many.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert "6 of the inputs are compressed: each is one task" in many.log()
    # Without signals (no row numbers needed) the plan still seeds each file's first rows from the first pass.
    quiet = run_main([*args, *executor_args])
    assert quiet.file_doc()["value"] == one.file_doc()["value"]


@given(
    seed=st.integers(0, 2**32),
    kinds=st.lists(st.sampled_from(["plain", "gz", "gz-members", "bz2", "xz", "zip"]), min_size=1, max_size=4),
    keyed=st.booleans(),
    window=st.integers(1, 6),
    skip=st.booleans(),
    fmt=st.sampled_from(["csv", None]),
)
# An archive is one task, and this one skips 22 rows: more than a task sends (a log shows only the first ones).
@example(seed=863, kinds=["plain", "gz"], keyed=True, window=1, skip=True, fmt="csv")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_plan_over_compressed_files_gives_the_one_process_output(
    tmp_path_factory, seed, kinds, keyed, window, skip, fmt
) -> None:
    tmp = tmp_path_factory.mktemp("packed")
    datas = random_files(seed, len(kinds), 40, keyed)
    plain = [Spec(str(write(tmp / f"plain{i}.csv", data))) for i, data in enumerate(datas)]
    packed = [
        Spec(str(write(tmp / f"in{i}.{kind}", data if kind == "plain" else COMPRESS[kind](data))))
        for i, (kind, data) in enumerate(zip(kinds, datas))
    ]
    one = run_plan(packed, keyed, window, skip, fmt, None, 64)
    inline = Inline()
    many = run_plan(packed, keyed, window, skip, fmt, inline, 64)
    if one[0] == "error":
        assert many[:2] == one[:2]  # the same first error, naming the same archive (and member) and line
        return
    assert many == one
    # The plan ran, unless the input is one compressed file (one process reads it) or has no header at all.
    assert inline.tasks or (len(kinds) == 1 and kinds[0] != "plain") or not one[0].rows
    # The exact answers of the decompressed text: the tallies and signals of the plain files.
    assert one[:3] == run_plan(plain, keyed, window, skip, fmt, None, 64)[:3]


def test_keyed_windows_over_compressed_files_match_one_process(run_main, tmp_path: Path) -> None:
    history(tmp_path, random.Random(12), keyed=True)
    args = ["--input", str(tmp_path / "history" / "2024-*"), "--window", "4", "--key", "symbol", "--output", "m.json"]
    one = run_main([*args, "--signals", "one.csv", "--workers", "1"])
    assert one.code == 0, one.stderr
    two = run_main([*args, "--signals", "two.csv", "--workers", "2"])
    assert two.code == 0, two.stderr
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    by_key = json.loads((tmp_path / "m.json").read_text())["by_key"]
    rows = read_signals_csv((tmp_path / "one.csv").read_text())
    for key in ("A", "B"):
        mine = [r["close"] for r in rows if r["symbol"] == key]
        assert by_key[key]["value"] == reference(mine, 4)[1]
        assert [int(r["signal"]) for r in rows if r["symbol"] == key] == reference(mine, 4)[0]


def test_a_single_compressed_file_runs_in_one_process_and_the_log_says_why(run_main, tmp_path: Path) -> None:
    values = closes(random.Random(2), 3000)
    write(tmp_path / "big.csv.gz", gzip.compress(ohlcv_csv(values).encode()))
    run = run_main(["--input", "big.csv.gz", "--workers", "2", "--window", WINDOW, "--log-file", "run.log",
                   "--output", "metrics.json", "--signals", "s.csv"])  # fmt: skip
    check_exact(run, values, tmp_path / "s.csv")
    assert "big.csv.gz is gzip-compressed: a compressed file cannot be cut into blocks, so one process reads it" in (
        run.log()
    )


# ---- streaming: constant memory, rows as they arrive -------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_a_million_row_gzip_is_read_in_bounded_memory(tmp_path: Path) -> None:
    import subprocess
    import sys

    # Generating a million candles takes seconds; one generation block of them, over and over, is as big a file.
    block = io.BytesIO()
    generate.write(block, generate.BLOCK, 9)
    header, lines = block.getvalue().split(b"\n", 1)
    repeats, rest = divmod(1_000_000, generate.BLOCK)
    path = tmp_path / "million.csv.gz"
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, compresslevel=1) as out:
        out.write(header + b"\n")
        for _ in range(repeats):
            out.write(lines)
        out.write(b"".join(lines.splitlines(keepends=True)[:rest]))
    proc = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, "--input", str(path), "--workers", "1", "--output", "m.json"],
        cwd=tmp_path, capture_output=True, env=env_with_repo(), timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["rows_processed"] == 1_000_000
    peak_mib = int(err.split("MAXRSS_KIB ")[1].split()[0]) / 1024
    print(f"peak RSS over a 1,000,000-row gzip: {peak_mib:.1f} MiB")
    assert peak_mib < 64, peak_mib  # a guard: holding the file's text would take some 75 MiB on its own


def test_a_gzip_from_a_slow_producer_gives_signals_as_it_arrives(tmp_path: Path) -> None:
    proc = start_command(["--window", "2", "--signals", "-", "--quiet"], tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    proc.stdin.write(comp.compress(b"timestamp,close\nt1,1\nt2,3\n") + comp.flush(zlib.Z_SYNC_FLUSH))
    proc.stdin.flush()
    try:
        # The producer has not finished (the stream is still open): the rows sent so far come out already.
        assert proc.stdout.readline() == b"row,timestamp,close,rolling_mean,signal\n"
        assert proc.stdout.readline().startswith(b"1,t1,1,")
        assert proc.stdout.readline().startswith(b"2,t2,3,2")
        proc.stdin.write(comp.compress(b"t3,5\n") + comp.flush())
        proc.stdin.close()
        assert proc.stdout.readline().startswith(b"3,t3,5,4")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


# ---- damaged archives and other binary files ----------------------------------------------------------------------


def text_for_errors() -> bytes:
    return ohlcv_csv(closes(random.Random(4), 3000)).encode()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("t.csv.gz", lambda t: gzip.compress(t)[:-4000], "input t.csv.gz is a gzip file that ends early (truncated?)"),
        ("t.csv.gz", lambda t: gzip.compress(t)[:-3], "input t.csv.gz is a gzip file that ends early (truncated?)"),
        ("t.bz2", lambda t: bz2.compress(t)[:-100], "input t.bz2 is a bz2 file that ends early (truncated?)"),
        ("t.xz", lambda t: lzma.compress(t)[:-100], "input t.xz is a xz file that ends early (truncated?)"),
        ("t.zip", lambda t: zipped({"a.csv": t})[:-30], "input t.zip is a zip file that ends early or is damaged"),
        ("t.zip", lambda t: zipped({"a.json": b"{}", "b.txt": b"x"}), "input t.zip is a zip without CSV members"),
        ("t.zip", lambda t: zipped({}), "input t.zip is a zip without CSV members (it is empty)"),
        ("t.gz", lambda t: (g := gzip.compress(t))[:200] + bytes(b ^ 0x55 for b in g[200:260]) + g[260:],
         "input t.gz is a damaged gzip file: "),
        ("t.png", lambda t: b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
         "input t.png is neither text nor a compressed file this reads (gzip, bz2, xz, zip, zstd): it looks like a "
         "PNG image, starting with bytes 89 50 4e 47 0d 0a 1a 0a"),
        ("t.csv", lambda t: b"\x01\x02\x03garbage\xff\x00\nclose\n1\n",
         "it looks like binary data starting with bytes 01 02 03 67 61 72 62 61"),
    ],
    ids=["gz-cut", "gz-trailer-cut", "bz2-cut", "xz-cut", "zip-cut", "zip-no-csv", "zip-empty", "gz-damaged", "png",
         "binary"],
)  # fmt: skip
def test_damaged_archives_and_binary_files_are_clear_errors(
    run_main, run_cli, tmp_path: Path, name: str, make: Callable[[bytes], bytes], message: str
) -> None:
    path = write(tmp_path / name, make(text_for_errors()))
    write(tmp_path / "metrics.json", "earlier output\n")
    # The file in this process; the same bytes through a real pipe, in a process of its own.
    for how, args, stdin in ((run_main, ["--input", name], None), (run_cli, [], path.read_bytes())):
        run = how([*args, "--output", "metrics.json", "--signals", "s.csv"], stdin=stdin)
        assert run.code == 1, run.stderr
        run.assert_no_traceback()
        doc = run.doc()
        assert doc["status"] == "error"
        shown = doc["error_message"].replace("input <stdin>", f"input {name}")
        assert message in shown
        assert "\ufffd" not in shown and "\\x" not in shown  # never the bytes themselves
        assert len(shown) < 240
        assert run.file_doc()["status"] == "error"  # never a partial success


def test_a_truncated_file_among_many_fails_on_every_executor(run_main, tmp_path: Path) -> None:
    text = text_for_errors()
    write(tmp_path / "a.gz", gzip.compress(text))
    write(tmp_path / "b.gz", gzip.compress(text)[:-500])
    write(tmp_path / "c.gz", gzip.compress(text))
    for workers in ("1", "2"):
        run = run_main(["--input", "*.gz", "--workers", workers])
        assert run.code == 1
        run.assert_no_traceback()
        assert run.doc()["error_message"] == "input b.gz is a gzip file that ends early (truncated?)"
    # The first failure in input order wins, whichever worker finishes first: a bad row in a.gz, before b.gz.
    write(tmp_path / "a.gz", gzip.compress(text + b"2024-01-03 00:00:00,1,1,1,oops,1,1\n"))
    write(tmp_path / "d.csv", b"\x00\x01binary\n")  # neither text nor compressed, after them
    for workers in ("1", "2"):
        run = run_main(["--input", "a.gz", "--input", "b.gz", "--workers", workers])
        assert run.doc()["error_message"].startswith("bad row at a.gz line 3002: bad close value: 'oops'"), workers
        run = run_main(["--input", "c.gz", "--input", "d.csv", "--workers", workers])
        assert run.doc()["error_message"] == (
            "input d.csv is neither text nor a compressed file this reads (gzip, bz2, xz, zip, zstd): it looks like "
            "binary data starting with bytes 00 01 62 69 6e 61 72 79"
        ), workers


def test_a_zstd_file_without_the_codec_names_the_extra(run_cli, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "backports").mkdir(parents=True)
    write(shadow / "backports" / "__init__.py", "")
    write(shadow / "backports" / "zstd.py", "raise ModuleNotFoundError(\"No module named 'backports.zstd'\")\n")
    write(shadow / "compression.py", "raise ModuleNotFoundError(\"No module named 'compression'\")\n")
    write(tmp_path / "c.csv.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    env = env_with_repo()
    env["PYTHONPATH"] = f"{shadow}:{env['PYTHONPATH']}"
    run = run_cli(["--input", "c.csv.zst"], env=env)
    assert run.code == 1
    run.assert_no_traceback()
    assert run.doc()["error_message"] == (
        "input c.csv.zst is zstd-compressed, which needs pip install '.[zstd]' in the mlops-stream checkout "
        "(the standard library has zstd from Python 3.14)"
    )
    made = run_cli(["generate", "--rows", "5", "--output", "new.csv.zst"], env=env)
    assert made.code == 1
    assert (
        "mlops-stream generate: error: writing zstd needs pip install '.[zstd]' in the mlops-stream checkout"
        in made.stderr
    )
    assert not (tmp_path / "new.csv.zst").exists()  # said before anything is written


def test_follow_on_a_compressed_file_is_a_usage_error(run_main, run_cli, tmp_path: Path) -> None:
    write(tmp_path / "feed.csv", gzip.compress(b"close\n1\n"))  # the name hides it; the first bytes do not
    for name in ("feed.csv", "later.csv.gz"):  # a file a feed has yet to write is judged by its name
        run = run_main(["--input", name, "--follow", "--idle-timeout", "1"])
        assert run.code == 2
        assert (
            f"--follow reads a plain (uncompressed) CSV or JSON Lines file as it grows, and {name} is gzip-compressed"
            in run.stderr
        )
    # A pipe is known only by the bytes that come through it: the run stops at its first bytes, exit 1.
    piped = run_cli(["--follow", "--idle-timeout", "5"], stdin=lzma.compress(b"close\n1\n"))
    assert piped.code == 1
    piped.assert_no_traceback()
    assert piped.doc()["error_message"] == "--follow reads plain CSV as it grows, and the input is xz-compressed"


# ---- generate ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [pytest.param(k, marks=needs_zstd) if k == "zst" else k for k in generate.COMPRESS])
def test_generate_compresses_the_same_candles(run_main, tmp_path: Path, kind: str) -> None:
    plain = io.BytesIO()
    generate.write(plain, 2000, 7)
    run = run_main(["generate", "--rows", "2000", "--seed", "7", "--output", f"g.csv.{kind}"])  # from the name
    assert run.code == 0, run.stderr
    data = (tmp_path / f"g.csv.{kind}").read_bytes()
    again = run_main(["generate", "--rows", "2000", "--seed", "7", "--compress", kind, "--output", f"g.csv.{kind}"])
    assert again.code == 0, again.stderr
    assert (tmp_path / f"g.csv.{kind}").read_bytes() == data  # the same bytes every time: no times inside
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.namelist() == ["g.csv"]
            inside = archive.read("g.csv")
    else:
        opened = {"gz": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress, "zst": lambda d: zst_d(d)}
        inside = opened[kind](data)
    assert inside == plain.getvalue()


def zst_d(data: bytes) -> bytes:
    assert ZSTD is not None
    return bytes(ZSTD.decompress(data))


@pytest.mark.parametrize("executor", ["--workers 1", "--workers 2", pytest.param("--scheduler", marks=needs_dask)])
def test_headerless_binance_zips_read_with_no_header_and_column_5(
    run_main, run_cli, request, tmp_path: Path, executor: str
) -> None:
    executor_args = on(executor, request)
    months = []
    for month in range(1, 4):  # three monthly archives as `generate` writes them, one seed each
        name = f"BTCUSDT-1m-2024-{month:02d}.zip"
        made = run_main(["generate", "--rows", str(300 * month), "--seed", str(month), "--layout", "binance",
                        "--output", name])  # fmt: skip
        assert made.code == 0, made.stderr
        with zipfile.ZipFile(tmp_path / name) as archive:
            assert archive.namelist() == [f"BTCUSDT-1m-2024-{month:02d}.csv"]
            months.append(archive.read(archive.namelist()[0]).decode())
    ordered = [line.split(",")[4] for text in months for line in text.splitlines()]
    args = ["--no-header", "--column", "5", "--window", WINDOW, "--output", "metrics.json"]
    run = run_main(["--input", "BTCUSDT-1m-2024-*.zip", *args, "--signals", "s.csv", *executor_args])
    check_exact(run, ordered, tmp_path / "s.csv")
    piped = run_cli([*args, "--signals", "p.csv"], stdin=(tmp_path / "BTCUSDT-1m-2024-01.zip").read_bytes())
    check_exact(piped, ordered[:300], tmp_path / "p.csv")


def test_reverse_refuses_a_compressed_file(run_main, tmp_path: Path) -> None:
    write(tmp_path / "c.csv.gz", gzip.compress(ohlcv_csv(["1", "2", "3"]).encode()))
    run = run_main(["--input", "c.csv.gz", "--reverse"])
    assert run.code == 1
    run.assert_no_traceback()
    assert (
        run.doc()["error_message"] == "--reverse reads a file backwards from its end, and c.csv.gz is gzip-compressed"
    )


def test_generate_binance_klines_have_binance_s_format() -> None:
    import re

    klines = io.BytesIO()
    generate.write(klines, 70_000, 3, layout="binance")  # crosses a generation block
    plain = io.BytesIO()
    generate.write(plain, 70_000, 3)
    lines = klines.getvalue().decode().splitlines()
    ohlcv = [line.split(",") for line in plain.getvalue().decode().splitlines()[1:]]
    assert len(lines) == 70_000
    # Twelve fields: times in milliseconds, counts, and prices and volumes at 8 decimals; the last is always 0.
    eight = r"(\d+\.\d{8})"
    kline = re.compile(rf"(\d+),{eight},{eight},{eight},{eight},{eight},(\d+),{eight},(\d+),{eight},{eight},0")
    start = 1_704_067_200_000  # 2024-01-01T00:00:00Z in milliseconds
    for i, (line, same) in enumerate(zip(lines, ohlcv)):
        found = kline.fullmatch(line)
        assert found, line
        row = found.groups()
        assert int(row[0]) == start + 60_000 * i and int(row[6]) == int(row[0]) + 59_999
        # The same candle as the default layout, at 8 decimals.
        assert row[1:5] == tuple(p + "000000" for p in same[1:5])
        assert row[5] == same[5] + "00" and row[7] == same[6] + "000000"
        assert int(row[8]) >= 1
        assert float(row[9]) <= float(row[5]) and float(row[10]) <= float(row[7])


def test_a_damaged_zstd_file_from_generate_is_a_damaged_file_not_odd_rows(run_main, tmp_path: Path) -> None:
    try:
        decoders.zstd_module()
    except ImportError:
        pytest.skip("no zstd module here (the zstd extra)")
    run = run_main(["generate", "--rows", "20000", "--compress", "zst", "--output", "g.csv.zst"])
    assert run.code == 0, run.stderr
    data = bytearray((tmp_path / "g.csv.zst").read_bytes())
    data[5000:5010] = bytes(10)  # damage inside the frame: its checksum no longer matches
    write(tmp_path / "bad.csv.zst", bytes(data))
    run = run_main(["--input", "bad.csv.zst", "--on-bad-row", "skip"])
    assert run.code == 1
    assert run.doc()["error_message"].startswith("input bad.csv.zst is a damaged zstd file: ")


def test_gzip_files_joined_with_cat_say_where_the_second_header_is(run_main, tmp_path: Path) -> None:
    one = ohlcv_csv(["1.5", "2.5", "3.5"]).encode()
    write(tmp_path / "ab.gz", gzip.compress(one) + gzip.compress(one))  # as `cat a.gz b.gz > ab.gz` makes
    run = run_main(["--input", "ab.gz"])
    assert run.code == 1
    assert "line 5: the header again, in the middle of the data (files joined together?)" in run.doc()["error_message"]
