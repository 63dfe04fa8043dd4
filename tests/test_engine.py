"""Contract points 5 and 6: the exact rolling mean and the signal, checked against a fractions.Fraction reference."""

from __future__ import annotations

import io
import json
import random
from fractions import Fraction

import pytest
from conftest import exact_signals
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.batch import Batch
from stream.core.engine import RollingSignal, WindowState
from stream.core.exact import parse_decimal
from stream.parsing.reader import Reader, batches
from stream.runs.pipeline import Pipeline
from stream.sinks.signals import SignalSink

# A handful of nearby prices, each writable several ways: windows of them are full of exact ties.
CENTS = [10005, 10010, 10015, 10020, 10030]


def spell(cents: int, style: int) -> str:
    """One price in one of several spellings that all mean the same value."""
    whole, frac = divmod(cents, 100)
    base = f"{whole}.{frac:02d}"
    return [
        base,  # 100.10
        base.rstrip("0").rstrip("."),  # 100.1
        base + "00",  # 100.1000
        f"{cents}e-2",  # 10010e-2
        f"{cents}E-2",  # the same with a capital E
        f"+{base}",  # +100.10
        f"{base}e0",  # 100.10e0
        f"0.{cents:07d}e5",  # 0.0010010e5
    ][style]


tick = st.tuples(st.sampled_from(CENTS), st.integers(min_value=0, max_value=7))
ticks = st.lists(tick, min_size=0, max_size=80)
windows = st.integers(min_value=1, max_value=12)


def engine_run(closes: list[str], window: int) -> tuple[list[int], list[float | None]]:
    engine = RollingSignal(window)
    signals, means = [], []
    for text in closes:
        signals.append(engine.update(*parse_decimal(text)))
        means.append(engine.mean())
    return signals, means


@given(ticks, windows)
@settings(max_examples=300, deadline=None)
def test_signals_and_means_match_the_exact_reference(data: list[tuple[int, int]], window: int) -> None:
    closes = [spell(c, s) for c, s in data]
    assert all(Fraction(t) == Fraction(c, 100) for t, (c, _) in zip(closes, data))
    ref_signals, ref_means = exact_signals(closes, window)
    signals, means = engine_run(closes, window)
    assert signals == ref_signals
    # mean() is the exact mean rounded once: the same float as float(Fraction).
    assert means == [None if m is None else float(m) for m in ref_means]


def test_such_tick_data_is_full_of_exact_ties() -> None:
    # The generated data above is meant to exercise ties; show that it does, over every window it draws.
    rng = random.Random(1)
    closes = [spell(rng.choice(CENTS), rng.randrange(8)) for _ in range(1500)]
    for window in range(2, 13):
        ref_signals, ref_means = exact_signals(closes, window)
        ties = sum(1 for c, m in zip(closes, ref_means) if m is not None and Fraction(c) == m)
        assert ties >= 5, (window, ties)
        assert engine_run(closes, window)[0] == ref_signals


@given(
    st.lists(
        st.tuples(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=0, max_value=9)),
        max_size=60,
    ),
    windows,
)
@settings(max_examples=300, deadline=None)
def test_any_scales_in_any_order(values: list[tuple[int, int]], window: int) -> None:
    # Scales that grow and shrink mid-stream force the engine to rescale what it holds; nothing may be rounded.
    engine = RollingSignal(window)
    exact = [Fraction(u, 10**s) for u, s in values]
    for i, (u, s) in enumerate(values):
        signal = engine.update(u, s)
        held = exact[max(0, i + 1 - window) : i + 1]
        if i + 1 < window:
            assert signal == 0
            assert engine.mean() is None
            assert not engine.warm
        else:
            mean = sum(held, Fraction(0)) / window
            assert signal == (1 if exact[i] > mean else 0)
            assert engine.mean() == float(mean)
            assert engine.warm


