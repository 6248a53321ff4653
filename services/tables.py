"""Relational tables owned by the services layer: background jobs.

Migrations for every package's tables live in one alembic history in ``services``
(``0004_answer_request_fingerprint`` creates ``jobs``), which must match these definitions.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, MetaData, String, Table, Text

from schemas.storage import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: One row per background job (a large upload being ingested), scoped by tenant. The
#: process running it (``runner_id``) marks ``heartbeat_at`` while it is queued or
#: running; a job whose runner stopped marking it is failed as interrupted.
jobs = Table(
    "jobs", metadata,
    Column("job_id", String(36), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("runner_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("progress", JSON, nullable=False),
    Column("result", JSON),
    Column("error", Text),
    Index(None, "status", "heartbeat_at"),  # the unfinished jobs of runners that stopped
)
