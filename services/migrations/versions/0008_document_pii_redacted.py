"""``documents.pii_redacted``: how many values of each PII entity type the redaction stage
replaced in the document's indexed version (``{"email": 2, "card": 1}``), never the values.
NULL for rows indexed before redaction existed or with redaction off.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("pii_redacted", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("pii_redacted")
