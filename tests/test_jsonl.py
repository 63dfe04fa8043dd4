"""JSON Lines end to end: candles written as CSV and as JSON Lines (closes as strings, as numbers, inside Binance
kline events) give the same metrics and signals from a file and from a pipe, on the row path, the block path and
workers; ties written differently are ties; broken lines name their line; a growing file followed and a checkpoint
restart after kill -9 give the one-run answer; our own JSON Lines signals read back. Pipes, --follow and Dask run the
real command in a process of its own; the rest run it in this one (``call_main``)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import re
import time
from pathlib import Path

import pytest
from conftest import Run, call_main, read_signals_csv, run_command, write
from test_follow import CKPT, append, check, finish, kill_and_restart, start, wait_for, write_in_bursts

needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="dask[distributed] is not installed (the test extra has it)"
)
# Few distinct prices written several ways, so windows hold exact ties: 100.1 == 100.10 == 1.001e2.
PRICES = ["100.1", "100.10", "100.2", "99.9", "100.15", "1.001e2", "100", "100.05", "42005.96", "1001E-1"]
KLINE_START = 1_700_000_000_000  # milliseconds, as Binance writes times


def candles(n: int, seed: int) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    return [(i, rng.choice(PRICES)) for i in range(n)]


def stamp(i: int, form: str) -> str:
    return str(KLINE_START + 60_000 * i) if form == "nested" else f"2024-01-01 {i // 60 % 24:02d}:{i % 60:02d}:00"


def as_csv(rows: list[tuple[int, str]], form: str) -> str:
    return "timestamp,open,close,volume\n" + "".join(f"{stamp(i, form)},100.00,{c},1.5\n" for i, c in rows)


def as_jsonl(rows: list[tuple[int, str]], form: str) -> str:
    """The same candles as JSON Lines: closes as strings, as numbers (their digits as written), or Binance klines."""
    lines = []
    for i, c in rows:
        if form == "nested":
            t = KLINE_START + 60_000 * i
            k = {"t": t, "T": t + 59_999, "s": "BTCUSDT", "i": "1m", "o": "100.00", "c": c, "x": True}
            lines.append(json.dumps({"e": "kline", "E": t, "s": "BTCUSDT", "k": k}, separators=(",", ":")))
        elif form == "numbers":
            lines.append(f'{{"timestamp": "{stamp(i, form)}", "open": 100.00, "close": {c}, "volume": 1.5}}')
        else:
            lines.append(json.dumps({"timestamp": stamp(i, form), "open": "100.00", "close": c, "volume": "1.5"}))
    return "".join(line + "\n" for line in lines)


def metrics(run: Run, name: str = "m.json") -> dict:
    doc = run.file_doc(name)
    doc.pop("latency_ms")
    return doc


FORMS = ["strings", "numbers", "nested"]
PATHS = {
    "row": ([], {"MLOPS_STREAM_PATH": "row"}),
    "block": ([], {"MLOPS_STREAM_PATH": "block", "MLOPS_STREAM_CHUNK": "4096"}),
    "workers": (["--workers", "2", "--block-size", "40000"], {"MLOPS_STREAM_PATH": "block"}),
}


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, dict]]:
    """The signals and metrics of the CSV each form comes from, read by one process."""
    out = {}
    for form in FORMS:
        tmp = tmp_path_factory.mktemp(f"csv-{form}")
        write(tmp / "in.csv", as_csv(candles(3000, 5), form))
        run = call_main(["--input", "in.csv", "--signals", "s.csv", "--output", "m.json", "--quiet"], tmp)
        assert run.code == 0, run.stderr
        out[form] = ((tmp / "s.csv").read_bytes(), metrics(run))
    return out


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("form", FORMS)
def test_json_lines_give_the_answers_of_the_csv_they_came_from(tmp_path: Path, references, form: str, path: str):
    write(tmp_path / "in.jsonl", as_jsonl(candles(3000, 5), form))
    extra, env = PATHS[path]
    column = ["--column", "k.c"] if form == "nested" else []
    args = ["--input", "in.jsonl", *column, "--signals", "s.csv", "--output", "m.json", "--log-file", "run.log"]
    run = call_main([*args, "--quiet", *extra], tmp_path, env=env)
    assert run.code == 0, run.stderr
    signals, doc = references[form]
    assert (tmp_path / "s.csv").read_bytes() == signals
    assert metrics(run) == doc
    log = run.log()
    assert "input layout: JSON Lines (its first line starts with '{')" in log
    assert ("time field 'E'" if form == "nested" else "time field 'timestamp'") in log
    if path == "workers":
        assert "worker processes: 2 over" in log
    if path == "block":  # numpy reads the lines but the first chunk's and those cut by a chunk's end
        found = re.search(r"block path: (\d+) lines parsed with numpy", log)
        assert found is not None and int(found.group(1)) > 2500


@pytest.mark.parametrize("form", FORMS)
def test_a_pipe_gives_the_answers_of_the_file(tmp_path: Path, references, form: str) -> None:
    column = ["--column", "k.c"] if form == "nested" else []
    data = as_jsonl(candles(3000, 5), form).encode()
    run = run_command([*column, "--signals", "s.csv", "--output", "m.json", "--quiet"], tmp_path, stdin=data)
    assert run.code == 0, run.stderr
    assert (tmp_path / "s.csv").read_bytes() == references[form][0] and metrics(run) == references[form][1]
    # The same events followed on a pipe that closes: the live run's answer is the batch run's.
    follow = run_command([*column, "--follow", "--signals", "f.csv", "--output", "f.json", "--quiet"], tmp_path,
                         stdin=data)  # fmt: skip
    assert follow.code == 0, follow.stderr
    assert (tmp_path / "f.csv").read_bytes() == references[form][0] and metrics(follow, "f.json") == references[form][1]


@needs_dask
def test_a_dask_cluster_gives_the_answers_of_one_process(tmp_path: Path, references, dask_scheduler: str) -> None:
    write(tmp_path / "in.jsonl", as_jsonl(candles(3000, 5), "strings"))
    args = ["--input", str(tmp_path / "in.jsonl"), "--signals", "s.csv", "--output", "m.json", "--quiet"]
    run = run_command([*args, "--scheduler", dask_scheduler, "--block-size", "40000"], tmp_path, timeout=180)
    assert run.code == 0, run.stderr
    assert (tmp_path / "s.csv").read_bytes() == references["strings"][0] and metrics(run) == references["strings"][1]


def test_ties_written_differently_are_ties(tmp_path: Path) -> None:
    same = ['"100.10"', "100.1", '"1.001e2"', "100.100", '"1001E-1"', "1.0010e+2", '"100.1"', "100.10"]
    write(tmp_path / "in.jsonl", "".join(f'{{"t": {i}, "close": {c}}}\n' for i, c in enumerate(same)))
    run = call_main(["--input", "in.jsonl", "--window", "3", "--signals", "s.csv", "--quiet"], tmp_path)
    assert run.code == 0, run.stderr
    rows = read_signals_csv((tmp_path / "s.csv").read_text())
    assert [r["signal"] for r in rows] == ["0"] * len(same)  # the close equals its mean: never above it
    assert {r["rolling_mean"] for r in rows[2:]} == {"100.1"}
    assert [r["close"] for r in rows] == [c.strip('"') for c in same]  # each close as written


def test_a_broken_line_names_its_line_and_follows_the_bad_row_policy(tmp_path: Path) -> None:
    good = [f'{{"ts": "{i}", "close": "100.{i}"}}' for i in range(20)]
    lines = [*good[:4], '{"ts": "4", "close": "100.4"', *good[5:9], '{"ts": "9"}', '["x"]', *good[11:]]
    write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    failed = call_main(["--input", "in.jsonl"], tmp_path)
    assert failed.code == 1
    assert "bad row at line 5: broken JSON: Expecting ',' delimiter at column 29" in failed.stderr
    skipped = call_main(["--input", "in.jsonl", "--on-bad-row", "skip", "--output", "m.json"], tmp_path)
    assert skipped.code == 0, skipped.stderr
    assert skipped.file_doc("m.json")["rows_processed"] == 17 and skipped.file_doc("m.json")["rows_skipped"] == 3
    assert "line 10: the close value is missing (no close field)" in skipped.stderr
    assert "line 11: an array, not a JSON object" in skipped.stderr
    strict = call_main(["--input", "in.jsonl", "--on-bad-row", "skip", "--max-skipped", "0.1"], tmp_path)
    assert strict.code == 1 and "3 of 20 data rows (15.0%) were bad and skipped" in strict.stderr


def test_our_own_json_lines_signals_read_back(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", as_csv(candles(500, 9), "strings"))
    first = call_main(["--input", "in.csv", "--signals", "s.jsonl", "--signals-format", "jsonl", "--output",
                         "a.json"], tmp_path)  # fmt: skip
    assert first.code == 0, first.stderr
    again = call_main(["--input", "s.jsonl", "--signals", "again.csv", "--output", "b.json", "--log-file",
                         "run.log"], tmp_path)  # fmt: skip
    assert again.code == 0, again.stderr
    assert metrics(again, "b.json") == metrics(first, "a.json")
    direct = call_main(["--input", "in.csv", "--signals", "direct.csv", "--quiet"], tmp_path)
    assert direct.code == 0 and (tmp_path / "again.csv").read_bytes() == (tmp_path / "direct.csv").read_bytes()
    log = again.log()
    assert "close field 'close'; time field 'timestamp'" in log


def test_a_growing_file_followed_gives_the_one_run_answer(tmp_path: Path) -> None:
    live = tmp_path / "live.jsonl"
    rows = [(str(i), c) for i, c in candles(400, 12)]
    lines = [f'{{"timestamp":"{t}","close":{c}}}\n' for t, c in rows]
    live.write_text("".join(lines[:50]))
    p = start(tmp_path, "--input", "live.jsonl", "--follow", "--signals", "sig.csv", "--output", "m.json")
    try:
        wait_for(lambda: (tmp_path / "sig.csv").exists() and (tmp_path / "sig.csv").read_text().count("\n") > 50,
                 "the first rows")  # fmt: skip
        rng = random.Random(3)
        for at in range(50, 400, 70):
            append(live, "".join(lines[at : at + 70]), rng)
            time.sleep(0.05)
        wait_for(lambda: (tmp_path / "sig.csv").read_text().count("\n") == 401, "every row")
    finally:
        code, _out, err = finish(p, 15)
    assert code == 0, err
    check(tmp_path, rows)


def test_a_checkpoint_restart_after_kill_9_gives_the_one_run_answer(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"  # the name the shared helpers follow; its lines are JSON
    rows = [(str(i), c) for i, c in candles(1500, 21)]
    live.write_text("")
    lines = [f'{{"timestamp": "{t}", "close": "{c}"}}\n' for t, c in rows]
    thread, done = write_in_bursts(live, lines, random.Random(22), 0.03)
    try:
        kill_and_restart(tmp_path, CKPT, done, random.Random(23), min_kills=3, short_every=3)
    finally:
        thread.join()
    code, _out, err = finish(start(tmp_path, *CKPT, "--idle-timeout", "1"))
    assert code == 0, err
    check(tmp_path, rows)
    assert "input layout: JSON Lines" in (tmp_path / "run.log").read_text()


def test_compressed_json_lines_and_reverse_give_the_csv_answers(tmp_path: Path) -> None:
    rows = candles(2000, 31)
    write(tmp_path / "in.csv", as_csv(rows, "strings"))
    write(tmp_path / "in.jsonl.gz", gzip.compress(as_jsonl(rows, "strings").encode()))
    write(tmp_path / "in.jsonl", as_jsonl(rows, "strings"))
    got = {}
    for name, extra in (("in.csv", []), ("in.jsonl.gz", []), ("in.csv", ["--reverse"]), ("in.jsonl", ["--reverse"])):
        tag = f"{name}{''.join(extra)}"
        run = call_main(["--input", name, *extra, "--signals", f"{tag}.csv", "--quiet"], tmp_path)
        assert run.code == 0, run.stderr
        got[tag] = (tmp_path / f"{tag}.csv").read_bytes()
    assert got["in.jsonl.gz"] == got["in.csv"]
    assert got["in.jsonl--reverse"] == got["in.csv--reverse"] != got["in.csv"]


def test_a_key_groups_json_lines_as_it_groups_csv(tmp_path: Path) -> None:
    rng = random.Random(41)
    picked = [(rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"]), rng.choice(PRICES)) for _ in range(1500)]
    write(tmp_path / "in.csv", "s,close\n" + "".join(f"{s},{c}\n" for s, c in picked))
    write(tmp_path / "in.jsonl", "".join(json.dumps({"s": s, "k": {"c": c}}) + "\n" for s, c in picked))
    csv_run = call_main(["--input", "in.csv", "--key", "s", "--signals", "a.csv", "--output", "a.json"], tmp_path)
    json_run = call_main(["--input", "in.jsonl", "--key", "s", "--column", "k.c", "--signals", "b.csv", "--output",
                            "b.json"], tmp_path)  # fmt: skip
    assert csv_run.code == json_run.code == 0, json_run.stderr
    assert metrics(json_run, "b.json") == metrics(csv_run, "a.json")
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()


@pytest.mark.parametrize("path", ["row", "block"])
def test_lines_without_the_key_are_bad_rows_on_every_path(tmp_path: Path, path: str) -> None:
    # Whole chunks of lines without the key field, after a first line that has it.
    lines = [json.dumps({"s": "A", "close": "100"})] + [json.dumps({"close": str(100 + i % 7)}) for i in range(20000)]
    write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    args, env = PATHS[path]
    run = call_main([*args, "--input", "in.jsonl", "--key", "s", "--on-bad-row", "skip", "--max-skipped", "1",
                       "--output", "m.json"], tmp_path, env=env)  # fmt: skip
    assert run.code == 0, run.stderr
    assert metrics(run)["rows_processed"] == 1 and metrics(run)["rows_skipped"] == 20000
    assert "line 2: " in run.stderr and "internal error" not in run.stderr


def test_formats_are_told_per_input_and_a_mix_is_an_error_naming_both(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", as_csv(candles(10, 1), "strings"))
    write(tmp_path / "b.jsonl", as_jsonl(candles(10, 2), "strings"))
    mixed = call_main(["--input", "*"], tmp_path)
    assert mixed.code == 1
    assert "b.jsonl line 1 is JSON Lines" in mixed.stderr and "but a.csv is CSV: a run reads one format" in mixed.stderr
    forced = call_main(["--input", "b.jsonl", "--format", "csv"], tmp_path)
    assert forced.code == 1 and "it looks like JSON Lines, not CSV" in forced.stderr
    wrong = call_main(["--input", "a.csv", "--format", "jsonl"], tmp_path)
    assert wrong.code == 1 and "the first line (line 1) is not a JSON object (broken JSON:" in wrong.stderr
    write(tmp_path / "config.yaml", "seed: 1\nwindow: 3\nversion: v1\nformat: jsonl\n")
    configured = call_main(["--input", "b.jsonl", "--output", "m.json", "--log-file", "run.log"], tmp_path)
    assert configured.code == 0, configured.stderr
    assert "input layout: JSON Lines (--format jsonl)" in configured.log()


def test_a_field_that_is_not_there_is_named_with_the_fields_that_are(tmp_path: Path) -> None:
    event = {"e": "kline", "E": KLINE_START, "s": "BTCUSDT", "k": {"t": KLINE_START, "c": "42000.10", "x": False}}
    write(tmp_path / "in.jsonl", json.dumps(event) + "\n")
    run = call_main(["--input", "in.jsonl"], tmp_path)
    assert run.code == 1
    assert (
        "the first object (line 1) has no field 'close'; fields found: 'e', 'E', 's', 'k.t', 'k.c', 'k.x'" in run.stderr
    )
    assert "closest: 'k.c'" in run.stderr and "--column NAME" in run.stderr
    flat = call_main(["--input", "-", "--output", "m.json", "--log-file", "run.log"], tmp_path,
                       stdin=(json.dumps(event["k"]) + "\n").encode())  # fmt: skip
    assert flat.code == 0, flat.stderr  # jq '.k': its c is the close, its t the time, by the column rule
    assert "close field 'c'; time field 't'" in flat.log()
    assert "the close is the field 'c', the close's name in the short keys of Binance" in flat.stderr
    assert flat.file_doc("m.json")["rows_processed"] == 1


def test_a_checkpoint_keeps_the_format_it_read(tmp_path: Path) -> None:
    write(tmp_path / "live.jsonl", "".join(f'{{"t": {i}, "close": "{c}"}}\n' for i, c in candles(30, 3)))
    args = ["--input", "live.jsonl", "--follow", "--checkpoint", "ck.json", "--idle-timeout", "0.3", "--quiet"]
    first = run_command(args, tmp_path)
    assert first.code == 0, first.stderr
    assert json.loads((tmp_path / "ck.json").read_text())["reader"]["layout"]["format"] == "jsonl"
    again = run_command([*args, "--format", "csv"], tmp_path)
    assert again.code == 1 and "--format csv: the checkpoint's run read the input as jsonl" in again.stderr
