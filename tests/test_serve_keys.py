"""--metrics-port with --key: the per-key series are the 1,000 keys with the most rows and "other", kept from the keys
that passed the fewest rows shown; checked on a real run and against a full count of every key."""

from __future__ import annotations

import random
import signal
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.test_serve import PRICES, WINDOW, append, families, port_from_log, scrape, start, wait_for


def key_series(m: dict[str, Any], name: str) -> dict[str, float]:
    """Each key's value of ``mlops_stream_key_<name>_total``."""
    head = f"mlops_stream_key_{name}_total{{key="
    return {n[len(head) : -1]: v for n, v in m.items() if n.startswith(head)}


def test_keyed_series_are_the_top_keys_by_rows_and_other_holds_the_rest(tmp_path: Path) -> None:
    """1,000 keys with 3 rows, 200 with 1 and a key named "other" with 2, in random order, in two appends: the
    scrapes export the 1,000 busiest keys and "other", whose values sum to the totals at every scrape."""
    from stream.sinks.topkeys import TOP_KEYS

    rng = random.Random(4)
    busy = [f"K{i:04d}" for i in range(TOP_KEYS)]
    quiet = [f"Q{i:03d}" for i in range(200)]
    rows = [(k, rng.choice(PRICES)) for k in busy * 3 + quiet + ["other", "other"]]
    rng.shuffle(rows)
    lines = [f"{i},{k},{c}\n" for i, (k, c) in enumerate(rows)]
    live = tmp_path / "live.csv"
    live.write_text("timestamp,symbol,close\n" + "".join(lines[: len(lines) // 2]))
    p = start(
        ["--input", "live.csv", "--follow", "--key", "symbol", "--window", str(WINDOW), "--metrics-port", "0",
         "--log-file", "run.log", "--no-progress"], tmp_path,
    )  # fmt: skip

    def summed(m: dict[str, Any]) -> dict[str, Any]:
        if "mlops_stream_rows_processed_total" not in m:  # the run is not attached yet
            return m
        got_rows, got_hits = key_series(m, "rows_processed"), key_series(m, "signals")
        assert set(got_rows) == set(got_hits) and len(got_rows) <= TOP_KEYS + 1
        assert sum(got_rows.values()) == m["mlops_stream_rows_processed_total"]
        assert sum(got_hits.values()) == m["mlops_stream_signals_total"]
        return m

    try:
        port = port_from_log(tmp_path / "run.log", p)
        wait_for(lambda: summed(families(scrape(port)[1])).get("mlops_stream_rows_processed_total"), "rows")
        append(live, "".join(lines[len(lines) // 2 :]).encode())
        m = wait_for(
            lambda: (lambda m: m if m.get("mlops_stream_rows_processed_total") == len(rows) else None)(
                summed(families(scrape(port)[1]))
            ),
            "every row",
        )
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    # The reference: each key's own window.
    held: dict[str, deque[Fraction]] = {}
    counts: dict[str, list[int]] = {}
    for k, c in rows:
        h = held.setdefault(k, deque(maxlen=WINDOW))
        v = Fraction(c)
        h.append(v)
        n = counts.setdefault(k, [0, 0])
        n[0] += 1
        n[1] += int(len(h) == WINDOW and v > sum(h) / WINDOW)
    assert key_series(m, "rows_processed") == {**{k: 3 for k in busy}, "other": 200 + 2}
    assert key_series(m, "signals") == {
        **{k: counts[k][1] for k in busy}, "other": sum(counts[k][1] for k in [*quiet, "other"])
    }  # fmt: skip
    assert m["mlops_stream_keys"] == len(counts)
    assert m["mlops_stream_signals_total"] == sum(n[1] for n in counts.values())


@pytest.mark.parametrize("blocks", [False, True])
def test_the_top_keys_kept_from_changes_are_those_of_a_full_count(blocks: bool) -> None:
    """Random batches into a real keyed pipeline (or, with ``blocks``, each key's counts so far as a parallel run
    hands them over), with a take after some: the top keys' rows, and the sums of the rest, equal those of sorting
    every key's count (ties may pick either key, so rows are compared as sorted lists)."""
    from stream.core.batch import Batch
    from stream.core.keyed import KeyedSignal
    from stream.core.tally import Tally
    from stream.runs.pipeline import Pipeline
    from stream.sinks.topkeys import TopKeys

    rng = random.Random(12)
    for _ in range(30):
        engine = KeyedSignal(2)
        pipeline = Pipeline(engine)
        top = TopKeys(pipeline, n=rng.randint(1, 6))
        names = [f"k{i}" for i in range(rng.randint(1, 15))] + ["other"]
        every: dict[str, tuple[int, int]] = {}
        for _ in range(rng.randint(1, 25)):
            batch = Batch()
            batch.keys = [rng.choice(names) for _ in range(rng.randint(1, 8))]
            batch.units = [rng.randint(1, 9) for _ in batch.keys]
            batch.scales = [0] * len(batch.keys)
            if blocks:
                for k in batch.keys:
                    r, h = every.get(k, (0, 0))
                    every[k] = (r + 1, h + rng.randint(0, 1))
                tallies = {k: Tally(r, h) for k, (r, h) in every.items()}
                pipeline.take_counts(sum(tallies.values(), Tally()), tallies)
            else:
                pipeline.consume(batch)
                every = {k: (x.rows, x.hits) for k, x in engine.series.items()}
            if rng.random() < 0.5:
                continue
            got = top.take().counts()
            ranked = sorted((r for k, (r, _) in every.items() if k != "other"), reverse=True)
            assert sorted((r for _, r, _ in got.top), reverse=True) == ranked[: top.n]
            assert all(every[k] == (r, h) for k, r, h in got.top)
            assert got.keys == len(every)
            rest = [every[k] for k in every if k not in {name for name, _, _ in got.top}]
            assert got.other == ((sum(r for r, _ in rest), sum(h for _, h in rest)) if rest else None)
