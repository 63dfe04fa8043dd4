"""The docs hold as written: every shell command in README.md, docs/*.md and CONTRIBUTING.md runs as shown (or is
skipped for a stated reason), install lines name extras that exist, the README's Python example prints what it says,
and alert rules fire when the docs say they do."""

from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import call_main, env_with_repo, start_command

ROOT = Path(__file__).resolve().parents[1]
SECONDS = {"s": 1, "m": 60, "h": 3600}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CONTRIBUTING.md"]

# The programs a command in the docs may start with; a line of a command block that starts otherwise fails the test
# below, so a new command is never silently left unchecked.
PROGRAMS = {
    "mlops-stream", "python", "pip", "cat", "head", "tail", "printf", "curl", "docker", "kcat", "websocat", "nats",
    "redis-cli", "bash", "export", "ruff", "mypy", "lint-imports",
}  # fmt: skip
# Commands that cannot run here, offline, in a test: (what the command holds, why it is skipped).
SKIPPED = [
    ("docker ", "needs Docker and the image: scripts/container-smoke.sh runs the container's commands"),
    ("container-smoke.sh", "needs Docker and the image (the CI runs it)"),
    ("kcat ", "needs a Kafka broker"),
    ("websocat ", "needs a WebSocket feed"),
    ("nats ", "needs a NATS server"),
    ("redis-cli ", "needs a Redis server"),
    ("s3://", "object storage on the network: tests/test_s3.py reads the same through moto's S3 server"),
    ("gs://", "object storage on the network"),
    ("AWS_", "MinIO or S3 credentials: tests/test_s3.py covers object storage"),
    ("tcp://", "needs an existing Dask cluster: tests/test_scaleout.py runs an embedded one"),
    ("curl ", "the network, or the server of another command: tests/test_serve.py scrapes a running one"),
    ("python -m pytest", "the test suite itself"),
    ("ruff ", "the linters: the CI runs them"),
    ("mypy", "the type checker: the CI runs it"),
    ("lint-imports", "the import contracts: the CI runs them"),
    ("python scripts/", "the checkout's own checks, run in the checkout: the CI runs them"),
    ("python -m venv", "makes a virtual environment"),
    ("python benchmarks/", "benchmarks take minutes; their figures are in docs/performance.md"),
    ("[--", "a synopsis: the flags in brackets are optional"),
    ("pip install s3fs", "installs a package from PyPI"),
]
# Changes made to a command before it runs, with the reason.
SUBSTITUTED = {
    "--metrics-port 9108": ("--metrics-port 0", "port 9108 may be taken on a shared machine; 0 is any free port"),
}
ROWS = 10_000  # rows of data.csv, and of its copies live.csv, candles.csv and x.csv


def _rule(name: str) -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())
    return next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == name)


def _first_firing(threshold: float, hold: float, interval: float) -> float:
    """When Prometheus first fires an ``age > threshold`` rule held ``for: hold`` after a feed stops at time 0: the
    age grows with the clock; each evaluation (every ``interval``) sees the age of its moment; a rule fires at the
    first evaluation at which it has been true for ``hold`` since it turned pending."""
    pending = None
    t = 0.0
    while True:
        t += interval
        if t > threshold:
            pending = t if pending is None else pending
            if t - pending >= hold:
                return t


def test_the_feed_stalled_alert_fires_when_the_docs_say() -> None:
    rule = _rule("MlopsStreamFeedStalled")
    threshold = float(re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip()).group(1))  # type: ignore[union-attr]
    hold = int(rule["for"][:-1]) * SECONDS[rule["for"][-1]]
    row = next(
        ln for ln in (ROOT / "docs" / "monitoring.md").read_text().splitlines() if "MlopsStreamFeedStalled" in ln
    )
    said = 60 * int(re.search(r"(\d+) minutes", row).group(1))  # type: ignore[union-attr]
    for interval in (1.0, 15.0, 30.0, 60.0):  # Prometheus' usual evaluation intervals
        fired = _first_firing(threshold, hold, interval)
        assert said <= fired <= said + 2 * interval, (interval, fired, said)


# ---- the pages' code blocks ---------------------------------------------------------------------------------------


def code_blocks(page: Path) -> list[tuple[int, str, list[str]]]:
    """The code blocks of a Markdown page: (line number of the first line, info string, lines). Fenced blocks keep
    their info string (``python``, ``json``); indented ones (four spaces, after a blank line) have ``""``."""
    blocks: list[tuple[int, str, list[str]]] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append((i + 2, line[3:].strip(), lines[i + 1 : end]))
            i = end + 1
        elif line.startswith("    ") and line.strip() and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            blocks.append((i + 1, "", [ln[4:] for ln in lines[i:end]]))
            i = end
        else:
            i += 1
    return blocks


