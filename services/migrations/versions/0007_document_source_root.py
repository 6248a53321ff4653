"""``documents.source_root``: the local folder (or file) a document was read from, so
``ragline ingest ROOT --prune`` and ``ragline produce --prune ROOT`` remove only
documents an operator read from disk, never an upload or a client-given identity that
happens to look like a path. Existing rows stay NULL until their next ingest records it
(an unchanged re-ingest does too).

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("source_root", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("source_root")
