"""The dataset the assessment was published with (../shared/data/assessment-data.csv): 10,000 rows, 0.4989."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import ROOT, SUCCESS_KEYS, read_signals_csv


def expect_published(doc: dict) -> None:
    assert list(doc) == SUCCESS_KEYS
    assert doc["rows_processed"] == 10_000
    assert doc["value"] == 0.4989
    assert (doc["metric"], doc["status"], doc["seed"], doc["version"]) == ("signal_rate", "success", 42, "v1")


def test_from_the_file(run_main, tmp_path: Path, assessment_data: Path) -> None:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    run = run_main(["--input", assessment_data, "--config", "config.yaml", "--output", "metrics.json"])
    assert run.code == 0, run.stderr
    expect_published(run.file_doc())
    assert run.stderr == ""


def test_through_a_pipe(run_main, assessment_data: Path) -> None:
    run = run_main(["--window", "5"], stdin=assessment_data.read_bytes())
    assert run.code == 0, run.stderr
    expect_published(run.doc())


def test_signals_add_up_to_the_metric(run_main, tmp_path: Path, assessment_data: Path) -> None:
    run = run_main(["--input", assessment_data, "--signals", "signals.csv", "--output", "metrics.json"])
    assert run.code == 0, run.stderr
    rows = read_signals_csv((tmp_path / "signals.csv").read_text())
    assert len(rows) == 10_000
    assert all(r["rolling_mean"] == "" for r in rows[:4]) and rows[4]["rolling_mean"] != ""
    assert round(sum(int(r["signal"]) for r in rows) / 10_000, 4) == run.file_doc()["value"] == 0.4989
    assert rows[0]["timestamp"] == "2024-01-01 00:00:00"
