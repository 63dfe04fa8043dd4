"""Newest-first files told from the date forms of real exports: the date keys against the datetime module as an oracle,
and the warnings a run gives (or, on evidence that does not settle the order, does not give) for each form."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, write
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.parsing.dates import time_keys

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def same_order(keys: list[Any], times: list[Any]) -> bool:
    return all(
        (keys[i] < keys[j]) == (times[i] < times[j]) and (keys[i] == keys[j]) == (times[i] == times[j])
        for i, j in itertools.combinations(range(len(times)), 2)
    )


# ---- the keys, with datetime as the oracle --------------------------------------------------------------------------

# Forms that name the month or put the year first: always told, whatever the values.
TOLD = [
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y.%m.%d", "%Y/%m/%d %H:%M", "%Y%m%d",
    "%d-%b-%y", "%d-%b-%Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%Y-%m-%d %H:%M:%S%z",
]  # fmt: skip
# Day first or month first: told when a day over 12 settles it, or when both readings order the values alike.
OPEN = ["%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y %H:%M:%S.%f", "%m-%d-%Y", "%m/%d/%Y %I:%M:%S %p"]


def moments(low: datetime, high: datetime) -> st.SearchStrategy[list[datetime]]:
    """Times anywhere, near one another, or on days 1 to 12 of one year (which both day-month readings make dates of,
    ordered alike or not)."""
    one = st.datetimes(low, high)
    near = st.builds(
        lambda d, n: d + timedelta(hours=n), st.datetimes(low, high - timedelta(days=90)), st.integers(0, 2000)
    )
    twelve = st.integers(1, 12)
    days = st.lists(st.tuples(twelve, twelve), min_size=1, max_size=8)  # (month, day) pairs, in one year below
    # A tuple and a map, not a flatmap: a flatmap makes (and checks) a new strategy at every draw.
    early = st.tuples(st.integers(low.year, high.year), days).map(lambda yd: [datetime(yd[0], m, d) for m, d in yd[1]])
    return st.one_of(st.lists(st.one_of(one, near), min_size=1, max_size=8), early)


def written(t: datetime, form: str, case: Callable[[str], str] = str) -> str:
    text = t.replace(tzinfo=UTC).strftime(form)
    return case(text.lstrip("0") if form.startswith("%d-") else text)  # `2-Jan-90`, as Excel writes it


def read_as(texts: list[str], form: str) -> list[datetime] | None:
    """The times datetime reads from the texts in ``form``; None when it reads no time from one of them."""
    try:
        return [datetime.strptime(t, form) for t in texts]
    except ValueError:
        return None


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(TOLD),
    moments(datetime(1969, 1, 1), datetime(2068, 12, 31)),
    st.sampled_from([str, str.upper, str.lower]),
)
def test_a_told_form_gives_keys_in_the_order_of_the_times(form: str, times: list[datetime], case: Callable) -> None:
    texts = [written(t, form, case) for t in times]
    keys = time_keys(texts)
    read = read_as(texts, form)
    assert keys is not None and read is not None, texts
    assert same_order(keys, read), texts


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(OPEN), moments(datetime(1000, 1, 1), datetime(9999, 12, 31)))
def test_day_or_month_first_is_told_only_when_the_values_settle_it(form: str, times: list[datetime]) -> None:
    texts = [written(t, form) for t in times]
    keys = time_keys(texts)
    read = read_as(texts, form)
    assert read is not None
    other = read_as(texts, form.replace("%d", "%D").replace("%m", "%d").replace("%D", "%m"))  # day and month swapped
    if other is None:
        assert keys is not None and same_order(keys, read), texts
    else:
        assert (keys is not None) == same_order(other, read), texts  # either reading, when both order them alike
        assert keys is None or same_order(keys, read), texts


LOW, HIGH = datetime(1973, 3, 4), datetime(2286, 11, 19)  # 9 to 10 digits of seconds since 1970


def ns_since_1970(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1) * 1000


def epoch_text(ns: int, unit: str, fraction: bool) -> tuple[str, int]:
    """``ns`` written in ``unit`` (whole, or with the fraction of the unit), and the time that text says."""
    per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    whole, rest = divmod(ns, per)
    if fraction and per > 1:
        return f"{whole}.{str(rest).rjust(len(str(per)) - 1, '0')}", ns
    return str(whole), whole * per


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.builds(
                lambda t, n: ns_since_1970(t) + n,
                st.datetimes(LOW, HIGH, timezones=st.just(UTC)),
                st.integers(0, 999),
            ),
            st.sampled_from(["s", "ms", "us", "ns"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_epoch_numbers_are_told_by_their_size(stamps: list[tuple[int, str, bool]]) -> None:
    written = [epoch_text(ns, unit, fraction) for ns, unit, fraction in stamps]
    keys = time_keys([text for text, _ in written])
    assert keys is not None, written
    assert same_order(keys, [ns for _, ns in written]), written


@pytest.mark.parametrize(
    "texts",
    [
        ["2024-01-03", "01/02/2024", "2024-01-01"],  # forms mixed
        ["26-Dec-18", "25-Dec-2018"],  # two-digit and four-digit years
        ["2024-01-03 10:00", "2024-01-03"],  # a time, then none
        ["2024-01-03 10:00+01:00", "2024-01-03 10:00+02:00"],  # zones differ
        ["2024-01-03", "n/a"],
        ["2024-02-30"], ["13/13/2024"], ["20241301"], ["31-Jun-24"], ["Sept 1, 2024"], ["25:00 2024-01-01"],
        ["2024-01-01 24:00"], ["1/1/2024 13:00 PM"], ["01-02-24"],  # a two-digit year after a day and a month
        ["12345678901"], ["12345678901234"], ["12345678901234567"], ["12345678"], ["\uff11" * 10],
        ["12/01/2024", "01/02/2024"],  # Dec 1 after Jan 2, or 12 Jan before 1 Feb
    ],
)  # fmt: skip
def test_keys_are_none_when_the_form_cannot_be_told(texts: list[str]) -> None:
    assert time_keys(texts) is None


# ---- the newest-first warning of a run ----------------------------------------------------------------------------

NEWEST = "the rows run newest first"
BACKWARDS = "with --reverse the rows run newest first"

FORMS = {
    "investing.com": ("Date", "%m/%d/%Y"),
    "day first": ("Date", "%d/%m/%Y"),
    "German": ("Datum", "%d.%m.%Y"),
    "CoinMarketCap": ("Date", "%d-%b-%y"),
    "NSE India": ("Date", "%d-%b-%Y"),
    "US long": ("Date", "%b %d, %Y"),
    "stooq": ("Date", "%Y%m%d"),
    "ISO": ("timestamp", "%Y-%m-%d"),
    "ISO time": ("Date", "%Y-%m-%dT%H:%M:%S"),
    "Dukascopy": ("Gmt time", "%d.%m.%Y %H:%M:%S.000"),
    "epoch s": ("unix", "s"),
    "epoch ms (Bitfinex)": ("MTS", "ms"),
    "epoch us": ("timestamp", "us"),
    "epoch ns": ("timestamp", "ns"),
}


def stamp(t: datetime, form: str) -> str:
    if form in ("s", "ms", "us", "ns"):
        return epoch_text(ns_since_1970(t), form, False)[0]
    return t.strftime(form)


def export(folder: Path, name: str, column: str, texts: list[str]) -> Path:
    rows = "".join(f'"{t}",1.5,"{1000 + 7 * (i % 5)}.25"\n' for i, t in enumerate(texts))
    return write(folder / name, f"{column},Open,Close\n{rows}")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_date_form_newest_first_is_warned_and_oldest_first_is_not(
    form: str, tmp_path: Path, run_main: Callable[..., Run]
) -> None:
    column, fmt = FORMS[form]
    days = [datetime(2024, 1, 3, 9, 30, tzinfo=UTC) + timedelta(days=d, hours=d) for d in range(30)]
    texts = [stamp(t, fmt) for t in days]
    export(tmp_path, "old.csv", column, texts)
    export(tmp_path, "new.csv", column, texts[::-1])
    said = {}
    for name, flags in [("new.csv", []), ("new.csv", ["--reverse"]), ("old.csv", []), ("old.csv", ["--reverse"])]:
        run = run_main(["--input", name, "--output", "m.json", "--log-file", "run.log", *flags])
        assert run.code == 0, run.stderr
        said[name, bool(flags)] = run.stderr
    assert NEWEST in said["new.csv", False] and "pass --reverse" in said["new.csv", False]
    assert f"(column {column!r} goes back in time" in said["new.csv", False]
    assert "newest first" not in said["new.csv", True] + said["old.csv", False]
    assert BACKWARDS in said["old.csv", True] and "leave out --reverse" in said["old.csv", True]
    assert NEWEST in (tmp_path / "run.log").read_text()


@pytest.mark.parametrize(
    "texts",
    [
        ["03/02/2024", "02/02/2024", "01/03/2024", "12/01/2023"],  # Mar 2 > Feb 2 > Jan 3, or 3 Feb < 1 Mar
        ["2024-01-05", "01/04/2024", "2024-01-03", "2024-01-02"],  # forms mixed
        ["2024-01-05", "2024-01-04", "", "2024-01-02"],  # a value missing
        ["2024-01-05", "2024-01-04", "yesterday", "2024-01-02"],
        ["2024-01-05", "2024-01-05", "2024-01-04", "2024-01-03"],  # equal times
        ["2024-01-05", "2024-01-03", "2024-01-04", "2024-01-02"],  # out of order
        ["05-01-24", "04-01-24", "03-01-24", "02-01-24"],  # a two-digit year after a day and a month
        ["17000000003", "17000000002", "17000000001", "17000000000"],  # 11 digits: seconds or milliseconds?
        ["2024-01-05", "2024-01-04"],  # two rows tell no order
    ],
)
def test_evidence_that_does_not_settle_the_order_is_not_warned(
    texts: list[str], tmp_path: Path, run_main: Callable[..., Run]
) -> None:
    export(tmp_path, "in.csv", "Date", texts)
    run = run_main(["--input", "in.csv", "--output", "m.json", "--log-file", "run.log", "--on-bad-row", "skip"])
    assert run.code == 0, run.stderr
    assert "newest first" not in run.stderr + (tmp_path / "run.log").read_text()
