"""Contract point 2: the CSV quirks real exports contain are read correctly, and columns are found by name."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ohlcv_csv, write
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.batch import BadRow
from stream.parsing.framing import Flagged, InputError, flag_long
from stream.parsing.layout import Layout
from stream.parsing.plain import chunk_rows
from stream.parsing.reader import Reader, batches
from stream.parsing.rows import BadRows, Rows
from stream.sources.files import NewFile

CLOSES = ["100.10", "100.1", "99.95", "101", "100.2"]


def read(data: bytes, chunk: int | None = None, **kw) -> tuple[list[str], list[str], list[BadRow], Reader]:
    """Run the reader over ``data`` (in ``chunk``-byte pieces); return closes, timestamps, bad rows, the reader."""
    bad: list[BadRow] = []
    kw.setdefault("on_bad_row", "skip")
    reader = Reader(keep_text=True, report=bad.append, **kw)
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    closes: list[str] = []
    stamps: list[str] = []
    for batch in batches(reader, pieces):
        assert len(batch.units) == len(batch.scales) == len(batch.closes)
        closes += batch.closes
        stamps += batch.stamps
    return closes, stamps, bad, reader


def quote_lines(text: str, header: bool = True, data: bool = True) -> str:
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        wrap = line and ((i == 0 and header) or (i > 0 and data))
        out.append(f'"{line}"' if wrap else line)
    return "\n".join(out)


PLAIN = ohlcv_csv(CLOSES)


@pytest.mark.parametrize("chunk", [None, 1, 7])
@pytest.mark.parametrize(
    "variant",
    [
        "plain",
        "bom",
        "crlf",
        "no-final-newline",
        "crlf-no-final-newline",
        "blank-lines",
        "spaces",
        "quoted-header",
        "quoted-data",
        "quoted-both",
        "assessment-like",
    ],
)
def test_every_quirk_gives_the_same_rows(variant: str, chunk: int | None) -> None:
    text = {
        "plain": PLAIN,
        "bom": "\ufeff" + PLAIN,
        "crlf": PLAIN.replace("\n", "\r\n"),
        "no-final-newline": PLAIN.rstrip("\n"),
        "crlf-no-final-newline": PLAIN.rstrip("\n").replace("\n", "\r\n"),
        "blank-lines": "\n  \n" + PLAIN.replace("\n", "\n\n \t \n", 2) + "\n   \n\n",
        "spaces": "\n".join(" " + ",  ".join(f.strip() for f in ln.split(",")) + "  " for ln in PLAIN.split("\n")[:-1]),
        "quoted-header": quote_lines(PLAIN, data=False),
        "quoted-data": quote_lines(PLAIN, header=False),
        "quoted-both": quote_lines(PLAIN),
        # What the assessment dataset looks like: every line quoted, CRLF, no newline after the last line.
        "assessment-like": quote_lines(PLAIN).rstrip("\n").replace("\n", "\r\n"),
    }[variant]
    closes, stamps, bad, reader = read(text.encode("utf-8"), chunk)
    assert bad == []
    assert closes == CLOSES
    assert stamps == [f"2024-01-01 00:{i:02d}:00" for i in range(len(CLOSES))]
    assert reader.layout is not None
    assert reader.layout.columns == ["timestamp", "open", "high", "low", "close", "volume_btc", "volume_usd"]
    assert reader.layout.bom == (variant == "bom")
    assert reader.layout.quoted_lines == (variant in ("quoted-header", "quoted-both", "assessment-like"))


def test_blank_lines_count_for_line_numbers() -> None:
    text = "\r\nclose\r\n\r\n1\r\n   \r\nx\r\n2"
    closes, _, bad, reader = read(text.encode())
    assert closes == ["1", "2"]
    assert [b.line for b in bad] == [6]
    assert reader.layout is not None and reader.layout.header_line == 2


def test_whitespace_only_lines_are_ignored_in_a_one_column_file() -> None:
    closes, _, bad, _ = read(b"close\n1\n   \n\t\n \r\n2\n")
    assert bad == []
    assert closes == ["1", "2"]


def test_columns_are_found_by_name_in_any_order() -> None:
    text = "volume, close ,timestamp,extra\n5,100.5,t1,x\n6, 101 ,t2,y\n"
    closes, stamps, bad, reader = read(text.encode())
    assert (closes, stamps, bad) == (["100.5", "101"], ["t1", "t2"], [])
    assert reader.layout is not None and reader.layout.close_index == 1


def test_a_configured_column_name_is_used() -> None:
    closes, _, _, _ = read(b"ts,Close,last\nt,1,2\nt,3,4\n", column="last")
    assert closes == ["2", "4"]


def test_no_timestamp_column_means_no_stamps() -> None:
    closes, stamps, _, reader = read(b"close,open\n1,2\n")
    assert (closes, stamps) == (["1"], [])
    assert reader.layout is not None and reader.layout.timestamp_index is None


def test_quoted_fields_inside_an_ordinary_row() -> None:
    text = 'timestamp,note,close\n"2024-01-01 00:00:00","a, b",100.5\n2024,"say ""hi""","7"\n'
    closes, stamps, bad, _ = read(text.encode())
    assert (closes, stamps, bad) == (["100.5", "7"], ["2024-01-01 00:00:00", "2024"], [])


