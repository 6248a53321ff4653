"""The batched embedding client and its providers.

The client and the cache load on first use (PEP 562): settings import the configuration
models from here without pulling in numpy, SQLAlchemy or a model runtime, so the CLI
starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ingest.embed.base import BatchingConfig, OverLongPolicy

if TYPE_CHECKING:
    from ingest.embed.cache import EmbeddingCache
    from ingest.embed.client import CostEstimate, EmbeddingClient, EmbeddingStats, OverLongInputError
    from ingest.embed.sparse import SparseConfig

_LAZY = {"EmbeddingCache": "ingest.embed.cache", "CostEstimate": "ingest.embed.client",
         "EmbeddingClient": "ingest.embed.client", "EmbeddingStats": "ingest.embed.client",
         "OverLongInputError": "ingest.embed.client", "SparseConfig": "ingest.embed.sparse"}

__all__ = [
    "BatchingConfig", "CostEstimate", "EmbeddingCache", "EmbeddingClient", "EmbeddingStats",
    "OverLongInputError", "OverLongPolicy", "SparseConfig",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ingest.embed' has no attribute {name!r}")
