"""``answers.request_fingerprint``: the request behind an Idempotency-Key; and
``ix_answers_streaming``, the streams in flight.

A retried request with the same key replays the recorded answer; a *different* request
reusing the key is refused (422), as payment APIs do. Answers recorded before this
revision have no fingerprint and replay as before.

The partial index holds only rows with status ``streaming``: the relay looks there for
streams whose process died mid-stream, without scanning every answer.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("request_fingerprint", sa.String(64)))
    op.create_index("ix_answers_streaming", "answers", ["created_at"], sqlite_where=sa.text("status = 'streaming'"),
                    postgresql_where=sa.text("status = 'streaming'"))


def downgrade() -> None:
    op.drop_index("ix_answers_streaming", table_name="answers")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("request_fingerprint")
