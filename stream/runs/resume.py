"""Resuming a live run from its checkpoint: the settings compared, the input found again (renamed too) by device, inode
and fingerprint, and the signals file cut back to the checkpoint's rows."""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from stream.runs.checkpoint import Checkpoint, CheckpointError, InputId, digest, link_words


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
    pattern: bool = False,
) -> None:
    """Refuse a checkpoint written for another input, window, column, key or signals output, naming every
    difference. ``input_path`` is a glob pattern when the run follows the files it matches (``pattern``): a
    checkpoint of one of those files, written by a run that followed it alone, continues the set from there."""
    wrong = []
    was = _input_difference(ckpt, os.path.abspath(input_path), pattern)
    if was is not None:
        wrong.append(was)
    if ckpt.engine.window != window:
        wrong.append(f"it was written with window {ckpt.engine.window}, this run has window {window}")
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


def _input_difference(ckpt: Checkpoint, wanted: str, pattern: bool) -> str | None:
    """How the input the checkpoint was written for differs from ``wanted`` (a pattern with ``pattern``); None: it
    does not."""
    files, ident = ckpt.files, ckpt.input
    if files is not None:
        if not pattern:
            return f"it was written for the files matching {files.pattern}, not for the one file {wanted}"
        return (
            None if files.pattern == wanted else f"it was written for the files matching {files.pattern}, not {wanted}"
        )
    if ident is None:
        return None
    if pattern:
        from stream.sources.globs import matches_path

        if matches_path(wanted, ident.path):
            return None
        return f"it was written for the input {ident.path}, which the pattern {wanted} does not match"
    return None if ident.path == wanted else f"it was written for the input {ident.path}, not {wanted}"


def open_input(ckpt: Checkpoint, path: str, where: str, missing_ok: bool = False) -> tuple[int | None, str]:
    """Open the file the checkpoint was written for, checked by device, inode and fingerprint; return the open fd
    (None when the checkpoint predates the input, or with ``missing_ok`` when the file is gone) and the name it was
    found under.

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
    if missing_ok:
        return None, path
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
    elif digest(fd, ident.size) != ident.sha256:
        problem = f"does not begin with the same {ident.size} bytes as when the checkpoint was written"
    if problem is None:
        return fd
    os.close(fd)
    raise CheckpointError(
        f"the input {path} {problem}: it was truncated or rewritten while mlops-stream was not running, so the "
        f"checkpoint {where} no longer describes it. Remove the checkpoint to start over from the beginning"
    )


def reopen_signals(ckpt: Checkpoint, path: str, where: str) -> BinaryIO:
    """Open the signals file to continue it, locked: cut back to the size the checkpoint records, positioned at its
    end. It must be the file the checkpoint was written with (its device and inode), never through a symbolic link;
    nothing is cut when it is not, or when it is shorter than the checkpoint records (CheckpointError)."""
    from stream.sinks.signals import open_file

    assert ckpt.signals is not None
    size = int(ckpt.signals["bytes"])
    recorded = ckpt.signals.get("device"), ckpt.signals.get("inode")
    try:
        try:
            fh = open_file(path, create=False, nofollow=True)  # the live run owns and closes it
        except FileNotFoundError:
            if size:
                raise
            recorded = None, None  # the checkpoint counts none of its bytes: a new file loses nothing
            fh = open_file(path, create=True, nofollow=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"the signals file {path} is missing, but the checkpoint {where} records {size} bytes of it; restore "
            "it, or remove the checkpoint to start over"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _not_the_same(path, where, f"is now {link_words(path)}") from None
        raise CheckpointError(f"the signals file {path} cannot be written: {exc.strerror or exc}") from None
    st = os.fstat(fh.fileno())
    if recorded[0] is not None and (st.st_dev, st.st_ino) != recorded:
        fh.close()
        raise _not_the_same(
            path, where, f"is another file (device {st.st_dev}, inode {st.st_ino}) than the checkpoint's (device "
            f"{recorded[0]}, inode {recorded[1]}): it was replaced",
        )  # fmt: skip
    if st.st_size < size:
        fh.close()
        raise CheckpointError(
            f"the signals file {path} is {st.st_size} bytes long, shorter than the {size} bytes the checkpoint "
            f"{where} records: it was changed since. Remove the checkpoint to start over"
        )
    # Rows written after the checkpoint are processed again by this run: cut them off so each appears once.
    fh.truncate(size)
    fh.seek(size)
    return fh


def _not_the_same(path: str, where: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"the signals file {path} {what} while mlops-stream was not running, so it is not the file the checkpoint "
        f"{where} was written with, and it is left as it is. Put that file back at {path}, or remove the checkpoint "
        "(or pass another --checkpoint path) to start over"
    )
