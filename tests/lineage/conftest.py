"""Lineage fixtures: a fresh, migrated database on SQLite and on PostgreSQL (``db_url``,
in ``tests/conftest.py``), and a real Iceberg catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from lineage import IcebergLanding, SqlLineageStore, default_catalog_properties
from services.db import make_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SqlLineageStore:
    return SqlLineageStore(engine, deployment="test")


@pytest.fixture
def lake(tmp_path: Path) -> IcebergLanding:
    return IcebergLanding("test", default_catalog_properties(tmp_path / "lake")).open()
