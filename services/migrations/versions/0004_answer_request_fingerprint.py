"""``answers.request_fingerprint``: the request behind an Idempotency-Key;
``ix_answers_streaming``, the streams in flight; and ``jobs``, background jobs.

A retried request with the same key replays the recorded answer; a *different* request
reusing the key is refused (422), as payment APIs do. Answers recorded before this
revision have no fingerprint and replay as before.

The partial index holds only rows with status ``streaming``: the relay looks there for
streams whose process died mid-stream, without scanning every answer.

``jobs`` keeps background jobs (large uploads) across restarts, scoped by tenant; the
process running a job marks its heartbeat, and a job whose process died is failed as
interrupted instead of being forgotten.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.add_column(sa.Column("request_fingerprint", sa.String(64)))
    op.create_index("ix_answers_streaming", "answers", ["created_at"], sqlite_where=sa.text("status = 'streaming'"),
                    postgresql_where=sa.text("status = 'streaming'"))
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("runner_id", sa.String(36), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status_heartbeat_at", "jobs", ["status", "heartbeat_at"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_index("ix_answers_streaming", table_name="answers")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("request_fingerprint")