@pytest.mark.parametrize(
    ("header", "column", "suggestion"),
    [
        ("timestamp,open,Adj Close", "close", "'Adj Close'"),
        ("timestamp,open,volume", "close", None),
        ("ts,closing", "Close", "'closing'"),
    ],
)
def test_a_missing_column_lists_what_was_found(header: str, column: str, suggestion: str | None) -> None:
    with pytest.raises(InputError) as info:
        read(f"{header}\n1,2,3\n".encode(), column=column)
    message = str(info.value)
    assert f"no column {column!r}" in message
    assert "line 1" in message
    assert "--column NAME" in message and "'column: NAME' in the config" in message
    for name in header.split(","):
        assert repr(name) in message
    if suggestion:
        assert f"closest: {suggestion}" in message
    else:
        assert "closest" not in message


def test_a_column_named_twice_is_an_error() -> None:
    with pytest.raises(InputError, match="more than once"):
        read(b"close,close\n1,2\n")


def test_an_undecodable_header_is_not_mistaken_for_a_blank_line() -> None:
    # Without care, the unreadable header is skipped like a blank line and the first data row becomes the header.
    with pytest.raises(InputError) as info:
        read(b"timestamp,op\xffen,close\n2024,1,2\n")
    message = str(info.value)
    assert "line 1" in message
    assert "UTF-8" in message


def test_empty_input_has_no_layout() -> None:
    closes, _, bad, reader = read(b"\n \r\n")
    assert (closes, bad, reader.layout) == ([], [], None)


# ---- chunking never changes the result ----------------------------------------------------------------------------

row = st.tuples(
    st.sampled_from(["100.1", "100.10", " 99.5 ", "1e2", "-0.5", "x", "", "nan"]),
    st.sampled_from(["plain", "quoted", "blank", "spaces", "extra-field"]),
)


