"""Checkpoints are state a person or a disk can damage: each is checked (a digest of its content, then every
invariant) before it is used, and refused with a message naming what is wrong, touching nothing; two runs cannot
share a checkpoint or a signals file (flock), and the refusal names the other run's pid."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TRACEBACK_MARKERS, env_with_repo, run_command
from test_follow import HEADER, make_rows, text, wait_for

LIVE = ["--input", "live.csv", "--follow", "--window", "4", "--signals", "sig.csv", "--checkpoint", "ck.json"]


def sign(doc: dict[str, Any]) -> bytes:
    """The checkpoint format: the digest is SHA-256 of the compact JSON of every other field, in order."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    body["digest"] = hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def first_run(tmp_path: Path, keyed: bool = False) -> dict[str, Any]:
    rows = make_rows(40, 4)
    if keyed:
        body = "".join(f"{t},{'ab'[i % 2]},{c}\n" for i, (t, c) in enumerate(rows))
        (tmp_path / "live.csv").write_text("timestamp,sym,close\n" + body)
    else:
        (tmp_path / "live.csv").write_text(HEADER + text(rows))
    key = ["--key", "sym"] if keyed else []
    run = run_command([*LIVE, *key, "--idle-timeout", "0.5"], tmp_path)
    assert run.code == 0, run.stderr
    return json.loads((tmp_path / "ck.json").read_bytes())


def damage_rows(doc: dict[str, Any]) -> None:
    doc["counts"]["rows"] = -10


def damage_signals_above_rows(doc: dict[str, Any]) -> None:
    doc["counts"]["signals"] = doc["counts"]["rows"] + 1


def damage_window_length(doc: dict[str, Any]) -> None:
    doc["engine"]["held"].append(1)


def damage_window_value(doc: dict[str, Any]) -> None:
    doc["engine"]["held"][0] = "1001"


def damage_scale(doc: dict[str, Any]) -> None:
    doc["engine"]["scale"] = -1


def damage_signals_size(doc: dict[str, Any]) -> None:
    doc["signals"]["bytes"] = 0


def damage_type(doc: dict[str, Any]) -> None:
    doc["counts"] = ["not", "a", "mapping"]


def damage_offset(doc: dict[str, Any]) -> None:
    doc["reader"]["offset"] = 10**9
    doc["input"]["size"] = 4096


def damage_set(doc: dict[str, Any]) -> None:
    doc["set"] = {"pattern": "/nowhere/*.csv", "written": 0}


def damage_signals_identity(doc: dict[str, Any]) -> None:
    del doc["signals"]["inode"]


DAMAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "negative rows": (damage_rows, "counts.rows is negative"),
    "more signals than rows": (damage_signals_above_rows, "signals in"),
    "window longer than it can be": (damage_window_length, "the window holds"),
    "window value not an integer": (damage_window_value, "not integers"),
    "negative scale": (damage_scale, "the window.scale is negative"),
    "empty signals after rows": (damage_signals_size, "empty signals file"),
    "wrong type": (damage_type, "counts is missing or of the wrong type"),
    "offset past the file": (damage_offset, "shorter than the 1000000000 bytes"),
    "a set its input is not one of": (damage_set, "is not one of the files its pattern matches"),
    "signals without their inode": (damage_signals_identity, "signals.inode is missing"),
}


def assert_refused_and_untouched(tmp_path: Path, words: str, extra: list[str] | None = None) -> None:
    before = {name: (tmp_path / name).read_bytes() for name in ("ck.json", "sig.csv", "live.csv")}
    run = run_command([*LIVE, *(extra or []), "--idle-timeout", "0.5"], tmp_path)
    assert run.code == 1, run.stderr
    run.assert_no_traceback()
    message = run.doc()["error_message"]
    assert words in message, message
    assert "\n" not in message and len(message) < 1000
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_checkpoint_breaking_an_invariant_is_refused_and_nothing_is_touched(tmp_path: Path, case: str) -> None:
    doc = first_run(tmp_path)
    damage, words = DAMAGES[case]
    damage(doc)
    (tmp_path / "ck.json").write_bytes(sign(doc))
    assert_refused_and_untouched(tmp_path, words)


