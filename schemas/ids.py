"""Identity rules from DESIGN.md: every id written anywhere is derived here.

Deterministic ids (UUIDv5 over the identity tuple) make every write repeatable;
the only time-based id is a fresh ``answer_id`` without an idempotency key.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any

#: Namespace of every ragline UUIDv5 (fixed forever: changing it changes every id).
RAGLINE_NAMESPACE = uuid.UUID("6f1d8a53-3c1e-5b7e-9a51-2d7c0b9e4f10")


def _v5(*parts: str) -> str:
    # "\x1f" (unit separator) cannot appear in tenants or URIs we accept, so
    # ("a", "bc") and ("ab", "c") never collide.
    return str(uuid.uuid5(RAGLINE_NAMESPACE, "\x1f".join(parts)))


def document_id(tenant: str, source_uri: str) -> str:
    """Stable id of a document: two tenants ingesting one URI never share it."""
    return _v5("document", tenant, canonical_uri(source_uri))


def canonical_uri(source_uri: str) -> str:
    """Strip what does not change the document's identity (trailing slash, fragment)."""
    uri = source_uri.strip()
    if "#" in uri:
        uri = uri.split("#", 1)[0]
    if uri.startswith(("http://", "https://")) and uri.endswith("/") and uri.count("/") > 3:
        uri = uri.rstrip("/")
    return uri


def document_version(data: bytes) -> str:
    """SHA-256 of the raw bytes."""
    return hashlib.sha256(data).hexdigest()


def chunk_id(tenant: str, doc_id: str, doc_version: str, pipeline_fingerprint: str, index: int) -> str:
    """The Qdrant point id: upserting the same chunk twice is idempotent, and two tenants
    that pick the same document id for the same bytes never share (or erase) a point."""
    return _v5("chunk", tenant, doc_id, doc_version, pipeline_fingerprint, str(index))


def fingerprint(config: Any) -> str:
    """Hash of a configuration via canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def answer_id(tenant: str, idempotency_key: str | None = None) -> str:
    """UUIDv5 of (tenant, key) when the caller gave a key, else a UUIDv7."""
    if idempotency_key:
        return _v5("answer", tenant, idempotency_key)
    return uuid7()


def uuid7() -> str:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds first, so ids sort by time.

    Written here rather than taken from the ``uuid6`` package because ``schemas``
    may import only the stdlib and pydantic (DESIGN.md), and Python 3.11 has no
    ``uuid.uuid7``.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))
