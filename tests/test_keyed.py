"""Keyed windows (--key): each key has its own exact window, keys interleave freely, and every result (signals,
means, per-key counts, metrics) equals a per-key Fraction reference; checkpoints hold every key's window."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import deque
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import write
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.batch import BadRow
from stream.core.keyed import KeyedSignal
from stream.core.tally import Tally
from stream.parsing.blocks import BlockReader
from stream.parsing.framing import InputError
from stream.parsing.reader import Reader, ReaderState, batches
from stream.runs import checkpoint
from stream.runs.pipeline import Pipeline
from stream.sinks import metrics
from stream.sinks.signals import SignalSink

# Few distinct prices, spelled several ways, so a close often equals its key's mean exactly.
PRICES = ["100.1", "100.10", "100.2", "99.9", "100.15", "1.001e2", "100", "100.05", "99.95"]
# Key spellings: padded ones read as their trimmed value; one needs quotes in CSV.
KEYS = {"A": "A", " A ": "A", "B": "B", "C": "C", '"D,E"': "D,E", "ÆØ": "ÆØ"}
BAD = {"close": "abc", "empty-key": None, "fields": None}


def reference(rows: list[tuple[str, str, str | None]], window: int):
    """Per row (for good rows): (row number, stamp, key, close, mean or None, signal); per key tallies; skipped."""
    held: dict[str, deque[Fraction]] = {}
    counts: dict[str, list[int]] = {}
    out = []
    skipped = 0
    for stamp, key, close in rows:
        if key is None or close is None:
            skipped += 1
            continue
        value = Fraction(close)
        window_of = held.setdefault(key, deque(maxlen=window))
        window_of.append(value)
        mean = sum(window_of) / window if len(window_of) == window else None
        signal = int(mean is not None and value > mean)
        c = counts.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += signal
        out.append((len(out) + 1, stamp, key, close, mean, signal))
    return out, {k: Tally(r, s) for k, (r, s) in counts.items()}, skipped


row_kinds = st.one_of(
    st.tuples(st.sampled_from(sorted(KEYS)), st.sampled_from(PRICES)),
    st.tuples(st.sampled_from(sorted(BAD)), st.none()),
)


def build(kinds: list[tuple[str, str | None]]) -> tuple[bytes, list[tuple[str, str | None, str | None]]]:
    """CSV bytes with columns timestamp,sym,close and what each row means: (stamp, key or None, close or None)."""
    lines = ["timestamp,sym,close"]
    meaning: list[tuple[str, str | None, str | None]] = []
    for i, (kind, close) in enumerate(kinds):
        stamp = f"t{i}"
        if close is not None:
            lines.append(f"{stamp},{kind},{close}")
            meaning.append((stamp, KEYS[kind], close))
        elif kind == "close":
            lines.append(f"{stamp},A,abc")
            meaning.append((stamp, "A", None))
        elif kind == "empty-key":
            lines.append(f"{stamp}, ,100.1")
            meaning.append((stamp, None, "100.1"))
        else:
            lines.append(f"{stamp},A")
            meaning.append((stamp, None, None))
    return ("\n".join(lines) + "\n").encode(), meaning


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    out, at = [], 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)):
        out.append(data[at:cut])
        at = cut
    out.append(data[at:])
    return out


@given(
    st.lists(row_kinds, max_size=120),
    st.integers(min_value=1, max_value=6),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=5),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_keyed_rows_agree_with_a_per_key_fraction_reference(kinds, window, cuts, jsonl, block) -> None:
    data, meaning = build(kinds)
    want, want_tallies, want_skipped = reference(meaning, window)
    bad: list[BadRow] = []
    out = io.BytesIO()
    keyed = KeyedSignal(window)
    pipeline = Pipeline(keyed, SignalSink(out, "jsonl" if jsonl else "csv", key="sym"))
    reader = Reader(on_bad_row="skip", report=bad.append, keep_text=True, key="sym")
    # The block path (numpy) takes every chunk it can, however small; the rest goes through the row path.
    block_path = BlockReader(reader, min_block=1) if block else None
    tally = pipeline.run(batches(reader, pieces(data, cuts), block_path))
    assert tally == Tally(len(want), sum(r[5] for r in want), want_skipped)
    assert [b.line for b in bad] == [i + 2 for i, (_s, k, c) in enumerate(meaning) if k is None or c is None]
    assert list(pipeline.by_key or {}) == list(want_tallies)  # first-seen order
    assert pipeline.by_key == want_tallies
    text = out.getvalue().decode()
    if jsonl:
        got = [json.loads(line) for line in text.splitlines()]
    else:
        got = list(csv.DictReader(io.StringIO(text))) if want else []
        if want:
            assert text.splitlines()[0] == "row,timestamp,sym,close,rolling_mean,signal"
    assert len(got) == len(want)
    for g, (row, stamp, key, close, mean, signal) in zip(got, want):
        assert list(g) == ["row", "timestamp", "sym", "close", "rolling_mean", "signal"]
        assert (int(g["row"]), g["timestamp"], g["sym"], g["close"], int(g["signal"])) == (
            row,
            stamp,
            key,
            close.strip(),
            signal,
        )
        shown = g["rolling_mean"]
        assert (None if shown in (None, "") else float(shown)) == (None if mean is None else float(mean))
    # Without a signals sink the keyed loop is another one: the counts must not differ.
    quiet = Pipeline(KeyedSignal(window))
    assert quiet.run(batches(Reader(on_bad_row="skip", key="sym"), [data])) == tally
    assert quiet.by_key == want_tallies


def split(kinds: list, cut: int) -> tuple[bytes, bytes, bytes]:
    """The data built from ``kinds``, and its lines before line ``cut`` and from it on."""
    data, _meaning = build(kinds)
    lines = data.splitlines(keepends=True)
    return data, b"".join(lines[:cut]), b"".join(lines[cut:])


@given(st.lists(row_kinds, max_size=80), st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=80))
@settings(max_examples=100, deadline=None)
def test_every_keys_window_survives_a_checkpoint(kinds, window, cut) -> None:
    data, head, tail = split(kinds, cut)
    whole = Pipeline(KeyedSignal(window))
    whole.run(batches(Reader(on_bad_row="skip", key="sym"), [data]))
    first = Pipeline(KeyedSignal(window))
    reader = Reader(on_bad_row="skip", key="sym")
    first.consume(reader.feed(head))
    # Through the checkpoint's own encoding, as a restarted run would read it.
    state = reader.state().document()
    ckpt = checkpoint.Checkpoint(None, state, first.engine.state(), first.tally, "close", None, "sym")
    back = checkpoint.Checkpoint.decode(ckpt.encode(), "test")
    assert back.key == "sym"
    second = Pipeline(KeyedSignal.from_state(back.engine))
    second.restore(back.tally)
    again = Reader(on_bad_row="skip", key="sym")
    again.restore(ReaderState.of(back.reader))
    for batch in batches(again, [tail]):
        second.consume(batch)
    assert second.tally == whole.tally
    assert second.by_key == whole.by_key
    assert list(second.by_key or {}) == list(whole.by_key or {})


@given(
    st.lists(row_kinds, max_size=80),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=80),
    st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_windows_held_without_signals_start_the_rows_after_them(kinds, window, cut, block) -> None:
    # A block of the parallel plan starts from the windows its first pass held over the rows before it, whichever
    # kind its batches are (the block path's arrays at one scale, or lists with a scale per row).
    _data, before_cut, after_cut = split(kinds, cut)
    reader = Reader(on_bad_row="skip", key="sym")
    block_path = BlockReader(reader, min_block=1) if block else None
    head = list(batches(reader, [before_cut], block_path, finish=False))
    rest = list(batches(reader, [after_cut], block_path))
    whole = KeyedSignal(window)
    want = rows_of(whole, [*head, *rest])[sum(map(len, head)) :]
    before = KeyedSignal(window)
    for batch in head:
        before.hold(batch)
    assert all(t == Tally() for t in before.tallies().values())  # held, not counted
    windows = {k: x.engine.state() for k, x in before.series.items()}
    assert rows_of(KeyedSignal.starting(window, windows), rest) == want


def rows_of(engine: KeyedSignal, fed: list) -> list[tuple[int, float | None]]:
    """Each row's signal and mean."""
    out: list[tuple[int, float | None]] = []
    for batch in fed:
        _, signals, means = engine.feed(batch, rows=True)
        out += zip(signals or [], means or [])
    return out


