"""The Python entry point, ``stream.process``: the command's answers (metrics, signals, warnings, errors) for a path,
any stream or rows in memory, as exceptions of the project's types, nothing printed, and ``import stream`` as cheap as
before."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, call_main, env_with_repo, write
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import stream
from stream.errors import MlopsStreamError

KINDS = ["path", "bytes-io", "string-io", "str-lines", "bytes-lines", "generator", "binary-file", "text-file"]


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def source_of(kind: str, path: Path) -> Any:
    """The file at ``path`` as a source of ``kind``; an open file is closed when the test's folder goes."""
    data = path.read_bytes()
    text = data.decode("utf-8")
    return {
        "path": lambda: path.name,
        "bytes-io": lambda: io.BytesIO(data),
        "string-io": lambda: io.StringIO(text),
        "str-lines": lambda: text.splitlines(),  # without their newlines
        "bytes-lines": lambda: io.BytesIO(data).readlines(),  # with them
        "generator": lambda: (line for line in text.split("\n")[:-1]),
        "binary-file": lambda: path.open("rb"),
        "text-file": lambda: path.open(encoding="utf-8", newline=""),
    }[kind]()


@st.composite
def inputs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A CSV file and the settings to read it with: a decimal mark and delimiter, a key column or none, a header or
    none, bad rows now and then."""
    mark = draw(st.sampled_from([".", ","]))
    delimiter = ";" if mark == "," else draw(st.sampled_from([",", ";", "\t"]))
    keyed = draw(st.booleans())
    header = draw(st.booleans())
    skip = draw(st.booleans())
    value = st.tuples(st.integers(0, 200), st.text("0123456789", max_size=3)).map(
        lambda v: str(v[0]) + (mark + v[1] if v[1] else "")
    )
    bad = st.sampled_from(["n/a", "abc", "", "1" + mark + "2" + mark + "3"])
    closes = draw(st.lists(st.one_of(value, value, value, bad) if skip else value, min_size=1, max_size=40))
    lines = ["ts" + delimiter + ("sym" + delimiter if keyed else "") + "close"] if header else []
    for i, close in enumerate(closes):
        sym = draw(st.sampled_from(["A", "B", "C"])) + delimiter if keyed else ""
        lines.append(f"2024-01-01 00:{i % 60:02d}:00{delimiter}{sym}{close}")
    args = ["--window", str(draw(st.integers(1, 6))), "--on-bad-row", "skip" if skip else "fail"]
    if keyed:
        args += ["--key", "sym" if header else "2"]
    if not header:
        args += ["--no-header", "--column", "3" if keyed else "2"]
    if mark == "," or draw(st.booleans()):
        args += ["--decimal", mark]
    return "\n".join(lines) + "\n", args


def keywords(args: list[str]) -> dict[str, Any]:
    """The command's flags as ``process``'s keywords."""
    kw: dict[str, Any] = {}
    i = 0
    while i < len(args):
        flag = args[i].removeprefix("--").replace("-", "_")
        if flag == "no_header":
            kw["header"] = False
            i += 1
            continue
        kw[flag] = int(args[i + 1]) if flag == "window" else args[i + 1]
        i += 2
    return kw


def without_latency(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "latency_ms"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(made=inputs(), kind=st.sampled_from(KINDS))
def test_process_answers_as_the_command_does(made: tuple[str, list[str]], kind: str) -> None:
    text, args = made
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = write(folder / "in.csv", text)
        given_input = ["--input", "in.csv"] if kind == "path" else []
        command = call_main(
            [*given_input, *args, "--signals", "s.jsonl", "--signals-format", "jsonl", "--output", "m.json"],
            folder,
            stdin=None if kind == "path" else text.encode(),
        )
        with inside(folder):
            source = source_of(kind, path)
            try:
                result = stream.process(source, signals=True, **keywords(args))
                failure = None
            except MlopsStreamError as exc:
                failure = str(exc)
            finally:
                if hasattr(source, "close"):
                    source.close()
        doc = json.loads((folder / "m.json").read_text())
        event("the command failed" if command.code else "the command succeeded")
        if command.code != 0:
            assert command.code == 1 and failure == doc["error_message"]
            return
        assert failure is None, failure
        assert without_latency(result.metrics) == without_latency(doc)
        signals = [json.loads(line) for line in (folder / "s.jsonl").read_text().splitlines()]
        assert result.signals == signals
        printed = [ln.removeprefix("mlops-stream: warning: ") for ln in command.stderr.splitlines()]
        assert result.warnings == printed


def test_process_on_stdin_and_with_workers_equals_the_command(tmp_path: Path) -> None:
    code = (
        "import json, sys, stream\n"
        "r = stream.process(sys.stdin, window=3, signals=True)\n"
        "w = stream.process('data.csv', window=3, workers=2, signals=True)\n"
        "assert (r.signals, r.metrics['value']) == (w.signals, w.metrics['value'])\n"
        "print(json.dumps([r.metrics['rows_processed'], r.metrics['value'], r.signals[-1]]))\n"
    )
    write(tmp_path / "data.csv", (ROOT / "data.csv").read_bytes())
    with (tmp_path / "data.csv").open("rb") as stdin:
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, stdin=stdin, capture_output=True, env=env_with_repo(),
            timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows, value, last = json.loads(run.stdout)
    args = ["--input", "data.csv", "--window", "3"]
    command = call_main([*args, "--signals", "-", "--signals-format", "jsonl"], tmp_path)
    assert rows == 10_000 and last == json.loads(command.out.splitlines()[-1])
    assert value == call_main(args, tmp_path).doc()["value"]
    assert run.stderr == b""


@pytest.mark.parametrize(
    ("source", "settings", "error", "words"),
    [
        ("missing.csv", {}, "SourceError", "input file missing.csv does not exist"),
        (["close", "1", "x"], {}, "BadRowError", "bad row at line 3: bad close value: 'x' is not a decimal number"),
        (["close", "1"], {"window": 0}, "ConfigError", "stream.process(): 'window' must be at least 1, found 0"),
        (["close", "1"], {"on_bad_row": "ignore"}, "ConfigError", "stream.process(): 'on_bad_row' must be 'fail' or"),
        (["close", "1"], {"config": "nope.yaml"}, "ConfigError", "config file nope.yaml does not exist"),
        ([], {}, "JobError", "the input <stdin> is empty"),
        (["close", "1"], {"reverse": True}, "JobError", "reverse=True reads one regular file backwards"),
    ],
)
def test_errors_are_the_projects_exceptions_and_nothing_is_printed(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, source: Any, settings: dict[str, Any], error: str, words: str
) -> None:
    with inside(tmp_path), pytest.raises(MlopsStreamError) as caught:
        stream.process(source, **settings)
    assert type(caught.value).__name__ == error
    assert str(caught.value).startswith(words)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("close\n1\n2\n", "a str source is a path"),
        (b"close\n1\n", "pass CSV bytes as io.BytesIO(data)"),
        ([["close"], ["1"]], "rows must be str or bytes lines, found list"),
        (42, "source must be a path, a stream or an iterable of lines, not int"),
    ],
)
def test_a_source_of_another_kind_is_a_type_error(source: Any, words: str) -> None:
    with pytest.raises(TypeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        stream.process(source)


def test_a_config_and_keywords_combine_as_the_command_reads_them(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", "seed: 7\nwindow: 2\nversion: v9\ncolumn: price\n")
    lines = ["price", "1", "3", "2", "5"]
    with inside(tmp_path):
        from_config = stream.process(lines, config="c.yaml").metrics
        overridden = stream.process(lines, config=Path("c.yaml"), window=3).metrics
    assert (from_config["version"], from_config["seed"], from_config["value"]) == ("v9", 7, 0.5)
    assert (overridden["version"], overridden["value"]) == ("v9", 0.25)


def test_importing_stream_loads_nothing_more_until_process_is_used() -> None:
    code = (
        "import sys, stream\n"
        "before = sorted(m for m in sys.modules if m.startswith('stream'))\n"
        "stream.process\n"
        "print(before, 'stream.api' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_with_repo(), timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['stream'] True"
