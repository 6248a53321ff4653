"""Conventions every package's relational tables share (one alembic history covers them all)."""

from __future__ import annotations

#: SQLAlchemy ``MetaData(naming_convention=...)``: constraint and index names are derived,
#: never generated, so migrations name the same objects on SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
}
