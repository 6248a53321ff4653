"""Where documents come from: files, folders (walked lazily) and URLs.

Sources are yielded one at a time so memory stays bounded however large the corpus.

A folder is untrusted input however it got here: it may hold symlinks out of it (to
/etc/passwd), symlink loops, FIFOs that block a reader for ever and devices that never
end. So the walk follows no symlink unless asked to, and then only to targets inside
the folder named on the command line; it reads regular files only, through one
descriptor with a bounded read; and every problem with one entry becomes a
``SourceFailure`` for that entry, never the end of the run. Every entry point (the CLI,
re-ingestion, producers) reads local files through this module.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from ingest.fetch import FetchPolicy, FetchRefused, fetch
from schemas.documents import SourceDocument
from schemas.errors import ConfigurationError


@dataclass(frozen=True)
class SourceFailure:
    """A source that could not even be read (missing file, HTTP error) or was refused
    (a symlink not followed, a FIFO): reported for that source, the run goes on."""

    source_uri: str
    error: str


@dataclass(frozen=True)
class SourceOptions:
    tenant: str
    access_tags: tuple[str, ...] = ()
    passwords: dict[str, str] | None = None
    max_bytes: int = 50 * 1024 * 1024
    fetch: FetchPolicy = FetchPolicy(private_origin=True)  # the operator's CLI may name intranet hosts
    #: Follow symlinks met while walking a folder, to targets inside that folder only.
    follow_symlinks: bool = False


def load_passwords(path: Path | None) -> dict[str, str]:
    """Read a passwords file: a JSON object mapping file name or path to password."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"passwords file {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigurationError(f"passwords file {path}: must be a JSON object of file name -> password string")
    return data


def iter_sources(targets: list[str], options: SourceOptions) -> Iterator[SourceDocument | SourceFailure]:
    for target in targets:
        if target.startswith(("http://", "https://")):
            yield _fetch(target, options)
            continue
        yield from _local_sources(target, options)


def count_sources(targets: list[str], options: SourceOptions) -> int:
    """How many sources :func:`iter_sources` will yield for ``targets`` (documents and
    refusals alike), by the same walk, reading and fetching nothing: a run's known total."""
    total = 0
    for target in targets:
        if target.startswith(("http://", "https://")):
            total += 1
            continue
        try:
            is_dir = stat.S_ISDIR(os.stat(target).st_mode)
        except OSError:
            is_dir = False
        total += sum(1 for _ in _walk(os.path.realpath(target), options.follow_symlinks)) if is_dir else 1
    return total


def _local_sources(target: str, options: SourceOptions) -> Iterator[SourceDocument | SourceFailure]:
    """A file or folder named on the command line.

    The operator chose this path, so a symlink naming it is followed; what lies inside a
    folder is held to the walk's rules, with the folder's real path as the boundary.
    """
    try:
        is_dir = stat.S_ISDIR(os.stat(target).st_mode)
    except FileNotFoundError:
        yield SourceFailure(target, "no such file or directory")
        return
    except OSError as exc:
        yield SourceFailure(target, _os_error(exc))
        return
    if not is_dir:
        yield read_path(Path(target), options)
        return
    root = os.path.realpath(target)
    for found in _walk(root, options.follow_symlinks):
        yield found if isinstance(found, SourceFailure) else read_path(found, options, root=root)


@dataclass(frozen=True)
class _Directory:
    path: str


def _walk(root: str, follow_symlinks: bool) -> Iterator[Path | SourceFailure]:
    """Regular files under ``root``, depth first by name, and a failure for each entry refused.

    Names starting with "." are skipped silently. Directories are walked by their real path
    and remembered by (st_dev, st_ino), so no symlink or bind mount can lead round a loop.
    """
    try:
        root_stat = os.stat(root)
    except OSError as exc:
        yield SourceFailure(root, _os_error(exc))
        return
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = _listing(directory)
        except OSError as exc:
            yield SourceFailure(directory, f"cannot list directory: {exc.strerror or exc}")
            continue
        subdirectories: list[str] = []
        for entry in entries:
            found = _classify(entry, root, follow_symlinks, visited)
            if isinstance(found, _Directory):
                subdirectories.append(found.path)
            elif found is not None:
                yield found
        pending.extend(reversed(subdirectories))


def _listing(directory: str) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _classify(entry: os.DirEntry[str], root: str, follow_symlinks: bool,
              visited: set[tuple[int, int]]) -> Path | _Directory | SourceFailure | None:
    """What the walk does with one entry: read it, descend into it, refuse it, or pass by."""
    try:
        if entry.is_symlink():
            if not follow_symlinks:
                return SourceFailure(entry.path, "symlink not followed; use --follow-symlinks")
            return _classify_link(entry.path, root, visited)
        if entry.is_file(follow_symlinks=False):  # from the directory listing: no stat call
            return Path(entry.path)
        return _classify_stat(entry.path, entry.path, entry.stat(follow_symlinks=False), visited, False)
    except OSError as exc:
        return SourceFailure(entry.path, _os_error(exc))


def _classify_link(link: str, root: str, visited: set[tuple[int, int]]) -> Path | _Directory | SourceFailure | None:
    """A symlink the operator asked to follow: only to a target that exists inside ``root``."""
    try:
        target = os.path.realpath(link, strict=True)
    except FileNotFoundError:
        return SourceFailure(link, "dangling symlink: its target does not exist")
    if not _inside(root, target):
        return SourceFailure(link, f"symlink leads outside {root} (to {target}); not followed")
    return _classify_stat(link, target, os.stat(target), visited, True)


def _classify_stat(name: str, real: str, st: os.stat_result, visited: set[tuple[int, int]],
                   via_link: bool) -> Path | _Directory | SourceFailure | None:
    if stat.S_ISREG(st.st_mode):
        return Path(real)
    if not stat.S_ISDIR(st.st_mode):
        return SourceFailure(name, f"not a regular file ({_file_kind(st.st_mode)}); skipped")
    key = (st.st_dev, st.st_ino)
    if key not in visited:
        visited.add(key)
        return _Directory(real)
    if via_link and _inside(real, os.path.dirname(name)):
        return SourceFailure(name, f"symlink loops back to {real}, already walked; not followed")
    return None  # a second name for a folder walked already (or a bind mount): its files come once


def read_path(path: Path, options: SourceOptions, *, root: str | None = None) -> SourceDocument | SourceFailure:
    """Read one regular file of at most ``options.max_bytes``, or say why not.

    With ``root`` (a file the walk found under it) the last component must not be a
    symlink (the walk already resolved any link it follows) and the file opened must lie
    inside ``root``, which catches a folder swapped for a symlink after it was listed.
    Without it the operator named this path, so a symlink to it is followed. Either way
    only a regular file is read, and at most max_bytes + 1 bytes of it.
    """
    label = str(path) if root else os.path.abspath(path)
    try:
        data = _read_regular(path, options.max_bytes, root)
    except _Refused as exc:
        return SourceFailure(label, str(exc))
    except OSError as exc:
        return SourceFailure(label, _os_error(exc))
    uri = os.path.realpath(path)
    passwords = options.passwords or {}
    password = passwords.get(uri) or passwords.get(str(path)) or passwords.get(path.name)
    # The folder walked, or the file itself when named: what ``--prune`` of a folder goes by.
    return SourceDocument(uri, data, options.tenant, access_tags=options.access_tags, password=password,
                          source_root=root or uri)


class _Refused(Exception):
    """A file that is not read; the message says why."""


#: Non-blocking, so that a FIFO swapped in after the type check cannot block the open or
#: the read; no controlling terminal from a tty either.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _read_regular(path: Path, max_bytes: int, root: str | None) -> bytes:
    follow = root is None
    # Checked before opening, as opening some devices acts on them; and again on the
    # descriptor, which is what is read whatever the name points to by now.
    _require_regular(os.stat(path, follow_symlinks=follow))
    fd = os.open(path, _OPEN_FLAGS | (0 if follow else os.O_NOFOLLOW))
    try:
        st = os.fstat(fd)
        _require_regular(st)
        if root is not None and not _inside(root, _opened_path(fd, path)):
            raise _Refused(f"no longer inside {root} when opened (a folder replaced by a symlink?); not read")
        if st.st_size > max_bytes:
            raise _Refused(f"{st.st_size:,} bytes exceeds the limit of {max_bytes:,}")
        data = _read_at_most(fd, max_bytes + 1, st.st_size)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise _Refused(f"grew past the limit of {max_bytes:,} bytes while being read")
    return data


def _require_regular(st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise _Refused(f"not a regular file ({_file_kind(st.st_mode)}); skipped")


def _read_at_most(fd: int, limit: int, expected: int) -> bytes:
    """At most ``limit`` bytes: the size fstat gave in one read (joined without a copy), then
    on to the end in case the file grew; the stat size alone is never trusted."""
    chunks: list[bytes] = []
    total = 0
    want = min(limit, expected + 1)
    while total < limit:
        block = os.read(fd, min(want, limit - total))
        if not block:
            break
        chunks.append(block)
        total += len(block)
        want = 1 << 20
    return b"".join(chunks)


def _opened_path(fd: int, path: Path) -> str:
    """Where the opened file lives: the kernel's answer on Linux (immune to renames since), else by name."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
    except OSError:
        return os.path.realpath(path)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"))
    return next((kind for test, kind in kinds if test(mode)), "special file")


def _os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "vanished before it could be read"
    if exc.errno == errno.ELOOP:
        return "symlink loop or a symlink where none is followed; not read"
    return f"cannot read: {exc.strerror or exc}"


def _fetch(url: str, options: SourceOptions) -> SourceDocument | SourceFailure:
    try:
        fetched = fetch(url, options.fetch)
    except FetchRefused as exc:
        return SourceFailure(url, f"refused: {exc}")
    except httpx.HTTPError as exc:
        return SourceFailure(url, f"fetch failed: {exc}")
    return SourceDocument(url, fetched.data, options.tenant, access_tags=options.access_tags)