def test_the_metrics_document_lists_keys_after_the_usual_fields() -> None:
    doc = metrics.success("v1", 42, Tally(5, 2, 1), 3, True, {"X": Tally(3, 2), "A": Tally(2, 0)})
    assert list(doc) == [
        "version", "rows_processed", "metric", "value", "latency_ms", "seed", "status", "rows_skipped", "by_key",
    ]  # fmt: skip
    assert doc["by_key"] == {"X": {"rows_processed": 3, "value": 0.6667}, "A": {"rows_processed": 2, "value": 0.0}}
    assert "by_key" not in metrics.success("v1", 42, Tally(5, 2), 3, False)


def test_a_missing_key_column_lists_the_columns() -> None:
    with pytest.raises(InputError) as err:
        Reader(key="Symbol").feed(b"timestamp,symbol,close\n")
    message = str(err.value)
    assert "no key column 'Symbol'" in message and "'timestamp', 'symbol', 'close'" in message
    assert "closest: 'symbol'" in message and "--key NAME" in message


# ---- the command ------------------------------------------------------------------------------------------------


def symbol_file(tmp: Path, rows: int = 600, symbols: int = 4, seed: int = 3) -> Path:
    from stream import generate

    path = tmp / "sym.csv"
    with open(path, "wb") as fh:
        generate.write(fh, rows, seed, symbols=symbols)
    return path


