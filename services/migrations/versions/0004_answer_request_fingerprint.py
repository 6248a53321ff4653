"""``answers.request_fingerprint``: the request behind an Idempotency-Key.

A retried request with the same key replays the recorded answer; a *different* request
reusing the key is refused (422), as payment APIs do. Answers recorded before this
revision have no fingerprint and replay as before.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("request_fingerprint", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("request_fingerprint")
