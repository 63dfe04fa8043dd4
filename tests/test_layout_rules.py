"""The rules for real exports on generated inputs: column choice, delimiters, headerless files, title lines, thousands
separators and decimal commas, missing values, the skipped-rows guard, newest-first files, bounded messages, and
the layout travelling to every path (chunks, block path, workers, checkpoints, follow)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ROOT, KeptWorkers, call_main, run_command, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.batch import BadRow, Batch
from stream.core.engine import RollingSignal
from stream.parsing.blocks import BlockReader
from stream.parsing.framing import InputError
from stream.parsing.header import HOLD, Found, Sample, find_header
from stream.parsing.layout import LayoutRequest
from stream.parsing.plain import chunk_rows
from stream.parsing.reader import Reader, ReaderState, batches
from stream.parsing.rows import BadRowError, BadRows, Rows
from stream.runs import parallel
from stream.runs.pipeline import Pipeline
from stream.sinks.signals import SignalSink
from stream.sources.files import Spec


def read(
    data: bytes | list[bytes], skip: bool = False, key: str | None = None, **asked: object
) -> tuple[list[Fraction], list[BadRow], Reader]:
    """The exact closes and bad rows ``Reader`` makes of ``data`` (bytes, or pieces pushed one after another)."""
    bad: list[BadRow] = []
    request = LayoutRequest(**asked)  # type: ignore[arg-type]
    reader = Reader(on_bad_row="skip" if skip else "fail", report=bad.append, request=request, key=key)
    values = []
    for batch in batches(reader, [data] if isinstance(data, bytes) else data):
        values += [Fraction(u, 10**s) for u, s in zip(batch.units, batch.scales)]
    return values, bad, reader


def error(data: bytes, **asked: object) -> str:
    with pytest.raises(InputError) as info:
        read(data, **asked)
    return str(info.value)


F = Fraction
Workers = Callable[[int], KeptWorkers]  # the kept_workers fixture
BLOCK_PATH = {"MLOPS_STREAM_PATH": "block", "MLOPS_STREAM_CHUNK": "40"}

# ---- 1. the close column ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "taken"),
    [
        ("Date,Open,Close,Adj Close", "Close"),
        ("DATE,OPEN,CLOSE", "CLOSE"),
        ("<DATE>,<OPEN>,<CLOSE>,<VOL>", "<CLOSE>"),
        ("date,1. open,4. close,5. volume", "4. close"),
        ("Date,Price,Open", "Price"),
        ("Data,Otwarcie,Zamkniecie", "Zamkniecie"),
        ("Adj Close,close,x", "close"),
        ("Date,Open,Last", "Last"),
        ("Dates,PX_OPEN,PX_LAST", "PX_LAST"),
        ("Datum,Eröffnung,Schlusskurs", "Schlusskurs"),
        ("Datum,Schluss,Volumen", "Schluss"),
        ("Date,Last,Adj Close", "Last"),
        ("Date,Last,Close", "Close"),  # a later name never over the close's own name,
        ("Date,<CLOSE>,Last", "<CLOSE>"),  # nor over a close name the rule knew before it
        ("Date,Price,PX_LAST", "Price"),
    ],
)
def test_the_close_is_found_by_name_case_or_exporter_and_the_log_says_why(header: str, taken: str) -> None:
    names = header.split(",")
    row = ",".join(str(i + 1) for i in range(len(names)))
    values, _, reader = read(f"{header}\n{row}\n".encode())
    assert reader.layout is not None
    assert values == [F(names.index(taken) + 1)]
    if taken != "close":
        assert any(repr(taken) in w for w in reader.layout.warnings)
    else:
        assert reader.layout.warnings == []


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Date,Adj Close,Volume", "no column 'close'"),  # an adjusted close is never taken for the close
        ("Date,Close,CLOSE", "several columns named 'close' ignoring case"),
        ("Date,Price,<CLOSE>", "several columns that may be the close"),
        ("Date,Last,PX_LAST", "several columns that may be the close"),
        ("Datum,Schlusskurs,Schluss", "several columns that may be the close"),
        ("Date,Last Price,Adj Close", "no column 'close'"),
    ],
)
def test_the_close_is_never_an_adjusted_one_nor_a_silent_choice(header: str, says: str) -> None:
    message = error(f"{header}\n1,2,3\n".encode())
    assert says in message and "--column NAME" in message


NAMES = ["Adj Close", "adjClose", "Adj. Close", "Close", "close", "CLOSE", "Price", "<CLOSE>", "4. close", "Open",
         "High", "Volume", "Date", "Close Time", "closing", "Last", "PX_LAST", "Schlusskurs", "Last Price",
         "Adj Last"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
def test_the_close_taken_is_never_a_misread_column(names: list[str]) -> None:
    row = ",".join(str(i + 1) for i in range(len(names)))
    try:
        values, _, reader = read(f"{','.join(names)}\n{row}\n{row}\n".encode())
    except InputError as exc:
        assert "--column" in str(exc)
        return
    taken = names[int(values[0]) - 1]
    # Never an adjusted close, a time, "closing" or "Last Price".
    assert taken.lower() in ("close", "<close>", "4. close", "price", "last", "px_last", "schlusskurs")
    exact = [n for n in names if n == "close"]
    same = [n for n in names if n.lower() == "close"]
    known = [n for n in names if n.lower() in ("<close>", "4. close", "price")]
    # The exact name first, then the one match ignoring case, then an exporter's close name before a later one.
    assert taken == (exact or same or known or [taken])[0]
    assert reader.layout is not None and (taken == "close") == (reader.layout.warnings == [])


def test_a_close_taken_by_its_name_that_holds_no_prices_never_makes_a_success(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-{d:02d},1.5,10:00:{d:02d}\n" for d in range(1, 11))
    write(tmp_path / "in.csv", "Date,Open,Last\n" + rows)
    failed = call_main(["--input", "in.csv", "--output", "m.json"], tmp_path)
    assert failed.code == 1 and "bad Last value: '10:00:01'" in failed.file_doc("m.json")["error_message"]
    skipped = call_main(["--input", "in.csv", "--output", "m.json", "--on-bad-row", "skip"], tmp_path)
    assert skipped.code == 1 and skipped.file_doc("m.json")["status"] == "error"
    assert "the close is the column 'Last'" in skipped.stderr


def test_column_by_name_or_position_overrides_the_choice() -> None:
    data = b"Date,Close,Adj Close\n1,2,3\n"
    assert read(data, column="Adj Close")[0] == [F(3)]
    assert read(data, column="3")[0] == [F(3)]
    assert "numbered 1 to 3" in error(data, column="4")


def test_a_huge_header_is_listed_in_part() -> None:
    header = ",".join(f"col{i}" for i in range(10_000))
    message = error(f"{header}\n".encode())
    assert "... and 9980 more" in message and len(message) < 1500


# ---- 2. delimiters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_the_delimiter_is_sniffed_from_the_header(sep: str, wrapped: bool) -> None:
    lines = [sep.join(r) for r in (["ts", "open", "close"], ["2024-01-01", "1.5", "2.25"], ["2024-01-02", "3", "4"])]
    if wrapped:
        lines = [f'"{ln}"' for ln in lines]
    values, _, reader = read(("\r\n".join(lines) + "\r\n").encode())
    assert values == [F("2.25"), F(4)]
    assert reader.layout is not None and reader.layout.delimiter == sep


def test_an_ambiguous_header_is_settled_by_the_data_lines() -> None:
    # The header has both ; and , in it; only ; splits the data lines into as many fields.
    data = b"time;open,bid;close\n2024;1,5;7\n2025;2,5;8\n"
    values, _, reader = read(data, decimal=",")
    assert reader.layout is not None and reader.layout.delimiter == ";"
    assert values == [F(7), F(8)]


def test_a_forced_delimiter_wins() -> None:
    data = b"a|b;close\n1|2;3\n"
    assert read(data, delimiter=";")[0] == [F(3)]


# ---- 3. files without a header ------------------------------------------------------------------------------------


def test_a_first_line_of_data_is_shown_numbered_with_the_flag_to_pass() -> None:
    message = error(b"2023.04.24,10:00,1.09742,1.09877,1.09653,1.09863,4056\r\n")
    assert "1=2023.04.24 2=10:00 3=1.09742" in message and "7=4056" in message
    assert "--no-header --column N" in message


def test_no_header_reads_the_close_by_position() -> None:
    data = b"2023.04.24;10:00;1,5;9\n2023.04.24;11:00;2,5;9\n"
    assert read(data, header=False, column="3")[0] == [F("1.5"), F("2.5")]
    assert "pass --column N" in error(data, header=False)


def test_no_header_names_the_key_by_position_too() -> None:
    data = b"BTC,1\nETH,2\nBTC,3\n"
    values, _, reader = read(data, header=False, column="2", key="1")
    assert values == [F(1), F(2), F(3)] and reader.layout is not None and reader.layout.key_index == 0
    assert "pass --column N and --key N" in error(data, header=False, column="2", key="sym")


def test_the_layout_comes_from_the_config_and_a_flag_overrides_it(tmp_path: Path) -> None:
    write(tmp_path / "in.txt", "junk line\n2024.01.02;1,5;7\n2024.01.03;2,5;8\n")
    config = 'seed: 1\nwindow: 1\nversion: "v"\nheader: false\ncolumn: 2\ndelimiter: ";"\nskip_lines: 1\n'
    write(tmp_path / "c.yaml", config + "decimal: ','\nmax_skipped: 0.25\n")
    base = ["--input", "in.txt", "--config", "c.yaml", "--signals", "-", "--log-file", "run.log"]
    run = call_main(base, tmp_path)
    assert run.code == 0, run.stderr
    # The first column tells the rows' order, so it is the signals' timestamp.
    assert [r[1:3] for r in csv.reader(run.out.splitlines()[1:])] == [["2024.01.02", "1.5"], ["2024.01.03", "2.5"]]
    assert "header=False skip_lines=1 decimal=',' max_skipped=0.25" in run.log()
    flagged = call_main([*base, "--column", "3"], tmp_path)
    assert [r[2] for r in csv.reader(flagged.out.splitlines()[1:])] == ["7", "8"]


# ---- 4. a title line above the header; --skip-lines --------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_a_title_line_above_the_header_is_skipped_at_any_chunking(step: int) -> None:
    data = b"https://www.CryptoDataDownload.com\nunix,close\n3,10.5\n2,11\n"
    values, _, reader = read([data[i : i + step] for i in range(0, len(data), step)])
    assert values == [F("10.5"), F(11)]
    assert reader.layout is not None and any("title line" in n for n in reader.layout.notes)


def test_the_header_is_found_from_the_first_lines_alone() -> None:
    # find_header is a pure function of a file's first lines, as csv.Sniffer is of a sample.
    title = "https://www.CryptoDataDownload.com"
    asked = LayoutRequest()
    assert find_header(Sample([title], final=False), asked) == HOLD  # the next line tells whether it is a title
    found = find_header(Sample([title, "unix,close", "3,10.5"], final=False), asked)
    assert isinstance(found, Found) and (found.start, found.header) == (2, "unix,close")
    assert found.layout.header_line == 2 and any("title line" in n for n in found.layout.notes)
    assert find_header(Sample(["", "  "], final=False), asked) is None  # only blank lines so far
    assert find_header(Sample(["junk", "close", "1"]), asked, skip=1).start == 2  # type: ignore[union-attr]
    # A later file's header must be the first file's; its data starts after it, or at once without one.
    later = find_header(Sample(["unix,close", "4,12"]), asked, known=found)
    assert isinstance(later, Found) and (later.start, later.layout) == (1, found.layout)
    with pytest.raises(InputError, match="differs from the first one"):
        find_header(Sample(["unix,open,close", "4,1,12"]), asked, known=found)


def test_a_possible_title_line_is_not_held_behind_an_endless_line() -> None:
    from stream.parsing.framing import MAX_LINE_BYTES

    reader = Reader(on_bad_row="skip")
    reader.feed(b"https://example.com\n")
    assert reader.layout is None and reader.pending  # held: the next line tells whether it is a title
    with pytest.raises(InputError, match="has no column 'close'"):  # decided once the next line is over-long
        for _ in range(40):
            reader.feed(b"y" * 4096)
            assert len(reader.pending) <= MAX_LINE_BYTES + 4096 + 32


def test_a_one_column_file_is_not_mistaken_for_a_title() -> None:
    assert read(b"close\n1\n2\n")[0] == [F(1), F(2)]
    values, bad, _ = read(b"close\n1,5\n2\n", skip=True)
    assert values == [F(2)] and bad[0].kind == "fields"


def test_skip_lines_skips_anything_above_the_header() -> None:
    data = b"exported by X, 2024\nsymbol: BTC\nts,close\n1,2\n"
    assert read(data, skip_lines=2)[0] == [F(2)]


# ---- 5. thousands separators and decimal commas -------------------------------------------------------------------


def test_quoted_thousands_are_exact_and_only_when_well_formed() -> None:
    data = b'Date,Close\n1,"41,903.50"\n2,"1,001.27"\n3,999.5\n4,"1,2,3"\n5,"12,34"\n'
    values, bad, _ = read(data, skip=True)
    assert values == [F("41903.50"), F("1001.27"), F("999.5")]
    assert [(b.line, b.kind) for b in bad] == [(5, "value"), (6, "value")]


def test_a_decimal_comma_is_read_when_unambiguous_and_named_otherwise() -> None:
    assert read(b"ts;close\n1;1,09863\n2;1,5\n")[0] == [F("1.09863"), F("1.5")]
    with pytest.raises(BadRowError, match=r"--decimal , or --decimal \."):
        read(b"ts;close\n1;1,234\n")
    assert read(b"ts;close\n1;1,234\n", decimal=",")[0] == [F("1.234")]
    assert read(b"ts;close\n1;1,234\n", decimal=".")[0] == [F(1234)]
    assert read(b"ts;close\n1;1.234,5\n", decimal=",")[0] == [F("1234.5")]
    assert read(b"ts;close\n1;1.234,5\n2;1.234.567,25\n")[0] == [F("1234.5"), F("1234567.25")]
    # A signed value with three decimals in a dot-decimal file has no comma to contradict the mark.
    assert read(b"ts,close\n1,1.5\n2,+1.234\n3,-0.000\n")[0] == [F("1.5"), F("1.234"), F(0)]


# What each value means under each decimal mark (None: a bad row), and the mark it tells when none is known yet.
MARKED: dict[str, tuple[str | None, Fraction | None, Fraction | None]] = {
    # text: (the mark it tells, its value with the dot, its value with the comma)
    "1.234,50": (",", None, F("1234.50")),
    "1.234.567": (",", None, F(1234567)),
    "1,5": (",", None, F("1.5")),
    "99,95": (",", None, F("99.95")),
    "1,234.5": (".", F("1234.5"), None),
    "1,234,567": (".", F(1234567), None),
    "1.5": (".", F("1.5"), None),
    "100.10": (".", F("100.10"), None),
    "1.235": (None, F("1.235"), F(1235)),  # ambiguous until the mark is known
    "1,234": (None, F(1234), F("1.234")),
    "12": (None, F(12), F(12)),  # no mark: the same either way
}


def marked_reference(
    closes: list[str], table: dict[str, tuple[str | None, Fraction | None, Fraction | None]] = MARKED
) -> tuple[list[Fraction], list[int]]:
    """The values of a file's closes in order, one decimal mark for the file from the first value that tells it (per
    ``table``, laid out as MARKED), and the 0-based rows that are bad: a value needing the mark before it is known,
    or contradicting it."""
    mark: str | None = None
    values, bad = [], []
    for i, text in enumerate(closes):
        tells, dot, comma = table[text]
        if mark is None and tells is not None:
            mark = tells
        value = dot if mark == "." else comma if mark == "," else (dot if dot == comma else None)
        if value is None:
            bad.append(i)
        else:
            values.append(value)
    return values, bad


def test_one_decimal_mark_per_file_from_the_first_value_that_tells_it() -> None:
    assert read(b"Date;Close\n1;1.234,50\n2;1.235\n3;1.236,5\n")[0] == [F("1234.5"), F(1235), F("1236.5")]
    assert read(b"Date;Close\n1;1,5\n2;1.000\n")[0] == [F("1.5"), F(1000)]
    assert read(b"Date\tClose\n1\t12\n2\t1.5\n3\t1,234\n")[0] == [F(12), F("1.5"), F(1234)]
    with pytest.raises(BadRowError, match=r"line 3: .*'1,5' has a ',' but the file's decimal mark is '\.' \(--dec"):
        read(b"Date;Close\n1;1.5\n2;1,5\n")
    with pytest.raises(BadRowError, match=r"line 3: .*'1\.5' has a '\.' but the file's decimal mark is ','"):
        read(b"Date;Close\n1;2,5\n2;1.5\n")
    for ambiguous in ("1.234", "1,234"):  # never guessed: the mark is not known yet
        with pytest.raises(BadRowError, match=r"line 2: .*--decimal , or --decimal \."):
            read(f"Date;Close\n1;{ambiguous}\n2;1,5\n".encode())
    values, bad, reader = read(b"Date;Close\n1;1.234\n2;1,5\n3;1.234\n", skip=True)
    assert values == [F("1.5"), F(1234)] and [b.line for b in bad] == [2] and reader.decimal == ","
    assert read(b"Date;Close\n1;1.234\n", decimal=".")[0] == [F("1.234")]  # --decimal settles it from the start


def test_a_file_mixing_decimal_marks_is_never_read_value_by_value(tmp_path: Path) -> None:
    write(tmp_path / "mix.csv", "Date;Close\n2024-01-01;1.234,50\n2024-01-02;1.235\n2024-01-03;1.236,5\n")
    run = call_main(["--input", "mix.csv", "--signals", "-", "--window", "1"], tmp_path)
    assert run.code == 0, run.stderr
    assert [r[3] for r in csv.reader(run.out.splitlines()[1:])] == ["1234.5", "1235.0", "1236.5"]
    write(tmp_path / "bad.csv", "Date;Close\n2024-01-01;1,5\n2024-01-02;1.5\n")
    bad = call_main(["--input", "bad.csv", "--window", "1", "--output", "metrics.json"], tmp_path)
    assert bad.code == 1
    bad.assert_no_traceback()
    message = bad.file_doc()["error_message"]
    assert "line 3" in message and "--decimal" in message


@pytest.mark.parametrize("first", ["1,5", "1,234"])
def test_workers_read_with_the_mark_the_first_rows_told_or_leave_the_input_to_one_process(
    first: str, tmp_path: Path
) -> None:
    rows = [f"2024-01-01 {i:05d};{first if i == 0 else f'{1 + i // 7}.{i % 1000:03d},{i % 10}'}" for i in range(4000)]
    write(tmp_path / "in.csv", "ts;Close\n" + "\n".join(rows) + "\n")
    closes = [r.split(";")[1] for r in rows]
    # Dots grouping thousands and a decimal comma (2.345,6): values that tell the comma.
    table = {c: MARKED.get(c) or (",", None, F(c.replace(".", "").replace(",", "."))) for c in closes}
    values, bad_rows = marked_reference(closes, table)
    run = run_command(
        ["--input", "in.csv", "--workers", "2", "--block-size", "16K", "--window", "1", "--signals", "s.csv",
         "--on-bad-row", "skip", "--log-file", "run.log", "--output", "m.json"],
        tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    got = [Fraction(r["rolling_mean"]) for r in csv.DictReader((tmp_path / "s.csv").read_text().splitlines())]
    assert got == values and len(bad_rows) == (first == "1,234")
    log = (tmp_path / "run.log").read_text()
    assert ("do not tell the values' decimal mark" in log) == ("blocks of about" not in log) == (first == "1,234")


def _marked_table(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A file of closes whose decimal marks may agree, disagree or leave the mark open (see MARKED)."""
    sep = draw(st.sampled_from([";", "\t", "|"]))
    closes = draw(st.lists(st.sampled_from(sorted(MARKED)), min_size=1, max_size=60))
    rows = [f"2024-01-01 00:{i:02d}{sep}{c}{sep}{i}" for i, c in enumerate(closes)]
    return (sep.join(["Date", "Close", "Vol"]) + "\n" + "\n".join(rows) + "\n").encode(), closes


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_one_decimal_mark_per_file_on_every_path(kept_workers: Workers, data: st.DataObject) -> None:
    raw, closes = data.draw(st.composite(_marked_table)())
    values, bad_rows = marked_reference(closes)
    got, bad, _ = read(raw, skip=True)
    assert got == values
    assert [b.line for b in bad] == [i + 2 for i in bad_rows]
    same_on_every_path(data, raw, kept_workers(2))


