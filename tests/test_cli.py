"""End to end through the real command: the README's invocations for a file, a pipe and signals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, SUCCESS_KEYS, exact_signals, read_signals_csv


@pytest.fixture(scope="module")
def bundled() -> tuple[bytes, float]:
    """The bundled data and its exact signal rate with window 5, from the Fraction reference."""
    data = (ROOT / "data.csv").read_bytes()
    closes = [line.split(",")[4] for line in data.decode().splitlines()[1:]]
    signals, _ = exact_signals(closes, 5)
    return data, round(sum(signals) / len(signals), 4)


@pytest.fixture
def repo_files(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "data.csv", tmp_path / "data.csv")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def without_latency(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "latency_ms"}


def test_file(run_cli, repo_files: Path, bundled) -> None:
    run = run_cli(
        ["--input", "data.csv", "--config", "config.yaml", "--output", "metrics.json", "--log-file", "run.log"]
    )
    assert run.code == 0, run.stderr
    doc = run.file_doc()
    assert list(doc) == SUCCESS_KEYS
    assert without_latency(doc) == {
        "version": "v1",
        "rows_processed": 10_000,
        "metric": "signal_rate",
        "value": bundled[1],
        "seed": 42,
        "status": "success",
    }
    assert run.doc() == doc
    assert run.stderr == ""
    assert "finished with exit code 0" in run.log()


def test_pipe(run_cli, repo_files: Path, bundled) -> None:
    from_file = run_cli(["--input", "data.csv", "--config", "config.yaml"])
    implicit = run_cli(["--config", "config.yaml"], stdin=bundled[0])  # cat data.csv | mlops-stream ...
    explicit = run_cli(["--input", "-"], stdin=bundled[0])
    for run in (from_file, implicit, explicit):
        assert run.code == 0, run.stderr
    assert without_latency(implicit.doc()) == without_latency(explicit.doc()) == without_latency(from_file.doc())
    assert implicit.doc()["value"] == bundled[1]


def test_signals(run_cli, repo_files: Path, bundled) -> None:
    run = run_cli(["--input", "data.csv", "--signals", "signals.csv"])
    assert run.code == 0, run.stderr
    rows = read_signals_csv((repo_files / "signals.csv").read_text())
    assert len(rows) == 10_000
    assert round(sum(int(r["signal"]) for r in rows) / len(rows), 4) == bundled[1] == run.doc()["value"]


def test_version_and_help(run_cli) -> None:
    from stream import __version__

    version = run_cli(["--version"])
    assert (version.code, version.out.strip()) == (0, f"mlops-stream {__version__}")
    helped = run_cli(["--help"])
    assert helped.code == 0
    for flag in ("--input", "--config", "--output", "--log-file", "--signals", "--signals-format", "--window",
                 "--on-bad-row", "--quiet"):  # fmt: skip
        assert flag in helped.out
    assert run_cli(["generate", "--help"]).code == 0
