"""One file, one role: an output that is an input, the config or another output is refused before anything is
written, under any spelling (relative, absolute, symlink, hard link); FIFOs and devices are written as streams, never
replaced; a batch FIFO input is read once, to its writer's end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import call_main, env_with_repo, ohlcv_csv, run_command, write, write_config

CLOSES = [f"{100 + i % 7}.{i % 10}5" for i in range(60)]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (and each symlink's target), to check that a refused run changed nothing."""
    found: dict[str, bytes] = {}
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            found[p.name] = b"-> " + os.readlink(p).encode()
        elif p.is_file():
            found[p.name] = p.read_bytes()
    return found


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "x.csv", ohlcv_csv(CLOSES))
    write_config(tmp_path, name="c.yaml")
    write(tmp_path / "earlier.json", '{"earlier": true}\n')
    os.symlink("x.csv", tmp_path / "link.csv")
    os.link(tmp_path / "x.csv", tmp_path / "hard.csv")
    return tmp_path


CLASHES = {
    # name: (extra args, words in the one-line reason)
    "output is the input": (["--output", "x.csv"], ["--output x.csv", "the input x.csv"]),
    "signals is the input (relative)": (["--signals", "./x.csv"], ["--signals ./x.csv", "the input x.csv"]),
    "signals is the input (symlink)": (["--signals", "link.csv"], ["--signals link.csv", "the input x.csv"]),
    "signals is the input (hard link)": (["--signals", "hard.csv"], ["--signals hard.csv", "the input x.csv"]),
    "log file is the input": (["--log-file", "x.csv"], ["--log-file x.csv", "the input x.csv"]),
    "log file is the config": (["--log-file", "c.yaml"], ["--log-file c.yaml", "the config c.yaml"]),
    "output is the config": (["--output", "c.yaml"], ["--output c.yaml", "the config c.yaml"]),
    "signals is the config": (["--signals", "c.yaml"], ["--signals c.yaml", "the config c.yaml"]),
    "signals is the output": (["--output", "earlier.json", "--signals", "earlier.json"], ["--signals", "--output"]),
    "log file is the output": (["--output", "earlier.json", "--log-file", "./earlier.json"], ["--log-file"]),
}


@pytest.mark.parametrize("case", sorted(CLASHES))
def test_a_file_in_two_roles_is_refused_before_anything_is_written(folder: Path, case: str) -> None:
    extra, words = CLASHES[case]
    before = snapshot(folder)
    for absolute in (False, True):
        args = [str(folder / a) if absolute and a.endswith((".csv", ".yaml", ".json")) else a for a in extra]
        run = call_main(["--input", "x.csv", "--config", "c.yaml", *args], folder)
        assert run.code == 2, run.stderr
        run.assert_no_traceback()
        last = run.stderr.strip().splitlines()[-1]
        assert "one file cannot have two roles" in last
        if not absolute:
            assert all(w in last for w in words), last
        assert run.stdout == b""
        assert snapshot(folder) == before


def test_the_checkpoint_cannot_be_the_signals_file(folder: Path) -> None:
    write(folder / "sig.csv", "row,close\n1,2\n")
    before = snapshot(folder)
    run = call_main(
        ["--input", "x.csv", "--follow", "--signals", "sig.csv", "--checkpoint", "sig.csv", "--idle-timeout", "1"],
        folder,
    )
    assert run.code == 2 and "--checkpoint sig.csv is also --signals sig.csv" in run.stderr
    assert snapshot(folder) == before


def test_a_followed_input_that_does_not_exist_yet_is_compared_by_its_path(folder: Path) -> None:
    before = snapshot(folder)
    args = ["--input", "later.csv", "--follow", "--checkpoint", "./later.csv", "--idle-timeout", "1"]
    run = call_main(args, folder)
    assert run.code == 2 and "--checkpoint ./later.csv is also the input later.csv" in run.stderr
    # A dangling symlink names a file that does not exist yet: the same file when it appears.
    os.symlink("later.csv", folder / "soon.csv")
    run = call_main(["--input", "later.csv", "--follow", "--output", "soon.csv", "--idle-timeout", "1"], folder)
    assert run.code == 2 and "--output soon.csv is also the input later.csv" in run.stderr
    assert not (folder / "later.csv").exists()
    assert {k: v for k, v in snapshot(folder).items() if k != "soon.csv"} == before