def _program(command: str) -> str:
    """The program a shell command line starts with, past ``NAME=value`` assignments."""
    words = [w for w in command.split() if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", w)]
    return words[0] if words else ""


def doc_commands() -> list[tuple[str, str]]:
    """Every shell command of README.md and docs/*.md: (where, as ``page:line``, the command with its continuation
    lines joined). A block is a command block when a line of it starts with a known program; the others (outputs,
    YAML, JSON) have none."""
    found = []
    for page in PAGES:
        for first, info, lines in code_blocks(page):
            if info not in ("", "sh", "bash", "shell", "console"):
                continue
            joined: list[tuple[int, str]] = []
            for n, line in enumerate(lines, first):
                if joined and joined[-1][1].endswith("\\"):
                    joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
                elif line.strip() and not line.lstrip().startswith("#"):
                    joined.append((n, line.strip()))
            if not any(_program(c) in PROGRAMS for _, c in joined):
                continue
            for n, command in joined:
                assert _program(command) in PROGRAMS, f"{page.name}:{n}: a command of an unknown program: {command}"
                found.append((f"{page.relative_to(ROOT)}:{n}", command))
    return found


def skipped(command: str) -> str | None:
    """Why ``command`` is not run here (its comment aside); None when it is."""
    bare = re.sub(r"\s+#\s.*$", "", command)
    return next((why for what, why in SKIPPED if what in bare), None)


def _parts(command: str) -> tuple[list[str], str]:
    """The ``pip install`` parts of a ``&&`` chain, and the rest of it, to run."""
    parts = [p.strip() for p in command.split("&&")]
    return [p for p in parts if p.startswith("pip install")], " && ".join(p for p in parts if not p.startswith("pip "))


COMMANDS = doc_commands()
# What is run (the command past its `pip install` parts) and which install lines are checked; the rest is skipped.
RUN = [(where, rest) for where, cmd in COMMANDS if (rest := _parts(cmd)[1]) and skipped(rest) is None]
INSTALLS = [(where, pip) for where, cmd in COMMANDS for pip in _parts(cmd)[0] if skipped(pip) is None]


def test_the_docs_commands_are_found_and_each_is_run_or_skipped_for_a_reason() -> None:
    assert len(COMMANDS) >= 40  # the pages hold dozens; far fewer would mean the extraction broke
    for where, command in COMMANDS:
        pips, rest = _parts(command)
        assert not rest or (where, rest) in RUN or skipped(rest) is not None, (where, command)
        assert all((where, pip) in INSTALLS or skipped(pip) is not None for pip in pips), (where, command)
    # The README's own first commands are among those run and checked.
    first = "mlops-stream --input data.csv --config config.yaml --output metrics.json --log-file run.log"
    assert RUN[0][0].startswith("README.md:") and RUN[0][1] == first
    assert [pip for _, pip in INSTALLS[:2]] == ["pip install .", "pip install -e '.[test]'"]


@pytest.mark.parametrize(("where", "pip"), INSTALLS, ids=[w for w, _ in INSTALLS])
def test_install_lines_name_extras_that_exist(where: str, pip: str) -> None:
    extras = _extras()
    assert {"dask", "serve", "zstd", "test", "bench"} <= extras  # the section was read
    named = [e for group in re.findall(r"\.\[([\w,-]+)\]", pip) for e in group.split(",")]
    assert re.fullmatch(r"pip install (-e )?(\.|'\.\[[\w,-]+\]')(\s+#.*)?", pip), pip  # the checkout, quoted extras
    assert set(named) <= extras, (where, pip, extras)


def _extras() -> set[str]:
    """The extras pyproject.toml declares (tomllib is not in Python 3.10's standard library)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+) = \[", section, re.M))


@pytest.fixture(scope="session")
def doc_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the docs' commands name: data.csv and config.yaml as bundled, copies of the data under the names
    the pages use, compressed copies, keyed history files and Binance klines archives."""
    folder = tmp_path_factory.mktemp("doc-files")
    data = (ROOT / "data.csv").read_bytes()
    shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
    for name in ("data.csv", "live.csv", "candles.csv", "x.csv"):
        (folder / name).write_bytes(data)
    # The same rows as JSON Lines, as a feed's recorder writes them.
    names, *lines = data.decode().splitlines()
    keys = names.split(",")
    (folder / "live.jsonl").write_text(
        "".join("{" + ", ".join(f'"{k}": "{v}"' for k, v in zip(keys, ln.split(","))) + "}\n" for ln in lines)
    )
    header, *rows = data.decode().splitlines(keepends=True)
    (folder / "feeds").mkdir()
    for day, part in enumerate((rows[:3000], rows[3000:6500], rows[6500:]), start=1):  # a recorder's daily files
        (folder / "feeds" / f"BTCUSDT-1m-2024-01-{day:02d}.csv").write_text(header + "".join(part))
    (folder / "candles.csv.gz").write_bytes(gzip.compress(data))
    (folder / "candles.csv.xz").write_bytes(lzma.compress(data))
    history = ["symbol,timestamp,close"]
    history += [
        f"{'ABC'[i % 3]}USD,2024-01-01 {i // 60 % 24:02d}:{i % 60:02d}:00,{100 + i % 17 / 4}" for i in range(900)
    ]
    (folder / "history").mkdir()
    for name in ("history.csv", "history/2024-01-01.csv", "history/2024-01-02.csv"):
        (folder / name).write_text("\n".join(history) + "\n")
    for name in ("BTCUSDT-1m-2024-01.zip", "history/BTCUSDT-1m-2024-01.zip", "history/BTCUSDT-1m-2024-02.zip"):
        made = call_main(["generate", "--rows", "500", "--layout", "binance", "--output", name], folder)
        assert made.code == 0, made.stderr
    bin_dir = folder / "bin"  # `mlops-stream` as the command from this checkout, `python` this interpreter
    bin_dir.mkdir()
    (bin_dir / "mlops-stream").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stream "$@"\n')
    (bin_dir / "mlops-stream").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    return folder


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize(("where", "command"), RUN, ids=[w for w, _ in RUN])
def test_the_docs_commands_run_as_written(doc_files: Path, tmp_path: Path, where: str, command: str) -> None:
    for was, (now, _) in SUBSTITUTED.items():
        command = command.replace(was, now)
    work = tmp_path / "work"
    shutil.copytree(doc_files, work, ignore=shutil.ignore_patterns("bin"))
    env = env_with_repo({"PATH": f"{doc_files / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(["bash", "-c", command], cwd=work, stdout=o, stderr=e, env=env, start_new_session=True)
        if "--follow" in command:
            # A live run lasts until stopped: once every row's signal is out, stop it as a person would (Ctrl-C).
            m = re.search(r"--signals (\S+)", command)
            assert m is not None, "the docs' live commands write signals, which tell when the rows are in"
            signals = out if m.group(1) == "-" else work / m.group(1)
            deadline = time.monotonic() + 120
            while _lines(signals) < ROWS + 1 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            for pid in _children(proc.pid) or [proc.pid]:  # not bash itself, which would die of it
                with contextlib.suppress(ProcessLookupError):  # it ended on its own: its exit code tells why
                    os.kill(pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    stderr = err.read_text(errors="replace")
    assert code == 0, f"{where}: {command}\n{stderr}"
    assert "Traceback" not in stderr and "error:" not in stderr, f"{where}: {command}\n{stderr}"


def test_plain_tail_on_a_followed_pipe_gets_the_tail_hint(tmp_path: Path) -> None:
    # tail -F sends the last 10 lines of a longer file, so the run's first line is data: the error says what to use.
    (tmp_path / "live.csv").write_bytes((ROOT / "data.csv").read_bytes())
    tail = subprocess.Popen(["tail", "-F", "live.csv"], cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        assert tail.stdout is not None
        run = start_command(["--follow", "--signals", "-"], tmp_path, stdin=tail.stdout.fileno())
        out, err = run.communicate(timeout=60)
    finally:
        tail.kill()
        tail.wait()
    assert run.returncode == 1
    assert out == b""  # no signal: the header never came
    message = err.decode().splitlines()[-1]
    assert message.startswith("mlops-stream: error: the first line (line 1) looks like data, not a header")
    assert message.endswith("; if the pipe is tail -F, use tail -n +1 -F FILE to send the header too")
    assert "--no-header" in message  # the other way out, for a file that has no header at all


def test_the_readme_python_example_prints_what_its_comments_say(tmp_path: Path) -> None:
    blocks = [lines for _, info, lines in code_blocks(ROOT / "README.md") if info == "python"]
    assert len(blocks) == 1
    code = "\n".join(blocks[0]) + "\n"
    said = [ln.split("  # ", 1)[1] for ln in blocks[0] if ln.startswith("print(")]
    assert len(said) >= 3
    shutil.copy(ROOT / "data.csv", tmp_path / "data.csv")
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env_with_repo(), timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert (run.stdout.splitlines(), run.stderr) == (said, "")
