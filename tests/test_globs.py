"""Glob inputs against a hostile file system: symlink loops end, a file reached under several names is read once,
a pattern matching too many files is a clear error, and a signal handler's exception stops a walk; otherwise the
files the standard library's glob finds, in sorted order."""

from __future__ import annotations

import glob
import os
import random
import signal
from pathlib import Path

import pytest
from conftest import ohlcv_csv, write

from stream.errors import SourceError
from stream.sources.files import expand
from stream.sources.globs import matches

CLOSES = [str(100 + i) for i in range(19)]


def looped_tree(root: Path, loops: int) -> Path:
    """``root/g/sub/a.csv`` (19 rows) with ``loops`` symlinks in ``sub`` pointing back up the tree."""
    sub = root / "g" / "sub"
    sub.mkdir(parents=True)
    write(sub / "a.csv", ohlcv_csv(CLOSES))
    for i in range(loops):
        (sub / f"loop{i}").symlink_to("../" * (i + 1))
    return root / "g"


@pytest.mark.parametrize("loops", [1, 2])
def test_a_symlink_loop_reads_the_file_once(run_cli, tmp_path: Path, loops: int) -> None:
    looped_tree(tmp_path, loops)
    # Through a real process with a deadline: a walk that never ends fails here instead of hanging the suite.
    run = run_cli(["--input", "g/**/*.csv", "--output", "m.json", "--log-file", "run.log"], timeout=120)
    assert run.code == 0, run.stderr
    run.assert_no_traceback()
    assert run.file_doc("m.json")["rows_processed"] == len(CLOSES)
    assert "files read as one stream" not in run.log()  # one input, not dozens of names for it


def test_a_file_under_several_names_is_read_once_by_its_first_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write(data / "b.csv", "close\n1\n")
    write(data / "c.csv", "close\n2\n")
    os.link(data / "c.csv", data / "a-hardlink.csv")
    (data / "d-symlink.csv").symlink_to("b.csv")
    (tmp_path / "mirror").symlink_to("data")  # the whole folder again under other names
    found = [Path(s.name).relative_to(tmp_path).as_posix() for s in expand([f"{tmp_path}/*/*.csv"])]
    assert found == ["data/a-hardlink.csv", "data/b.csv"]
    (tmp_path / "data.bak").symlink_to("data")  # sorts before data/: "." comes before "/"
    found = [Path(s.name).relative_to(tmp_path).as_posix() for s in expand([f"{tmp_path}/*/*.csv"])]
    assert found == ["data.bak/a-hardlink.csv", "data.bak/b.csv"]


def test_matches_are_those_of_glob_in_sorted_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tree without links, where the standard library's glob is right: the same files, in the same order.
    rng = random.Random(7)
    names = ["a", "b", ".h", "x.csv", "y.csv", ".z.csv", "a.txt", "d1", "[x].csv"]

    def build(folder: Path, depth: int) -> None:
        for name in rng.sample(names, 5):
            if depth < 3 and rng.random() < 0.4:
                (folder / name).mkdir()
                build(folder / name, depth + 1)
            else:
                (folder / name).touch()

    (tmp_path / "t").mkdir()
    build(tmp_path / "t", 0)
    monkeypatch.chdir(tmp_path)
    patterns = [
        "t/**/*.csv", "t/*.csv", "t/*/*.csv", "t/**", "t/**/d1/*", "t/d1/**/*", "t/.*", "t/**/.*.csv",
        "t/*/x.csv", "t/[ab]*/*", "*/*.csv", "t/d?/*", f"{tmp_path}/t/**/*.csv", "t/**/[[]x].csv", "t/*/",
    ]  # fmt: skip
    for pattern in patterns:
        want = sorted(p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p))
        assert matches(pattern) == want, pattern
    assert matches("t/**/*.csv")  # the tree has some, so the comparison above compared something


def test_too_many_matches_is_a_clear_error_naming_the_pattern_and_the_cap(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"{i}.csv").touch()
    pattern = f"{tmp_path}/*.csv"
    assert len(matches(pattern, limit=6)) == 6
    with pytest.raises(SourceError) as caught:
        matches(pattern, limit=5)
    assert str(caught.value) == (
        f"the input pattern {pattern} matches more than 5 files; narrow it (a folder or a date in it) or read the "
        "files in several runs"
    )


class Interrupted(Exception):
    pass


def test_a_signal_handlers_exception_stops_the_walk(tmp_path: Path) -> None:
    for i in range(20):
        for j in range(20):
            (tmp_path / f"d{i}" / f"e{j}").mkdir(parents=True)
            (tmp_path / f"d{i}" / f"e{j}" / "x.csv").touch()
    fired: list[int] = []
    walk = os.path.join("sources", "globs.py")

    def handler(signum: int, frame: object) -> None:
        # As the command's handlers do, raise; only inside the walk, which is what is tried here, and not inside a
        # library's callback that ran in it (hypothesis's garbage-collection hook): Python drops what that raises.
        fired.append(signum)
        while frame is not None:
            if "site-packages" in frame.f_code.co_filename:  # type: ignore[attr-defined]
                return
            if frame.f_code.co_filename.endswith(walk):  # type: ignore[attr-defined]
                raise Interrupted
            frame = frame.f_back  # type: ignore[attr-defined]

    before = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    caught = None
    try:
        while caught is None and len(fired) < 1000:
            try:
                matches(f"{tmp_path}/**/*.csv")
            except Interrupted as exc:
                caught = exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
    assert caught is not None, "a signal landed in the walk 1000 times and its exception never came out"
