"""Vector index adapters (``VectorIndex`` implementations)."""

from retrieval.index.base import HnswConfig, collection_name
from retrieval.index.edge import QdrantEdgeIndex
from retrieval.index.qdrant_server import QdrantServerIndex

__all__ = ["HnswConfig", "QdrantEdgeIndex", "QdrantServerIndex", "collection_name"]
