"""Lineage fixtures: a fresh, migrated database on SQLite and on PostgreSQL, and a real Iceberg catalog.

PostgreSQL comes from ``RAGLINE_TEST_POSTGRES_URL`` (``make test`` starts it; locally
``deploy/dev/postgres.sh start``). Without it the PostgreSQL cases fail; they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from lineage import IcebergLanding, SqlLineageStore, default_catalog_properties
from services.db import make_engine, migrate

BACKENDS = ["sqlite", "postgresql"]


def postgres_url() -> str:
    url = os.environ.get("RAGLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("RAGLINE_TEST_POSTGRES_URL is not set: run `make test`, or "
                    "`export RAGLINE_TEST_POSTGRES_URL=$(deploy/dev/postgres.sh start)`", pytrace=False)
    return url


def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'lineage.db'}"
        return
    base = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SqlLineageStore:
    return SqlLineageStore(engine, deployment="test", tenants_hashing_queries=("private",))


@pytest.fixture
def lake(tmp_path: Path) -> IcebergLanding:
    return IcebergLanding("test", default_catalog_properties(tmp_path / "lake")).open()
