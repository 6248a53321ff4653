"""Shared fixtures: real components (loaded once per test run), and a fresh database on
SQLite and on PostgreSQL (``db_url``).

PostgreSQL comes from ``RAGLINE_TEST_POSTGRES_URL`` (``make test`` starts it; locally
``deploy/dev/postgres.sh start``). Without it the PostgreSQL cases fail; they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ingest.embed.local import LocalMiniLMEmbedder
from services.settings import Settings
from services.wiring import Components

pytest_plugins = ["tests.kafka_broker"]

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("RAGLINE_CORPORA", REPO / "tests" / "corpora"))
SAMPLES = REPO / "deploy" / "samples"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def corpora() -> Path:
    assert CORPORA.is_dir(), f"test corpora not found at {CORPORA} (set RAGLINE_CORPORA)"
    return CORPORA


@pytest.fixture(scope="session")
def local_embedder() -> LocalMiniLMEmbedder:
    """The real offline model, loaded once (0.5 s and ~100 MB)."""
    return LocalMiniLMEmbedder(threads=2)


@pytest.fixture
def make_components(tmp_path: Path, local_embedder: LocalMiniLMEmbedder) -> Iterator[object]:
    """Build Components on a fresh RAGLINE_HOME sharing the session's embedder."""
    built: list[Components] = []

    def factory(**overrides: object) -> Components:
        home = overrides.pop("home", tmp_path / f"home{len(built)}")
        comps = Components(Settings(home=home, **overrides))  # type: ignore[arg-type]
        if comps.settings.embedding.provider == "local":
            comps.__dict__["embedder"] = local_embedder
        built.append(comps)
        return comps

    yield factory
    for comps in built:
        comps.close()


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