# ---- 6. missing values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["null", "NaN", "", "N/A"])
def test_a_missing_value_says_so_and_names_skip(missing: str) -> None:
    with pytest.raises(BadRowError) as info:
        read(f"Date,Close\n2024-01-01,1\n2024-01-02,{missing}\n".encode())
    assert info.value.bad.kind == "missing"
    assert "the close value is missing" in str(info.value) and "--on-bad-row skip" in str(info.value)
    assert "not a decimal number" not in str(info.value)


# ---- 7. no silent garbage under skip ------------------------------------------------------------------------------


def test_skipping_most_rows_fails_with_the_commonest_reason(tmp_path: Path) -> None:
    rows = ["2024-01-01,abc"] * 6 + ["2024-01-02,null"] * 2 + ["2024-01-03,5"] * 3
    write(tmp_path / "in.csv", "ts,close\n" + "\n".join(rows) + "\n")
    run = call_main(["--input", "in.csv", "--on-bad-row", "skip", "--output", "m.json"], tmp_path)
    assert run.code == 1
    message = run.file_doc("m.json")["error_message"]
    assert "8 of 11 data rows (72.7%) were bad and skipped" in message
    assert "the commonest reason (6 rows) first at line 2: bad close value: 'abc'" in message
    allowed = call_main(["--input", "in.csv", "--on-bad-row", "skip", "--max-skipped", "0.8"], tmp_path)
    assert allowed.code == 0 and allowed.doc()["rows_processed"] == 3
    assert "8 of 11 data rows (72.7%) were bad and skipped" in allowed.stderr  # above 1 %: a warning


