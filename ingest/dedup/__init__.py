"""Near-duplicate chunks at ingest (MinHash/LSH): a copy of a passage already indexed is
recorded against its canonical chunk, reuses its vector, and is searched through it.

Loaded on first use (PEP 562): settings and retrieval import the data types without
pulling in rensa or numpy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ingest.dedup.base import DedupConfig

if TYPE_CHECKING:
    from ingest.dedup.base import Match, Promotion, Sketches, StoredChunk
    from ingest.dedup.detector import NearDuplicates, Retirement
    from ingest.dedup.minhash import MinHashSketcher
    from ingest.dedup.promote import Retirer
    from ingest.dedup.store import SignatureStore

_LAZY = {"Match": "ingest.dedup.base", "Promotion": "ingest.dedup.base", "Sketches": "ingest.dedup.base",
         "StoredChunk": "ingest.dedup.base", "NearDuplicates": "ingest.dedup.detector",
         "Retirement": "ingest.dedup.detector", "MinHashSketcher": "ingest.dedup.minhash",
         "Retirer": "ingest.dedup.promote", "SignatureStore": "ingest.dedup.store"}

__all__ = ["DedupConfig", "Match", "MinHashSketcher", "NearDuplicates", "Promotion", "Retirement", "Retirer",
           "SignatureStore", "Sketches", "StoredChunk"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ingest.dedup' has no attribute {name!r}")
