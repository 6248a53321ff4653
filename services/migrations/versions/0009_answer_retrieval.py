"""``answers.retrieval``: how an answer's chunks were retrieved and ranked (mode, fusion
parameters, reranker), the same object as the answer event's optional ``retrieval``. NULL
for answers recorded before hybrid search.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("retrieval", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("retrieval")
