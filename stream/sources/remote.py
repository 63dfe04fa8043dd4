"""Object storage and other fsspec URLs (s3://, gs://, https://, ...): listing a pattern and opening a file, with
the storage library's failures said in words."""

from __future__ import annotations

import io
import re

from stream.errors import SourceError
from stream.sources.globs import GLOB_CHARS
from stream.text import excerpt, redact

TYPE_CHECKING = False  # typing is not imported at run time: it is a tenth of a small run's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
# Where the implementation of a protocol comes from, for the error when it is missing (fsspec itself may be).
_PACKAGES = {
    "s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs",
    "http": "requests aiohttp", "https": "requests aiohttp", "hdfs": "pyarrow", "sftp": "paramiko", "ssh": "paramiko",
}  # fmt: skip


def _protocol(url: str) -> str:
    m = URL.match(url)
    assert m is not None
    return m.group(1).lower()


def _missing(url: str, packages: list[str]) -> SourceError:
    proto = _protocol(url)
    return SourceError(
        f"reading {proto}:// URLs ({shown(url)}) needs {' and '.join(packages)}, not installed here: "
        f"pip install {' '.join(packages)}"
    )


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` and the path within it; a clear error naming what to install if missing."""
    try:
        import fsspec
    except ImportError:
        raise _missing(url, ["fsspec", *_PACKAGES.get(_protocol(url), "").split()]) from None
    proto = _protocol(url)
    try:
        cls = fsspec.get_filesystem_class(proto)
    except ValueError:
        raise SourceError(f"{shown(url)}: the protocol {proto}:// is not one fsspec knows") from None
    except ImportError as exc:
        from fsspec.registry import known_implementations

        module = str(known_implementations.get(proto, {}).get("class", "")).split(".")[0]
        packages = _PACKAGES.get(proto, module if module != "fsspec" else "").split()
        if packages:
            raise _missing(url, packages) from None
        raise SourceError(f"reading {proto}:// URLs ({shown(url)}) needs more packages: {redact(str(exc))}") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError, OSError) as exc:
        why = redact(str(exc))
        raise SourceError(f"{shown(url)}: cannot reach it through fsspec ({cls.__name__}): {why}") from None
    return fs, path


def expand_url(url: str) -> list[tuple[str, int | None]]:
    """The URLs a pattern matches, in sorted order, with their sizes from the listing (None: not listed)."""
    fs, path = filesystem(url)
    if not _is_pattern(url, path):
        return [(url, None)]
    try:
        listing = fs.glob(path, detail=True)  # one listing gives the sizes too
    except Exception as exc:
        where = f"the input pattern {shown(url)}"
        raise storage_error(
            exc, f"{where} cannot be listed", f"{where} matches no file: its folder does not exist"
        ) from None
    found = sorted((p, info) for p, info in listing.items() if info.get("type") != "directory")
    if not found:
        raise SourceError(f"the input pattern {shown(url)} matches no file")
    return [(fs.unstrip_protocol(p), info.get("size")) for p, info in found]


def _is_pattern(url: str, path: str) -> bool:
    # In a web address "?" starts the query (a signed URL's signature), as fsspec's HTTP listing takes it too.
    if _protocol(url) in ("http", "https"):
        return bool(set("*[").intersection(path.split("?", 1)[0]))
    return bool(GLOB_CHARS.intersection(path))


def open_url(url: str, ranged: bool = False, size: int | None = None) -> tuple[BinaryIO, int]:
    """The file at ``url`` opened for binary reading, and its size (``size``: a web file's, known already from an
    earlier look, which spares a request; other storage's files look at themselves as they open). A web address read
    from its start (not ``ranged``) is one streamed GET: fsspec's default handle asks for byte ranges, which not every
    server answers."""
    fs, path = filesystem(url)
    web = _protocol(url) in ("http", "https")
    try:
        if web:  # told the size, fsspec's web files send no request (HEAD) for it
            size = int(fs.size(path)) if size is None else size
            fh = fs.open(path, "rb", size=size, **({} if ranged else {"block_size": 0}))
        else:  # the file's own look gives the size (s3fs's also pins the version read to the object's ETag)
            fh = fs.open(path, "rb")
            own = getattr(fh, "size", None)
            size = int(fs.size(path) if own is None else own)
    except Exception as exc:
        raise storage_error(exc, f"input {shown(url)} cannot be opened", f"input {shown(url)} does not exist") from None
    if web and not ranged:
        fh = io.BufferedReader(_Forward(fh), 1 << 20)
    return fh, size


class _Forward(io.RawIOBase):
    """A streamed HTTP body as a raw stream that says it cannot seek (fsspec's streamed file says it can, and then
    refuses), so that readers peek at its head as they do at a pipe's."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.fh.close()
        super().close()


def answers_ranges(url: str) -> bool:
    """Whether the server of a web address answers requests for byte ranges (one request for one byte, whose answer
    is not read when it is the whole file); True for other storage, whose ranges always work."""
    if _protocol(url) not in ("http", "https"):
        return True
    fs, path = filesystem(url)
    try:
        with fs.open(path, "rb", block_size=1) as fh:
            fh.seek(1)
            fh.read(1)
    except ValueError:  # fsspec's word for a whole file where a range was asked for
        return False
    except Exception:
        return True  # reading it will say what is wrong
    return True


def size_of(url: str) -> int | None:
    """The size of the file at ``url``; None when it cannot be told (opening it will say why)."""
    fs, path = filesystem(url)
    try:
        return int(fs.size(path))
    except Exception:  # the storage library's own errors too (no credentials, ...)
        return None


def storage_error(exc: Exception, what: str, missing: str) -> SourceError:
    """``missing`` when the storage says there is no such file; else ``what``, and why: the status the server
    answered or how the connection failed, in words, or the storage library's own words, cut short and with any
    credentials they quote hidden (its exceptions, botocore's NoCredentialsError or an HTTP client's, are not OSErrors,
    and a person needs the reason, not "an internal error")."""
    why = _why(exc)
    if why == "does not exist":
        return SourceError(missing)
    if why is not None:
        return SourceError(f"{what}: {why}")
    name = type(exc).__name__
    hint = ""
    if "Credential" in name or "AccessDenied" in str(exc):
        hint = "; give credentials the usual way (environment, ~/.aws/credentials, an instance role)"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return SourceError(f"{what}: {name}: {excerpt(detail, 200)}{hint}")


def _why(exc: BaseException) -> str | None:
    """Why a storage request failed, in a few words, from ``exc`` and the exceptions behind it: fsspec's HTTP
    filesystem says "not found" for any failure, with the real one as its cause; s3fs and botocore wrap theirs."""
    import socket

    found: dict[str, str] = {}
    chain: list[BaseException] = [exc]
    seen: set[int] = set()
    while chain:
        e = chain.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        status = _status(e)
        if status is not None:
            return _HTTP.get(status) or (
                f"the server failed (HTTP {status})" if status >= 500 else f"the server refused it (HTTP {status})"
            )
        if isinstance(e, ConnectionRefusedError):
            found.setdefault("net", "connection refused")
        elif isinstance(e, socket.gaierror):
            found.setdefault("net", "name not resolved")
        elif isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            found.setdefault("net", "timed out")
        elif isinstance(e, PermissionError):
            found.setdefault("denied", "access denied")
        elif isinstance(e, FileNotFoundError):
            found.setdefault("missing", "does not exist")
        chain.extend(
            b for b in (e.__cause__, e.__context__, getattr(e, "os_error", None)) if isinstance(b, BaseException)
        )
        kwargs = getattr(e, "kwargs", None)  # botocore's EndpointConnectionError keeps the connection's error there
        if isinstance(kwargs, dict) and isinstance(kwargs.get("error"), BaseException):
            chain.append(kwargs["error"])
    return found.get("net") or found.get("denied") or found.get("missing")


_HTTP = {401: "access denied (HTTP 401)", 403: "access denied (HTTP 403)", 404: "does not exist", 410: "does not exist"}


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request: aiohttp's (``status``) or botocore's (in its ``response``)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 600:
        return status
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int) and 400 <= code < 600:
            return code
    return None


def shown(url: str) -> str:
    """``url`` as messages show it: without its query (a signed URL's is long, and the file is found without it),
    and with its user and password hidden as every message hides them.

    >>> shown("https://alice:S3cr3t@host/x.csv?X-Amz-Signature=ab12")
    'https://***@host/x.csv'
    """
    return redact(url).split("#", 1)[0].split("?", 1)[0]
