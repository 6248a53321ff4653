"""Outbox delivery state in its own small table: ``outbox_pending``.

The relay's claim and mark-sent statements used to UPDATE ``outbox`` rows, rewriting
each ~4 KB CloudEvent payload twice. Now ``outbox`` is append-only (the event and its
payload) and ``outbox_pending`` holds one small row per undelivered event (claim state
and enqueue time): a claim UPDATEs it, delivery DELETEs it. Pending rows of the old
layout are carried over with their claims.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox_pending",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=False),
        sa.Column("batch_id", sa.String(36)),
        sa.Column("claimed_at", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox_pending"),
    )
    op.create_index("ix_outbox_pending_batch_id_seq", "outbox_pending", ["batch_id", "seq"])
    op.execute("INSERT INTO outbox_pending (seq, batch_id, claimed_at, created_at) "
               "SELECT seq, batch_id, claimed_at, created_at FROM outbox WHERE status = 'pending'")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        for column in ("status", "batch_id", "claimed_at", "sent_at"):
            batch.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("status", sa.String(8), nullable=False, server_default="sent"))
        batch.add_column(sa.Column("batch_id", sa.String(36)))
        batch.add_column(sa.Column("claimed_at", _TS))
        batch.add_column(sa.Column("sent_at", _TS))
    op.execute("UPDATE outbox SET status = 'pending', "
               "batch_id = (SELECT p.batch_id FROM outbox_pending p WHERE p.seq = outbox.seq), "
               "claimed_at = (SELECT p.claimed_at FROM outbox_pending p WHERE p.seq = outbox.seq) "
               "WHERE seq IN (SELECT seq FROM outbox_pending)")
    op.create_index("ix_outbox_pending", "outbox", ["batch_id", "seq"], sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))
    op.drop_table("outbox_pending")
