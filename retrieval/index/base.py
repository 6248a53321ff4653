"""Shared pieces of the vector index adapters: payload fields and HNSW settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.retrieval import DUPLICATE_OF, SparseVector

#: The dense vector is the collection's default (unnamed) one, so generations built before
#: sparse vectors keep working; the sparse vector is named.
DENSE_VECTOR = ""
SPARSE_VECTOR = "sparse"

#: Payload fields with a keyword index in every collection (filters run inside Qdrant);
#: ``duplicate_of`` (0.10: near-duplicates recorded at ingest) is indexed in collections created since.
KEYWORD_FIELDS = ("tenant", "document_id", "document_version", "source_uri", "access_tags", "media_type",
                  DUPLICATE_OF)


class HnswConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    m: int = Field(16, ge=4, le=128)
    ef_construct: int = Field(100, ge=8)
    ef_search: int = Field(128, ge=8)
    full_scan_threshold_kb: int = Field(10_000, ge=0)


#: Payload fields that identify a document version; ``document_versions`` reads only these.
VERSION_FIELDS = ["tenant", "document_id", "document_version"]


def tally_versions(pages: Iterator[list[Any]]) -> dict[tuple[str, str, str], int]:
    """Points per (tenant, document_id, document_version) over pages of scrolled records."""
    counts: dict[tuple[str, str, str], int] = {}
    for records in pages:
        for r in records:
            key = (str(r.payload["tenant"]), str(r.payload["document_id"]), str(r.payload["document_version"]))
            counts[key] = counts.get(key, 0) + 1
    return counts


def collection_name(model_version: str, dimensions: int, pipeline_fingerprint: str) -> str:
    """The index generation for (embedding model, dimension, pipeline fingerprint)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_version.lower()).strip("-")[:48]
    return f"ragline-{slug}-{dimensions}-{pipeline_fingerprint[:12]}"


def dense_of(vector: Any) -> list[float] | None:
    """A returned point's dense vector, whether the collection has named vectors or one."""
    if isinstance(vector, dict):
        vector = vector.get(DENSE_VECTOR)
    return [float(x) for x in vector] if vector is not None else None


def sparse_of(vector: Any) -> SparseVector | None:
    """A returned point's sparse vector (either client's type), if it has one."""
    sparse = vector.get(SPARSE_VECTOR) if isinstance(vector, dict) else None
    if sparse is None:
        return None
    return SparseVector(indices=[int(i) for i in sparse.indices], values=[float(v) for v in sparse.values])