def test_max_skipped_holds_on_workers_and_the_block_path(tmp_path: Path) -> None:
    rows = [f"2024-01-01 00:{i:05d},{'x' if i % 3 else i}" for i in range(3000)]
    write(tmp_path / "in.csv", "ts,close\n" + "\n".join(rows) + "\n")
    base = ["--input", "in.csv", "--on-bad-row", "skip", "--output", "m.json"]
    messages = set()
    for args, env in [([], {}), ([], {"MLOPS_STREAM_PATH": "block"}), (["--workers", "2", "--block-size", "8K"], {})]:
        run = run_command([*base, *args], tmp_path, env=env)
        assert run.code == 1, run.stderr
        messages.add(run.file_doc("m.json")["error_message"])
    assert len(messages) == 1
    assert "2000 of 3000 data rows" in messages.pop()


# ---- 8. newest-first files and --reverse --------------------------------------------------------------------------


def test_a_newest_first_file_warns_and_reverse_reads_it_oldest_first(tmp_path: Path) -> None:
    rows = [f"2024-01-{d:02d},{100 + (d * 37) % 11}.5" for d in range(28, 0, -1)]
    write(tmp_path / "new.csv", "timestamp,close\n" + "\n".join(rows) + "\n")
    write(tmp_path / "old.csv", "timestamp,close\n" + "\n".join(rows[::-1]))  # no final newline either
    plain = call_main(["--input", "new.csv", "--signals", "a.csv"], tmp_path)
    assert "the rows run newest first" in plain.stderr and "--reverse" in plain.stderr
    back = call_main(["--input", "new.csv", "--reverse", "--signals", "b.csv"], tmp_path)
    block = call_main(["--input", "new.csv", "--reverse", "--signals", "d.csv"], tmp_path, env=BLOCK_PATH)
    forward = call_main(["--input", "old.csv", "--signals", "c.csv"], tmp_path)
    assert back.code == forward.code == 0
    assert block.code == 0
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "c.csv").read_bytes() == (tmp_path / "d.csv").read_bytes()
    assert "newest first" not in forward.stderr
    assert "newest first" not in back.stderr + block.stderr  # reversed, the rows run oldest first
    wrong = call_main(["--input", "old.csv", "--reverse", "--signals", "e.csv"], tmp_path)
    assert wrong.code == 0 and "with --reverse the rows run newest first" in wrong.stderr
    assert "pass --reverse" not in wrong.stderr
    # A real pipe: --reverse needs a file it can seek in.
    piped = run_command(["--reverse"], tmp_path, stdin=(tmp_path / "new.csv").read_bytes())
    assert piped.code == 2 and "--reverse reads one regular file" in piped.stderr


