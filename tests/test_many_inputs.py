"""Many inputs as one stream: repeated --input, globs in sorted order and URLs read exactly as their concatenation
(each file's own header handled as in rotation); a missing file, pattern, protocol or package is a clear error."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from conftest import env_with_repo, ohlcv_csv, run_command, write
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import SourceError
from stream.parsing.reader import Reader, batches
from stream.sources.files import NewFile, Spec, concatenated, expand

PRICES = ["100.1", "100.10", "100.2", "99.9", "100.15", "1.001e2", "100", "bad", "100.05"]


def closes(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(PRICES) for _ in range(n)]


def data_lines(text: str) -> str:
    return text.split("\n", 1)[1]


@given(
    st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=5),
    st.lists(st.sampled_from(["header", "no-header", "blank-then-header", "no-final-newline"]), min_size=5, max_size=5),
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=1, max_value=64),
)
@settings(max_examples=60, deadline=None)
def test_several_files_read_as_their_concatenation(tmp_path_factory, sizes, kinds, seed, chunk) -> None:
    tmp = tmp_path_factory.mktemp("many")
    rng = random.Random(seed)
    specs, whole = [], ""
    for i, n in enumerate(sizes):
        text = ohlcv_csv(closes(rng, n))
        body = data_lines(text)
        # The reference is one file: the first file whole, then only the data lines of the others.
        whole += text if i == 0 else body
        kind = kinds[i] if i else "header"
        if kind == "no-header":
            text = body
        elif kind == "blank-then-header":
            text = "\n \n" + text
        elif kind == "no-final-newline":
            text = text.rstrip("\n")  # the next file (or EOF) completes the last line, as at a rotation
        specs.append(Spec(str(write(tmp / f"part{i}.csv", text))))

    def read(events) -> tuple[list[str], list[tuple[str | None, int]]]:
        bad = []
        reader = Reader(on_bad_row="skip", keep_text=True, report=lambda b: bad.append((b.file, b.line)))
        got = [c for batch in batches(reader, events) for c in batch.closes]
        return got, bad

    got, bad = read(concatenated(specs, size=chunk))
    want, want_bad = read([whole.encode()])
    assert got == want
    assert len(bad) == len(want_bad)  # the same bad rows; their lines are counted per file


def test_the_command_reads_inputs_in_order_as_one_stream(run_main, tmp_path: Path) -> None:
    rng = random.Random(7)
    parts = [ohlcv_csv(closes(rng, n)).replace(",bad,", ",100.3,") for n in (40, 1, 0, 25)]
    for i, text in enumerate(parts):
        write(tmp_path / f"day{i}.csv", text)
    write(tmp_path / "all.csv", parts[0] + "".join(data_lines(p) for p in parts[1:]))
    base = ["--signals", "sig.csv", "--output", "m.json", "--window", "3"]
    one = run_main(["--input", "all.csv", *base])
    assert one.code == 0, one.stderr
    want_doc, want_sig = one.file_doc("m.json"), (tmp_path / "sig.csv").read_bytes()
    want_doc.pop("latency_ms")
    for inputs in (
        [f"day{i}.csv" for i in range(4)],
        ["day*.csv"],
        ["day[01].csv", f"file://{tmp_path}/day[23].csv"],
    ):
        run = run_main([*(a for name in inputs for a in ("--input", name)), *base, "--log-file", "run.log"])
        assert run.code == 0, run.stderr
        doc = run.file_doc("m.json")
        doc.pop("latency_ms")
        assert doc == want_doc
        assert (tmp_path / "sig.csv").read_bytes() == want_sig
        assert "4 files read as one stream, in this order: day0.csv, day1.csv, day2.csv, day3.csv" in run.log().replace(
            f"{tmp_path}/", ""
        )


def test_glob_order_is_sorted_and_directories_are_left_out(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c10.csv", "c9.csv"):
        write(tmp_path / name, "close\n1\n")
    (tmp_path / "d.csv").mkdir()
    names = [Path(s.name).name for s in expand([str(tmp_path / "*.csv")])]
    assert names == ["a.csv", "b.csv", "c10.csv", "c9.csv"]
    # A path that exists is taken literally, even with glob characters in its name.
    literal = write(tmp_path / "x[1].csv", "close\n1\n")
    assert expand([str(literal)]) == [Spec(str(literal))]
    with pytest.raises(SourceError, match=r"pattern .*nothing\*\.csv matches no file"):
        expand([str(tmp_path / "nothing*.csv")])


def test_messages_name_the_file_of_a_bad_row_or_header(run_main, tmp_path: Path) -> None:
    write(tmp_path / "a.csv", ohlcv_csv(["1", "2"]))
    write(tmp_path / "b.csv", ohlcv_csv(["3", "oops"]))
    run = run_main(["--input", "a.csv", "--input", "b.csv"])
    assert run.code == 1
    assert run.doc()["error_message"].startswith("bad row at b.csv line 3: bad close value")
    write(tmp_path / "c.csv", "timestamp,close\n1,2\n")
    run = run_main(["--input", "a.csv", "--input", "c.csv"])
    assert run.code == 1
    assert "c.csv line 1: a new header" in run.doc()["error_message"]
    run = run_main(["--input", "a.csv", "--input", "missing.csv"])
    assert run.code == 1 and run.doc()["error_message"] == "input file missing.csv does not exist"
    assert not (tmp_path / "metrics.json").exists()
    run = run_main(["--input", "a.csv", "--input", "none*.csv"])
    assert run.code == 1 and run.doc()["error_message"] == "the input pattern none*.csv matches no file"
    for args in (["--input", "-", "--input", "-"], ["--input", "a.csv", "--input", "b.csv", "--follow"]):
        usage = run_main(args, stdin=b"")
        assert usage.code == 2, usage.stderr
    run.assert_no_traceback()


def test_a_file_url_names_a_local_file(tmp_path: Path) -> None:
    assert expand([f"file://{tmp_path}/a%20b.csv"]) == [Spec(f"{tmp_path}/a b.csv")]
    with pytest.raises(SourceError, match="not on otherhost"):
        expand(["file://otherhost/x.csv"])


HAVE_FSSPEC = importlib.util.find_spec("fsspec") is not None


@pytest.mark.skipif(not HAVE_FSSPEC, reason="fsspec is not installed (it comes with the dask extra)")
def test_urls_are_read_through_fsspec(run_main, tmp_path: Path) -> None:
    rng = random.Random(3)
    a = write(tmp_path / "a.csv", ohlcv_csv(closes(rng, 30)).replace(",bad,", ",1,"))
    b = write(tmp_path / "b.csv", ohlcv_csv(closes(rng, 30)).replace(",bad,", ",2,"))
    write(tmp_path / "ab.csv", a.read_text() + data_lines(b.read_text()))
    want = run_main(["--input", "ab.csv"]).doc()
    # local:// is fsspec's own name for local files: the fsspec path (open, size, glob) without a network.
    run = run_main(["--input", f"local://{tmp_path}/[ab].csv", "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    assert {k: v for k, v in run.doc().items() if k != "latency_ms"} == {
        k: v for k, v in want.items() if k != "latency_ms"
    }
    assert f"local://{tmp_path}/b.csv" in run.log() or f"file://{tmp_path}/b.csv" in run.log()
    # In-process, fsspec's memory filesystem: globs list in sorted order.
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("m2.csv", "m1.csv"):
        fs.pipe(f"/mlops-test/{name}", b"close\n1\n")
    specs = expand(["memory://mlops-test/m*.csv"])
    assert [s.name for s in specs] == ["memory:///mlops-test/m1.csv", "memory:///mlops-test/m2.csv"]
    events = list(concatenated(specs))
    assert events == [b"close\n1\n", NewFile("next", "memory:///mlops-test/m2.csv"), b"close\n1\n"]


def without(tmp_path: Path, module: str) -> dict[str, str]:
    """The environment of a child process in which ``module`` fails to import exactly as an absent one does."""
    shadow = tmp_path / "shadow"
    shadow.mkdir(exist_ok=True)
    write(shadow / f"{module}.py", f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n")
    env = env_with_repo()
    env["PYTHONPATH"] = f"{shadow}:{env['PYTHONPATH']}"
    return env


@pytest.mark.skipif(not HAVE_FSSPEC, reason="fsspec is not installed (it comes with the dask extra)")
def test_a_missing_protocol_implementation_names_the_package(run_cli, tmp_path: Path) -> None:
    # s3fs fails to import exactly as an absent one does (the test extra installs it for the S3 tests).
    run = run_cli(["--input", "s3://bucket/2024/*.csv"], env=without(tmp_path, "s3fs"))
    assert run.code == 1
    assert run.doc()["error_message"] == (
        "reading s3:// URLs (s3://bucket/2024/*.csv) needs s3fs, not installed here: pip install s3fs"
    )
    run.assert_no_traceback()


def test_missing_fsspec_names_both_packages(run_cli, tmp_path: Path) -> None:
    # A module that fails to import exactly as an absent one does, placed first on the path of the child process.
    env = without(tmp_path, "fsspec")
    run = run_cli(["--input", "gs://bucket/x.csv"], env=env)
    assert run.code == 1
    assert run.doc()["error_message"] == (
        "reading gs:// URLs (gs://bucket/x.csv) needs fsspec and gcsfs, not installed here: pip install fsspec gcsfs"
    )
    # The shadow hides only fsspec: local inputs still work.
    write(tmp_path / "a.csv", ohlcv_csv(["1", "2"]))
    assert run_cli(["--input", "a.csv"], env=env).code == 0


def test_object_storage_without_credentials_says_so(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    env = {
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }  # fmt: skip
    environ = {k: v for k, v in env_with_repo(env).items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    run = run_command(["--input", "s3://bucket/x.csv", "--output", "m.json"], tmp_path, env=environ, timeout=120)
    assert run.code == 1
    message = run.file_doc("m.json")["error_message"]
    assert message.startswith("input s3://bucket/x.csv cannot be opened: NoCredentialsError")
    assert "give credentials" in message and "internal error" not in message
    run.assert_no_traceback()