def command_reference(path: Path, window: int) -> tuple[dict, str]:
    """The metrics fields and the signals file a keyed run of a generated symbol file must give."""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    want, tallies, _ = reference([(r["timestamp"], r["symbol"], r["close"]) for r in rows], window)
    hits = sum(w[5] for w in want)
    doc = {
        "rows_processed": len(want),
        "value": Tally(len(want), hits).rate(),
        "by_key": {k: {"rows_processed": t.rows, "value": t.rate()} for k, t in tallies.items()},
    }
    lines = ["row,timestamp,symbol,close,rolling_mean,signal"]
    lines += [f"{n},{s},{k},{c},{'' if m is None else repr(float(m))},{g}" for n, s, k, c, m, g in want]
    return doc, "\n".join(lines) + "\n"


def test_a_keyed_run_end_to_end(run_main, tmp_path: Path) -> None:
    path = symbol_file(tmp_path)
    want, signals = command_reference(path, 5)
    run = run_main(["--input", path, "--key", "symbol", "--signals", "sig.csv", "--output", "m.json"])
    assert run.code == 0, run.stderr
    doc = run.file_doc("m.json")
    assert list(doc)[-1] == "by_key"
    assert {k: doc[k] for k in want} == want
    assert list(doc["by_key"]) == ["SYM0", "SYM1", "SYM2", "SYM3"]
    assert (tmp_path / "sig.csv").read_text() == signals
    # The same key from the config file.
    write(tmp_path / "config.yaml", "seed: 42\nwindow: 5\nversion: v1\nkey: symbol\n")
    again = run_main(["--input", path, "--log-file", "run.log"])
    assert again.code == 0, again.stderr
    assert {k: again.doc()[k] for k in want} == want
    assert "key=symbol" in again.log() and "first 4 rows of each symbol value" in again.log()
    assert '"by_key": "4 keys' in again.log()


