"""Checkpoints of a live run: the input's identity and position, the window, the counts and the signals size, so a
restart after any stop (``kill -9`` included) processes every row exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from typing import Any

from stream.core.engine import WindowState
from stream.core.keyed import KeyedState, SeriesState
from stream.core.tally import Tally
from stream.errors import MlopsStreamError
from stream.fs import locks
from stream.fs.atomic import write_atomic
from stream.text import excerpt

KIND = "mlops-stream checkpoint"
# 2: a digest of the content, checked with every invariant before a checkpoint is used. 3: the set of files a glob
# pattern names ("set"), and the signals file's device and inode. Version 2 checkpoints are read as well.
VERSION = 3
READS = (2, 3)
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
    return InputId(os.path.abspath(path), st.st_dev, st.st_ino, size, digest(fd, size))


def digest(fd: int, size: int) -> str:
    """The SHA-256 of the first ``size`` bytes of the open file ``fd``."""
    return hashlib.sha256(os.pread(fd, size, 0) if size else b"").hexdigest()


@dataclass(frozen=True)
class FileSet:
    """The files of a glob pattern a run follows as one stream; ``Checkpoint.input`` is the one it is in."""

    pattern: str  # absolute
    written: float  # when the checkpoint was taken (Unix time): files before the input's that change later are late


@dataclass(frozen=True)
class Checkpoint:
    input: InputId | None  # None: the input did not exist yet when the checkpoint was written
    reader: dict[str, Any]  # Reader.state().document(): offset after the last processed line, line number, header
    engine: WindowState | KeyedState  # RollingSignal.state(), or KeyedSignal.state() (every key's window and counts)
    tally: Tally
    column: str
    signals: dict[str, Any] | None  # path ('-' = stdout), format, bytes (None for stdout), timestamp column
    key: str | None = None  # the key column of a keyed run
    files: FileSet | None = None  # the set the input is one of (--follow on a glob pattern); None: one file

    @property
    def offset(self) -> int:
        return int(self.reader["offset"])

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "kind": KIND,
            "version": VERSION,
            "input": None if self.input is None else self.input.__dict__,
            "reader": self.reader,
            "engine": _engine_doc(self.engine),
            "counts": {"rows": self.tally.rows, "signals": self.tally.signals, "skipped": self.tally.skipped},
            "column": self.column,
            "signals": self.signals,
            "key": self.key,
            "set": None if self.files is None else self.files.__dict__,
        }
        # The standard json module, not orjson: window values can exceed 64 bits at a fine decimal scale.
        body = _compact(doc)
        # The digest goes last, spliced in: the document (every key's window, in keyed runs) is encoded once.
        return f'{body[:-1]},"digest":"{hashlib.sha256(body.encode()).hexdigest()}"}}\n'.encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> Checkpoint:
        """The checkpoint in ``data``, after its digest and every invariant are checked; CheckpointError names what
        is wrong (a checkpoint is state a person or a disk can damage)."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise CheckpointError(
                f"the file {where} is not a checkpoint written by mlops-stream (or it is damaged); "
                "pass another --checkpoint path, or remove it to start over"
            )
        if doc.get("version") not in READS:
            raise CheckpointError(
                f"the checkpoint {where} has format version {excerpt(doc.get('version'))}, this mlops-stream reads "
                f"versions {READS[0]} to {READS[-1]}; remove it to start over from the beginning of the input"
            )
        recorded = doc.pop("digest", None)
        if recorded != _content_digest(doc):
            raise _damaged(where, "its content does not match its digest (it was edited or damaged)")
        try:
            return cls._checked(doc)
        except _Invalid as exc:
            raise _damaged(where, str(exc)) from None

    @classmethod
    def _checked(cls, doc: dict[str, Any]) -> Checkpoint:
        ident = _field(doc, "input", (dict, type(None)))
        reader = _field(doc, "reader", dict)
        engine = _field(doc, "engine", dict)
        counts = _field(doc, "counts", dict)
        rows, signals, skipped = (_count(counts, k, "counts") for k in ("rows", "signals", "skipped"))
        if signals > rows:
            raise _Invalid(f"it counts {signals} signals in {rows} rows")
        offset = _count(reader, "offset", "reader")
        _count(reader, "line", "reader")
        _field(reader, "header", (str, type(None)), "reader")
        _field(reader, "at_file_start", bool, "reader")
        input_id = None
        if ident is not None:
            try:
                input_id = InputId(**ident)
            except TypeError:
                raise _Invalid("its input identity has missing or unknown fields") from None
            if not (isinstance(input_id.path, str) and isinstance(input_id.sha256, str)):
                raise _Invalid("its input identity has a path or digest that is not text")
            for name in ("device", "inode", "size"):
                _count(ident, name, "input")
            if input_id.size != min(offset, FINGERPRINT):
                raise _Invalid(f"its input fingerprint covers {input_id.size} bytes, not min(offset, {FINGERPRINT})")
        window = _count(engine, "window", "engine")
        if window < 1:
            raise _Invalid("its window is below 1")
        key = _field(doc, "key", (str, type(None)))
        if key is None:
            _window_state(engine, rows, window, "the window")
        else:
            keys = _field(engine, "keys", dict, "engine")
            for name, state in keys.items():
                if not isinstance(state, dict):
                    raise _Invalid(f"the state of the key {excerpt(name)} is not a mapping")
                key_rows = _count(state, "rows", "key")
                if _count(state, "signals", "key") > key_rows:
                    raise _Invalid(f"the key {excerpt(name)} has more signals than rows")
                _window_state(state, key_rows, window, f"the window of the key {excerpt(name)}")
            if sum(int(x["rows"]) for x in keys.values()) != rows:
                raise _Invalid("its keys' rows do not add up to its rows")
            if sum(int(x["signals"]) for x in keys.values()) != signals:
                raise _Invalid("its keys' signals do not add up to its signals")
        files = _file_set(doc, input_id) if doc["version"] > 2 else None
        out = _field(doc, "signals", (dict, type(None)))
        if out is not None:
            path = _field(out, "path", str, "signals")
            if out.get("format") not in ("csv", "jsonl"):
                raise _Invalid("its signals format is neither csv nor jsonl")
            _field(out, "timestamp", (bool, type(None)), "signals")
            if path == "-":
                if out.get("bytes") is not None:
                    raise _Invalid("it records a size for signals written to stdout")
            elif _count(out, "bytes", "signals") == 0 and rows > 0:
                raise _Invalid(f"it records an empty signals file after {rows} rows")
            if doc["version"] > 2 and path != "-":
                _count(out, "device", "signals")
                _count(out, "inode", "signals")
        return cls(
            input=input_id,
            reader=dict(reader),
            engine=_engine_state(engine, key is not None),
            tally=Tally(rows, signals, skipped),
            column=_field(doc, "column", str),
            signals=out,
            key=key,
            files=files,
        )


