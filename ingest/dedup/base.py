"""The near-duplicate stage's config and data types.

Two chunks are copies of one passage when they share the tenant, the index generation and
the exact set of access tags, and the MinHash estimate of the Jaccard similarity of their
word 3-shingles (``schemas.passages``, case and whitespace folded) reaches ``similarity``.
The tags rule keeps access control exact: a reader sees a canonical chunk exactly when they
may see each of its copies' documents, so folding copies into it neither shows a tagged
document to a reader without the tag nor hides an untagged passage from anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class DedupConfig(BaseModel):
    """``similarity`` is ``RAGLINE_RETRIEVAL__DUPLICATE_SIMILARITY``: the one threshold of
    the ingest-time detection and the query-time collapse. The sketch's shape (permutations,
    bands, seed) is fixed here; stored signatures name it, so a change makes old rows
    unmatched rather than wrongly matched."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    similarity: float = Field(0.9, gt=0, le=1)
    permutations: int = Field(128, ge=16)
    #: LSH bands: 16 of 8 rows makes 99.99% of pairs at J=0.9 candidates (99.4% at 0.85, 61% at
    #: 0.7, 6% at 0.5), each confirmed or dropped by comparing whole signatures.
    bands: int = Field(16, ge=1)
    seed: int = 42

    @model_validator(mode="after")
    def _rows_per_band(self) -> DedupConfig:
        if self.permutations % self.bands:
            raise ValueError(f"permutations ({self.permutations}) must be a multiple of bands ({self.bands})")
        return self


@dataclass(frozen=True)
class Sketches:
    """A document's chunks as the detector compares them: one row per chunk."""

    scope: str  # tenant aside, what two chunks must share to be copies (see ``MinHashSketcher.scope``)
    signatures: np.ndarray  # (n, permutations) uint32
    bands: np.ndarray  # (n, bands) int64 LSH band keys, within ``scope``
    empty: np.ndarray  # (n,) bool: no word to compare (never a copy, never a canonical)

    def __len__(self) -> int:
        return len(self.empty)


@dataclass(frozen=True)
class StoredChunk:
    """A chunk's row in the ledger (``chunk_signatures``)."""

    chunk_id: str
    collection: str
    document_id: str
    document_version: str
    chunk_index: int
    scope: str
    signature: np.ndarray
    text_sha256: str  # of its embedded text (its own, whether or not it is a copy)
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Match:
    """A chunk found to be a copy of ``canonical`` (another document's, or an earlier chunk of
    its own document: ``in_document``). ``text_sha256`` is the canonical's embedded text:
    the embedding cache key of the vector the copy reuses instead of being embedded."""

    canonical: str
    text_sha256: str
    similarity: float
    in_document: bool = False


@dataclass(frozen=True)
class Promotion:
    """What one retired canonical chunk leaves in its generation: the copies that become
    canonical (each embedded then: no vector of a gone text stays), and the others, moved
    to the first new canonical they are a copy of."""

    collection: str
    canonical: tuple[StoredChunk, ...]
    moved: dict[str, str] = field(default_factory=dict)  # copy chunk id -> its new canonical
