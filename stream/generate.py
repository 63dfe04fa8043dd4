"""`mlops-stream generate`: seeded, realistic 1-minute BTC-like candles in the assessment dataset's layout.

Prices move as a random walk with volatility clusters and flat minutes (real 1-minute data is full of unchanged
closes, which is where float rolling means go wrong). All prices are whole cents computed in integers, so the
output is the same bytes on every machine for a given seed and row count. ``--symbols N`` makes a multi-instrument
feed instead: a ``symbol`` column after the timestamp, and every minute one candle of each symbol, each its own walk.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import BinaryIO

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume_btc", "volume_usd")
START = "2024-01-01T00:00:00"
START_CENTS = 4_200_000  # 42,000.00
BLOCK = 65_536  # rows generated per step: bounds memory for any row count


def _cents(values: list[int]) -> list[str]:
    return [f"{v // 100}.{v % 100:02d}" for v in values]


def candles(
    rows: int, seed: int, start: str = START, start_cents: int = START_CENTS, block: int = BLOCK
) -> Iterator[list[str]]:
    """Yield blocks of at most ``block`` CSV data lines (str, without line endings) for ``rows`` candles."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t0 = np.datetime64(start, "m")
    close = start_cents
    vol = 0.0008
    done = 0
    while done < rows:
        n = min(block, rows - done)
        # Volatility clusters: a slowly wandering per-minute volatility.
        vols = np.clip(vol * np.exp(np.cumsum(rng.normal(0.0, 0.02, n))), 0.0002, 0.004)
        vol = float(vols[-1])
        rets = rng.standard_normal(n) * vols
        flat = rng.random(n) < 0.04  # unchanged minutes
        rets[flat] = 0.0
        gaps = rng.integers(-2, 3, n) * (rng.random(n) < 0.1)  # open a few cents off the previous close
        wick_hi = np.abs(rng.standard_normal(n)) * vols * 0.6
        wick_lo = np.abs(rng.standard_normal(n)) * vols * 0.6
        vol_btc = np.round(rng.lognormal(1.2, 0.9, n) * 1e6).astype(np.int64)  # micro-BTC
        growth = np.exp(np.cumsum(rets))
        closes = np.maximum(np.round(close * growth).astype(np.int64), 100)
        prev = np.concatenate(([close], closes[:-1]))
        opens = np.maximum(prev + gaps, 100)
        top = np.maximum(opens, closes)
        bottom = np.minimum(opens, closes)
        highs = top + np.round(top * wick_hi).astype(np.int64)
        lows = np.maximum(bottom - np.round(bottom * wick_lo).astype(np.int64), 1)
        typical = (highs + lows + closes) // 3
        vol_usd = (vol_btc * typical + 500_000) // 1_000_000  # cents
        stamps = np.datetime_as_string(t0 + np.arange(done, done + n).astype("timedelta64[m]"), unit="s")
        close = int(closes[-1])
        o, h, lo, c = (_cents(a.tolist()) for a in (opens, highs, lows, closes))
        vb = [f"{v // 1_000_000}.{v % 1_000_000:06d}" for v in vol_btc.tolist()]
        vu = _cents(vol_usd.tolist())
        yield [
            f"{t.replace('T', ' ')},{a},{b},{d},{e},{f},{g}"
            for t, a, b, d, e, f, g in zip(stamps.tolist(), o, h, lo, c, vb, vu)
        ]
        done += n


def symbol_names(count: int) -> list[str]:
    width = len(str(count - 1))
    return [f"SYM{i:0{width}d}" for i in range(count)]


def multi_candles(rows: int, seed: int, symbols: int) -> Iterator[list[str]]:
    """Blocks of lines of a ``symbols``-instrument feed: minute by minute, one candle per symbol, ``rows`` in all."""
    import numpy as np

    names = symbol_names(symbols)
    # Each symbol is its own walk from its own price (between 1.00 and 50,000.00), seeded from the run's seed.
    starts = np.random.default_rng([seed, symbols]).integers(100, 5_000_000, symbols).tolist()
    minutes = -(-rows // symbols)
    step = max(1, BLOCK // symbols)  # minutes per block: bounds memory for any number of symbols
    walks = [candles(minutes, seed * 1_000_003 + i, start_cents=starts[i], block=step) for i in range(symbols)]
    left = rows
    while left > 0:
        per_symbol = [next(w) for w in walks]
        lines = []
        for minute in zip(*per_symbol):
            for name, line in zip(names, minute):
                stamp, _, rest = line.partition(",")
                lines.append(f"{stamp},{name},{rest}")
        lines = lines[:left]
        left -= len(lines)
        yield lines


def write(out: BinaryIO, rows: int, seed: int, quoted: bool = False, symbols: int = 0) -> None:
    """Write the header and ``rows`` candles; ``quoted`` wraps every line in quotes with CRLF and no final newline;
    ``symbols`` > 0 writes a feed of that many instruments with a ``symbol`` column."""
    columns = (COLUMNS[0], "symbol", *COLUMNS[1:]) if symbols else COLUMNS
    blocks = multi_candles(rows, seed, symbols) if symbols else candles(rows, seed)
    if quoted:
        out.write(('"' + ",".join(columns) + '"').encode())
        for block in blocks:
            out.write("".join(f'\r\n"{line}"' for line in block).encode())
        return
    out.write((",".join(columns) + "\n").encode())
    for block in blocks:
        out.write(("\n".join(block) + "\n").encode())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="mlops-stream generate", description="Write seeded synthetic 1-minute OHLCV candles as CSV."
    )
    p.add_argument("--rows", type=int, default=10_000, help="number of candles (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    p.add_argument("--output", default="-", metavar="PATH", help="file to write ('-' = stdout, the default)")
    p.add_argument("--quoted", action="store_true", help="wrap every line in double quotes, CRLF, no final newline")
    p.add_argument(
        "--symbols",
        type=int,
        default=0,
        metavar="N",
        help="a feed of N instruments: a symbol column, one candle per symbol every minute (default: one, no column)",
    )
    args = p.parse_args(argv)
    if args.rows < 0:
        p.error("--rows must be 0 or more")
    if args.symbols < 0:
        p.error("--symbols must be 0 or more")
    try:
        if args.output == "-":
            write(sys.stdout.buffer, args.rows, args.seed, args.quoted, args.symbols)
            sys.stdout.flush()
        else:
            with open(args.output, "wb") as fh:
                write(fh, args.rows, args.seed, args.quoted, args.symbols)
    except BrokenPipeError:
        return 141
    except OSError as exc:
        where = "stdout" if args.output == "-" else args.output
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        sys.stderr.write(f"mlops-stream generate: error: cannot write {where}: {reason}\n")
        return 1
    return 0
