"""Exact decimals of many fields at once, with numpy: the block paths' conversion of close fields (plain CSV lines,
JSON Lines of one shape) to int64 units at one scale; and numpy itself, imported as those paths want it."""

from __future__ import annotations

from typing import Any

# Digits of a close field the block path parses itself: with a common scale S, a field with `whole` integer digits
# becomes units < 10**(whole + S), and whole + S <= 18 keeps that below 2**63.
MAX_DIGITS = 18


_tuned = False


def numpy() -> Any:
    from stream import seeding

    if not _tuned:
        _keep_freed_memory()
    return seeding.numpy()


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next chunk instead of handing it back to the kernel.

    By default blocks over 128 KiB are mmapped and unmapped again, and the heap top is trimmed; each chunk's
    megabyte-sized numpy temporaries then page-fault in afresh, which cost a third of the block path's time. The
    working set per chunk is bounded, so keeping it changes the peak memory by nothing.
    """
    global _tuned
    _tuned = True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
    mallopt(m_trim_threshold, 256 << 20)
    mallopt(m_top_pad, 16 << 20)  # grow the heap in big steps: fewer brk calls


def decimals(a: Any, start: Any, length: Any, gathered: Any = None) -> tuple[Any, Any, int]:
    """Fields of digits with at most one dot, as exact int64 units at their largest scale: (ok, units, scale).

    Fields that are anything else, or too long for int64 at that scale, are marked not ok (their units are junk).
    ``gathered``: the fields' bytes as the caller has them, byte j of every field in row j (at least as many rows as
    the widest field has bytes); else they are taken from ``a``.
    """
    np = numpy()
    n = len(start)
    ok = (length > 0) & (length <= MAX_DIGITS)
    ln = np.where(ok, length, 0)
    width = int(ln.max()) if n else 0
    if width == 0:
        return ok, np.zeros(n, np.int64), 0
    # Laid out column by column (byte j of every field is one contiguous row), so each step is a plain vector op.
    at = np.arange(width)[:, None]
    if gathered is None:
        idx = at + start
        np.minimum(idx, len(a) - 1, out=idx)
        m = a[idx]
    else:
        m = gathered[:width]
    d = m - np.uint8(48)
    inside = at < ln
    digit = (d < 10) & inside
    dot = (m == 46) & inside
    ndots = dot.sum(0, dtype=np.int8)
    ndigits = digit.sum(0, dtype=np.int8)
    ok &= (ndigits + ndots == ln) & (ndots <= 1) & (ndigits > 0)
    point = (dot * at.astype(np.int8)).sum(0, dtype=np.int8)
    has_dot = ndots > 0
    frac = np.where(ok & has_dot, ln - point - 1, 0).astype(np.int64)
    scale = int(frac.max())
    # A field with w integer digits becomes units < 10**(w + scale): keep that within 10**18 < 2**63.
    ok &= ndigits - frac + scale <= MAX_DIGITS
    frac[~ok] = 0
    # Horner's rule over the digits only (the dot and the padding leave the number as it is); no division needed.
    number = np.zeros(n, np.int64)
    step = np.empty(n, np.int64)
    for j in range(width):
        np.multiply(number, 10, out=step)
        step += d[j]
        np.copyto(number, step, where=digit[j])
    pow10 = 10 ** np.arange(MAX_DIGITS + 1, dtype=np.int64)
    return ok, number * pow10[scale - frac], scale
