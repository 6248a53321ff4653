"""Relational tables owned by ingestion: the document registry, the embedding cache and
the near-duplicate ledger (chunk signatures and their LSH bands).

Migrations for every package's tables live in one alembic history in ``services``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from schemas.storage import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

documents = Table(
    "documents", metadata,
    Column("tenant", String(128), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("media_type", String(128)),
    Column("pipeline_fingerprint", String(32), nullable=False),
    Column("collection", String(128), nullable=False),
    Column("chunk_count", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),  # indexed | failed | deleted
    Column("last_error", Text),
    Column("access_tags", JSON, nullable=False, default=list),
    Column("title", Text),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The local folder (or file) named when the source was read from disk; NULL for uploads,
    # inline text, URLs and client-given identities: only these can be pruned (0007).
    Column("source_root", Text),
    Column("pii_redacted", JSON),  # values redacted per PII entity type, never the values (0008)
    Index(None, "tenant", "status", "updated_at"),
    Index(None, "source_uri"),
)

#: One row per (document, tag): lets every listing apply the readers' visibility rule in SQL,
#: on SQLite and PostgreSQL alike (a JSON list column has no portable "contains").
document_access_tags = Table(
    "document_access_tags", metadata,
    Column("tenant", String(128), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("tag", String(256), primary_key=True),
    Index(None, "tenant", "tag"),
)

embedding_cache = Table(
    "embedding_cache", metadata,
    Column("model_version", String(128), primary_key=True),
    Column("text_sha256", String(64), primary_key=True),
    Column("vector", LargeBinary, nullable=False),  # float32, little-endian
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: Near-duplicate detection (0010, ``ingest.dedup``): one row per chunk indexed since, with
#: its MinHash signature and, for a near-duplicate, the canonical chunk it copies (NULL: it
#: is canonical). ``scope`` (collection, access tags, sketch) is what two chunks must share,
#: besides the tenant, to be copies of one another.
chunk_signatures = Table(
    "chunk_signatures", metadata,
    Column("tenant", String(128), primary_key=True),
    Column("chunk_id", String(36), primary_key=True),
    Column("collection", String(128), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("document_version", String(64), nullable=False),
    Column("chunk_index", Integer, nullable=False),
    Column("scope", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),  # MinHash values, uint32 little-endian
    Column("text_sha256", String(64), nullable=False),  # its embedded text: the cache key of a canonical's vector
    Column("duplicate_of", String(36)),
    Index(None, "tenant", "document_id"),
    Index(None, "tenant", "duplicate_of"),
)

#: The LSH index over canonical chunks: one row per band of a signature, keyed by a 64-bit
#: digest of (scope, band number, the band's values). A chunk whose band key is found here
#: is a candidate, confirmed by comparing whole signatures.
chunk_bands = Table(
    "chunk_bands", metadata,
    Column("band", BigInteger, primary_key=True),
    Column("tenant", String(128), primary_key=True),
    Column("chunk_id", String(36), primary_key=True),
)
