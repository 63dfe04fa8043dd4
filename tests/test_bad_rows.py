"""Contract point 4: bad rows stop the job with their line and text (fail) or are counted and logged (skip)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from conftest import ERROR_KEYS, SUCCESS_KEYS, ohlcv_csv, write

from stream.parsing.framing import SHOWN
from stream.parsing.reader import Reader, batches
from stream.parsing.rows import BadRowError

GOOD = ["100.1", "100.2", "100.3", "100.4", "100.5", "100.6"]


def lines_with(bad_line: str, at: int = 3) -> bytes:
    """A candle file whose ``at``-th data row is replaced by ``bad_line`` (file line at + 1)."""
    lines = ohlcv_csv(GOOD).splitlines()
    lines[at] = bad_line
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("line", "reason", "kind"),
    [
        ("2024-01-01 00:02:00,1,2,3,abc,5,6", "bad close value: 'abc' is not a decimal number", "value"),
        ("2024-01-01 00:02:00,1,2,3,,5,6", "the close value is missing ('')", "missing"),
        ("2024-01-01 00:02:00,1,2,3,NaN,5,6", "the close value is missing ('NaN')", "missing"),
        ("2024-01-01 00:02:00,1,2,3,null,5,6", "the close value is missing ('null')", "missing"),
        ("2024-01-01 00:02:00,1,2,3,-inf,5,6", "not a finite number", "value"),
        ("2024-01-01 00:02:00,1,2,3,1e999999999,5,6", "out of range", "value"),
        ('2024-01-01 00:02:00,1,2,3,"1,2,3",5,6', "bad close value: '1,2,3' is not a decimal number", "value"),
        ("2024-01-01 00:02:00,1,2,3,100.5,5", "expected 7 fields, found 6", "fields"),
        ("2024-01-01 00:02:00,1,2,3,100.5,5,6,7", "expected 7 fields, found 8", "fields"),
        ("100.5", "expected 7 fields, found 1", "fields"),
        ('"2024-01-01 00:02:00,1,2,3,100.5,5,6', "a quoted field is not closed on this line", "quote"),
        ("2024-01-01 00:02:00,1,2,3,100.5\udcff,5,6", "bytes that are not UTF-8 at column 32", "encoding"),
        ("2024-01-01 00:02:00,1,2,3,100.5,5,6\rjunk", "not a CSV record", "quote"),
    ],
)
def test_fail_names_the_line_the_reason_and_the_text(line: str, reason: str, kind: str) -> None:
    with pytest.raises(BadRowError) as info:
        list(batches(Reader(), [lines_with(line)]))
    message = str(info.value)
    assert info.value.bad.line == 4
    assert info.value.bad.kind == kind
    assert message.startswith("bad row at line 4: ")
    assert reason in message
    assert "2024-01-01 00:02:00" in message or "100.5" in message  # the offending text is shown
    assert "--on-bad-row skip" in message


def test_long_offending_text_is_shortened() -> None:
    line = "2024-01-01 00:02:00,1,2,3,abc," + "9" * 500 + ",6"
    with pytest.raises(BadRowError) as info:
        list(batches(Reader(), [lines_with(line)]))
    shown = info.value.bad.text
    assert shown.endswith("...'")
    assert len(shown) <= SHOWN + 5
    assert len(str(info.value)) < 300


def test_skip_leaves_bad_rows_out_of_the_window_and_the_counts() -> None:
    reported = []
    reader = Reader(on_bad_row="skip", report=reported.append, keep_text=True)
    data = b"close\n1\nx\n2\n\n1,2\n3\n"
    found = list(batches(reader, [data]))
    assert [c for b in found for c in b.closes] == ["1", "2", "3"]
    assert sum(b.skipped for b in found) == 2
    assert [r.line for r in reported] == [3, 6]


# ---- end to end ------------------------------------------------------------------------------------------------


def test_fail_policy_end_to_end(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", lines_with("2024-01-01 00:02:00,1,2,3,oops,5,6"))
    run = run_main(["--input", "in.csv", "--output", "metrics.json", "--log-file", "run.log"])
    assert run.code == 1
    run.assert_no_traceback()
    doc = run.file_doc()
    assert list(doc) == ERROR_KEYS
    assert doc["version"] == "v1"  # the config was read before the input failed
    assert doc["status"] == "error"
    message = doc["error_message"]
    assert "line 4" in message and "'oops' is not a decimal number" in message
    assert "2024-01-01 00:02:00,1,2,3,oops,5,6" in message
    assert message in run.stderr
    assert run.doc() == doc


def test_skip_policy_end_to_end(run_main, tmp_path: Path) -> None:
    closes = [*GOOD, "bad", "100.7", "", *GOOD]
    write(tmp_path / "in.csv", ohlcv_csv(closes))
    run = run_main(["--input", "in.csv", "--on-bad-row", "skip", "--window", "2", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    doc = run.doc()
    assert list(doc) == [*SUCCESS_KEYS, "rows_skipped"]
    assert (doc["rows_processed"], doc["rows_skipped"]) == (len(closes) - 2, 2)
    # The skipped rows are not in the window: 100.6 is followed by 100.7, then 100.1 (below), ...
    good = [c for c in closes if c not in ("bad", "")]
    expected = sum(1 for a, b in itertools.pairwise(good) if float(b) > float(a))
    assert doc["value"] == round(expected / len(good), 4)
    for line in (8, 10):
        assert f"skipped bad row at line {line}:" in run.stderr
        assert f"skipped bad row at line {line}:" in run.log()


def test_skip_logs_the_first_twenty_then_a_summary(run_main, tmp_path: Path) -> None:
    closes = []
    for i in range(30):
        closes += ["100.5", f"bad{i}"]
    write(tmp_path / "in.csv", ohlcv_csv(closes))
    run = run_main(["--input", "in.csv", "--on-bad-row", "skip", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    assert run.doc()["rows_skipped"] == 30
    for text in (run.stderr, run.log()):
        shown = re.findall(r"skipped bad row at line (\d+):", text)
        assert shown == [str(3 + 2 * i) for i in range(20)]
        assert "bad20" not in text
        assert "skipped 30 bad rows in all (20 shown above)" in text


def test_every_row_bad_is_an_error_even_when_skipping(run_main, tmp_path: Path) -> None:
    write(tmp_path / "in.csv", ohlcv_csv(["x", "y"]))
    run = run_main(["--input", "in.csv", "--on-bad-row", "skip"])
    assert run.code == 1
    run.assert_no_traceback()
    assert "no usable data rows (2 bad rows were skipped)" in run.doc()["error_message"]


def test_undecodable_bytes_end_to_end(run_main, tmp_path: Path) -> None:
    data = ohlcv_csv(GOOD).encode().replace(b"100.3", b"10\xe9.3")
    write(tmp_path / "in.csv", data)
    failed = run_main(["--input", "in.csv"])
    assert failed.code == 1
    failed.assert_no_traceback()
    assert "line 4: bytes that are not UTF-8" in failed.doc()["error_message"]
    skipped = run_main(["--input", "in.csv", "--on-bad-row", "skip"])
    assert skipped.code == 0
    assert (skipped.doc()["rows_processed"], skipped.doc()["rows_skipped"]) == (5, 1)


def test_a_csv_error_inside_an_odd_record_keeps_line_numbers_right() -> None:
    # '"a\rb,c"x' parses as one field holding a comma; re-parsing that field hits a bare carriage return.
    reported = []
    reader = Reader(on_bad_row="skip", report=reported.append, keep_text=True)
    found = list(batches(reader, [b'ts,close\n"a\rb,c"x\nt2,6\nt3,x\nt4,7\n"a\rb,c"x\n']))
    assert [c for b in found for c in b.closes] == ["6", "7"]
    assert [(r.line, r.text) for r in reported] == [(2, repr('"a\rb,c"x')), (4, "'t3,x'"), (6, repr('"a\rb,c"x'))]
    assert "carriage return" in reported[0].reason


def test_a_bare_carriage_return_is_named_in_words() -> None:
    with pytest.raises(BadRowError) as info:
        list(batches(Reader(), [b"ts,close\nt1,1\rjunk\n"]))
    assert "line 2: not a CSV record (a carriage return inside an unquoted field)" in str(info.value)
    assert "universal-newline" not in str(info.value)


def test_a_header_that_is_not_csv_is_an_input_error(run_main, tmp_path: Path) -> None:
    # Lines ended by CR alone (old Mac exports) arrive as one line with carriage returns inside.
    write(tmp_path / "in.csv", b"ts,close\r1,2\r3,4\r")
    run = run_main(["--input", "in.csv"])
    assert run.code == 1
    run.assert_no_traceback()
    message = run.doc()["error_message"]
    assert message.startswith("the header (line 1) is not a CSV record")
    assert "carriage return" in message and "internal error" not in message
