"""Checkpoints of a live run: the input's identity and position, the window, the counts and the signals size, so a
restart after any stop (``kill -9`` included) processes every row exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO

from stream.atomic import write_atomic
from stream.errors import MlopsStreamError
from stream.tally import Tally

KIND = "mlops-stream checkpoint"
VERSION = 1
# The first bytes of the input that identify it beside its device and inode (an inode number can be reused).
FINGERPRINT = 4096


class CheckpointError(MlopsStreamError):
    """A checkpoint that cannot be used for this run; the message says why and what to do."""


@dataclass(frozen=True)
class InputId:
    path: str  # absolute path the run followed
    device: int
    inode: int
    size: int  # bytes the fingerprint covers: min(offset, FINGERPRINT)
    sha256: str

    def describe(self) -> str:
        return f"{self.path} (device {self.device}, inode {self.inode})"


def identify(fd: int, path: str, offset: int) -> InputId:
    """The identity of the open file ``fd`` (followed as ``path``) for a checkpoint at ``offset``."""
    st = os.fstat(fd)
    size = min(offset, FINGERPRINT)
    return InputId(os.path.abspath(path), st.st_dev, st.st_ino, size, _digest(fd, size))


def _digest(fd: int, size: int) -> str:
    return hashlib.sha256(os.pread(fd, size, 0) if size else b"").hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    input: InputId | None  # None: the input did not exist yet when the checkpoint was written
    reader: dict[str, Any]  # Reader.state(): offset after the last processed line, line number, header
    engine: dict[str, Any]  # RollingSignal.state(), or KeyedSignal.state() (every key's window and counts)
    tally: Tally
    column: str
    signals: dict[str, Any] | None  # path ('-' = stdout), format, bytes (None for stdout), timestamp column
    key: str | None = None  # the key column of a keyed run

    @property
    def offset(self) -> int:
        return int(self.reader["offset"])

    def encode(self) -> bytes:
        doc = {
            "kind": KIND,
            "version": VERSION,
            "input": None if self.input is None else self.input.__dict__,
            "reader": self.reader,
            "engine": self.engine,
            "counts": {"rows": self.tally.rows, "signals": self.tally.signals, "skipped": self.tally.skipped},
            "column": self.column,
            "signals": self.signals,
            "key": self.key,
        }
        # The standard json module, not orjson: window values can exceed 64 bits at a fine decimal scale.
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes, where: str) -> Checkpoint:
        try:
            doc = json.loads(data)
            if doc.get("kind") != KIND:
                raise ValueError("not a checkpoint")
            if doc.get("version") != VERSION:
                raise CheckpointError(
                    f"the checkpoint {where} has format version {doc.get('version')!r}, this mlops-stream reads "
                    f"version {VERSION}; remove it to start over from the beginning of the input"
                )
            counts = doc["counts"]
            return cls(
                input=None if doc["input"] is None else InputId(**doc["input"]),
                reader=dict(doc["reader"]),
                engine=dict(doc["engine"]),
                tally=Tally(int(counts["rows"]), int(counts["signals"]), int(counts["skipped"])),
                column=str(doc["column"]),
                signals=doc["signals"],
                key=doc.get("key"),
            )
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointError(
                f"the file {where} is not a checkpoint written by mlops-stream (or it is damaged); "
                "pass another --checkpoint path, or remove it to start over"
            ) from None


def load(path: str) -> Checkpoint | None:
    """The checkpoint at ``path``; None when there is none yet (a first run)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"the checkpoint {path} cannot be read: {exc.strerror}") from None
    return Checkpoint.decode(data, path)


def save(path: str, ckpt: Checkpoint) -> None:
    try:
        write_atomic(path, ckpt.encode())
    except OSError as exc:
        raise CheckpointError(f"the checkpoint {path} cannot be written: {exc.strerror or exc}") from None


