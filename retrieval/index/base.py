"""Shared pieces of the vector index adapters: payload fields and HNSW settings."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

#: Payload fields with a keyword index in every collection (filters run inside Qdrant).
KEYWORD_FIELDS = ("tenant", "document_id", "document_version", "source_uri", "access_tags", "media_type")


class HnswConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    m: int = Field(16, ge=4, le=128)
    ef_construct: int = Field(100, ge=8)
    ef_search: int = Field(128, ge=8)
    full_scan_threshold_kb: int = Field(10_000, ge=0)


def collection_name(model_version: str, dimensions: int, pipeline_fingerprint: str) -> str:
    """The index generation for (embedding model, dimension, pipeline fingerprint)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_version.lower()).strip("-")[:48]
    return f"ragline-{slug}-{dimensions}-{pipeline_fingerprint[:12]}"
