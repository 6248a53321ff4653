"""``document_access_tags``: one row per (document, tag), so document listings apply the
same visibility rule as retrieval (untagged, or a tag the reader holds) in SQL.

Revision ID: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "document_access_tags",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("tag", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "document_id", "tag", name="pk_document_access_tags"),
    )
    op.create_index("ix_document_access_tags_tenant_tag", "document_access_tags", ["tenant", "tag"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT tenant, document_id, access_tags FROM documents")).all()
    tags: list[dict[str, str]] = []
    for tenant, document_id, raw in rows:
        values = json.loads(raw) if isinstance(raw, str) else (raw or [])
        tags.extend({"tenant": tenant, "document_id": document_id, "tag": str(t)} for t in dict.fromkeys(values))
    if tags:
        conn.execute(sa.text("INSERT INTO document_access_tags (tenant, document_id, tag) "
                             "VALUES (:tenant, :document_id, :tag)"), tags)


def downgrade() -> None:
    op.drop_table("document_access_tags")
