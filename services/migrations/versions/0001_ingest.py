"""Document registry and embedding cache.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("document_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("media_type", sa.String(128)),
        sa.Column("pipeline_fingerprint", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("access_tags", sa.JSON, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "document_id", name="pk_documents"),
    )
    op.create_index("ix_documents_tenant_status_updated_at", "documents", ["tenant", "status", "updated_at"])
    op.create_index("ix_documents_source_uri", "documents", ["source_uri"])
    op.create_table(
        "embedding_cache",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("text_sha256", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_version", "text_sha256", name="pk_embedding_cache"),
    )


def downgrade() -> None:
    op.drop_table("embedding_cache")
    op.drop_index("ix_documents_source_uri", "documents")
    op.drop_index("ix_documents_tenant_status_updated_at", "documents")
    op.drop_table("documents")