@given(
    st.lists(
        st.tuples(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=0, max_value=3)),
        max_size=60,
    ),
    windows,
    st.lists(st.integers(min_value=1, max_value=40), max_size=8),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_update_many_is_update_row_by_row(values, window, cuts, one_scale, means) -> None:
    # Runs of one scale take the running-sum path; mixed scales and short runs go row by row. Either way each run
    # must give what update() and mean() give row by row, and leave the engine where they leave it.
    if one_scale:
        values = [(u, values[0][1]) for u, _ in values]
    rowwise = RollingSignal(window)
    want_sigs: list[int] = []
    want_means: list[float | None] = []
    for u, s in values:
        want_sigs.append(rowwise.update(u, s))
        want_means.append(rowwise.mean())
    many = RollingSignal(window)
    got_sigs: list[int] = []
    got_means: list[float | None] = []
    bounds = [*sorted({c for c in cuts if c < len(values)}), len(values)]
    start = 0
    for end in bounds:
        part = values[start:end]
        if part:
            sigs, ms = many.update_many([u for u, _ in part], [s for _, s in part], means=means)
            assert all(type(x) is int for x in sigs)
            got_sigs += sigs
            got_means += ms if ms is not None else []
        start = end
    assert got_sigs == want_sigs
    assert got_means == (want_means if means else [])
    assert many.state() == rowwise.state() and many.mean() == rowwise.mean()
    # count_many: the same count, and the engine left in the same place.
    counting = RollingSignal(window)
    start, hits = 0, 0
    for end in bounds:
        part = values[start:end]
        if part:
            hits += counting.count_many([u for u, _ in part], [s for _, s in part])
        start = end
    assert hits == sum(want_sigs)
    assert counting.state() == rowwise.state()


def test_the_scale_grows_mid_stream() -> None:
    engine = RollingSignal(3)
    assert [engine.update(u, 0) for u in (100, 101, 102)] == [0, 0, 1]
    assert engine.state().scale == 0
    # 101.000001 arrives at scale 6: the held 101 and 102 are rescaled; mean 101.333333667, so no signal.
    assert engine.update(101000001, 6) == 0
    assert engine.state() == WindowState(3, 6, (101000000, 102000000, 101000001))
    # Values at a smaller scale are brought up to the engine's: 101.6 > mean(101.000001, 101.5, 101.6).
    assert engine.update(1015, 1) == 0
    assert engine.update(1016, 1) == 1
    assert engine.state().scale == 6
    # 101.55 is exactly the mean of 101.5, 101.6 and itself: a tie, even across scales.
    assert engine.update(10155, 2) == 0
    assert engine.mean() == 101.55
    # 101.575 would tie with 101.6 and 101.55; 1e-17 more is above the mean, a difference no float can hold.
    assert float("101.57500000000000001") == 101.575
    assert engine.update(*parse_decimal("101.57500000000000001")) == 1
    assert engine.state().scale == 17


def test_the_same_value_written_differently_is_a_tie() -> None:
    engine = RollingSignal(2)
    assert engine.update(*parse_decimal("100.1")) == 0
    assert engine.update(*parse_decimal("100.10")) == 0  # equal to its mean: a tie is not a signal
    assert engine.mean() == 100.1
    assert engine.update(*parse_decimal("100.100000001")) == 1


def test_a_flat_window_has_its_price_as_mean() -> None:
    for price in ("0.1", "100.1", "42000.07", "8.5e-06", "-3.3"):
        engine = RollingSignal(7)
        signals = [engine.update(*parse_decimal(price)) for _ in range(50)]
        assert signals == [0] * 50
        assert engine.mean() == float(price)


def test_warm_up_follows_pandas_min_periods() -> None:
    engine = RollingSignal(4)
    assert [engine.update(u, 0) for u in (1, 2, 3, 4, 5)] == [0, 0, 0, 1, 1]
    assert RollingSignal(1).update(5, 0) == 0  # a window of one: the close is its own mean


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RollingSignal(0)


@given(ticks, windows, st.integers(min_value=0, max_value=80))
@settings(max_examples=150, deadline=None)
def test_state_round_trip_continues_identically(data: list[tuple[int, int]], window: int, cut: int) -> None:
    closes = [parse_decimal(spell(c, s)) for c, s in data]
    whole = RollingSignal(window)
    expected = [whole.update(u, s) for u, s in closes]
    first = RollingSignal(window)
    head = [first.update(u, s) for u, s in closes[:cut]]
    second = RollingSignal.from_state(first.state())
    assert head + [second.update(u, s) for u, s in closes[cut:]] == expected


