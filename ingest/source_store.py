"""Raw bytes of documents that cannot be read again from where they came from.

An API upload, inline text or a fetched page has no file to re-read, so without its
bytes a new index generation (new chunking, new identities, new redaction) could never
be built for it. They are kept content-addressed per tenant under ``RAGLINE_HOME``:
the key is (tenant, SHA-256 of the bytes), the same digest as the document version,
so two tenants never share a file and forgetting one tenant's copy leaves the other's.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_VERSION = re.compile(r"^[0-9a-f]{64}$")


def rereadable(source_uri: str) -> bool:
    """A local file can be read again at re-index time; anything else must be kept."""
    return source_uri.startswith("/")


class SourceStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def put(self, tenant: str, version: str, data: bytes) -> None:
        path = self._path(tenant, version)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)  # readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, tenant: str, version: str) -> bytes | None:
        try:
            return self._path(tenant, version).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, tenant: str, version: str) -> bool:
        path = self._path(tenant, version)
        if not path.exists():
            return False
        path.unlink()
        return True

    def _path(self, tenant: str, version: str) -> Path:
        if not _VERSION.match(version):
            raise ValueError(f"not a document version (SHA-256 hex): {version!r}")
        tenant_dir = hashlib.sha256(tenant.encode()).hexdigest()[:32]  # no tenant string in a path
        return self._root / tenant_dir / version[:2] / version
