"""Pure, token-exact chunkers: ``fixed``, ``recursive`` and ``code``.

The pipeline builds one with :func:`load_chunker` (entry-point group
``ragline.chunkers``) and calls ``chunker.chunk(document)``.
"""

from ingest.chunk.base import (
    ChunkerConfig,
    CodeConfig,
    FixedConfig,
    RecursiveConfig,
    available_chunkers,
    load_chunker,
)
from ingest.chunk.code import CodeChunker
from ingest.chunk.fixed import FixedTokenChunker
from ingest.chunk.recursive import RecursiveChunker
from ingest.chunk.tokens import count_tokens, get_encoding

__all__ = [
    "ChunkerConfig",
    "CodeChunker",
    "CodeConfig",
    "FixedConfig",
    "FixedTokenChunker",
    "RecursiveChunker",
    "RecursiveConfig",
    "available_chunkers",
    "count_tokens",
    "get_encoding",
    "load_chunker",
]
