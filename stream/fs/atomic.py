"""Replace a file atomically: a reader sees the old document or the new one, never a half-written one. A FIFO or a
character device is written to as the stream it is, never replaced."""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import BinaryIO

_UMASK = os.umask(0)
os.umask(_UMASK)
MODE = 0o644 & ~_UMASK  # what open() would have given the document
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # a temporary file's random part, as tempfile spells it
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def is_stream(path: str) -> bool:
    """Whether ``path`` is a FIFO or a character device (``/dev/null``, a terminal): written to, never replaced.
    Raises OSError for anything else that is not a regular file (a folder, a block device, a socket)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return True
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"{path} is a directory")
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file, a FIFO or a character device")
    return False


def write_atomic(path: str, data: bytes, *, lock: bool = False, exclusive: bool = False) -> int | None:
    """Write ``data`` to a temporary file beside ``path``, flush and fsync it, then rename it over ``path``.

    ``lock``: take an exclusive ``flock`` on the new file before it gets its name, and return its open descriptor
    (the caller holds the lock by keeping it open). ``exclusive``: fail with FileExistsError if ``path`` exists.
    A FIFO or character device at ``path`` gets the bytes written into it instead (neither option applies then).
    """
    if is_stream(path):
        if lock or exclusive:
            raise OSError(errno.EINVAL, "a FIFO or device cannot hold a document that is read back")
        _write_stream(path, data)
        return None
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create(folder, os.path.basename(path), "tmp")
    try:
        _write_all(fd, data)
        os.fsync(fd)
        if lock:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
        if exclusive:
            os.link(tmp, path)  # unlike a rename, refuses to replace a file another run created meanwhile
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _name(exc, path, tmp)
        raise
    if not lock:
        os.close(fd)
    _sync_folder(folder)
    return fd if lock else None


class Staged:
    """A file written beside ``path`` and renamed over it by ``commit``: a run that fails ``discard``s it, and the file
    it would have replaced stays as it was."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        fd, self.tmp = _create(self.folder, os.path.basename(path), "tmp")
        self.fh: BinaryIO = open(fd, "wb")  # noqa: SIM115 - closed by commit or discard

    def commit(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            os.replace(self.tmp, self.path)  # still open, so still held: never taken for a leftover
            self.fh.close()
        except BaseException:
            self.discard()
            raise
        _sync_folder(self.folder)

    def discard(self) -> None:
        try:
            self.fh.close()
        except OSError:  # a full disk, say: the file goes either way
            pass
        self.remove()

    def remove(self) -> None:
        """Remove the staged file without touching its handle: safe from a signal handler that interrupted a write
        (closing the handle there would be a reentrant call on it)."""
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def _name(exc: BaseException, path: str, tmp: str | None = None) -> None:
    """Make an OSError that names no file, or the temporary file ``tmp``, name ``path``: a write's "no space left on
    device" names none, and the message must say which document the disk was too full for."""
    if isinstance(exc, OSError) and exc.filename in (None, tmp):
        exc.filename = path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_stream(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))  # a FIFO waits here for its reader
    try:
        _write_all(fd, data)
    except OSError as exc:
        _name(exc, path)
        raise
    finally:
        os.close(fd)


def _sync_folder(folder: str) -> None:
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems do not allow opening folders
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def check_writable(path: str) -> None:
    """Fail early, before any work, when ``path`` could not be written at the end; raise OSError with a reason."""
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder {folder} does not exist")
    fd, tmp = _create(folder, os.path.basename(path), "probe")
    try:
        os.unlink(tmp)  # still held
    finally:
        os.close(fd)


def leftover_prefix(path: str) -> str:
    """The start of the names of ``path``'s temporary files (in its folder): ``.NAME.``, then the writer's pid."""
    return f".{os.path.basename(path)}."


def remove_leftovers(path: str) -> list[str]:
    """Delete the temporary files that runs killed mid-write (kill -9, a power cut) left beside ``path``: ours by
    name, that no process holds (a writer holds its lock while it lives; without locks, the pid in the name must be
    gone). Returns their names. For runs that write ``path`` long or often; a short run does not scan folders."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = leftover_prefix(path)
    removed: list[str] = []
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        pid, _, rest = name[len(prefix) :].partition(".")
        unique, _, kind = rest.partition(".")
        ours = pid.isdigit() and unique.replace("_", "").isalnum() and kind in ("tmp", "probe")
        if ours and _remove_unheld(os.path.join(folder, name), int(pid)):
            removed.append(name)
    return removed


def _remove_unheld(path: str, pid: int) -> bool:
    """Remove the temporary file ``path`` (made by process ``pid``) unless a live writer holds it. The lock decides
    where the pid cannot: in containers every run may be process 1, and another container's pids are not seen here."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is at work
        except OSError:  # a filesystem without locks
            if _running(pid):
                return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, as another user's process
        return True
    return True


def _create(folder: str, name: str, kind: str) -> tuple[int, str]:
    """A new private file beside the target, named ``.NAME.PID.RANDOM.KIND`` and locked, so ``remove_leftovers``
    knows it and leaves it alone while it is written."""
    start = os.path.join(folder, f"{leftover_prefix(name)}{os.getpid()}.")
    for attempt in range(100):
        # tempfile.mkstemp's way (a random name, made with O_EXCL) by hand: tempfile imports shutil, bz2, lzma and
        # random, about 5 ms of every run's start for this one call.
        tmp = f"{start}{''.join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in os.urandom(8))}.{kind}"
        try:
            fd = os.open(tmp, _CREATE, 0o600)
            break
        except OSError as exc:
            if isinstance(exc, FileExistsError) and attempt < 99:
                continue
            exc.filename = os.path.join(folder, name)  # the document's, not a random name nobody knows
            raise
    os.fchmod(fd, MODE)
    import fcntl

    try:
        # Held while it is open, and let go by the kernel however the writer ends: then it is a leftover.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a filesystem without locks: the pid in the name tells
        pass
    return fd, tmp
