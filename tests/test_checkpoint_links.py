"""A checkpointed live run continues its signals file only into the file the checkpoint knew: one replaced between
two runs (by a symbolic link, or by another regular file) is refused, naming it, and left as it is; so is a checkpoint
that is a symbolic link (dangling, or pointing anywhere). Nothing is lost: the file put back is continued."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_command
from test_follow import HEADER, expected, make_rows, text

LIVE = ["--input", "live.csv", "--follow", "--window", "4", "--signals", "sig.csv", "--checkpoint", "ck.json",
        "--idle-timeout", "0.3", "--output", "m.json"]  # fmt: skip
ROWS = make_rows(60, 31)


def first_run(tmp: Path) -> None:
    (tmp / "live.csv").write_text(HEADER + text(ROWS[:40]))
    run = run_command(LIVE, tmp)
    assert run.code == 0, run.stderr
    (tmp / "live.csv").write_text(HEADER + text(ROWS))  # more rows for the next run (appended in place)


def refused(tmp: Path, words: list[str], untouched: list[Path]) -> str:
    before = {path: path.read_bytes() for path in untouched}
    run = run_command(LIVE, tmp)
    assert run.code == 1, run.stderr
    run.assert_no_traceback()
    message = json.loads((tmp / "m.json").read_text())["error_message"]
    assert all(w in message for w in words), message
    assert "another mlops-stream run" not in message
    assert {path: path.read_bytes() for path in untouched} == before
    return message


@pytest.mark.parametrize("replacement", ["symlink", "regular file"])
def test_a_signals_file_replaced_between_runs_is_refused_and_nothing_is_lost(tmp_path: Path, replacement: str) -> None:
    first_run(tmp_path)
    sig, kept, victim = tmp_path / "sig.csv", tmp_path / "kept.csv", tmp_path / "victim.csv"
    os.rename(sig, kept)
    victim.write_text("somebody else's file\n" * 200)  # longer than the checkpoint's size: it would be cut
    if replacement == "symlink":
        sig.symlink_to("victim.csv")
        words = ["the signals file sig.csv is now a symbolic link to 'victim.csv'", "Put that file back"]
        untouched = [victim, tmp_path / "ck.json"]
    else:
        os.rename(victim, sig)
        words = ["the signals file sig.csv is another file", "it was replaced", "Put that file back"]
        untouched = [sig, tmp_path / "ck.json"]
    refused(tmp_path, words, untouched)
    sig.unlink()
    os.rename(kept, sig)  # the file the checkpoint knew, put back: continued, every row once
    run = run_command(LIVE, tmp_path)
    assert run.code == 0, run.stderr
    assert sig.read_text() == expected(ROWS)[0]


def test_a_first_checkpointed_run_does_not_write_through_a_signals_link(tmp_path: Path) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(ROWS))
    target = tmp_path / "target.csv"
    target.write_text("kept\n")
    (tmp_path / "sig.csv").symlink_to("target.csv")
    message = refused(tmp_path, ["sig.csv is a symbolic link to 'target.csv'"], [target])
    assert "pass the file's own path" in message
    assert not (tmp_path / "ck.json").exists()


@pytest.mark.parametrize("points_to", ["nothing", "a foreign file", "another run's checkpoint"])
def test_a_checkpoint_that_is_a_symlink_is_refused_saying_what_it_is(tmp_path: Path, points_to: str) -> None:
    (tmp_path / "live.csv").write_text(HEADER + text(ROWS))
    untouched = []
    if points_to == "a foreign file":
        (tmp_path / "notes.txt").write_text("not a checkpoint\n")
        untouched.append(tmp_path / "notes.txt")
    elif points_to == "another run's checkpoint":
        other = tmp_path / "other"
        other.mkdir()
        (other / "live.csv").write_text(HEADER + text(ROWS))
        assert run_command(LIVE, other).code == 0
        os.rename(other / "ck.json", tmp_path / "notes.txt")
        untouched.append(tmp_path / "notes.txt")
    (tmp_path / "ck.json").symlink_to("notes.txt")
    missing = ", which does not exist" if points_to == "nothing" else ""
    message = refused(tmp_path, [f"the checkpoint ck.json is a symbolic link to 'notes.txt'{missing}"], untouched)
    assert "pass the path of a regular file" in message
    assert not (tmp_path / "sig.csv").exists()
    assert (tmp_path / "notes.txt").exists() == bool(untouched)  # nothing is created where a dangling link points
    assert os.path.islink(tmp_path / "ck.json")