def test_reverse_numbers_bad_rows_as_in_the_file_and_bounds_memory() -> None:
    from stream.sources.chunks import backwards

    data = b"a\nbb\n" + b"x" * 5000 + b"\nccc"
    got = b"".join(backwards(io.BytesIO(data), 0, len(data), size=7, longest=100))
    last, long = got.split(b"\n")[:2]
    assert last == b"ccc" and set(long) == {ord("x")}
    assert 100 < len(long) <= 100 + 7 + 1  # the over-long line cut to what shows it is too long
    assert got.endswith(b"bb\na\n")


# ---- bounded messages -------------------------------------------------------------------------------------------


def test_a_huge_bad_value_is_quoted_in_part_with_its_size() -> None:
    with pytest.raises(BadRowError) as info:
        read(b"ts,close\n1," + b"9x" * 30_000 + b"\n")
    assert "(60,000 characters)" in str(info.value) and len(str(info.value)) < 400


def test_a_json_document_given_as_input_is_not_echoed(tmp_path: Path) -> None:
    doc = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SECRETSECRET"}
    forms = {
        "one line": (json.dumps(doc), "has no field 'close'"),  # read as JSON Lines: its fields named, never values
        "pretty": (json.dumps(doc, indent=2), "a lone '{'"),
        "array": (json.dumps([doc]), "is a JSON array"),
    }
    for name, (text, said) in forms.items():
        write(tmp_path / "key.json", text + "\n")
        run = call_main(["--input", "key.json"], tmp_path)
        assert run.code == 1 and said in run.stderr, name
        assert "SECRET" not in run.stderr + run.out, name
    assert read(b"[Date],[Close]\n1,2\n", column="[Close]")[0] == [F(2)]  # bracketed names are not JSON


