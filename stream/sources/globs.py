"""A local glob pattern expanded to the files it matches, as the standard library's glob would (``**`` is any depth,
hidden names only for a pattern that starts with a dot), but safe from the file system: each file once, never a
symlinked folder in a loop, and at most ``MAX_MATCHES`` files."""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Callable

from stream.errors import SourceError

GLOB_CHARS = frozenset("*?[")
# Far more files than one run reads in practice, few enough that the list of them stays a few tens of MB.
MAX_MATCHES = 100_000


def matches(pattern: str, limit: int = MAX_MATCHES) -> list[str]:
    """The paths of what ``pattern`` matches, but folders, in sorted order.

    A file reached under several names (through a symlinked folder, or a hard link) is listed once, by the first
    of its names in sorted order; a folder is walked at most once per part of the pattern, so a symlink loop ends.
    The walk is a loop, not a recursion: a signal handler's exception stops it at once. More than ``limit`` files
    is an error that names the pattern.
    """
    if pattern.endswith(os.sep):  # names only folders
        return []
    head, parts = _split(pattern)
    found: dict[object, str] = {}  # (device, inode) -> the first name in sorted order
    seen: set[tuple[int, int, int]] = set()  # (device, inode, part) of the folders walked
    # Folders are walked in the order of their names (each with its separator after it), so the first name of a
    # folder reached under several is the one whose files' names sort first.
    todo = [(_key(head), head, 0)]
    while todo:
        _, folder, at = heapq.heappop(todo)
        try:
            st = os.stat(folder or os.curdir)
        except OSError:
            continue
        if (st.st_dev, st.st_ino, at) in seen:
            continue
        seen.add((st.st_dev, st.st_ino, at))
        part, last = parts[at], at == len(parts) - 1
        if part == "**" and not last:
            heapq.heappush(todo, (_key(folder), folder, at + 1))  # no folder at all
        if not GLOB_CHARS.intersection(part):
            path = os.path.join(folder, part)
            if not last:
                heapq.heappush(todo, (_key(path), path, at + 1))
            elif os.path.lexists(path) and not os.path.isdir(path):
                _found(found, path, pattern, limit)
            continue
        for name, is_dir in _listed(folder, _matcher(part)):
            path = os.path.join(folder, name)
            if part == "**":
                if is_dir:
                    heapq.heappush(todo, (_key(path), path, at))
                elif last:
                    _found(found, path, pattern, limit)
            elif not last:
                if is_dir:
                    heapq.heappush(todo, (_key(path), path, at + 1))
            elif not is_dir:
                _found(found, path, pattern, limit)
    return sorted(found.values())


def is_pattern(path: str) -> bool:
    """Whether a local ``path`` is a pattern: it has wildcards, and no file has it for its name."""
    return bool(GLOB_CHARS.intersection(path)) and not os.path.lexists(path)


def head_folder(pattern: str) -> str:
    """The folder ``pattern`` starts in: its leading parts without wildcards."""
    return _split(pattern)[0] or os.curdir


def fixed_folder(pattern: str) -> str | None:
    """The folder every match of ``pattern`` is in, when only its last part has wildcards; None otherwise."""
    parts = _split(pattern)[1]
    return None if len(parts) > 1 or parts[0] == "**" else head_folder(pattern)


def name_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a file name matches the last part of ``pattern`` (as ``matches`` compares names)."""
    return _matcher(_split(pattern)[1][-1])


def matches_path(pattern: str, path: str) -> bool:
    """Whether ``path`` names a file that ``pattern`` would match (by name only: ``**`` is any depth)."""
    want = os.path.abspath(pattern).split(os.sep)
    names = os.path.abspath(path).split(os.sep)
    at = _closure(want, {0})
    for name in names:
        step: set[int] = set()
        for i in at:
            if i == len(want):
                continue
            part = want[i]
            if part == "**":
                if not name.startswith("."):
                    step.add(i)
            elif part == name if not GLOB_CHARS.intersection(part) else _matcher(part)(name):
                step.add(i + 1)
        at = _closure(want, step)
    return len(want) in at


def _closure(parts: list[str], at: set[int]) -> set[int]:
    """``at`` with every position a ``**`` there may match no folder at all from."""
    out, todo = set(at), list(at)
    while todo:
        i = todo.pop()
        if i < len(parts) and parts[i] == "**" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


def _key(folder: str) -> str:
    return folder if not folder or folder.endswith(os.sep) else folder + os.sep


def _split(pattern: str) -> tuple[str, list[str]]:
    """The folder a pattern starts in (its leading parts without wildcards) and the parts after it."""
    parts = pattern.split(os.sep)
    head = []
    while len(parts) > 1 and not GLOB_CHARS.intersection(parts[0]):
        head.append(parts.pop(0))
    folder = os.sep.join(head)
    if head and not folder:  # an absolute pattern: its first part is empty
        folder = os.sep
    return folder, [p for p in parts if p] or [""]


def _matcher(part: str) -> Callable[[str], bool]:
    """Whether a name matches one part of the pattern; names that start with a dot only when the part does."""
    if part == "**":
        return lambda name: not name.startswith(".")
    import fnmatch

    match = re.compile(fnmatch.translate(part)).match
    if part.startswith("."):
        return lambda name: match(name) is not None
    return lambda name: not name.startswith(".") and match(name) is not None


def _listed(folder: str, wanted: Callable[[str], bool]) -> list[tuple[str, bool]]:
    """The names in ``folder`` that are ``wanted``, and whether each is a folder (or a symlink to one)."""
    out = []
    try:
        with os.scandir(folder or os.curdir) as entries:
            for entry in entries:
                if wanted(entry.name):
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    out.append((entry.name, is_dir))
    except OSError:  # a folder that cannot be read, or vanished: as glob, it holds no match
        pass
    return out


def _found(found: dict[object, str], path: str, pattern: str, limit: int) -> None:
    try:
        st = os.stat(path)
        key: object = (st.st_dev, st.st_ino)
    except OSError:  # a broken symlink: opening it says so
        key = path
    known = found.get(key)
    if known is None:
        if len(found) >= limit:
            raise SourceError(
                f"the input pattern {pattern} matches more than {limit:,} files; narrow it (a folder or a date in it) "
                "or read the files in several runs"
            )
        found[key] = path
    elif path < known:
        found[key] = path
