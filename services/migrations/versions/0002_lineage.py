"""Answer lineage: answers, answer_sources, answer_documents, outbox, chunk_archive.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("answer_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("query", sa.Text),
        sa.Column("query_sha256", sa.String(64), nullable=False),
        sa.Column("answer_text", sa.Text, nullable=False),
        sa.Column("answer_sha256", sa.String(64), nullable=False),
        sa.Column("embedding_model_version", sa.String(128), nullable=False),
        sa.Column("prompt_template_version", sa.String(128), nullable=False),
        sa.Column("prompt_template_sha256", sa.String(64), nullable=False),
        sa.Column("llm_model_version", sa.String(128), nullable=False),
        sa.Column("retrieval_timestamp", _TS, nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("usage", sa.JSON, nullable=False),
        sa.Column("timings_ms", sa.JSON, nullable=False),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("response", sa.JSON),
        sa.PrimaryKeyConstraint("answer_id", name="pk_answers"),
    )
    op.create_index("ix_answers_tenant_created_at", "answers", ["tenant", "created_at"])
    op.create_table(
        "answer_sources",
        sa.Column("answer_id", sa.String(36), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("chunk_id", sa.String(36), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("document_version", sa.String(64), nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("cited", sa.Boolean, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("answer_id", "rank", name="pk_answer_sources"),
    )
    op.create_index("ix_answer_sources_chunk_id", "answer_sources", ["chunk_id"])
    op.create_table(
        "answer_documents",
        sa.Column("answer_id", sa.String(36), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("document_version", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("best_rank", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("cited", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("answer_id", "document_id", "document_version", name="pk_answer_documents"),
    )
    op.create_index("ix_answer_documents_doc_time", "answer_documents",
                    ["document_id", "created_at", "answer_id"])
    op.create_index("ix_answer_documents_doc_version_time", "answer_documents",
                    ["document_id", "document_version", "created_at", "answer_id"])
    op.create_table(
        "outbox",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("event_time", _TS, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("batch_id", sa.String(36)),
        sa.Column("claimed_at", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sent_at", _TS),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["batch_id", "seq"], sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        "chunk_archive",
        sa.Column("chunk_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("document_version", sa.String(64), nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("page_start", sa.Integer),
        sa.Column("page_end", sa.Integer),
        sa.Column("archived_at", _TS, nullable=False),
        sa.Column("forgotten_at", _TS),
        sa.PrimaryKeyConstraint("chunk_id", name="pk_chunk_archive"),
    )
    op.create_index("ix_chunk_archive_tenant_document_id", "chunk_archive", ["tenant", "document_id"])


def downgrade() -> None:
    op.drop_table("chunk_archive")
    op.drop_table("outbox")
    op.drop_table("answer_documents")
    op.drop_table("answer_sources")
    op.drop_table("answers")