# ---- the layout travels: checkpoints, follow, several inputs -------------------------------------------------------


def test_the_layout_survives_a_checkpoint() -> None:
    data = b'"ts\topen\tClose"\r\n"1\t2\t3,5"\r\n'
    _, _, reader = read(data)
    again = Reader()
    again.restore(ReaderState.of(json.loads(json.dumps(reader.state().document()))))
    assert again.layout is not None and reader.layout is not None
    assert again.layout.spec() == reader.layout.spec() | {"decimal": ","}  # the mark the first value told
    assert again.decimal == reader.decimal == ","
    more = again.feed(b'"2\t3\t4,5"\r\n')
    assert [F(u, 10**s) for u, s in zip(more.units, more.scales)] == [F("4.5")]


def test_several_inputs_share_the_first_ones_layout(tmp_path: Path) -> None:
    one = "https://www.CryptoDataDownload.com\nunix;Close\n1;1,5\n2;2,5\n"
    write(tmp_path / "a.csv", one)
    write(tmp_path / "b.csv", one.replace("1;1,5\n2;2,5", "3;3,5"))
    run = call_main(["--input", "a.csv", "--input", "b.csv", "--signals", "-"], tmp_path)
    assert run.code == 0, run.stderr
    assert [r[1:3] for r in csv.reader(run.out.splitlines()[1:])] == [["1", "1.5"], ["2", "2.5"], ["3", "3.5"]]


