"""`mlops-stream generate`: seeded, realistic 1-minute BTC-like candles in the assessment dataset's layout.

Prices move as a random walk with volatility clusters and flat minutes (real 1-minute data is full of unchanged
closes, which is where float rolling means go wrong). All prices are whole cents computed in integers, so the
output is the same bytes on every machine for a given seed and row count. ``--symbols N`` makes a multi-instrument
feed instead: a ``symbol`` column after the timestamp, and every minute one candle of each symbol, each its own walk.
``--layout binance`` writes the same candles as data.binance.vision's klines (12 fields, no header, millisecond open and
close times); ``--compress`` writes any layout gzip-, bz2-, xz-, zip- or zstd-compressed.
"""

from __future__ import annotations

import argparse
import errno
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from stream.fs.atomic import Staged

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
    walk = [np.datetime64(start, "m"), start_cents, 0.0008]  # the first minute, the last close, the volatility
    for done in range(0, rows, block):
        # The block is made by a function of its own: a feed of many symbols keeps one of these generators per
        # symbol, and its frame then holds the walk's state alone, not the last block's arrays.
        yield _block(rng, walk, done, min(block, rows - done))


def _block(rng: Any, walk: list[Any], done: int, n: int) -> list[str]:
    import numpy as np

    t0, close, vol = walk
    # Volatility clusters: a slowly wandering per-minute volatility.
    vols = np.clip(vol * np.exp(np.cumsum(rng.normal(0.0, 0.02, n))), 0.0002, 0.004)
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
    walk[1:] = [int(closes[-1]), float(vols[-1])]
    o, h, lo, c = (_cents(a.tolist()) for a in (opens, highs, lows, closes))
    vb = [f"{v // 1_000_000}.{v % 1_000_000:06d}" for v in vol_btc.tolist()]
    vu = _cents(vol_usd.tolist())
    return [
        f"{t.replace('T', ' ')},{a},{b},{d},{e},{f},{g}"
        for t, a, b, d, e, f, g in zip(stamps.tolist(), o, h, lo, c, vb, vu)
    ]


def symbol_names(count: int, first: int | None = None) -> list[str]:
    """The names of a feed of ``count`` symbols (only the ``first`` ones, when given)."""
    width = len(str(count - 1))
    return [f"SYM{i:0{width}d}" for i in range(count if first is None else first)]


