"""Object storage and other fsspec URLs (s3://, gs://, https://, ...): listing a pattern and opening a file, with
the storage library's failures said in words."""

from __future__ import annotations

import re
from typing import Any, BinaryIO

from stream.errors import SourceError
from stream.sources.globs import GLOB_CHARS
from stream.text import excerpt

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
        f"reading {proto}:// URLs ({url}) needs {' and '.join(packages)}, not installed here: "
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
        raise SourceError(f"{url}: the protocol {proto}:// is not one fsspec knows") from None
    except ImportError as exc:
        from fsspec.registry import known_implementations

        module = str(known_implementations.get(proto, {}).get("class", "")).split(".")[0]
        packages = _PACKAGES.get(proto, module if module != "fsspec" else "").split()
        if packages:
            raise _missing(url, packages) from None
        raise SourceError(f"reading {proto}:// URLs ({url}) needs more packages: {exc}") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError, OSError) as exc:
        raise SourceError(f"{url}: cannot reach it through fsspec ({cls.__name__}): {exc}") from None
    return fs, path


def expand_url(url: str) -> list[tuple[str, int | None]]:
    """The URLs a pattern matches, in sorted order, with their sizes from the listing (None: not listed)."""
    fs, path = filesystem(url)
    if not GLOB_CHARS.intersection(path):
        return [(url, None)]
    try:
        listing = fs.glob(path, detail=True)  # one listing gives the sizes too
    except Exception as exc:
        raise storage_error(exc, f"the input pattern {url} cannot be listed") from None
    found = sorted((p, info) for p, info in listing.items() if info.get("type") != "directory")
    if not found:
        raise SourceError(f"the input pattern {url} matches no file")
    return [(fs.unstrip_protocol(p), info.get("size")) for p, info in found]


def open_url(url: str) -> tuple[BinaryIO, int]:
    """The file at ``url`` opened for binary reading, and its size."""
    fs, path = filesystem(url)
    try:
        size = int(fs.size(path))
        fh = fs.open(path, "rb")
    except FileNotFoundError:
        raise SourceError(f"input {url} does not exist") from None
    except Exception as exc:
        raise storage_error(exc, f"input {url} cannot be opened") from None
    return fh, size


def size_of(url: str) -> int | None:
    """The size of the file at ``url``; None when it cannot be told (opening it will say why)."""
    fs, path = filesystem(url)
    try:
        return int(fs.size(path))
    except Exception:  # the storage library's own errors too (no credentials, ...)
        return None


def storage_error(exc: Exception, what: str) -> SourceError:
    """``what``, and why in the storage library's words: its own exceptions (botocore's NoCredentialsError, an HTTP
    client's) are not OSErrors, and a person needs the reason, not "an internal error"."""
    name = type(exc).__name__
    hint = ""
    if "Credential" in name or "AccessDenied" in str(exc):
        hint = "; give credentials the usual way (environment, ~/.aws/credentials, an instance role)"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return SourceError(f"{what}: {name}: {excerpt(detail, 200)}{hint}")