def test_follow_reads_a_tab_export_with_the_layout_of_its_header(tmp_path: Path) -> None:
    write(tmp_path / "live.tsv", "<DATE>\t<CLOSE>\n2024.01.02\t1.5\n2024.01.03\t2.5\n")
    run = run_command(
        ["--input", "live.tsv", "--follow", "--idle-timeout", "0.3", "--output", "m.json", "--no-progress"], tmp_path
    )
    assert run.code == 0, run.stderr
    assert run.file_doc("m.json")["rows_processed"] == 2


def test_a_checkpointed_follow_run_resumes_with_the_layout_it_found(tmp_path: Path) -> None:
    live = tmp_path / "live.csv"
    write(live, "https://www.CryptoDataDownload.com\nunix;Close\n3;1,5\n4;2,5\n")
    args = ["--input", "live.csv", "--follow", "--idle-timeout", "0.3", "--checkpoint", "c.json", "--output", "m.json"]
    first = run_command([*args, "--signals", "s.csv"], tmp_path)
    assert first.code == 0, first.stderr
    layout = json.loads((tmp_path / "c.json").read_text())["reader"]["layout"]
    assert (layout["delimiter"], layout["columns"]) == (";", ["unix", "Close"])
    with live.open("a") as fh:
        fh.write("5;3,5\n6;4,5\n")
    second = run_command([*args, "--signals", "s.csv"], tmp_path)
    assert second.code == 0, second.stderr
    assert second.file_doc("m.json")["rows_processed"] == 4
    rows = list(csv.reader((tmp_path / "s.csv").read_text().splitlines()))
    assert rows[0][:3] == ["row", "timestamp", "close"]  # the unix column tells the rows' order
    assert [r[1:3] for r in rows[1:]] == [["3", "1.5"], ["4", "2.5"], ["5", "3.5"], ["6", "4.5"]]