def test_an_edit_that_does_not_match_the_digest_is_refused(tmp_path: Path) -> None:
    first_run(tmp_path)
    raw = (tmp_path / "ck.json").read_bytes()
    (tmp_path / "ck.json").write_bytes(raw.replace(b'"skipped":0', b'"skipped":1'))
    assert_refused_and_untouched(tmp_path, "does not match its digest")


def test_keyed_counts_that_do_not_add_up_are_refused(tmp_path: Path) -> None:
    doc = first_run(tmp_path, keyed=True)
    doc["engine"]["keys"]["a"]["rows"] += 1
    doc["engine"]["keys"]["a"]["held"] = doc["engine"]["keys"]["a"]["held"][-4:]
    (tmp_path / "ck.json").write_bytes(sign(doc))
    assert_refused_and_untouched(tmp_path, "do not add up", ["--key", "sym"])


def test_an_intact_checkpoint_still_resumes(tmp_path: Path) -> None:
    doc = first_run(tmp_path)
    (tmp_path / "ck.json").write_bytes(sign(doc))  # the test's digest is the format's: a re-signed copy is valid
    with open(tmp_path / "live.csv", "a") as fh:
        fh.write(text(make_rows(5, 9, start=41)))
    run = run_command([*LIVE, "--idle-timeout", "0.5"], tmp_path)
    assert run.code == 0, run.stderr
    assert run.doc()["rows_processed"] == 45


def test_a_version_2_checkpoint_still_resumes(tmp_path: Path) -> None:
    doc = first_run(tmp_path)
    assert doc["version"] == 3 and doc["set"] is None
    old = {k: v for k, v in doc.items() if k != "set"} | {"version": 2}  # as the previous format wrote it
    old["signals"] = {k: v for k, v in doc["signals"].items() if k not in ("device", "inode")}
    (tmp_path / "ck.json").write_bytes(sign(old))
    with open(tmp_path / "live.csv", "a") as fh:
        fh.write(text(make_rows(5, 9, start=41)))
    run = run_command([*LIVE, "--idle-timeout", "0.5"], tmp_path)
    assert run.code == 0, run.stderr
    assert run.doc()["rows_processed"] == 45
    assert json.loads((tmp_path / "ck.json").read_bytes())["version"] == 3  # written in the new format from then on


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stream", *args], cwd=tmp_path, env=env_with_repo(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("shared", ["checkpoint", "signals"])
def test_a_second_run_on_the_same_checkpoint_or_signals_is_refused_naming_the_first(
    tmp_path: Path, shared: str
) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(20, 6)))
    first = _start(tmp_path, *LIVE, "--log-file", "first.log")
    try:
        wait_for(lambda: (tmp_path / "ck.json").exists() and (tmp_path / "sig.csv").stat().st_size > 0,
                 "the first run's checkpoint and signals", timeout=60)  # fmt: skip
        signals_before = (tmp_path / "sig.csv").read_bytes()
        args = list(LIVE)
        if shared == "signals":
            args[args.index("ck.json")] = "other.json"
        run = run_command([*args, "--idle-timeout", "0.5", "--output", "second.json"], tmp_path)
        assert run.code == 1, run.stderr
        assert not any(marker in run.stderr for marker in TRACEBACK_MARKERS)
        message = json.loads((tmp_path / "second.json").read_text())["error_message"]
        role = "checkpoint ck.json" if shared == "checkpoint" else "signals file sig.csv"
        assert f"the {role} is in use by another mlops-stream run (process {first.pid})" in message
        assert (tmp_path / "sig.csv").read_bytes() == signals_before
    finally:
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert (tmp_path / "sig.csv").read_bytes().count(b"\n") == 21


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_checkpoint_that_is_not_a_regular_file_is_refused_without_waiting(tmp_path: Path, kind: str) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(make_rows(10, 2)))
    if kind == "fifo":
        os.mkfifo(tmp_path / "ck.json")
    else:
        (tmp_path / "ck.json").mkdir()
    run = run_command([*LIVE, "--idle-timeout", "0.5"], tmp_path, timeout=60)
    assert run.code == 1 and "the checkpoint ck.json is not a regular file" in run.stderr
    assert not (tmp_path / "sig.csv").exists()