def multi_candles(rows: int, seed: int, symbols: int) -> Iterator[list[str]]:
    """Blocks of lines of a ``symbols``-instrument feed: minute by minute, one candle per symbol, ``rows`` in all."""
    import numpy as np

    # Symbols past the row count never get a candle: no walk is kept for them.
    used = min(symbols, rows)
    names = symbol_names(symbols, used)
    # Each symbol is its own walk from its own price (between 1.00 and 50,000.00), seeded from the run's seed (the
    # first prices of a longer draw are those of a shorter one).
    starts = np.random.default_rng([seed, symbols]).integers(100, 5_000_000, used).tolist()
    minutes = -(-rows // symbols)
    step = max(1, BLOCK // symbols)  # minutes per block: bounds memory for any number of symbols
    walks = [candles(minutes, seed * 1_000_003 + i, start_cents=starts[i], block=step) for i in range(used)]
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


def _epoch_ms(stamp: str) -> int:
    from datetime import datetime, timezone

    return int(datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()) * 1000


def binance(rows: int, seed: int) -> Iterator[list[str]]:
    """Blocks of kline lines: open time, OHLC and volume at 8 decimals, close time (ms), quote volume, trades, taker
    buy base and quote volumes, and an unused 0, as Binance's public 1-minute archives hold them."""
    t = _epoch_ms(START)
    for block in candles(rows, seed):
        lines = []
        for line in block:
            _, o, h, lo, c, vb, vu = line.split(",")
            micro = int(vb.replace(".", ""))
            cents = int(vu.replace(".", ""))
            trades = micro // 20_000 + 1
            taker = micro * 11 // 20  # 55% of the volume bought by takers
            taker_usd = cents * 11 // 20
            lines.append(
                f"{t},{o}000000,{h}000000,{lo}000000,{c}000000,{vb}00,{t + 59_999},{vu}000000,{trades},"
                f"{taker // 1_000_000}.{taker % 1_000_000:06d}00,{taker_usd // 100}.{taker_usd % 100:02d}000000,0"
            )
            t += 60_000
        yield lines


def write(out: BinaryIO, rows: int, seed: int, quoted: bool = False, symbols: int = 0, layout: str = "ohlcv") -> None:
    """Write the header and ``rows`` candles; ``quoted`` wraps every line in quotes with CRLF and no final newline;
    ``symbols`` > 0 writes a feed of that many instruments with a ``symbol`` column; ``layout="binance"`` writes
    headerless Binance klines instead."""
    if layout == "binance":
        for block in binance(rows, seed):
            out.write(("\n".join(block) + "\n").encode())
        return
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


COMPRESS = {"gz": "gzip", "bz2": "bz2", "xz": "xz", "zip": "zip", "zst": "zstd"}


def compressor(out: BinaryIO, kind: str, member: str, stack: ExitStack) -> BinaryIO:
    """``out`` as a stream that writes ``kind``-compressed bytes (the same bytes for the same data: no times or names
    inside), closed with ``stack``; a zip holds one member named ``member``."""
    inner: Any
    if kind == "gz":
        import gzip

        inner = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0)
    elif kind == "bz2":
        import bz2

        inner = bz2.BZ2File(out, "wb")
    elif kind == "xz":
        import lzma

        inner = lzma.LZMAFile(out, "wb", format=lzma.FORMAT_XZ)  # noqa: SIM115 - the stack closes it
    elif kind == "zst":
        from stream.sources.decoders import zstd_module

        zstd = zstd_module()
        # A checksum in each frame, as the zstd command writes: damage is then a damaged file, not odd rows.
        inner = zstd.ZstdFile(out, "wb", options={zstd.CompressionParameter.checksum_flag: 1})
    else:
        import zipfile

        archive = stack.enter_context(zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED))
        info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        inner = archive.open(info, "w", force_zip64=True)
    return stack.enter_context(inner)


def member_name(output: str) -> str:
    """The CSV member of a zip written to ``output``: its name without ``.zip``, ending ``.csv``."""
    import os

    base = "candles" if output == "-" else os.path.basename(output)
    base = base[:-4] if base.lower().endswith(".zip") else base
    return base if base.lower().endswith(".csv") else base + ".csv"


# A billion minutes (about 1,900 years of 1-minute candles, some 80 GB of CSV): past that, a mistyped number.
MAX_ROWS = 1_000_000_000
# Symbols given candles at once: each keeps its own walk in memory (about 3 KB), so this bounds the memory (~60 MB).
MAX_WALKS = 20_000