def _file_set(doc: dict[str, Any], input_id: InputId | None) -> FileSet | None:
    """The set of files a version 3 checkpoint records (None: one file), checked."""
    found = _field(doc, "set", (dict, type(None)))
    if found is None:
        return None
    pattern = _field(found, "pattern", str, "set")
    written = _field(found, "written", (int, float), "set")
    if set(found) != {"pattern", "written"}:
        raise _Invalid("its set of files has missing or unknown fields")
    if not os.path.isabs(pattern) or written < 0:
        raise _Invalid("its set of files has a pattern that is not absolute, or a negative time")
    from stream.sources.globs import matches_path

    if input_id is not None and not matches_path(pattern, input_id.path):
        raise _Invalid(f"its input {excerpt(input_id.path)} is not one of the files its pattern matches")
    return FileSet(pattern, float(written))


class _Invalid(Exception):
    """A field of a checkpoint that breaks an invariant; the message says which and how."""


def _engine_doc(state: WindowState | KeyedState) -> dict[str, Any]:
    """The engine's state as the checkpoint file writes it."""
    if isinstance(state, WindowState):
        return {"window": state.window, "scale": state.scale, "held": list(state.held)}
    keys = {k: {"scale": s.window.scale, "held": list(s.window.held), "rows": s.rows, "signals": s.signals}
            for k, s in state.keys.items()}  # fmt: skip
    return {"window": state.window, "keys": keys}


def _engine_state(doc: dict[str, Any], keyed: bool) -> WindowState | KeyedState:
    """The engine's state from the checkpoint file's (checked) document."""
    window = doc["window"]
    if not keyed:
        return WindowState(window, doc["scale"], tuple(doc["held"]))
    keys = {k: SeriesState(WindowState(window, s["scale"], tuple(s["held"])), s["rows"], s["signals"])
            for k, s in doc["keys"].items()}  # fmt: skip
    return KeyedState(window, keys)


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _content_digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(_compact(doc).encode()).hexdigest()


