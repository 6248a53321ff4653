"""The batched embedding client and its providers."""

from ingest.embed.base import BatchingConfig, OverLongPolicy
from ingest.embed.cache import EmbeddingCache
from ingest.embed.client import CostEstimate, EmbeddingClient, EmbeddingStats, OverLongInputError
from ingest.embed.sparse import SparseConfig

__all__ = [
    "BatchingConfig", "CostEstimate", "EmbeddingCache", "EmbeddingClient", "EmbeddingStats",
    "OverLongInputError", "OverLongPolicy", "SparseConfig",
]
