"""Prove the registry and the vector index agree, and repair them when they do not.

Peers' record managers drift silently from their vector stores; this compares every
registered version's chunk count with the points actually in the index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ingest.registry import DocumentRegistry
from schemas.protocols import VectorIndex


@dataclass(frozen=True)
class Discrepancy:
    kind: str  # missing_points | count_mismatch | orphan_points
    tenant: str
    document_id: str
    version: str
    expected: int
    found: int
    repaired: str | None = None


@dataclass
class ReconcileReport:
    collection: str
    documents: int = 0
    points: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not [d for d in self.discrepancies if d.repaired is None]

    def to_dict(self) -> dict[str, object]:
        return {"collection": self.collection, "documents": self.documents, "points": self.points,
                "consistent": self.consistent, "discrepancies": [asdict(d) for d in self.discrepancies]}


def reconcile(registry: DocumentRegistry, index: VectorIndex, collection: str, *, repair: bool = False,
              reingest: Callable[[str, str], bool] | None = None) -> ReconcileReport:
    """Compare; with ``repair``, delete orphan points and re-index documents whose points
    are missing or incomplete (``reingest(tenant, document_id)`` returns whether it could)."""
    report = ReconcileReport(collection)
    points = index.document_versions(collection)
    report.points = sum(points.values())
    registered: set[tuple[str, str, str]] = set()
    for doc in registry.indexed(collection):
        report.documents += 1
        key = (doc.tenant, doc.document_id, doc.version)
        registered.add(key)
        found = points.get(key, 0)
        if found != doc.chunk_count:
            kind = "missing_points" if found == 0 else "count_mismatch"
            fixed = None
            if repair and reingest is not None:
                index.delete_document(collection, doc.tenant, doc.document_id)
                fixed = "reindexed" if reingest(doc.tenant, doc.document_id) else None
            report.discrepancies.append(Discrepancy(kind, *key, doc.chunk_count, found, fixed))
    for (tenant, document_id, version), found in points.items():
        if (tenant, document_id, version) in registered:
            continue
        fixed = None
        if repair:
            current = registry.get(tenant, document_id)
            keep = current.version if current and current.status == "indexed" else None
            index.delete_document(collection, tenant, document_id, keep_version=keep)
            fixed = "deleted"
        report.discrepancies.append(Discrepancy("orphan_points", tenant, document_id, version, 0, found, fixed))
    return report
