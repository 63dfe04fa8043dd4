"""Differential test: pandas' float rolling mean against the exact engine; every disagreement is a (near-)tie."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ROOT, exact_signals, ohlcv_csv, read_signals_csv, write

pd = pytest.importorskip("pandas")

# A disagreement is explained when the close is this close to the exact mean, relative to the price: float
# rounding in a running sum is around 1e-16 relative; a real price step is 1e-4 relative or more.
NEAR_TIE = Fraction(1, 10**9)


def disagreements(closes: list[str], window: int, ours: list[int]) -> list[tuple[int, str, Fraction, float]]:
    """Rows where pandas' float signal differs from ours: (row, close, exact mean, pandas mean)."""
    series = pd.Series([float(c) for c in closes])
    means = series.rolling(window).mean()
    theirs = (series > means).astype(int).tolist()
    _, exact_means = exact_signals(closes, window)
    return [
        (i + 1, closes[i], exact_means[i], float(means.iloc[i])) for i in range(len(closes)) if theirs[i] != ours[i]
    ]


def assert_each_is_a_near_tie(diffs: list[tuple[int, str, Fraction, float]]) -> None:
    for row, close, exact, float_mean in diffs:
        print(f"row {row}: close {close}, exact mean {exact} ({float(exact)!r}), pandas mean {float_mean!r}")
        assert exact is not None, f"row {row} differs during warm-up"
        assert abs(Fraction(close) - exact) <= NEAR_TIE * abs(Fraction(close)), f"row {row} is not a near-tie"


def our_signals(closes: list[str], window: int) -> list[int]:
    from stream.core.engine import RollingSignal
    from stream.core.exact import parse_decimal

    engine = RollingSignal(window)
    return [engine.update(*parse_decimal(c)) for c in closes]


def tie_dataset(rows: int = 3000, seed: int = 7) -> list[str]:
    """Prices from a few decimals (written with 1 or 2 decimals at random): many windows average to a close."""
    rng = random.Random(seed)
    return [rng.choice(["100.1", "100.2", "100.3", "100.4", "100.10", "100.20"]) for _ in range(rows)]


@pytest.mark.parametrize("window", [3, 4, 10])
def test_pandas_gets_ties_wrong_and_only_ties(window: int) -> None:
    closes = tie_dataset()
    ours = our_signals(closes, window)
    assert ours == exact_signals(closes, window)[0]
    diffs = disagreements(closes, window, ours)
    # The data was built to show the point: floats decide some exact ties the wrong way.
    assert diffs, "expected pandas to disagree on at least one exact tie"
    assert_each_is_a_near_tie(diffs)
    # On this grid a non-tie is at least 0.1/window away, so every disagreement is an exact tie.
    assert all(Fraction(close) == exact for _, close, exact, _ in diffs)
    # Where pandas says 1 on a tie, its float mean came out below the close; the exact answer is 0.
    assert all(ours[row - 1] == 0 for row, *_ in diffs)


@pytest.mark.parametrize("window", [2, 3, 5, 20])
def test_on_the_bundled_data_every_disagreement_is_a_tie(window: int) -> None:
    lines = (ROOT / "data.csv").read_text().splitlines()[1:]
    closes = [line.split(",")[4] for line in lines]
    diffs = disagreements(closes, window, our_signals(closes, window))
    assert_each_is_a_near_tie(diffs)


def test_the_command_against_pandas_end_to_end(run_main, tmp_path: Path) -> None:
    # The assessment's pandas pipeline, and the command's own signals file for the same input.
    closes = tie_dataset(rows=1500, seed=11)
    write(tmp_path / "in.csv", ohlcv_csv(closes))
    run = run_main(["--input", "in.csv", "--window", "4", "--signals", "signals.csv"])
    assert run.code == 0, run.stderr
    rows = read_signals_csv((tmp_path / "signals.csv").read_text())
    ours = [int(r["signal"]) for r in rows]
    frame = pd.read_csv(tmp_path / "in.csv")
    pandas_rate = float((frame["close"] > frame["close"].rolling(4).mean()).mean())
    diffs = disagreements(closes, 4, ours)
    assert diffs
    assert_each_is_a_near_tie(diffs)
    assert run.doc()["value"] == round(sum(ours) / len(ours), 4)
    assert pandas_rate != sum(ours) / len(ours)  # the ties move the published metric itself


def test_on_the_assessment_data_every_disagreement_is_a_tie(assessment_data: Path) -> None:
    # Every line of that file is one quoted record: unwrap it by hand rather than with the reader under test.
    lines = assessment_data.read_text(encoding="utf-8").splitlines()
    assert lines[0].strip().strip('"').split(",")[4] == "close"
    closes = [line.strip().strip('"').split(",")[4] for line in lines[1:] if line.strip()]
    assert len(closes) == 10_000
    for window in (3, 5, 10):
        assert_each_is_a_near_tie(disagreements(closes, window, our_signals(closes, window)))
