"""Persistent embedding cache keyed by (model version, SHA-256 of the text).

Looked up once per batch with one ``IN`` query before the model is called, so the same
text is never embedded twice, across runs and documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ingest.tables import embedding_cache

_LOOKUP_CHUNK = 500  # stay under SQLite's bound-parameter limit


class EmbeddingCache:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get_many(self, model_version: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        t = embedding_cache.c
        with self._engine.connect() as conn:
            for i in range(0, len(hashes), _LOOKUP_CHUNK):
                part = list(hashes[i : i + _LOOKUP_CHUNK])
                rows = conn.execute(
                    select(t.text_sha256, t.vector).where(t.model_version == model_version, t.text_sha256.in_(part))
                )
                for text_hash, blob in rows:
                    found[text_hash] = np.frombuffer(blob, dtype="<f4")
        return found

    def forget(self, hashes: Sequence[str]) -> int:
        """Drop the cached vectors of these texts, for every model: an erased text must not
        even be provable as once seen. Returns the rows removed."""
        removed = 0
        with self._engine.begin() as conn:
            for i in range(0, len(hashes), _LOOKUP_CHUNK):
                part = list(hashes[i : i + _LOOKUP_CHUNK])
                removed += conn.execute(delete(embedding_cache).where(embedding_cache.c.text_sha256.in_(part))).rowcount
        return removed

    def put_many(self, model_version: str, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        now = datetime.now(UTC)
        rows = [
            {"model_version": model_version, "text_sha256": h, "vector": np.asarray(v, dtype="<f4").tobytes(),
             "created_at": now}
            for h, v in vectors.items()
        ]
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(embedding_cache).on_conflict_do_nothing(index_elements=["model_version", "text_sha256"])
        with self._engine.begin() as conn:
            conn.execute(stmt, rows)