scaled = st.lists(
    st.tuples(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=0, max_value=9)), max_size=30
)


def fed(window: int, values: list[tuple[int, int]]) -> RollingSignal:
    engine = RollingSignal(window)
    for u, s in values:
        engine.update(u, s)
    return engine


def continued(engine: RollingSignal, values: list[tuple[int, int]]) -> list[tuple[int, float | None]]:
    return [(engine.update(u, s), engine.mean()) for u, s in values]


@given(scaled, scaled, scaled, windows)
@settings(max_examples=300, deadline=None)
def test_windows_combine_in_order_as_one_engine_fed_both(a, b, after, window) -> None:
    # The parallel plan's prefix combine: the window before a block is the one before the block before it, then
    # that block's; an engine started from it continues exactly as one that saw every value.
    combined = fed(window, a).state().then(fed(window, b).state())
    assert len(combined.held) == min(window, len(a) + len(b))
    assert continued(RollingSignal.from_state(combined), after) == continued(fed(window, a + b), after)


def batch_of(values: list[tuple[int, int]], array: bool) -> Batch:
    """A batch of ``values``: the block path's kind (an array at the first value's scale) or lists."""
    import numpy as np

    if array:
        return Batch(array=np.array([u for u, _ in values], np.int64), scale=values[0][1] if values else 0)
    batch = Batch()
    batch.units, batch.scales = [u for u, _ in values], [s for _, s in values]
    return batch


@given(st.lists(st.tuples(scaled, st.booleans()), max_size=4), windows)
@settings(max_examples=300, deadline=None)
def test_holding_batches_leaves_the_window_feeding_them_would(parts, window) -> None:
    # The scales of successive batches go up and down: whatever the engine holds is brought to one scale.
    values: list[tuple[int, int]] = []
    held = RollingSignal(window)
    for part, array in parts:
        if array:  # one scale for the whole batch
            part = [(u, part[0][1]) for u, _ in part]
        held.hold(batch_of(part, array))
        values += part
    after = [(1, 0), (10**13, 2), (-5, 1)]
    assert continued(held, after) == continued(fed(window, values), after)


@given(ticks, windows, st.lists(st.integers(min_value=1, max_value=300), max_size=6), st.booleans())
@settings(max_examples=100, deadline=None)
def test_reader_pipeline_and_signals_agree_with_the_reference(data, window, cuts, jsonl) -> None:
    # The whole in-process path: CSV bytes in arbitrary pieces -> reader -> engine -> signals sink.
    closes = [spell(c, s) for c, s in data]
    csv_bytes = ("timestamp,close\n" + "".join(f"t{i},{c}\n" for i, c in enumerate(closes))).encode()
    pieces, start = [], 0
    for cut in sorted(set(cuts)):
        pieces.append(csv_bytes[start:cut])
        start = max(start, cut)
    pieces.append(csv_bytes[start:])
    out = io.BytesIO()
    pipeline = Pipeline(RollingSignal(window), SignalSink(out, "jsonl" if jsonl else "csv"))
    tally = pipeline.run(batches(Reader(keep_text=True), pieces))
    ref_signals, ref_means = exact_signals(closes, window)
    assert (tally.rows, tally.signals) == (len(closes), sum(ref_signals))
    lines = out.getvalue().decode().splitlines()
    if not jsonl and closes:
        assert lines.pop(0) == "row,timestamp,close,rolling_mean,signal"
    assert len(lines) == len(closes)
    for i, line in enumerate(lines):
        if jsonl:
            row, stamp, close, mean, signal = json.loads(line).values()
        else:
            row, stamp, close, mean_text, signal = line.split(",")
            row, signal, mean = int(row), int(signal), (float(mean_text) if mean_text else None)
        assert (row, stamp, close, signal) == (i + 1, f"t{i}", closes[i], ref_signals[i])
        assert mean == (None if ref_means[i] is None else float(ref_means[i]))