@given(
    rows=st.lists(row, min_size=0, max_size=25),
    crlf=st.booleans(),
    bom=st.booleans(),
    quoted_header=st.booleans(),
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12),
)
@settings(max_examples=150, deadline=None)
def test_chunk_boundaries_do_not_matter(rows, crlf, bom, quoted_header, final_newline, cuts) -> None:
    lines = ['"ts,close"' if quoted_header else "ts,close"]
    for i, (close, shape) in enumerate(rows):
        lines.append(
            {
                "plain": f"t{i},{close}",
                "quoted": f'"t{i},{close}"',
                "blank": "  ",
                "spaces": f"  t{i} ,  {close}  ",
                "extra-field": f"t{i},{close},z",
            }[shape]
        )
    nl = "\r\n" if crlf else "\n"
    text = ("\ufeff" if bom else "") + nl.join(lines) + (nl if final_newline else "")
    data = text.encode()
    whole = read(data)
    pieces, start = [], 0
    for cut in sorted(set(cuts)):
        if cut < len(data):
            pieces.append(data[start:cut])
            start = cut
    pieces.append(data[start:])
    bad: list[BadRow] = []
    reader = Reader(keep_text=True, on_bad_row="skip", report=bad.append)
    closes: list[str] = []
    for batch in batches(reader, pieces):
        closes += batch.closes
    assert closes == whole[0]
    assert bad == whole[2]
    # Every good row is read, every bad one reported at its own line (header = line 1).
    expected_lines = [
        i + 2
        for i, (close, shape) in enumerate(rows)
        if shape == "extra-field" or (shape != "blank" and close.strip() in ("x", "", "nan"))
    ]
    assert [b.line for b in bad] == expected_lines


# ---- end to end: the command reads each variant the same way -----------------------------------------------------


def test_the_command_reads_every_variant_alike(run_main, tmp_path: Path) -> None:
    closes = [f"{100 + (i * 7919) % 13 / 10:.2f}" for i in range(40)]
    text = ohlcv_csv(closes)
    variants = {
        "plain.csv": text,
        "bom-crlf.csv": "\ufeff" + text.replace("\n", "\r\n"),
        "quoted.csv": quote_lines(text).rstrip("\n").replace("\n", "\r\n"),
        "messy.csv": "\n\n" + text.replace("\n", "\n   \n", 10).replace(",", " , "),
    }
    outputs = set()
    for name, content in variants.items():
        write(tmp_path / name, content)
        run = run_main(["--input", name, "--signals", "-", "--window", "3"])
        assert run.code == 0, (name, run.stderr)
        outputs.add(run.stdout)
    assert len(outputs) == 1


def test_an_undecodable_first_line_of_a_later_file_is_a_bad_row() -> None:
    bad: list[BadRow] = []
    reader = Reader(keep_text=True, on_bad_row="skip", report=bad.append)
    first = reader.feed(b"ts,close\nt0,1\n")
    reader.new_file()
    later = reader.feed(b"t1,\xff\nt2,2\n")
    assert first.closes + later.closes == ["1", "2"]
    assert [(b.line, "UTF-8" in b.reason) for b in bad] == [(1, True)]


@given(
    lines=st.lists(
        st.one_of(
            st.text(alphabet=',"\r\t 1.5xe-\x00', max_size=12),
            st.binary(max_size=8).map(lambda b: b.replace(b"\n", b"").decode("latin-1")),
        ),
        max_size=20,
    ),
    cut=st.integers(min_value=1, max_value=60),
)
@settings(max_examples=300, deadline=None)
def test_any_garbage_is_rows_or_bad_rows_at_the_right_lines(lines: list[str], cut: int) -> None:
    # Whatever the lines hold, the reader never fails with anything but a bad row, and accounts for each line.
    data = ("ts,close\n" + "".join(line + "\n" for line in lines)).encode("utf-8", "surrogateescape")
    results = []
    for chunk in (None, cut):
        bad: list[BadRow] = []
        reader = Reader(keep_text=True, on_bad_row="skip", report=bad.append)
        pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
        closes = [c for batch in batches(reader, pieces) for c in batch.closes]
        numbers = [b.line for b in bad]
        assert numbers == sorted(set(numbers))
        assert all(2 <= n <= len(lines) + 1 for n in numbers)
        assert len(closes) + len(bad) <= len(lines)
        results.append((closes, bad))
    assert results[0] == results[1]


# ---- the whole-chunk fast path reads exactly what the row loop reads ----------------------------------------------


