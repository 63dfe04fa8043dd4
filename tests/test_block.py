"""The block path and worker processes agree with the row path row for row, on random quirky inputs and cuts."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import KeptWorkers, call_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.batch import BadRow
from stream.core.engine import RollingSignal
from stream.core.exact import parse_decimal
from stream.parsing.blocks import BlockReader, parse
from stream.parsing.reader import Reader, batches
from stream.parsing.rows import BadRowError
from stream.runs import parallel
from stream.runs.pipeline import Pipeline
from stream.sinks.log import SHOW_BAD_ROWS
from stream.sinks.signals import SignalSink
from stream.sources.files import Spec

ROOT = Path(__file__).resolve().parents[1]

# ---- random inputs full of what real exports contain ------------------------------------------------------------

PLAIN = st.builds(
    lambda whole, frac, form: form.format(whole=whole, frac=frac),
    st.integers(0, 10**7).map(str),
    st.integers(0, 10**4).map(str),
    st.sampled_from(["{whole}", "{whole}.{frac}", "{whole}.{frac}0", "0{whole}.{frac}", ".{frac}", "{whole}."]),
)
# Few distinct values, so windows are full of exact ties (100.1 == 100.10).
TIES = st.sampled_from(["100", "100.0", "100.00", "100.1", "100.10", "99.9", "100.2", "0.3", "0.30", ".3"])
ODD_VALUES = st.sampled_from(
    [
        "1.001e2",
        "1001E-1",
        "+100.1",
        "-0.5",
        " 100.1",
        "100.1 ",
        "123456789012345678901.5",  # more digits than int64 holds
        "99999999999999999",
        "0.000000000000000000001",  # scale 21
        "9999999999.99999999",
        "abc",
        "",
        "nan",
        "1e999999",
        "1.2.3",
        ".",
        "١٢",  # digits of another script: not a decimal number
    ]
)


@dataclass
class Layout:
    names: list[str]
    close: int


LAYOUTS = st.sampled_from(
    [
        Layout(["timestamp", "open", "close", "volume"], 2),
        Layout(["close"], 0),
        Layout(["close", "timestamp"], 0),
        Layout(["timestamp", "close"], 1),
        Layout(["a", "b", "close", "c", "d", "e", "timestamp"], 2),
    ]
)


KINDS = st.sampled_from(
    ["plain"] * 6 + ["ties"] * 6 + ["odd", "quoted", "qfield", "fields", "blank", "bytes", "spaced"]
)
BLANKS = st.sampled_from(["", "   ", "\r"])
JUNK = st.sampled_from(["é", "\x00", "\x1c", "a\rb", "\xff"])
TENTHS = st.integers(0, 9)


def line(draw: st.DrawFn, layout: Layout, row: int) -> bytes:
    """Row ``row`` of an input; drawn in ``csv_inputs`` itself, as a strategy object made for each row cost more to
    make than its draw."""
    kind = draw(KINDS)
    value = draw(ODD_VALUES if kind == "odd" else TIES if kind == "ties" else PLAIN)
    pad = " " if kind == "spaced" else ""
    fields = [f"{pad}2024-01-01 00:{row:05d}{pad}" if n == "timestamp" else f"{pad}{row % 97}" for n in layout.names]
    fields[layout.close] = '"' + value + '"' if kind == "qfield" else value
    if kind == "fields":
        fields = [*fields, "x"] if draw(st.booleans()) else fields[:-1]
    text = ",".join(fields)
    if kind == "quoted":
        text = '"' + text + '"'
    if kind == "blank":
        text = draw(BLANKS)
    raw = text.encode()
    if kind == "bytes" and len(layout.names) > 1:
        other = next(i for i in range(len(layout.names)) if i != layout.close)
        junk = draw(JUNK)
        fields[other] = junk
        raw = ",".join(fields).encode().replace("ÿ".encode(), b"\xff")
    if draw(TENTHS) == 0:
        raw += b"\r"
    return raw


@st.composite
def csv_inputs(draw: st.DrawFn) -> bytes:
    layout = draw(LAYOUTS)
    header = ",".join(layout.names)
    if draw(st.integers(0, 7)) == 0:
        header = '"' + header + '"'
    n = draw(st.integers(0, 120))
    body = [line(draw, layout, i) for i in range(n)]
    blanks = [b""] * draw(st.integers(0, 2))  # blank lines before the header are skipped
    data = b"\n".join([*blanks, header.encode(), *body])
    if draw(st.booleans()):
        data += b"\n"
    if draw(st.integers(0, 7)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data


def cuts(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """The same bytes as chunks split at random places (as a pipe delivers them)."""
    positions = st.lists(st.integers(0, max(0, len(data))), max_size=12).map(sorted)
    return positions.map(lambda p: [data[a:b] for a, b in zip([0, *p], [*p, len(data)]) if b > a])


# ---- running one input through each path ------------------------------------------------------------------------


@dataclass
class Outcome:
    rows: int | None
    signals: int | None
    skipped: int | None
    output: bytes
    bad: list[BadRow]
    error: str | None


def run_path(
    data: bytes, chunks: list[bytes] | None, window: int, policy: str, fmt: str, block: bool, mixed: float = 1.0
) -> Outcome:
    bad: list[BadRow] = []
    reader = Reader("close", policy, report=bad.append, keep_text=True)
    out = io.BytesIO()
    pipeline = Pipeline(RollingSignal(window), SignalSink(out, fmt))
    # mixed: the share of irregular runs up to which a chunk is split between numpy and the Reader (1.0: always).
    block_path = BlockReader(reader, min_block=1, irregular_runs=mixed) if block else None
    try:
        tally = pipeline.run(batches(reader, chunks if chunks is not None else [data], block_path))
    except BadRowError as exc:
        return Outcome(None, None, None, b"", bad, str(exc))
    return Outcome(tally.rows, tally.signals, tally.skipped, out.getvalue(), bad, None)


def run_workers(
    data: bytes, window: int, policy: str, fmt: str, workers: int, executor: KeptWorkers | None = None
) -> Outcome:
    bad: list[BadRow] = []
    reader = Reader("close", policy, report=bad.append, keep_text=True)
    out = io.BytesIO()
    pipeline = Pipeline(RollingSignal(window), SignalSink(out, fmt))
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        try:
            # One block per worker, however small the input: the plan's cuts are what these tests exercise.
            block_size = max(1, -(-len(data) // workers))
            options = parallel.Reading(workers, block_size=block_size, executor=executor)
            tally, _ = parallel.run([Spec(f.name)], [len(data)], reader, pipeline, options)
        except BadRowError as exc:
            return Outcome(None, None, None, b"", bad, str(exc))
    return Outcome(tally.rows, tally.signals, tally.skipped, out.getvalue(), bad, None)


def assert_same(got: Outcome, want: Outcome) -> None:
    assert got.error == want.error
    if want.error is None:
        assert (got.rows, got.signals, got.skipped) == (want.rows, want.signals, want.skipped)
        assert got.output == want.output
    # Workers hand over only the first few bad rows of each range; the log shows no more than that either.
    assert got.bad[: SHOW_BAD_ROWS + 1] == want.bad[: SHOW_BAD_ROWS + 1]


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    data=st.data(),
    source=csv_inputs(),
    window=st.integers(1, 6),
    policy=st.sampled_from(["fail", "skip"]),
    fmt=st.sampled_from(["csv", "jsonl"]),
    mixed=st.sampled_from([1.0, 1.0, 1 / 16]),
)
def test_block_path_agrees_with_row_path_at_any_chunk_boundaries(data, source, window, policy, fmt, mixed):
    want = run_path(source, None, window, policy, fmt, block=False)
    chunks = data.draw(cuts(source))
    got = run_path(source, chunks, window, policy, fmt, block=True, mixed=mixed)
    assert_same(got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=csv_inputs(),
    window=st.integers(1, 6),
    policy=st.sampled_from(["fail", "skip"]),
    workers=st.integers(2, 4),
    chunk=st.sampled_from([7, 64, 1 << 20]),
    path=st.sampled_from(["block", "row"]),
    fmt=st.sampled_from(["csv", "jsonl"]),
)
def test_workers_agree_with_one_process(kept_workers, source, window, policy, workers, chunk, path, fmt):
    want = run_path(source, None, window, policy, fmt, block=False)
    saved = {k: os.environ.get(k) for k in ("MLOPS_STREAM_PATH", "MLOPS_STREAM_CHUNK")}
    os.environ["MLOPS_STREAM_PATH"] = path
    os.environ["MLOPS_STREAM_CHUNK"] = str(chunk)
    try:
        got = run_workers(source, window, policy, fmt, workers, kept_workers(workers))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert_same(got, want)


@pytest.mark.parametrize("policy", ["fail", "skip"])
@pytest.mark.parametrize("step", [1 << 20, 4096])
def test_over_long_lines_are_bad_rows_on_every_path(policy, step):
    good = b"".join(b"2024-01-01 00:%05d,1,%d.5,2\n" % (i, 100 + i % 7) for i in range(3000))
    # A line longer than the reader's limit, with a valid close: still a bad row, found where the row path finds it.
    data = b"timestamp,open,close,volume\n" + good + b"2024-01-02,1,100.5," + b"9" * 70_000 + b"\n" + good
    want = run_path(data, None, 4, policy, "csv", block=False)
    assert (want.error or want.bad[0].describe()).count("line 3002: line is longer than 65536 bytes") == 1
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    assert_same(run_path(data, chunks, 4, policy, "csv", block=True), want)
    assert_same(run_workers(data, 4, policy, "csv", 3), want)


# ---- the pieces: exact decimals and the vectorized window --------------------------------------------------------

FIELD = st.one_of(
    PLAIN,
    TIES,
    ODD_VALUES,
    st.text(alphabet="0123456789.", max_size=20),
    st.text(alphabet="0123456789.e+- x", max_size=8),
)


@FAST
@given(st.lists(FIELD, min_size=1, max_size=40))
def test_vectorized_decimals_are_exact_or_refused(fields):
    # Lines whose close is each field: numpy takes a line only when its close is exact at the block's scale.
    parsed = parse(b"".join(b"t," + f.encode() + b"\n" for f in fields), ["ts", "close"], 1, None, keep_text=False)
    units = iter(parsed.units.tolist())
    for text, good in zip(fields, parsed.regular.tolist()):
        if good:
            whole, frac = parse_decimal(text)
            u = next(units)
            assert Fraction(u, 10**parsed.scale) == Fraction(whole, 10**frac)
            assert abs(u) < 2**63
        else:
            # Refused fields go to the row path: they are not plain digits, or too long for int64.
            plain = text.replace(".", "", 1).isdigit() and text.isascii()
            assert not plain or len(text) > 18 or len(text.partition(".")[0]) + parsed.scale > 18


VALUES = st.lists(
    st.integers(-(10**6), 10**6) | st.sampled_from([10**17, -(10**17), 9 * 10**18, -(2**63)]), max_size=30
)


@FAST
@given(
    window=st.integers(1, 8),
    blocks=st.lists(st.tuples(VALUES, st.integers(0, 4)), max_size=6),
    singles=st.lists(st.tuples(st.integers(-500, 500), st.integers(0, 3)), max_size=10),
)
def test_update_block_matches_update_row_by_row(window, blocks, singles):
    rows, block = RollingSignal(window), RollingSignal(window)
    for u, s in singles:  # a history fed row by row first, at mixed scales
        rows.update(u, s)
        block.update(u, s)
    for values, scale in blocks:
        want_sig, want_mean = [], []
        for u in values:
            want_sig.append(rows.update(u, scale))
            want_mean.append(rows.mean())
        sig, mean = block.update_block(np.array(values, dtype=np.int64).reshape(-1), scale, means=True)
        assert sig.tolist() == want_sig
        assert mean == want_mean
        assert block.state() == rows.state()
    assert block.mean() == rows.mean()


def test_update_block_means_are_the_exact_mean_rounded_once():
    engine = RollingSignal(3)
    # Sums past 2**53: float64 division of the int64 sum would round twice, so the engine divides ints.
    values = np.array([2**60 // 3 + k for k in range(10)], dtype=np.int64)
    _, means = engine.update_block(values, 0, means=True)
    assert means[:2] == [None, None]
    for i, m in enumerate(means[2:], start=2):
        assert m == float(Fraction(int(values[i - 2 : i + 1].sum()), 3))


# ---- the command end to end --------------------------------------------------------------------------------------


def in_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``cli`` run in this process (``call_main``), for runs whose input is a file: the process is not the point."""
    run = call_main(list(args), Path.cwd(), env=env)
    return subprocess.CompletedProcess(list(args), run.code, run.stdout, run.stderr.encode())


def cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stream", *args], capture_output=True, env=full_env, input=stdin, timeout=120
    )


def without_latency(raw: bytes) -> dict:
    doc = orjson.loads(raw)
    doc.pop("latency_ms", None)
    return doc


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=csv_inputs(), policy=st.sampled_from(["fail", "skip"]), window=st.integers(1, 6))
def test_cli_workers_and_paths_give_identical_files(source, policy, window):
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        src.write_bytes(source)
        results = []
        for workers, path in (("1", "row"), ("1", "block"), ("3", "block"), ("2", "row")):
            sig, met = Path(tmp) / f"s{workers}{path}.csv", Path(tmp) / f"m{workers}{path}.json"
            run = in_process(
                "--input", str(src), "--window", str(window), "--on-bad-row", policy, "--workers", workers,
                "--block-size", str(max(1, -(-len(source) // int(workers)))),  # one small block per worker
                "--signals", str(sig), "--output", str(met), "--quiet", "--config", str(ROOT / "config.yaml"),
                env={"MLOPS_STREAM_PATH": path, "MLOPS_STREAM_CHUNK": "50"},
            )  # fmt: skip
            assert b"Traceback" not in run.stderr
            ok = run.returncode == 0
            results.append((run.returncode, without_latency(met.read_bytes()), sig.read_bytes() if ok else None))
        assert all(r == results[0] for r in results[1:])


def test_cli_large_input_block_path_and_workers_match_row_path(tmp_path):
    data = tmp_path / "data.csv"
    assert in_process("generate", "--rows", "60000", "--seed", "7", "--output", str(data)).returncode == 0
    lines = data.read_bytes().split(b"\n")
    # Quirks the block path hands to the reader, spread over the ranges the workers get.
    lines[5000] = b'"' + lines[5000] + b'"'
    lines[20000] = lines[20000].replace(b",", b", ", 1)
    lines[30001] = b"2024-01-01 00:00:00,1,2,3,4.5e1,1,1"
    lines[45000] = b"   "
    lines[52000] = b"2024-01-01 00:00:00,1,2,3,oops,1,1"
    data.write_bytes(b"\r\n".join(lines))
    outs = []
    for workers, path in (("1", "row"), ("1", "block"), ("2", "block"), ("4", "auto")):
        sig, met = tmp_path / f"s{workers}{path}", tmp_path / f"m{workers}{path}"
        run = in_process(
            "--input", str(data), "--on-bad-row", "skip", "--workers", workers, "--signals", str(sig),
            "--output", str(met), "--quiet", "--log-file", str(tmp_path / "log"),
            env={"MLOPS_STREAM_PATH": path},
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outs.append((without_latency(met.read_bytes()), sig.read_bytes()))
        log = (tmp_path / "log").read_text()
        assert "line 52001: bad close value" in log
    assert outs[0][0]["rows_processed"] == 59998 and outs[0][0]["rows_skipped"] == 1
    assert all(o == outs[0] for o in outs[1:])
    # Under fail the first bad row in the file is named, whichever worker met it.
    failed = in_process("--input", str(data), "--workers", "3", "--output", str(tmp_path / "f.json"), "--quiet")
    assert failed.returncode == 1
    assert "line 52001: bad close value" in orjson.loads((tmp_path / "f.json").read_bytes())["error_message"]


def test_stdin_pipe_uses_the_block_path_and_agrees(tmp_path):
    data = tmp_path / "data.csv"
    in_process("generate", "--rows", "30000", "--seed", "3", "--output", str(data))
    row = cli("--signals", "-", "--quiet", env={"MLOPS_STREAM_PATH": "row"}, stdin=data.read_bytes())
    block = cli("--signals", "-", "--quiet", "--log-file", str(tmp_path / "log"), env={"MLOPS_STREAM_PATH": "block"},
                stdin=data.read_bytes())  # fmt: skip
    assert row.returncode == block.returncode == 0
    assert block.stdout == row.stdout and row.stdout.count(b"\n") == 30001
    assert "block path" in (tmp_path / "log").read_text()


def test_default_workers_only_for_big_regular_files():
    assert parallel.default_workers(None) == 1
    assert parallel.default_workers(parallel.PARALLEL_MIN_BYTES - 1) == 1
    assert parallel.default_workers(parallel.PARALLEL_MIN_BYTES) == len(os.sched_getaffinity(0))


def test_workers_read_stdin_when_it_is_a_regular_file(tmp_path):
    src = ROOT / "data.csv"
    outs = []
    for workers in ("1", "3"):
        with open(src, "rb") as fh:
            run = subprocess.run(
                [sys.executable, "-m", "stream", "--workers", workers, "--signals", "-", "--log-file",
                 str(tmp_path / f"log{workers}")],
                stdin=fh, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
            )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout)
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 10001
    assert "worker processes: 3" in (tmp_path / "log3").read_text()


def test_workers_on_a_pipe_fall_back_to_one_process(tmp_path):
    data = (ROOT / "data.csv").read_bytes()
    run = cli("--workers", "2", "--quiet", "--output", str(tmp_path / "m.json"), "--log-file", str(tmp_path / "log"),
              stdin=data)  # fmt: skip
    assert run.returncode == 0
    assert "reading it with one process" in (tmp_path / "log").read_text()
    assert orjson.loads((tmp_path / "m.json").read_bytes())["rows_processed"] == 10000


def test_a_killed_worker_is_a_clear_error_not_a_hang(tmp_path):
    data = tmp_path / "data.csv"
    in_process("generate", "--rows", "200000", "--seed", "5", "--output", str(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLOPS_STREAM_PATH": "row"}
    out = tmp_path / "m.json"
    cmd = [sys.executable, "-m", "stream", "--input", str(data), "--workers", "2", "--output", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children: list[int] = []
    while not children and proc.poll() is None:
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    assert children, "the run ended before its workers could be seen"
    os.kill(children[0], 9)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    message = orjson.loads(out.read_bytes())["error_message"]
    assert f"worker process {children[0]} ended without finishing its part" in message
    assert b"Traceback" not in err
