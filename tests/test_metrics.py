"""Contract point 7: the metrics document — its keys and order, atomic replacement, and where it is printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ERROR_KEYS, SUCCESS_KEYS, env_with_repo, exact_signals, ohlcv_csv, write, write_config

from stream.core.tally import Tally
from stream.fs import atomic
from stream.sinks import metrics

CLOSES = ["1", "2", "3", "2", "5", "4", "6"]  # window 3: rows 3, 5, 6, 7 are above their means


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write(tmp_path / "in.csv", ohlcv_csv(CLOSES))


def test_success_document(run_main, tmp_path: Path, data: Path) -> None:
    write_config(tmp_path, "seed: 9\nwindow: 3\nversion: v7\n")
    run = run_main(["--input", "in.csv", "--output", "metrics.json"])
    assert run.code == 0, run.stderr
    text = (tmp_path / "metrics.json").read_text()
    doc = json.loads(text)
    assert list(doc) == SUCCESS_KEYS
    assert doc["version"] == "v7"
    assert doc["rows_processed"] == 7  # warm-up rows count
    assert doc["metric"] == "signal_rate"
    assert doc["value"] == round(sum(exact_signals(CLOSES, 3)[0]) / 7, 4) == 0.5714
    assert isinstance(doc["latency_ms"], int) and doc["latency_ms"] >= 0
    assert (doc["seed"], doc["status"]) == (9, "success")
    # Printed to stdout exactly as written, indented by two spaces.
    assert run.out == text == json.dumps(doc, indent=2) + "\n"


def test_skip_policy_adds_rows_skipped_last(run_main, tmp_path: Path, data: Path) -> None:
    doc = run_main(["--input", "in.csv", "--window", "3", "--on-bad-row", "skip"]).doc()
    assert list(doc) == [*SUCCESS_KEYS, "rows_skipped"]
    assert doc["rows_skipped"] == 0


def test_error_document(run_main, tmp_path: Path) -> None:
    write_config(tmp_path, "seed: 1\nwindow: 3\nversion: v3\n")
    run = run_main(["--input", "missing.csv", "--output", "metrics.json"])
    assert run.code == 1
    doc = run.file_doc()
    assert list(doc) == ERROR_KEYS
    assert doc == {"version": "v3", "status": "error", "error_message": "input file missing.csv does not exist"}
    assert run.out == json.dumps(doc, indent=2) + "\n"
    run.assert_no_traceback()


def test_error_document_has_null_version_when_the_config_is_unreadable(run_main, tmp_path: Path, data: Path) -> None:
    run = run_main(["--input", "in.csv", "--config", "nope.yaml", "--output", "metrics.json"])
    assert run.code == 1
    assert run.file_doc() == {
        "version": None,
        "status": "error",
        "error_message": "config file nope.yaml does not exist",
    }
    assert '"version": null' in (tmp_path / "metrics.json").read_text()


def test_value_is_rounded_to_four_decimals() -> None:
    assert Tally(rows=3, signals=1).rate() == 0.3333
    assert Tally(rows=3, signals=2).rate() == 0.6667
    assert Tally(rows=10000, signals=4989).rate() == 0.4989
    assert Tally().rate() == 0.0


# ---- atomic replacement ---------------------------------------------------------------------------------------------


def test_an_earlier_document_is_replaced_by_rename(run_main, tmp_path: Path, data: Path) -> None:
    target = write(tmp_path / "metrics.json", '{"old": true}\n')
    before = os.stat(target).st_ino
    run = run_main(["--input", "in.csv", "--window", "3", "--output", "metrics.json"])
    assert run.code == 0
    assert run.file_doc()["status"] == "success"
    # A new inode: the document was renamed into place, never rewritten in the old file.
    assert os.stat(target).st_ino != before
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "metrics.json"]


def test_an_error_run_replaces_an_old_success_document(run_main, tmp_path: Path, data: Path) -> None:
    assert run_main(["--input", "in.csv", "--output", "metrics.json"]).code == 0
    assert run_main(["--input", "gone.csv", "--output", "metrics.json"]).code == 1
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["status"] == "error" and "gone.csv" in doc["error_message"]
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "metrics.json"]


def test_a_failed_write_keeps_the_old_document_and_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    target = write(tmp_path / "m.json", b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic.write_atomic(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.json"]


def test_write_atomic_in_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    metrics.write("m.json", {"a": 1})
    assert json.loads(Path("m.json").read_text()) == {"a": 1}
    assert os.listdir(".") == ["m.json"]


# ---- where the document goes ----------------------------------------------------------------------------------------


def test_not_printed_when_signals_use_stdout(run_main, tmp_path: Path, data: Path) -> None:
    run = run_main(["--input", "in.csv", "--window", "3", "--signals", "-", "--output", "metrics.json"])
    assert run.code == 0
    assert run.out.splitlines()[0] == "row,timestamp,close,rolling_mean,signal"
    assert "signal_rate" not in run.out
    assert run.file_doc()["value"] == 0.5714


def test_quiet_prints_nothing(run_main, tmp_path: Path, data: Path) -> None:
    run = run_main(["--input", "in.csv", "--quiet", "--output", "metrics.json"])
    assert (run.code, run.stdout, run.stderr) == (0, b"", "")
    assert run.file_doc()["status"] == "success"


@pytest.mark.parametrize("where", ["no-such-folder/metrics.json", "."])
def test_an_unwritable_output_path_fails_early_and_clearly(run_main, tmp_path: Path, data: Path, where: str) -> None:
    run = run_main(["--input", "in.csv", "--output", where, "--signals", "signals.csv"])
    assert run.code == 1
    run.assert_no_traceback()
    assert f"mlops-stream: error: the metrics file {where} cannot be written:" in run.stderr
    assert not (tmp_path / "signals.csv").exists()  # checked before any work was done


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_stdout_on_a_full_disk_is_reported_not_a_traceback(tmp_path: Path, data: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "stream", "--input", "in.csv", "--output", "metrics.json"],
            cwd=tmp_path,
            stdout=full,
            stderr=subprocess.PIPE,
            env=env_with_repo(),
            timeout=60,
        )
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err == "mlops-stream: error: the metrics document could not be printed on stdout: no space left on device\n"
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "success"  # the file copy is intact


def test_a_closed_stdout_is_no_traceback(tmp_path: Path, data: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stream", "--input", "in.csv", "--output", "metrics.json"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        env=env_with_repo(),
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert proc.returncode == 0
    assert proc.stderr == b""
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "success"


# ---- the encoder ------------------------------------------------------------------------------------------------


def test_a_text_utf8_cannot_hold_is_written_with_backslash_escapes() -> None:
    doc = metrics.failure("v1", "input file /data/\udcff.csv does not exist")
    assert json.loads(metrics.encode(doc))["error_message"] == "input file /data/\\udcff.csv does not exist"


def test_an_undecodable_file_name_gets_an_error_document_not_a_traceback(run_main, tmp_path: Path) -> None:
    name = os.fsdecode(b"missing-\xff.csv")  # what argv gives Python for a name that is not UTF-8
    run = run_main(["--input", name, "--output", "m.json"])
    assert run.code == 1
    assert "Traceback" not in run.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    assert list(doc) == ERROR_KEYS
    assert "missing-\\udcff.csv" in doc["error_message"] and "does not exist" in doc["error_message"]
    assert json.loads(run.stdout) == doc


@pytest.mark.parametrize("window", [7, 8, 20000])
def test_a_window_longer_than_the_input_is_a_warning_not_an_error(run_main, tmp_path: Path, data: Path, window: int):
    run = run_main(["--input", "in.csv", "--window", window, "--log-file", "run.log"])
    assert run.code == 0, run.stderr
    doc = run.doc()
    assert (doc["status"], doc["rows_processed"]) == ("success", 7)
    said = f"0 of 7 rows had a rolling mean: the window ({window} rows) is longer than the input"
    if window <= len(CLOSES):  # 7 rows fill a window of 7 once: one row has a mean
        assert "warning" not in run.stderr and "WARNING" not in run.log()
        assert doc["value"] == round(sum(exact_signals(CLOSES, window)[0]) / 7, 4)
        return
    assert doc["value"] == 0.0
    assert (
        run.stderr
        == f"mlops-stream: warning: {said}, so every signal is 0; pass a smaller --window (or config window)\n"
    )
    assert f"WARNING {said}" in run.log()
    assert run_main(["--input", "in.csv", "--window", window, "--quiet"]).stderr == ""
