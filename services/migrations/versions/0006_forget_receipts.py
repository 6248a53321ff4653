"""``forget_receipts``: one row per erasure (what was erased where, when, by whom).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "forget_receipts",
        sa.Column("receipt_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name="pk_forget_receipts"),
    )
    op.create_index("ix_forget_receipts_tenant_document_id", "forget_receipts", ["tenant", "document_id"])


def downgrade() -> None:
    op.drop_table("forget_receipts")
