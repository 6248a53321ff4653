"""Relational tables owned by lineage: the query-optimized projection, the outbox and the chunk archive.

The event log (outbox → Iceberg) is the source of truth; these rows answer auditors'
questions in milliseconds. Migrations live in the one alembic history in ``services``
(``0002_lineage``, ``0003_outbox_pending``,
``0004_answer_request_fingerprint``, ``0009_answer_retrieval``), which must match these definitions.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from schemas.storage import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

answers = Table(
    "answers", metadata,
    Column("answer_id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # complete | no_answer | streaming | incomplete
    Column("endpoint", String(64), nullable=False),
    Column("request_id", String(128)),
    Column("query", Text),  # NULL when the tenant keeps only the hash
    Column("query_sha256", String(64), nullable=False),
    Column("answer_text", Text, nullable=False),
    Column("answer_sha256", String(64), nullable=False),
    Column("embedding_model_version", String(128), nullable=False),
    Column("prompt_template_version", String(128), nullable=False),
    Column("prompt_template_sha256", String(64), nullable=False),
    Column("llm_model_version", String(128), nullable=False),
    Column("retrieval_timestamp", DateTime(timezone=True), nullable=False),
    Column("collection", String(128), nullable=False),
    Column("filters", JSON, nullable=False),
    Column("usage", JSON, nullable=False),
    Column("timings_ms", JSON, nullable=False),
    Column("traceparent", String(64)),
    Column("response", JSON),  # the API response body, returned again to a retried Idempotency-Key
    Column("request_fingerprint", String(64)),  # the request behind an Idempotency-Key (0004)
    Column("retrieval", JSON),  # mode, fusion, reranker: how the chunks were ranked (0009; NULL before)
    Index(None, "tenant", "created_at"),
    # Only the streams in flight: what the relay scans for streams whose process died (0004).
    Index("ix_answers_streaming", "created_at", sqlite_where=text("status = 'streaming'"),
          postgresql_where=text("status = 'streaming'")),
)

answer_sources = Table(
    "answer_sources", metadata,
    Column("answer_id", String(36), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("chunk_id", String(36), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("document_version", String(64), nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("cited", Boolean, nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "chunk_id"),
)

#: One row per (answer, document version): "answers that used document X [version V]
#: [between T1 and T2], newest first" is a range scan of one of its two indexes, with no
#: DISTINCT over chunks (an answer often uses several chunks of one document).
answer_documents = Table(
    "answer_documents", metadata,
    Column("answer_id", String(36), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("document_version", String(64), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("best_rank", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("cited", Boolean, nullable=False),
    Index("ix_answer_documents_doc_time", "document_id", "created_at", "answer_id"),
    Index("ix_answer_documents_doc_version_time", "document_id", "document_version", "created_at", "answer_id"),
)

#: The event log: one append-only row per CloudEvent (never updated). Delivery state lives
#: in ``outbox_pending`` so the relay's claims never rewrite the ~4 KB payloads.
outbox = Table(
    "outbox", metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(128), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),  # the structured-mode CloudEvent JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One small row per outbox event not yet delivered, written in the event's transaction:
#: a relay claims rows (``batch_id``, ``claimed_at``) and deletes them once delivered, so
#: this table only ever holds the backlog.
outbox_pending = Table(
    "outbox_pending", metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),  # outbox.seq
    Column("batch_id", String(36)),  # set when a relay claims the row
    Column("claimed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "batch_id", "seq"),  # unclaimed rows (batch_id NULL) by seq; a claimed batch by its id
)

chunk_archive = Table(
    "chunk_archive", metadata,
    Column("chunk_id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("document_version", String(64), nullable=False),
    Column("source_uri", Text, nullable=False),
    Column("chunk_index", Integer, nullable=False),
    Column("text", Text),  # NULL once forgotten (erasure request); the ids stay
    Column("text_sha256", String(64), nullable=False),
    Column("page_start", Integer),
    Column("page_end", Integer),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("forgotten_at", DateTime(timezone=True)),
    Index(None, "tenant", "document_id"),
)

#: One receipt per erasure: what was erased in which store, when and on whose request.
#: Kept for ever (it holds ids and counts, never erased text) and emitted with the
#: document's ``deleted`` event.
forget_receipts = Table(
    "forget_receipts", metadata,
    Column("receipt_id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("receipt", JSON, nullable=False),
    Index(None, "tenant", "document_id"),
)