def _damaged(where: str, problem: str) -> CheckpointError:
    return CheckpointError(
        f"the checkpoint {where} cannot be used: {problem}. Nothing was changed; remove it (or pass another "
        "--checkpoint path) to start over from the beginning of the input"
    )


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = doc.get(name)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if name not in doc or not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        label = f"{where}.{name}" if where else name
        raise _Invalid(f"its field {label} is missing or of the wrong type ({excerpt(value)})")
    return value


def _count(doc: dict[str, Any], name: str, where: str) -> int:
    value = _field(doc, name, int, where)
    if value < 0:
        raise _Invalid(f"its field {where}.{name} is negative ({value})")
    return int(value)


def _window_state(state: dict[str, Any], rows: int, window: int, what: str) -> None:
    """A window's values are integers at a scale, as many as the rows it has seen up to the window's length."""
    held = _field(state, "held", list, what)
    if _count(state, "scale", what) > 1000:
        raise _Invalid(f"{what} has a decimal scale of {state['scale']}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in held):
        raise _Invalid(f"{what} holds values that are not integers")
    if len(held) != min(rows, window):
        raise _Invalid(f"{what} holds {len(held)} values after {rows} rows with a window of {window}")


class File:
    """The checkpoint file of one run: locked (``flock``) from the first look until ``close``, so a second run given
    the same checkpoint is refused, naming this one's pid; replaced atomically at each save, the lock moving to the
    new file before it takes the name."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None  # the file at the name, open and locked; None before the first save of a new one

    def load(self) -> Checkpoint | None:
        """The checkpoint, verified; None when there is none yet (a first run)."""
        path = self.path
        if os.path.islink(path):
            raise CheckpointError(
                f"the checkpoint {path} is {link_words(path)}: each save replaces the checkpoint by name, which would "
                "replace the link, not the file it points to; pass the path of a regular file"
            )
        try:
            # Without blocking: a FIFO given by mistake would otherwise wait here for a writer; never through a link.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if os.path.islink(path):  # made a link since the look above
                raise CheckpointError(
                    f"the checkpoint {path} is {link_words(path)}; pass the path of a regular file"
                ) from None
            raise CheckpointError(f"the checkpoint {path} cannot be read: {exc.strerror}") from None
        self.fd = fd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"the checkpoint {path} is not a regular file; pass the path of a file")
        locks.lock(fd, path, "checkpoint")
        chunks = []
        while data := os.read(fd, 1 << 20):
            chunks.append(data)
        return Checkpoint.decode(b"".join(chunks), path)

    def save(self, ckpt: Checkpoint) -> None:
        try:
            # A first checkpoint must not replace one another run created meanwhile: that run holds its lock.
            fd = write_atomic(self.path, ckpt.encode(), lock=True, exclusive=self.fd is None)
        except FileExistsError:
            raise CheckpointError(self._taken()) from None
        except OSError as exc:
            raise CheckpointError(f"the checkpoint {self.path} cannot be written: {exc.strerror or exc}") from None
        old, self.fd = self.fd, fd
        if old is not None:
            os.close(old)

    def _taken(self) -> str:
        """Why the name of a first checkpoint was taken while this run started: what is there now."""
        if os.path.islink(self.path):
            return (
                f"the checkpoint {self.path} became {link_words(self.path)} while this run started; pass another path"
            )
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            pid = None
        else:
            pid = locks.holder(fd)
            os.close(fd)
        if pid is None:
            return (
                f"the checkpoint {self.path} was created while this run started, and no process holds it (it is not "
                "another mlops-stream run's): look at what it is, then remove it or pass another path"
            )
        return (
            f"the checkpoint {self.path} was created by another mlops-stream run (process {pid}) while this one "
            "started; two runs cannot share it: stop that run first, or pass another path"
        )

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def link_words(path: str) -> str:
    """A symbolic link in words: where it points, and whether anything is there."""
    try:
        target = os.readlink(path)
    except OSError:
        return "a symbolic link"
    missing = "" if os.path.exists(path) else ", which does not exist"
    return f"a symbolic link to {excerpt(target)}{missing}"
