"""Shared, session-scoped fixtures: real components, loaded once per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.embed.local import LocalMiniLMEmbedder
from services.settings import Settings
from services.wiring import Components

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("RAGLINE_CORPORA", REPO.parent / "shared" / "corpora"))
SAMPLES = REPO / "deploy" / "samples"


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