# ---- every path reads a sniffed layout alike ------------------------------------------------------------------------


def _table(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A random export: its delimiter, quoting, line ends, BOM and title line; and its closes as exact texts."""
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    names = draw(st.permutations(["Date", "Open", "Close", "Vol"]))
    wrap = draw(st.booleans()) and sep != ","
    n = draw(st.integers(1, 60))
    closes = [
        draw(st.sampled_from(["100", "100.10", "100.1", "99.95", "1234.5", "0.5", "12", "1000000.25"]))
        for _ in range(n)
    ]
    bad_at = draw(st.sets(st.integers(0, n - 1), max_size=3))
    comma = sep != "," and draw(st.booleans())  # a European export: decimal commas (none of these has 3 decimals)
    lines = [sep.join(names)]
    for i, c in enumerate(closes):
        shown = c.replace(".", ",") if comma else c
        if sep == "," and "." in c and len(c.split(".")[0]) > 3 and draw(st.booleans()):
            whole, frac = c.split(".")
            shown = '"' + f"{int(whole):,}" + "." + frac + '"'  # a quoted thousands separator
        if i in bad_at:
            shown = draw(st.sampled_from(["null", "abc", ""]))
        fields = {"Date": f"2024-01-01 00:{i:02d}", "Open": "1", "Close": shown, "Vol": str(i)}
        lines.append(sep.join(fields[k] for k in names))
    if wrap:
        lines = [f'"{ln}"' for ln in lines]
    if draw(st.booleans()):
        lines.insert(0, "https://example.com/export")
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    text = ("\ufeff" if draw(st.booleans()) else "") + nl.join(lines) + (nl if draw(st.booleans()) else "")
    return text.encode(), [c for i, c in enumerate(closes) if i not in bad_at]


def _row_loop(data: bytes, report: Callable[[BadRow], None]) -> Batch:
    """The rows the csv row loop alone (``Rows.loop``) reads from the data lines of ``data``, in the layout the
    reader finds in its first lines."""
    probe = Reader(on_bad_row="skip")
    list(batches(probe, [data]))
    layout = probe.layout
    assert layout is not None
    lines = data.decode().lstrip("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()  # the piece after the final newline
    start = layout.header_line - (0 if layout.header else 1)  # the lines above the data
    return Rows(layout, BadRows(True, report).bad, keep_text=True).loop(lines[start:], start + 1)


def _signals(
    data: bytes, pieces: list[bytes], how: str, block_size: int = 97, executor: KeptWorkers | None = None
) -> tuple[bytes, int, list[tuple[int, str]]]:
    bad: list[BadRow] = []
    reader = Reader(on_bad_row="skip", report=bad.append, keep_text=True)
    out = io.BytesIO()
    pipeline = Pipeline(RollingSignal(3), SignalSink(out, "csv"))
    if how == "row":
        tally = pipeline.run([_row_loop(data, bad.append)])
    elif how == "workers":
        import tempfile

        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            options = parallel.Reading(2, block_size=block_size, executor=executor)
            tally, _ = parallel.run([Spec(f.name)], [len(data)], reader, pipeline, options)
    else:
        block_path = BlockReader(reader, min_block=1) if how == "block" else None
        tally = pipeline.run(batches(reader, pieces, block_path))
    return out.getvalue(), tally.skipped, [(b.line, b.kind) for b in bad]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_sniffed_layouts_give_the_same_rows_on_every_path(kept_workers: Workers, data: st.DataObject) -> None:
    raw, closes = data.draw(st.composite(_table)())
    assert read(raw, skip=True)[0] == [Fraction(c) for c in closes]  # the values as written, exactly
    same_on_every_path(data, raw, kept_workers(2))


def same_on_every_path(data: st.DataObject, raw: bytes, workers: KeptWorkers) -> None:
    """The row loop's signals and skipped rows for ``raw`` are the reader's (taking the whole-chunk fast path where it
    applies), the block path's (both fed it in drawn pieces) and the worker processes' (in drawn blocks)."""
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=4)))
    pieces = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])]
    want = _signals(raw, [raw], "row")
    for how in ("chunk", "block"):
        assert _signals(raw, pieces, how) == want, how
    saved = os.environ.get("MLOPS_STREAM_CHUNK")
    os.environ["MLOPS_STREAM_CHUNK"] = "64"
    try:
        parallel_run = _signals(raw, [raw], "workers", data.draw(st.integers(8, 120)), workers)
    finally:
        if saved is None:
            os.environ.pop("MLOPS_STREAM_CHUNK", None)
        else:
            os.environ["MLOPS_STREAM_CHUNK"] = saved
    assert parallel_run[0] == want[0] and parallel_run[1] == want[1]


# ---- the bundled data: the same fast path, no extra imports ---------------------------------------------------------


def test_the_bundled_data_takes_the_whole_chunk_path_and_the_block_path() -> None:
    # Its start-up cost is held by the benchmark's budget check (benchmarks/bench.py), not by a test.
    data = (ROOT / "data.csv").read_bytes()
    reader = Reader()
    rows = sum(len(b) for b in batches(reader, [data[i : i + (32 << 10)] for i in range(0, len(data), 32 << 10)]))
    assert rows == 10_000 and reader.layout is not None
    # The chunks of complete lines the reader is handed after the header, each read whole by the fast path.
    whole = 0
    at = data.index(b"\n") + 1
    while at < len(data):
        end = data.rfind(b"\n", at, at + (32 << 10)) + 1 or len(data)
        batch = chunk_rows(data[at:end], reader.layout, reader.decimal)
        whole += len(batch) if batch is not None else 0
        at = end
    assert whole >= 9_900
    block = BlockReader(Reader(), min_block=1)
    with open(ROOT / "data.csv", "rb") as fh:
        rows = sum(len(b) for b in batches(block.reader, iter(lambda: fh.read(256 << 10), b""), block))
    assert rows == 10_000 and block.lines >= 9_500  # numpy parses all but the lines read with the header


@pytest.mark.parametrize(("text", "given", "named"), [
    ("<DATE>\t<CLOSE>\n2024.01.02\t1.5\n", ",", "--delimiter tab"),
    ("a;b;close\n1;2;3\n", "|", "--delimiter ';'"),
])  # fmt: skip
def test_a_header_split_at_the_wrong_delimiter_names_the_right_one(
    tmp_path: Path, text: str, given: str, named: str
) -> None:
    write(tmp_path / "in.csv", text)
    run = call_main(["--input", "in.csv", "--delimiter", given], tmp_path)
    assert run.code == 1
    assert "reads as one column" in run.doc()["error_message"] and named in run.doc()["error_message"]