def main(
    argv: list[str],
    stdout: BinaryIO | None,
    say: Callable[[str], None],
    parser: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> int:
    """``mlops-stream generate``: ``stdout`` is where ``--output -`` writes (None: closed), ``say`` writes a message
    to stderr, ``parser`` reads the arguments (the command's writes where ``say`` does)."""
    args = _arguments(argv, parser)
    kind = args.compress
    if kind is None:
        kind = next((k for k in COMPRESS if args.output.lower().endswith("." + k)), None)
    member = member_name(args.output)

    def produce(out: BinaryIO) -> None:
        with ExitStack() as stack:
            if kind is not None:
                out = compressor(out, kind, member, stack)
            write(out, args.rows, args.seed, args.quoted, args.symbols, args.layout)

    try:
        if kind == "zst":
            from stream.sources.decoders import ZSTD_MISSING, zstd_module

            try:
                zstd_module()  # a missing codec is said before anything is written
            except ImportError:
                say(f"mlops-stream generate: error: writing zstd needs {ZSTD_MISSING}\n")
                return 1
        _written(args.output, produce, stdout)
    except BrokenPipeError:
        return 141
    except OSError as exc:
        where = "stdout" if args.output == "-" else args.output
        reason = exc.strerror or str(exc)
        say(f"mlops-stream generate: error: cannot write {where}: {reason[:1].lower()}{reason[1:]}\n")
        return 1
    return 0


def _arguments(argv: list[str], parser: type[argparse.ArgumentParser]) -> argparse.Namespace:
    p = parser(prog="mlops-stream generate", description="Write seeded synthetic 1-minute OHLCV candles as CSV.")
    p.add_argument("--rows", type=int, default=10_000, help=f"number of candles (default 10000, at most {MAX_ROWS:,})")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    p.add_argument(
        "--output", default="-", metavar="PATH",
        help="file to write ('-' = stdout, the default); a file is replaced only once complete",
    )  # fmt: skip
    p.add_argument("--quoted", action="store_true", help="wrap every line in double quotes, CRLF, no final newline")
    p.add_argument(
        "--symbols",
        type=int,
        default=0,
        metavar="N",
        help="a feed of N instruments: a symbol column, one candle per symbol every minute (default: one, no column)",
    )
    p.add_argument(
        "--layout",
        choices=("ohlcv", "binance"),
        default="ohlcv",
        help="ohlcv: the assessment's 7 columns with a header (default); binance: data.binance.vision klines, 12 "
        "fields, no header, millisecond open and close times",
    )
    p.add_argument(
        "--compress",
        choices=tuple(COMPRESS),
        help="write the CSV compressed (a zip holds one member named after the output); default: from the output's "
        "name (.gz, .bz2, .xz, .zip, .zst), else plain text",
    )
    args = p.parse_args(argv)
    if not 0 <= args.rows <= MAX_ROWS:
        p.error(f"--rows must be between 0 and {MAX_ROWS:,}")
    if not 0 <= args.symbols <= MAX_ROWS:
        p.error(f"--symbols must be between 0 and {MAX_ROWS:,}")
    walks = min(args.rows, args.symbols)
    if walks > MAX_WALKS:
        p.error(
            f"--symbols {args.symbols:,} with --rows {args.rows:,} gives candles to {walks:,} symbols at once; at most "
            f"{MAX_WALKS:,} (each keeps its own random walk in memory)"
        )
    if args.layout == "binance" and (args.symbols or args.quoted):
        p.error("--layout binance writes one symbol's klines as Binance does: no --symbols or --quoted")
    return args


def _written(path: str, produce: Callable[[BinaryIO], None], stdout: BinaryIO | None) -> None:
    """Have ``produce`` write stdout (``-``; None: closed), a FIFO or device as the stream it is, or a file staged
    beside ``path`` and renamed over it once complete: a run interrupted (Ctrl-C, SIGTERM, a full disk) leaves what
    was there."""
    if path == "-":
        if stdout is None:
            raise OSError(errno.EBADF, "it is closed")
        produce(stdout)
        stdout.flush()
        return
    from stream.fs.atomic import Staged, is_stream, remove_leftovers

    if is_stream(path):
        with open(path, "wb") as out:
            produce(out)
        return
    remove_leftovers(path)  # of a run killed (kill -9) while writing it
    staged = Staged(path)
    try:
        with _discarded_on_sigterm(staged):
            produce(staged.fh)
    except BaseException:
        staged.discard()
        raise
    staged.commit()


@contextmanager
def _discarded_on_sigterm(staged: Staged) -> Iterator[None]:
    """While ``staged`` is written, SIGTERM removes it before ending the process as SIGTERM does."""
    import os
    import signal

    def on_term(signum: int, frame: object) -> None:
        staged.remove()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        before = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (an embedding program): its own handlers stay
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
