"""Real exports as downloaded (../shared/data/real-world/): every file gives the exact value of an independent Fraction
reference, with the default command or the one flag its default run's message names, on every path. The runs are the
command in this process (``call_main``): nothing here is about the process itself; workers are real processes."""

from __future__ import annotations

import csv
import functools
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import call_main, read_signals_csv

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 5


def find_corpus() -> Path | None:
    for folder in [ROOT, *ROOT.parents]:
        path = folder / "shared" / "data" / "real-world"
        if (path / "MANIFEST.md").is_file():
            return path
    return None


CORPUS = find_corpus()
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="../shared/data/real-world/ (the real exports) is not here")


class Export:
    """How the reference reads one file (from its MANIFEST notes), and the flags the command needs."""

    def __init__(
        self,
        close: str | int,
        flags: tuple[str, ...] = (),
        delimiter: str = ",",
        header: bool = True,
        title: bool = False,
        thousands: bool = False,
        quoted_tab: bool = False,
        missing: bool = False,
        newest_first: bool = False,
        says: str = "",
    ) -> None:
        self.close = close  # a header name, or a 0-based index in a headerless file
        self.flags = flags
        self.delimiter = delimiter
        self.header = header
        self.title = title
        self.thousands = thousands
        self.quoted_tab = quoted_tab
        self.missing = missing
        self.newest_first = newest_first
        self.says = says  # what the default run's error names, when it needs a flag


NO_HEADER = "--no-header --column N"
EXPORTS: dict[str, Export] = {
    "01-cdd-binance-btcusdt-daily.csv": Export("close", newest_first=True),
    "02-binance-vision-algousdt-1m.csv": Export("close"),
    "03-mt4-eurusd-h1-noheader.csv": Export(5, ("--no-header", "--column", "6"), header=False, says=NO_HEADER),
    "04-investing-btc-daily.csv": Export("Price", thousands=True, newest_first=True),
    "05-sp500-date-close-bom.csv": Export("Close", thousands=True),
    "06-cboe-vix-history.csv": Export("CLOSE"),
    "07-stooq-kaggle-aapl-us.csv": Export("Close"),
    "08-yahoo-nsei-null-rows.csv": Export("Close", ("--on-bad-row", "skip"), missing=True, says="--on-bad-row skip"),
    "09-yahoo-gold-futures-null-weekends.csv": Export(
        "Close", ("--on-bad-row", "skip"), missing=True, says="--on-bad-row skip"
    ),
    "10-quoted-tab-eurusd-m1.csv": Export("Close", quoted_tab=True),
    "11-mt-semicolon-noheader-eurusd-m1.csv": Export(
        5, ("--no-header", "--column", "6"), delimiter=";", header=False, says=NO_HEADER
    ),
    "12-kaggle-coin-bitcoin-crlf.csv": Export("Close"),
    "13-kaggle-5yr-aal-lowercase.csv": Export("close"),
    "14-alphavantage-msft-daily-newest-first.csv": Export("close", newest_first=True),
    "15-stooq-polish-header-wig20.csv": Export("Zamkniecie"),
    "16-mt5-tab-eurusd-h1.csv": Export("<CLOSE>", delimiter="\t"),
    "17-fx-noheader-audusd-d1.csv": Export(4, ("--no-header", "--column", "5"), header=False, says=NO_HEADER),
    "18-tiingo-aapl-dmy-crlf.csv": Export("close"),
    "19-coinmarketcap-btc-quoted-thousands-bom.csv": Export("Close", thousands=True, newest_first=True),
    "20-alphavantage-pylib-goog-numbered-cols.csv": Export("4. close", newest_first=True),
    "21-yfinance-download-goog-fullfloat.csv": Export("Close"),
    "22-quandl-wiki-aapl-newest-first.csv": Export("Close", newest_first=True),
    "23-dukascopy-eurusd-h1-localtime-flat.csv": Export("Close"),
    "24-cdd-bitstamp-btcusd-1h-url-line.csv": Export("close", title=True, newest_first=True),
}


