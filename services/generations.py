"""Index generations (DESIGN.md): which collection is built, which one serves, when the
alias moves and when Qdrant Edge builds its HNSW graph. One rule set for every entry point."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.registry import DocumentRegistry
from schemas.protocols import VectorIndex


@dataclass(frozen=True)
class Generations:
    index: VectorIndex
    registry: DocumentRegistry
    alias: str
    target: str  # the configured generation: every write goes here
    serving: str  # the generation queries use until ``target`` is complete
    dimensions: int
    builds_hnsw_in_process: bool  # Qdrant Edge: optimize() blocks its process
    optimize_after_points: int

    def ensure(self) -> None:
        for collection in dict.fromkeys((self.target, self.serving)):
            self.index.ensure_collection(collection, self.dimensions)

    def after_ingest(self, embedded_texts: int) -> str:
        """After a batch run: build HNSW once enough new points wait for it (Edge only;
        the server never does, it runs in the process that owns the index), then move the
        alias if the configured generation is complete. Returns what happened."""
        if self.builds_hnsw_in_process and embedded_texts >= self.optimize_after_points:
            self.index.optimize(self.target)
        return self.promote_if_complete()

    def promote_if_complete(self) -> str:
        """Move the serving alias to the configured generation once every indexed document
        lives in it; returns what happened, for the operator."""
        current = self.index.resolve_alias(self.alias)
        if current == self.target:
            return f"serving {self.target}"
        elsewhere = sum(n for c, n in self.registry.indexed_per_collection().items() if c != self.target)
        if elsewhere:
            return (f"generation {self.target} is incomplete: {elsewhere} document(s) are indexed only in older "
                    f"generations; the alias stays on {current} until they are re-indexed (ragline reindex)")
        self.index.set_alias(self.alias, self.target)
        return f"alias {self.alias} now serves {self.target}" + (f" (was {current})" if current else "")

    def optimize(self) -> bool:
        return self.index.optimize(self.target)