def test_keyed_errors_are_clear(run_main, tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", "timestamp,symbol,close\nt1,A,1\nt2,,2\nt3,B,3\n")
    run = run_main(["--input", path, "--key", "sym"])
    assert run.code == 1
    assert "no key column 'sym'" in run.doc()["error_message"] and "'symbol'" in run.doc()["error_message"]
    run = run_main(["--input", path, "--key", "symbol"])
    assert run.code == 1
    assert run.doc()["error_message"].startswith("bad row at line 3: empty symbol value")
    skip = run_main(["--input", path, "--key", "symbol", "--on-bad-row", "skip", "--window", "1"])
    assert skip.code == 0, skip.stderr
    assert skip.doc()["rows_skipped"] == 1
    assert skip.doc()["by_key"] == {"A": {"rows_processed": 1, "value": 0.0}, "B": {"rows_processed": 1, "value": 0.0}}
    same = run_main(["--input", path, "--key", "close"])
    assert same.code == 1 and "both 'close'" in same.doc()["error_message"]
    clash = write(tmp_path / "clash.csv", "timestamp,signal,close\nt1,A,1\n")
    run = run_main(["--input", clash, "--key", "signal", "--signals", "out.csv"])
    assert run.code == 1 and "name of a column of the signals output" in run.doc()["error_message"]
    assert run_main(["--input", path, "--key", " "]).code == 2
    run.assert_no_traceback()


# ---- follow mode: every key's window in the checkpoint ------------------------------------------------------------


def test_a_checkpoint_with_or_without_a_key_is_refused_by_the_other_kind_of_run(tmp_path: Path) -> None:
    from test_follow import _refusal, finish, start

    write(tmp_path / "live.csv", "timestamp,symbol,close\nt1,A,1\nt2,B,2\n")
    base = ("--input", "live.csv", "--follow", "--checkpoint", "ck.json")
    assert finish(start(tmp_path, *base, "--idle-timeout", "0.3"))[0] == 0
    assert "without a key" in _refusal(tmp_path, *base, "--key", "symbol")
    (tmp_path / "ck.json").unlink()
    assert finish(start(tmp_path, *base, "--key", "symbol", "--idle-timeout", "0.3"))[0] == 0
    message = _refusal(tmp_path, *base)
    assert "keyed by the column 'symbol'" in message and "has no key" in message


def test_a_keyed_follow_run_survives_kill_9_exactly(tmp_path: Path) -> None:
    from test_follow import WINDOW, finish, kill_and_restart, start, write_in_bursts

    live = tmp_path / "live.csv"
    rng = random.Random(41)
    rows = [(f"t{i}", rng.choice("ABCDE"), rng.choice(PRICES)) for i in range(1500)]
    live.write_text("timestamp,symbol,close\n")
    thread, done = write_in_bursts(live, [f"{t},{k},{c}\n" for t, k, c in rows], random.Random(42), 0.02)
    args = ("--input", "live.csv", "--follow", "--key", "symbol", "--signals", "sig.csv", "--output", "m.json",
            "--checkpoint", "ck.json")  # fmt: skip
    try:
        kill_and_restart(tmp_path, args, done, rng, min_kills=3, short_every=2)
    finally:
        thread.join()
    code, _out, err = finish(start(tmp_path, *args, "--idle-timeout", "1"))
    assert code == 0, err
    want, tallies, _ = reference(rows, WINDOW)
    lines = ["row,timestamp,symbol,close,rolling_mean,signal"]
    lines += [f"{n},{s},{k},{c},{'' if m is None else repr(float(m))},{g}" for n, s, k, c, m, g in want]
    assert (tmp_path / "sig.csv").read_text() == "\n".join(lines) + "\n"
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["rows_processed"] == len(rows) and doc["status"] == "success"
    assert doc["by_key"] == {k: {"rows_processed": t.rows, "value": t.rate()} for k, t in tallies.items()}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('key: ""', "'key' must name a column, found an empty string"),
        ("key: 3", "'key' must be a string, found int 3"),
        ("key: close", "'key' and 'column' are both 'close': the key groups rows by another column"),
    ],
)
def test_the_config_key_is_validated_like_the_others(tmp_path: Path, line: str, words: str) -> None:
    from stream import config

    path = write(tmp_path / "c.yaml", f"seed: 1\nwindow: 2\nversion: v1\n{line}\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(str(path))
    assert str(err.value) == f"config file {path}: {words}"
    ok = write(tmp_path / "ok.yaml", "seed: 1\nwindow: 2\nversion: v1\nkey: symbol\n")
    assert config.simple_yaml(ok.read_text()) is not None  # a plain word stays on the fast path
    assert config.load(str(ok)).key == "symbol"


def test_keys_that_never_fill_their_window_are_counted_in_a_warning(run_main, tmp_path: Path) -> None:
    # A: 4 rows, B: 2, C: 1; window 3: only A's rows 3 and 4 have a mean.
    rows = ["A", "B", "A", "C", "A", "B", "A"]
    write(tmp_path / "k.csv", "symbol,close\n" + "".join(f"{k},{i}\n" for i, k in enumerate(rows, 1)))
    run = run_main(["--input", "k.csv", "--key", "symbol", "--window", "3", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    said = (
        "2 of 3 keys (symbol values) have fewer rows than the window (3) and never had a rolling mean: their signals "
        "are all 0; 2 of 7 rows had a mean"
    )
    assert run.stderr == f"mlops-stream: warning: {said}\n"
    assert f"WARNING {said}" in run.log()
    assert run.doc()["by_key"]["B"]["value"] == 0.0
    full = run_main(["--input", "k.csv", "--key", "symbol", "--window", "1"])
    assert (full.code, full.stderr) == (0, "")
