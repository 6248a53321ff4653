"""``chunk_signatures`` and ``chunk_bands``: near-duplicate chunks recorded at ingest.

Every chunk indexed from now on has its MinHash signature here and, when it is a
near-duplicate, the canonical chunk it copies; canonical chunks have their LSH bands in
``chunk_bands``. Chunks indexed before have no row: they take part when their document is
next re-indexed (query time still collapses copies by their text).

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "chunk_signatures",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("chunk_id", sa.String(36), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("document_version", sa.String(64), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("duplicate_of", sa.String(36)),
        sa.PrimaryKeyConstraint("tenant", "chunk_id", name="pk_chunk_signatures"),
    )
    op.create_index("ix_chunk_signatures_tenant_document_id", "chunk_signatures", ["tenant", "document_id"])
    op.create_index("ix_chunk_signatures_tenant_duplicate_of", "chunk_signatures", ["tenant", "duplicate_of"])
    op.create_table(
        "chunk_bands",
        sa.Column("band", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("chunk_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("band", "tenant", "chunk_id", name="pk_chunk_bands"),
    )


def downgrade() -> None:
    op.drop_table("chunk_bands")
    op.drop_table("chunk_signatures")