def test_stdout_appended_to_the_input_is_refused(folder: Path) -> None:
    before = (folder / "x.csv").read_bytes()
    with open(folder / "x.csv", "ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "stream", "--input", "x.csv", "--signals", "-"],
            cwd=folder, stdout=out, stderr=subprocess.PIPE, env=env_with_repo(), timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2 and b"stdout (--signals -) is also the input x.csv" in proc.stderr
    assert (folder / "x.csv").read_bytes() == before


def test_an_input_named_like_an_outputs_temporary_file_is_refused(folder: Path) -> None:
    write(folder / ".m.json.12345.abcdefgh.tmp", ohlcv_csv(CLOSES))
    run = call_main(["--input", ".m.json.12345.abcdefgh.tmp", "--output", "m.json"], folder)
    assert run.code == 2 and "named like a temporary file of --output m.json" in run.stderr
    assert not (folder / "m.json").exists()


def test_distinct_files_are_fine_and_devices_may_share(folder: Path) -> None:
    null = device_node(folder, "null")
    run = call_main(["--input", "x.csv", "--config", "c.yaml", "--output", null, "--log-file", null, "--quiet"], folder)
    assert run.code == 0, run.stderr


# ---- outputs that are not regular files -----------------------------------------------------------------------------


DEVICES = {"null": (1, 3), "full": (1, 7)}  # Linux's major and minor numbers of /dev/null and /dev/full


def device_node(folder: Path, name: str) -> str:
    """A character device to write to: as root, a private node in ``folder`` (root could replace the system's own
    if the code under test were wrong); otherwise the system's, which only root could replace."""
    if os.geteuid() == 0:
        path = folder / f"dev-{name}"
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*DEVICES[name]))
            return str(path)
        except OSError:
            pytest.skip("cannot create a device node here (a container without CAP_MKNOD)")
    if not os.path.exists(f"/dev/{name}"):
        pytest.skip(f"/dev/{name} is not on this system")
    return f"/dev/{name}"


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_a_device_output_is_written_to_never_replaced(folder: Path, name: str) -> None:
    device = device_node(folder, name)
    before = os.stat(device)
    run = call_main(["--input", "x.csv", "--output", device], folder)
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    run.assert_no_traceback()
    if name == "full":  # a write into it fails as a full disk does: said on stderr, exit 1
        assert run.code == 1
        assert f"the metrics file {device} cannot be written: no space left on device" in run.stderr
    else:
        assert run.code == 0 and run.doc()["status"] == "success"


def test_a_fifo_output_gets_the_document_as_a_stream(folder: Path) -> None:
    fifo = folder / "metrics.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    run = call_main(["--input", "x.csv", "--output", str(fifo), "--quiet"], folder)
    reader.join(timeout=60)
    assert run.code == 0, run.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(got[0])["status"] == "success"
    assert not [p for p in folder.iterdir() if p.name.startswith(".metrics.fifo.")]


def test_a_signals_fifo_is_written_as_a_stream(folder: Path) -> None:
    fifo = folder / "signals.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    run = call_main(["--input", "x.csv", "--signals", str(fifo), "--quiet"], folder)
    reader.join(timeout=60)
    assert run.code == 0, run.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got[0].count(b"\n") == len(CLOSES) + 1


def test_a_folder_as_output_is_refused(folder: Path) -> None:
    (folder / "sub").mkdir()
    run = call_main(["--input", "x.csv", "--output", "sub"], folder)
    assert run.code == 1 and "the metrics file sub cannot be written" in run.stderr
    assert (folder / "sub").is_dir() and not list((folder / "sub").iterdir())


def test_output_dash_prints_the_document_and_writes_no_file(folder: Path) -> None:
    run = call_main(["--input", "x.csv", "--output", "-", "--quiet"], folder)
    assert run.code == 0 and run.doc()["rows_processed"] == len(CLOSES)
    assert not (folder / "-").exists()
    run = call_main(["--input", "x.csv", "--output", "-", "--signals", "-"], folder)
    assert run.code == 2 and "cannot both go to stdout" in run.stderr


# ---- a FIFO as the batch input --------------------------------------------------------------------------------------


def test_a_fifo_input_is_opened_once_and_read_to_its_writers_end(folder: Path) -> None:
    fifo = folder / "in.fifo"
    os.mkfifo(fifo)
    data = (folder / "x.csv").read_bytes()
    writer = subprocess.Popen(  # a separate process, as a shell's `cat x.csv > in.fifo` is
        [sys.executable, "-c", f"import sys; open({str(fifo)!r}, 'wb').write(sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
    )
    writer.stdin.write(data)  # type: ignore[union-attr]
    writer.stdin.close()  # type: ignore[union-attr]
    run = run_command(["--input", str(fifo)], folder, timeout=60)
    assert writer.wait(timeout=60) == 0  # not killed by SIGPIPE
    assert run.code == 0, run.stderr
    assert run.doc()["rows_processed"] == len(CLOSES)