def check_settings(
    ckpt: Checkpoint,
    where: str,
    *,
    input_path: str,
    window: int,
    column: str,
    signals: str | None,
    fmt: str,
    key: str | None = None,
) -> None:
    """Refuse a checkpoint written for another input, window, column, key or signals output, naming every
    difference."""
    wrong = []
    if ckpt.input is not None and ckpt.input.path != os.path.abspath(input_path):
        wrong.append(f"it was written for the input {ckpt.input.path}, not {os.path.abspath(input_path)}")
    if int(ckpt.engine["window"]) != window:
        wrong.append(f"it was written with window {ckpt.engine['window']}, this run has window {window}")
    if ckpt.column != column:
        wrong.append(f"it was written for the column {ckpt.column!r}, this run reads {column!r}")
    if ckpt.key != key:
        was = f"keyed by the column {ckpt.key!r}" if ckpt.key is not None else "without a key"
        now = f"keys rows by {key!r} (--key)" if key is not None else "has no key"
        wrong.append(f"it was written by a run {was}, this run {now}")
    recorded = ckpt.signals
    wanted = None if signals is None else (signals if signals == "-" else os.path.abspath(signals))
    if (recorded and recorded["path"]) != wanted:
        was = f"--signals {recorded['path']}" if recorded else "no --signals"
        now = f"--signals {wanted}" if wanted else "no --signals"
        wrong.append(f"it was written by a run with {was}, this run has {now}")
    elif recorded and recorded["format"] != fmt:
        wrong.append(f"its signals are {recorded['format']}, this run writes {fmt}")
    if wrong:
        raise CheckpointError(
            f"the checkpoint {where} does not match this run: {'; '.join(wrong)}. Run with the same settings, "
            "or remove the checkpoint (or pass another --checkpoint path) to start over"
        )


def open_input(ckpt: Checkpoint, path: str, where: str) -> tuple[int | None, str]:
    """Open the file the checkpoint was written for, checked by device, inode and fingerprint; return the open fd
    (None when the checkpoint predates the input) and the name it was found under.

    If ``path`` now names another file, the checkpoint's file is looked for in the same folder under another name
    (rotated while the command was not running): its rest is read before the file at ``path``.
    """
    ident = ckpt.input
    if ident is None:
        return None, path
    fd = _open_if_same(path, ident)
    if fd is not None:
        return _verified(fd, path, ident, ckpt.offset, where), path
    folder = os.path.dirname(os.path.abspath(path))
    try:
        entries = list(os.scandir(folder))
    except OSError:
        entries = []
    for entry in entries:
        try:
            if entry.inode() != ident.inode or not entry.is_file(follow_symlinks=False):
                continue
        except OSError:
            continue
        fd = _open_if_same(entry.path, ident)
        if fd is not None:
            return _verified(fd, entry.path, ident, ckpt.offset, where), entry.path
    raise CheckpointError(
        f"the checkpoint {where} was written for the file {ident.describe()}, but {path} is now another file and "
        "the old one is not in its folder: it was replaced while mlops-stream was not running, and rows written to "
        "it after the checkpoint cannot be recovered. Remove the checkpoint to start over from the beginning"
    )


def _open_if_same(path: str, ident: InputId) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (ident.device, ident.inode) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd


def _verified(fd: int, path: str, ident: InputId, offset: int, where: str) -> int:
    size = os.fstat(fd).st_size
    problem = None
    if size < offset:
        problem = f"is {size} bytes long, shorter than the {offset} bytes the checkpoint had processed"
    elif _digest(fd, ident.size) != ident.sha256:
        problem = f"does not begin with the same {ident.size} bytes as when the checkpoint was written"
    if problem is None:
        return fd
    os.close(fd)
    raise CheckpointError(
        f"the input {path} {problem}: it was truncated or rewritten while mlops-stream was not running, so the "
        f"checkpoint {where} no longer describes it. Remove the checkpoint to start over from the beginning"
    )


def reopen_signals(ckpt: Checkpoint, path: str, where: str) -> BinaryIO:
    """Open the signals file to continue it: cut back to the size the checkpoint records, positioned at its end."""
    assert ckpt.signals is not None
    size = int(ckpt.signals["bytes"])
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - the live run owns and closes it
    except FileNotFoundError:
        if size == 0:
            return open(path, "wb")
        raise CheckpointError(
            f"the signals file {path} is missing, but the checkpoint {where} records {size} bytes of it; restore "
            "it, or remove the checkpoint to start over"
        ) from None
    actual = os.fstat(fh.fileno()).st_size
    if actual < size:
        fh.close()
        raise CheckpointError(
            f"the signals file {path} is {actual} bytes long, shorter than the {size} bytes the checkpoint {where} "
            "records: it was changed since. Remove the checkpoint to start over"
        )
    # Rows written after the checkpoint are processed again by this run: cut them off so each appears once.
    fh.truncate(size)
    fh.seek(size)
    return fh