def row_loop(data: bytes, layout: Layout) -> tuple:
    """What the csv row loop alone (``Rows.loop``) makes of the data lines of ``data``, whose header is its first
    line: each row's exact value, close text and timestamp, the bad rows, and the lines and bytes read."""
    lines = data.decode().split("\n")
    if lines[-1] == "":
        lines.pop()  # the piece after the final newline
    body = lines[1:]
    flagged: Flagged = {}
    flag_long(body, flagged, len(data))  # as the reader's framing does
    bad: list[BadRow] = []
    batch = Rows(layout, BadRows(True, bad.append).bad, keep_text=True).loop(body, 2, flagged)
    values = [Fraction(u, 10**s) for u, s in zip(batch.units, batch.scales, strict=True)]
    return values, batch.closes, batch.stamps, bad, len(lines), len(data)


def read_both(data: bytes, cuts: list[int] = (), **kw) -> tuple[tuple, tuple]:  # type: ignore[assignment]
    """What the reader makes of ``data`` pushed in pieces cut at ``cuts`` (taking the whole-chunk fast path wherever
    it applies), and what the row loop alone makes of it, alike: each row's exact value (a chunk may give ``45219.5``
    as 4521950 at scale 2, the row loop as 452195 at scale 1), close text and timestamp, the bad rows, and where the
    reader ends."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    bad: list[BadRow] = []
    reader = Reader(keep_text=True, report=bad.append, on_bad_row="skip", **kw)
    values: list[Fraction] = []
    closes: list[str] = []
    stamps: list[str] = []
    for batch in batches(reader, pieces):
        values += [Fraction(u, 10**s) for u, s in zip(batch.units, batch.scales, strict=True)]
        closes += batch.closes
        stamps += batch.stamps
    assert reader.layout is not None
    return (values, closes, stamps, bad, reader.line_no, reader.offset), row_loop(data, reader.layout)


field = st.one_of(
    st.sampled_from(["42005.96", "1.00", "0.50", "7", "12", "3.125", "100.1", "-1.00", ".5", "5.", "1e2", ""]),
    st.text(alphabet='0123456789., "\r\x00x-\t٣', max_size=6),
)


@given(
    rows=st.lists(st.lists(field, min_size=1, max_size=5), max_size=30),
    ncols=st.integers(min_value=1, max_value=5),
    close_at=st.integers(min_value=0, max_value=4),
    crlf=st.booleans(),
    uniform=st.booleans(),
    shift=st.tuples(st.integers(min_value=0, max_value=29), st.integers(min_value=0, max_value=29)),
    cuts=st.lists(st.integers(min_value=1, max_value=600), max_size=4),
    wrap=st.sampled_from(["none", "all", "some", "partial", "inner"]),
)
@settings(max_examples=500, deadline=None)
def test_the_plain_chunk_path_reads_what_the_row_loop_reads(
    rows, ncols, close_at, crlf, uniform, shift, cuts, wrap
) -> None:
    # Cut or not: a chunk holding the header is read as lines, the later ones as whole text; both must agree.
    close_at %= ncols
    names = [f"c{i}" for i in range(ncols)]
    names[close_at] = "close"
    if ncols > 1:
        names[(close_at + 1) % ncols] = "timestamp"
    if uniform:  # mostly well-formed rows, so the plain path is taken as often as it is refused
        # Every field a close-like decimal, so a line split in the wrong place would still yield valid closes.
        # Their decimals vary with the row when ``crlf``: exports that drop trailing zeros write 45219.5 beside
        # 45024.68, and whole numbers as 45219 or 45219.
        spell = ["{}.{}5", "{}", "{}.", "{}.{}", "{}.{}25"] if crlf else ["{}.{}5"]
        rows = [
            [spell[(i + k) % len(spell)].format(len(r[0]) + k, len(r) % 10) for k in range(ncols)]
            for i, r in enumerate(rows)
        ]
        # One field moved from one line to another: the chunk's comma count is right, two lines' counts are not.
        i, j = (k % len(rows) for k in shift) if rows else (0, 0)
        if wrap == "none" and i != j and close_at < ncols - 1:
            rows[j].append(rows[i].pop())
    lines = [",".join(r) for r in rows]
    if wrap != "none":  # whole-line quoted records, as some exporters write every line; or quotes nearly so
        k = shift[0]
        for i, ln in enumerate(lines):
            if wrap == "partial" and i == k % len(lines):  # two fields quoted as one, not the whole line
                parts = ln.split(",")
                ln = f'"{parts[0]},{parts[1]}",' + ",".join(parts[2:]) if len(parts) > 2 else ln
            elif wrap == "inner" and i == k % len(lines):  # one more quote inside a wrapped line
                ln = ln[: k % (len(ln) + 1)] + '"' + ln[k % (len(ln) + 1) :]
            lines[i] = f'"{ln}"' if wrap != "some" or i % 3 else ln
            if wrap == "partial" and i == k % len(lines):
                lines[i] = ln
    nl = "\r\n" if crlf else "\n"
    data = (nl.join([",".join(names), *lines]) + nl).encode("utf-8", "surrogatepass")
    fast, slow = read_both(data, cuts)
    assert fast == slow


@pytest.mark.parametrize(
    "variant",
    ["plain", "crlf", "quoted", "close-first", "close-last-crlf", "zeros-dropped"],
)
def test_real_export_shapes_take_the_plain_path(variant: str) -> None:
    closes = [f"{100 + (i * 7919) % 13 / 10:.2f}" for i in range(50)]
    if variant == "zeros-dropped":  # 100.2, 100.25 and 101 side by side, as the assessment export writes them
        closes = [c.rstrip("0").rstrip(".") if i % 3 else c for i, c in enumerate(closes)]
    text = ohlcv_csv(closes)
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    elif variant == "quoted":
        text = quote_lines(text.rstrip("\n")).replace("\n", "\r\n")
    elif variant.startswith("close-"):
        moved = []
        for ln in text.rstrip("\n").split("\n"):
            f = ln.split(",")
            moved.append(",".join([f[4], *f[:4], *f[5:]] if variant == "close-first" else [*f[:4], *f[5:], f[4]]))
        text = "\r\n".join(moved) if variant.endswith("crlf") else "\n".join(moved)
    data = text.encode()
    header = data[: data.index(b"\n") + 1]
    reader = Reader()
    reader.feed(header)
    assert reader.layout is not None
    lines = data[len(header) :].splitlines(keepends=True)
    lines[-1] = lines[-1] if lines[-1].endswith(b"\n") else lines[-1] + b"\n"  # as the input's end completes it

    def whole(chunk: list[bytes]) -> list[str] | None:
        """The closes of a chunk of lines read whole; None when the fast path does not take it."""
        batch = chunk_rows(b"".join(chunk), reader.layout, reader.decimal, keep_text=True)  # type: ignore[arg-type]
        return None if batch is None else batch.closes

    assert whole(lines) == closes
    for k in range(1, len(lines)):  # wherever the reads cut the lines, each chunk of rows is read whole
        assert (whole(lines[:k]), whole(lines[k:])) == (closes[:k], closes[k:]), k
    for cut in (0, len(header), 700):  # the reader: one chunk; the header alone first; mid-line
        fast, slow = read_both(data, [cut])
        assert fast == slow
        assert fast[1] == closes and not fast[3]


def test_an_over_long_line_in_a_plain_chunk_is_still_a_bad_row() -> None:
    header = ohlcv_csv([]).encode()
    long_row = ohlcv_csv(["100.25"]).splitlines()[1].replace("2024-01-01", "x" * 70_000, 1)
    rest = (long_row + "\n" + ohlcv_csv(["100.50"]).splitlines()[1] + "\n").encode()
    fast, slow = read_both(header + rest, [len(header)])
    assert fast == slow
    _, closes, _, bad, _, _ = fast
    assert closes == ["100.50"]
    assert [(b.line, "longer than" in b.reason) for b in bad] == [(2, True)]


@given(st.text(alphabet=st.characters(exclude_characters='"\r\n\x00'), max_size=40))
@settings(max_examples=300, deadline=None)
def test_a_line_without_quotes_or_line_breaks_is_split_as_the_csv_module_splits_it(line: str) -> None:
    # A plain header is read without loading the csv module: it must give the csv module's fields.
    import csv

    from stream.parsing.layout import split

    assert split(line, ",") == next(csv.reader([line]), [])
    # Wrapped whole in quotes (a quoted export's header): the csv module's one field, split as the reader splits it.
    wrapped = next(csv.reader([f'"{line}"']), [])
    expected = next(csv.reader(wrapped), []) if len(wrapped) == 1 and "," in wrapped[0] else wrapped
    assert split(f'"{line}"', ",") == expected


@given(
    nrows=st.integers(min_value=1, max_value=30),
    ncols=st.integers(min_value=2, max_value=5),
    close_at=st.integers(min_value=0, max_value=4),
    crlf=st.booleans(),
    perturb=st.sampled_from(
        [
            "none",
            "partial",
            "tail",
            "inner",
            "no-start",
            "no-end",
            "space-before",
            "space-after",
            "doubled",
            "lone",
            "bare",
        ]
    ),
    at=st.integers(min_value=0, max_value=29),
    pos=st.integers(min_value=0, max_value=40),
)
@settings(max_examples=500, deadline=None)
def test_whole_line_quoted_chunks_read_as_the_row_loop_reads(nrows, ncols, close_at, crlf, perturb, at, pos) -> None:
    # Every line wrapped in quotes (the assessment export's shape) is read whole; one line quoted almost like that
    # must leave the chunk to the row loop, or be read as the row loop reads it.
    close_at %= ncols
    names = [f"c{i}" for i in range(ncols)]
    names[close_at] = "close"
    rows = [[f"{r + k}.{r % 10}5" for k in range(ncols)] for r in range(nrows)]
    lines = [f'"{",".join(r)}"' for r in rows]
    at %= nrows
    inner = ",".join(rows[at])
    lines[at] = {
        "none": lines[at],
        "partial": f'"{rows[at][0]},{rows[at][1]}",' + ",".join(rows[at][2:]),
        "tail": "".join(f"{v}," for v in rows[at][:-2]) + f'"{rows[at][-2]},{rows[at][-1]}"',
        "inner": f'"{inner[: pos % len(inner)]}"{inner[pos % len(inner) :]}"',
        "no-start": f'{inner}"',
        "no-end": f'"{inner}',
        "space-before": f' "{inner}"',
        "space-after": f'"{inner}" ',
        "doubled": '"' + inner.replace(",", ',""', 1).replace(",", '"",', 2).replace('"""', '""', 1) + '"',
        "lone": '"',
        "bare": inner,
    }[perturb]
    nl = "\r\n" if crlf else "\n"
    header = (",".join(names) + nl).encode()
    data = header + (nl.join(lines) + nl).encode()
    fast, slow = read_both(data, [len(header)])
    assert fast == slow


@pytest.mark.parametrize("reason, kept", [("next", True), ("rotated", True), ("truncated", False)])
def test_a_line_left_open_is_complete_at_the_next_file_unless_its_file_was_truncated(reason: str, kept: bool) -> None:
    """batches(), the one loop every run reads through: a NewFile marker completes the line its file left without a
    newline (the next input, a rotated file), except after a truncation, which cut it short."""
    reader = Reader(keep_text=True, final_line_needs_newline=True)
    events = [b"close\n1\n", b"2", NewFile(reason), b"close\n3\n4"]
    closes = [c for batch in batches(reader, events, finish=False) for c in batch.closes]
    assert closes == (["1", "2", "3"] if kept else ["1", "3"])
    assert reader.pending == b"4"  # following: the last line may still be being written
    assert reader.finish().closes == []
    assert reader.finish(ended=True).closes == ["4"]  # the pipe closed: it is complete