@functools.cache  # each file is read by several tests of a worker
def reference_closes(path: Path, spec: Export) -> tuple[list[Fraction | None], list[str]]:
    """Each data row's close (None where it is missing) and its text, read with the csv module per the MANIFEST."""
    text = path.read_bytes().decode("utf-8-sig")
    lines = text.splitlines()
    if spec.title:
        lines = lines[1:]
    rows = [r for r in csv.reader(lines, delimiter=spec.delimiter) if r]
    if spec.quoted_tab:  # each line is one quoted field holding TAB-separated fields
        rows = [r[0].split("\t") for r in rows]
    if spec.header:
        names = [n.strip() for n in rows[0]]
        at = names.index(spec.close) if isinstance(spec.close, str) else spec.close
        rows = rows[1:]
    else:
        at = int(spec.close)
    values: list[Fraction | None] = []
    texts = []
    for r in rows:
        raw = r[at].strip()
        texts.append(raw)
        if spec.missing and raw == "null":
            values.append(None)
            continue
        values.append(Fraction(raw.replace(",", "") if spec.thousands else raw))
    return values, texts


@functools.cache  # each file's closes are checked by several runs of a worker
def reference_signals(values: tuple[Fraction, ...]) -> list[int]:
    out = []
    for i, v in enumerate(values):
        if i + 1 < WINDOW:
            out.append(0)
        else:
            out.append(1 if v * WINDOW > sum(values[i + 1 - WINDOW : i + 1]) else 0)
    return out


def rate(signals: list[int]) -> float:
    return float(round(Fraction(sum(signals), len(signals)), 4))


def check_run(run: Any, values: list[Fraction | None]) -> None:
    assert run.code == 0, run.stderr
    run.assert_no_traceback()
    good = [v for v in values if v is not None]
    want = reference_signals(tuple(good))
    doc = run.file_doc()
    assert doc["rows_processed"] == len(good)
    assert doc["value"] == rate(want)
    assert doc.get("rows_skipped", 0) == len(values) - len(good)
    got = read_signals_csv((run.cwd / "s.csv").read_text())
    assert [int(r["signal"]) for r in got] == want
    assert [Fraction(r["close"].replace(",", "")) for r in got] == good


@needs_corpus
@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_every_export_gives_the_exact_value_with_at_most_the_flag_its_message_names(name: str, tmp_path: Path) -> None:
    assert CORPUS is not None
    path = CORPUS / name
    spec = EXPORTS[name]
    values, _ = reference_closes(path, spec)
    base = ["--input", str(path), "--output", "metrics.json", "--signals", "s.csv", "--log-file", "run.log"]
    default = call_main(base, tmp_path)
    if not spec.flags:
        check_run(default, values)
    else:
        assert default.code == 1
        default.assert_no_traceback()
        assert spec.says in default.file_doc()["error_message"]
        check_run(call_main([*base, *spec.flags], tmp_path), values)
    warned = "the rows run newest first" in (tmp_path / "run.log").read_text()
    assert warned == spec.newest_first


@needs_corpus
@pytest.mark.parametrize("how", ["block", "workers"])
def test_every_export_gives_the_same_value_on_the_block_path_and_on_workers(how: str, tmp_path: Path) -> None:
    assert CORPUS is not None
    env = {"MLOPS_STREAM_PATH": "block"} if how == "block" else {}
    extra = ["--workers", "2", "--block-size", "16K"] if how == "workers" else []
    for name, spec in sorted(EXPORTS.items()):
        values, _ = reference_closes(CORPUS / name, spec)
        args = ["--input", str(CORPUS / name), "--output", "metrics.json", "--signals", "s.csv", *spec.flags, *extra]
        check_run(call_main(args, tmp_path, env=env), values)


@needs_corpus
@pytest.mark.parametrize("name", [n for n, s in sorted(EXPORTS.items()) if s.newest_first and not s.flags])
def test_reverse_reads_a_newest_first_export_oldest_first(name: str, tmp_path: Path) -> None:
    assert CORPUS is not None
    values, _ = reference_closes(CORPUS / name, EXPORTS[name])
    args = ["--input", str(CORPUS / name), "--output", "metrics.json", "--signals", "s.csv", "--reverse"]
    run = call_main(args, tmp_path)
    check_run(run, values[::-1])
    assert "newest first" not in run.stderr


def test_the_corpus_is_listed_in_full() -> None:
    if CORPUS is None:
        pytest.skip("../shared/data/real-world/ (the real exports) is not here")
    assert sorted(p.name for p in CORPUS.glob("*.csv")) == sorted(EXPORTS)
