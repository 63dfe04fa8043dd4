"""Bounded messages and inputs: config size, anchors, aliases and nesting refused; long values quoted short; control
characters in names escaped; too many keys refused, naming the column; out of memory and a full disk as clear error
documents, never a traceback."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ERROR_KEYS, call_main, env_with_repo, ohlcv_csv, run_command, write, write_config

CLOSES = [f"{100 + i % 7}.{i % 10}5" for i in range(50)]
FEW_KB = 4096 + 200  # a message is cut to 4096 characters; the prefix and the note of the full size come on top


def assert_bounded_failure(run: object, words: str) -> None:
    assert run.code == 1, run.stderr  # type: ignore[attr-defined]
    run.assert_no_traceback()  # type: ignore[attr-defined]
    doc = run.doc()  # type: ignore[attr-defined]
    assert list(doc) == ERROR_KEYS and words in doc["error_message"], doc
    assert len(run.stdout) < FEW_KB  # type: ignore[attr-defined]
    lines = run.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert lines[-1] == f"mlops-stream: error: {doc['error_message']}"
    assert all(len(line) < FEW_KB for line in lines)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write(tmp_path / "in.csv", ohlcv_csv(CLOSES))


CONFIGS = {
    "a 1 MB key": ("seed: 1\nwindow: 2\nversion: v\n" + "k" * 1_000_000 + ": 1\n", "(1,000,000 characters)"),
    "a 1 MB version": ("seed: 1\nwindow: 2\nversion: " + "v" * 1_000_000 + "\n", "at most 256 are allowed"),
    "aliases nested in aliases": (
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nseed: 1\nwindow: 2\nversion: [*c, *c, *c, *c, *c, *c]\n",
        "anchors and aliases (& and *) are not allowed",
    ),
    "deep nesting": ("seed: 1\nwindow: 2\nversion: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than"),
    "more than 1 MiB": ("seed: 1\nwindow: 2\nversion: v\n" + "# padding\n" * 120_000, "larger than 1 MiB"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_hostile_config_is_refused_with_a_short_message(tmp_path: Path, data: Path, case: str) -> None:
    text, words = CONFIGS[case]
    write_config(tmp_path, text, name="c.yaml")
    before = (tmp_path / "c.yaml").read_bytes()
    run = run_command(["--input", "in.csv", "--config", "c.yaml", "--log-file", "run.log"], tmp_path)
    assert_bounded_failure(run, words)
    assert (tmp_path / "c.yaml").read_bytes() == before
    assert max(len(line) for line in (tmp_path / "run.log").read_text().splitlines()) < FEW_KB


def test_dev_zero_as_config_is_read_only_up_to_the_limit(tmp_path: Path, data: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("/dev/zero is not on this system")
    assert_bounded_failure(run_command(["--input", "in.csv", "--config", "/dev/zero"], tmp_path), "larger than 1 MiB")


def test_control_characters_in_a_name_are_escaped(tmp_path: Path) -> None:
    name = "\x1b]0;pwned\x07red\x1bc.csv"  # sets a terminal's title, then resets it
    run = call_main(["--input", name, "--log-file", "run.log"], tmp_path)
    assert run.code == 1
    for text in (run.stderr, run.out, (tmp_path / "run.log").read_text()):
        assert "\x1b" not in text and "\x07" not in text
    assert "input file \\x1b]0;pwned\\x07red\\x1bc.csv does not exist" in run.stderr


# ---- keys ---------------------------------------------------------------------------------------------------------


def keyed_input(folder: Path, keys: int) -> None:
    rows = "".join(f"t{i},{'ab'[i % 2]},{100 + i % 3}.5\n" for i in range(keys))
    write(folder / "k.csv", "timestamp,sym,close\n" + rows)


def test_too_many_keys_are_refused_naming_the_column(tmp_path: Path) -> None:
    keyed_input(tmp_path, 300)
    write_config(tmp_path, "seed: 1\nwindow: 2\nversion: v\nmax_keys: 100\n", name="c.yaml")
    run = call_main(["--input", "k.csv", "--config", "c.yaml", "--key", "timestamp"], tmp_path)
    assert_bounded_failure(run, "the key column 'timestamp' has more than 100 distinct values")
    assert "check --key" in run.doc()["error_message"]
    # The same input keyed by its symbol column is fine: two keys.
    run = call_main(["--input", "k.csv", "--config", "c.yaml", "--key", "sym"], tmp_path)
    assert run.code == 0 and list(run.doc()["by_key"]) == ["a", "b"]


def test_many_keys_are_warned_about_before_the_limit(tmp_path: Path) -> None:
    keyed_input(tmp_path, 150)
    write_config(tmp_path, "seed: 1\nwindow: 2\nversion: v\nmax_keys: 1000\n", name="c.yaml")
    run = call_main(["--input", "k.csv", "--config", "c.yaml", "--key", "timestamp"], tmp_path)
    assert run.code == 0, run.stderr
    assert "the key column 'timestamp' has 150 distinct values so far" in run.stderr
    assert "--key names the wrong column" in run.stderr


def test_the_default_key_limit_is_100000(tmp_path: Path) -> None:
    write(tmp_path / "k.csv", "timestamp,close\n" + "".join(f"{i},1.5\n" for i in range(100_001)))
    run = call_main(["--input", "k.csv", "--key", "timestamp", "--workers", "1"], tmp_path)
    assert_bounded_failure(run, "has more than 100,000 distinct values")


# ---- memory and disks -----------------------------------------------------------------------------------------------


def test_running_out_of_memory_gives_an_error_document(tmp_path: Path) -> None:
    write(tmp_path / "k.csv", "timestamp,close\n" + "".join(f"{i},1.5\n" for i in range(1_000_000)))
    write_config(tmp_path, "seed: 1\nwindow: 5\nversion: v\nmax_keys: 100000000\n", name="c.yaml")

    def cap() -> None:  # about 1.4 GB would be needed; give it a fraction of that (a small run's peak is ~35 MB)
        resource.setrlimit(resource.RLIMIT_AS, (200 << 20, 200 << 20))

    args = ["--input", "k.csv", "--config", "c.yaml", "--key", "timestamp", "--workers", "1", "--output", "m.json"]
    proc = subprocess.run(
        [sys.executable, "-m", "stream", *args], cwd=tmp_path, env=env_with_repo(), preexec_fn=cap,
        capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert b"Traceback" not in proc.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["status"] == "error" and doc["error_message"].startswith("ran out of memory")


def test_a_full_disk_under_the_signals_names_the_file(tmp_path: Path, data: Path) -> None:
    if os.geteuid() == 0:
        full = tmp_path / "full"
        try:
            os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        except OSError:
            pytest.skip("cannot create a device node here")
        target = str(full)
    elif os.path.exists("/dev/full"):
        target = "/dev/full"
    else:
        pytest.skip("no /dev/full on this system")
    run = run_command(["--input", "in.csv", "--signals", target, "--output", "m.json"], tmp_path)
    assert_bounded_failure(run, f"({target}): no space left on device")


# A full filesystem without privileges: a 16 KiB tmpfs mounted at ./full in a user and mount namespace of the run's
# own (unshare), given the files ./full held and filled up before the run starts; nothing outside the run sees it.
FULL_DISK = (
    "cp -a full held && mount -t tmpfs -o size=16k tmpfs full && cp -a held/. full/ && "
    '{ cat /dev/zero > full/filler 2>/dev/null; exec "$@"; }'
)


def on_a_full_disk(tmp_path: Path, args: list[str], script: str = FULL_DISK) -> subprocess.CompletedProcess[str]:
    """The command run with ``tmp_path/full`` a full filesystem (``script`` mounts and fills it, then runs ``"$@"``);
    skips where namespaces or tmpfs are not allowed."""
    (tmp_path / "full").mkdir(exist_ok=True)
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs full"]
    try:
        usable = subprocess.run(probe, cwd=tmp_path, capture_output=True, timeout=30).returncode == 0
    except OSError:
        usable = False
    if not usable:
        pytest.skip("no unshare, or no user and mount namespaces here, for a private full filesystem")
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", sys.executable, "-m",
         "stream", *args],
        cwd=tmp_path, env=env_with_repo(), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


FULL_CASES = {
    # A live run rewrites its metrics every 2 s: without --idle-timeout only that write can end it.
    "live --output": (["--follow", "--output", "full/m.json"], "full/m.json", 1),
    "live --checkpoint": (["--follow", "--checkpoint", "full/ck.json", "--idle-timeout", "3"], "full/ck.json", 1),
    "live --signals": (["--follow", "--signals", "full/s.csv", "--idle-timeout", "3"], "full/s.csv", 1),
    "live --log-file": (["--follow", "--log-file", "full/run.log", "--idle-timeout", "1"], "full/run.log", 0),
    "batch --output": (["--output", "full/m.json"], "full/m.json", 1),
    "batch --signals": (["--signals", "full/s.csv"], "full/s.csv", 1),
    "batch --log-file": (["--log-file", "full/run.log"], "full/run.log", 0),
}


@pytest.mark.parametrize("case", FULL_CASES)
def test_a_full_disk_is_said_naming_the_file_in_the_first_line(tmp_path: Path, data: Path, case: str) -> None:
    args, name, code = FULL_CASES[case]
    proc = on_a_full_disk(tmp_path, ["--input", "in.csv", *args])
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert name in first and "no space left on device" in first.lower(), proc.stderr


def test_a_full_disk_under_a_resumed_live_run_s_signals_names_the_file(tmp_path: Path, data: Path) -> None:
    args = ["--follow", "--input", "in.csv", "--checkpoint", "ck.json", "--signals", "full/s.csv", "--idle-timeout"]
    # Rows whose signals need more than the page the file's last bytes are in, appended between the two runs.
    (tmp_path / "more.csv").write_text(ohlcv_csv(CLOSES * 20).split("\n", 1)[1])
    # Both runs on the one filesystem (the checkpoint knows its signals file by device and inode): the first writes
    # the signals of the first 50 rows, then the disk is filled and the second resumes.
    script = (
        'mount -t tmpfs -o size=16k tmpfs full && "$@" 0.5 --quiet && cat more.csv >> in.csv && '
        '{ cat /dev/zero > full/filler 2>/dev/null; exec "$@" 3 --log-file run.log; }'
    )
    proc = on_a_full_disk(tmp_path, args, script)
    assert proc.returncode == 1, proc.stderr
    assert "resuming from the checkpoint" in (tmp_path / "run.log").read_text() and "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "full/s.csv" in first and "no space left on device" in first, proc.stderr


@pytest.mark.parametrize(
    "args",
    [["--window", "9" + "x" * 100_000], ["--bogus" + "x" * 100_000], ["--signals-format", "x" * 100_000]],
    ids=["bad value", "unknown option", "bad choice"],
)
def test_a_huge_argument_is_quoted_short_in_the_usage_error(tmp_path: Path, data: Path, args: list[str]) -> None:
    run = call_main(["--input", "in.csv", *args], tmp_path)
    assert run.code == 2 and len(run.stderr) < FEW_KB
    run.assert_no_traceback()


def test_too_many_keys_are_refused_in_a_parallel_run_too(tmp_path: Path) -> None:
    write(tmp_path / "k.csv", "timestamp,close\n" + "".join(f"{i},1.5\n" for i in range(20_000)))
    write_config(tmp_path, "seed: 1\nwindow: 3\nversion: v\nmax_keys: 100\n", name="c.yaml")
    args = ["--input", "k.csv", "--config", "c.yaml", "--key", "timestamp", "--workers", "2", "--block-size", "16K"]
    run = call_main([*args, "--log-file", "run.log"], tmp_path)
    assert "worker processes: 2 over" in run.log()  # the parallel plan ran: its blocks met the limit
    assert_bounded_failure(run, "the key column 'timestamp' has more than 100 distinct values")


def test_the_key_limit_counts_every_block_of_a_parallel_run(tmp_path: Path) -> None:
    # 60 keys a block, new keys in every block: each block is within max_keys, the run is not.
    rows = "".join(f"{i // 50},{100 + i % 7}.5\n" for i in range(20_000))
    write(tmp_path / "k.csv", "timestamp,close\n" + rows)
    write_config(tmp_path, "seed: 1\nwindow: 3\nversion: v\nmax_keys: 200\n", name="c.yaml")
    args = ["--input", "k.csv", "--config", "c.yaml", "--key", "timestamp", "--workers", "2", "--block-size", "16K"]
    run = call_main([*args, "--log-file", "run.log"], tmp_path)
    assert "worker processes: 2 over" in run.log()
    assert_bounded_failure(run, "the key column 'timestamp' has more than 200 distinct values")
    assert "distinct values so far" in run.stderr  # warned at a tenth of the limit, before the refusal
