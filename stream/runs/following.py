"""What a live run follows: its input as a file followed by name (from a checkpoint's position), the files a glob
pattern matches, a file redirected into stdin, a FIFO or a pipe."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from stream.errors import SourceError
from stream.runs import resume
from stream.runs.checkpoint import CheckpointError
from stream.sources.files import open_input
from stream.sources.follow import FileFollower, StreamFollower
from stream.sources.globs import head_folder, is_pattern
from stream.sources.series import SeriesFollower

if TYPE_CHECKING:
    from stream.runs.checkpoint import Checkpoint
    from stream.runs.context import RunContext
    from stream.runs.stops import Stop


def open_follower(ctx: RunContext, ckpt: Checkpoint | None, stop: Stop) -> FileFollower | StreamFollower:
    """The follower of ``ctx.options.input``, from where ``ckpt`` left it (None: from the start)."""
    opts, log = ctx.options, ctx.log
    idle = opts.idle_timeout
    if opts.input == "-":
        stdin = ctx.env.stdin_fd
        if stdin is None:
            raise SourceError(
                "--follow reads stdin through its file descriptor, and this stdin has none (closed, or in memory)"
            )
        if stat.S_ISREG(os.fstat(stdin).st_mode):  # a file redirected into stdin: followed through its descriptor
            return FileFollower(None, stop, idle, fd=os.dup(stdin), offset=os.lseek(stdin, 0, os.SEEK_CUR), log=log)
        return StreamFollower(stdin, stop, idle)
    path = opts.input
    assert path is not None
    if is_pattern(path):
        return _series(ctx, ckpt, stop, path)
    offset = 0
    fd: int | None = None
    if ckpt is not None:
        assert opts.checkpoint is not None
        fd, found = resume.open_input(ckpt, path, opts.checkpoint)
        offset = ckpt.offset if fd is not None else 0
        if found != path:
            log.warning(
                "%s was replaced while mlops-stream was not running; reading the rest of the old file, now "
                "named %s, before the new one",
                path, found,
            )  # fmt: skip
    elif os.path.lexists(path):
        if _is_fifo(path):
            # Opening a FIFO waits for a writer inside open(), where SIGTERM cannot end the wait. Opened without
            # blocking, the follower's poll does the waiting, and a stop ends it.
            if opts.checkpoint:
                raise SourceError(f"--checkpoint needs a regular file as input; {path} is a stream")
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                open_input(path)  # raises with the batch mode's message (no permission, ...)
                raise
            return StreamFollower(fd, stop, idle, owns_fd=True)
        inp = open_input(path)  # its errors (a folder, no permission) are the batch mode's
        fd = os.dup(inp.fh.fileno())
        inp.fh.close()
        if inp.size is None:  # a FIFO or a device: read as a stream, no name to follow
            if opts.checkpoint:
                os.close(fd)
                raise SourceError(f"--checkpoint needs a regular file as input; {path} is a stream")
            return StreamFollower(fd, stop, idle, owns_fd=True)
    else:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise SourceError(f"input file {path} does not exist, and neither does its folder {folder}")
        log.warning("input %s does not exist yet; waiting for it to appear", path)
    return FileFollower(path, stop, idle, fd=fd, offset=offset, log=log)


def _series(ctx: RunContext, ckpt: Checkpoint | None, stop: Stop, pattern: str) -> SeriesFollower:
    """The follower of the files ``pattern`` matches, from the file and position ``ckpt`` left it at."""
    log, where, idle = ctx.log, ctx.options.checkpoint, ctx.options.idle_timeout
    folder = head_folder(pattern)
    if not os.path.isdir(folder):
        raise SourceError(f"the input pattern {pattern} starts in the folder {folder}, which does not exist")
    ident = ckpt.input if ckpt is not None else None
    if ckpt is None or ident is None:
        follower = SeriesFollower(pattern, stop, idle, log=log)
    else:
        assert where is not None
        fd, found = resume.open_input(ckpt, ident.path, where, missing_ok=True)
        seen = ckpt.files.written if ckpt.files is not None else None
        follower = SeriesFollower(pattern, stop, idle, at=ident.path, fd=fd, offset=ckpt.offset, seen=seen, log=log)
        if fd is None:
            _gone(follower, ident.path, where, pattern)
        elif found != ident.path:
            log.warning(
                "%s was replaced while mlops-stream was not running; reading the rest of the old file, now named "
                "%s, before the files after it", ident.path, found,
            )  # fmt: skip
        if ckpt.files is None:
            log.info("continuing the files matching %s from %s, where its checkpoint left off", pattern, ident.path)
    if follower.fd is None:
        log.warning("no file matches the input pattern %s yet; waiting for one to appear", pattern)
    return follower


def _gone(follower: SeriesFollower, path: str, where: str, pattern: str) -> None:
    """The checkpoint's file of a pattern is gone (archived, say): the run goes on with the next file, if there is
    one."""
    if follower.fd is None:
        follower.close()
        raise CheckpointError(
            f"the checkpoint {where} was written in the file {path}, which is gone (removed, or moved out of its "
            f"folder), and no file after it matches {pattern} yet: start the run again once the next file is there "
            "(rows written to the old file after the checkpoint, if any, cannot be recovered), or remove the "
            "checkpoint to start over"
        )
    follower.log.warning(
        "%s, the file the checkpoint %s was written in, is gone (removed, or moved out of its folder); going on with "
        "the next file, %s (rows written to the old file after the checkpoint, if any, cannot be recovered)",
        path, where, follower.path,
    )  # fmt: skip


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False
