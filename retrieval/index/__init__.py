"""Vector index adapters (``VectorIndex`` implementations).

Adapters load on first use (PEP 562): importing this package does not import
qdrant-client or qdrant-edge, so the CLI starts fast and a missing backend only
matters when it is chosen.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from retrieval.index.base import HnswConfig, collection_name

_LAZY = {"QdrantEdgeIndex": "retrieval.index.edge", "QdrantServerIndex": "retrieval.index.qdrant_server"}

__all__ = ["HnswConfig", "QdrantEdgeIndex", "QdrantServerIndex", "collection_name"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'retrieval.index' has no attribute {name!r}")
