"""Where documents come from: files, folders (walked lazily) and URLs.

Sources are yielded one at a time so memory stays bounded however large the corpus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from ingest.fetch import FetchPolicy, FetchRefused, fetch
from schemas.documents import SourceDocument
from schemas.errors import ConfigurationError


@dataclass(frozen=True)
class SourceFailure:
    """A source that could not even be read (missing file, HTTP error)."""

    source_uri: str
    error: str


@dataclass(frozen=True)
class SourceOptions:
    tenant: str
    access_tags: tuple[str, ...] = ()
    passwords: dict[str, str] | None = None
    max_bytes: int = 50 * 1024 * 1024
    fetch: FetchPolicy = FetchPolicy(private_origin=True)  # the operator's CLI may name intranet hosts


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
        path = Path(target)
        if path.is_dir():
            for file in _walk(path):
                yield read_path(file, options)
        elif path.exists():
            yield read_path(path, options)
        else:
            yield SourceFailure(target, "no such file or directory")


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def read_path(path: Path, options: SourceOptions) -> SourceDocument | SourceFailure:
    uri = str(path.resolve())
    try:
        size = path.stat().st_size
        if size > options.max_bytes:
            return SourceFailure(uri, f"{size:,} bytes exceeds the limit of {options.max_bytes:,}")
        data = path.read_bytes()
    except OSError as exc:
        return SourceFailure(uri, f"cannot read: {exc.strerror or exc}")
    passwords = options.passwords or {}
    password = passwords.get(uri) or passwords.get(str(path)) or passwords.get(path.name)
    return SourceDocument(uri, data, options.tenant, access_tags=options.access_tags, password=password)


def _fetch(url: str, options: SourceOptions) -> SourceDocument | SourceFailure:
    try:
        fetched = fetch(url, options.fetch)
    except FetchRefused as exc:
        return SourceFailure(url, f"refused: {exc}")
    except httpx.HTTPError as exc:
        return SourceFailure(url, f"fetch failed: {exc}")
    return SourceDocument(url, fetched.data, options.tenant, access_tags=options.access_tags)
