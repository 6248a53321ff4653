"""The batched embedding client and its providers."""

from ingest.embed.base import BatchingConfig, OverLongPolicy
from ingest.embed.cache import EmbeddingCache
from ingest.embed.client import CostEstimate, EmbeddingClient, EmbeddingStats, OverLongInputError

__all__ = [
    "BatchingConfig", "CostEstimate", "EmbeddingCache", "EmbeddingClient", "EmbeddingStats",
    "OverLongInputError", "OverLongPolicy",
]
