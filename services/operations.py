"""Operations that need several packages at once (so they live in ``services``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.pipeline import DocumentOutcome, IngestPipeline, IngestSummary
from ingest.source_store import rereadable
from ingest.sources import SourceFailure, SourceOptions, read_path
from schemas.documents import SourceDocument
from services.wiring import Components


def reingest_from_source(comps: Components, pipeline: IngestPipeline, tenant: str, document_id: str) -> bool:
    """Re-index a registered document from its source file; False when the source is gone."""
    record = comps.registry.get(tenant, document_id)
    if record is None or not Path(record.source_uri).is_file():
        comps.registry.record_stale(tenant, document_id, "points missing from the index; re-ingest the source")
        return False
    comps.registry.record_stale(tenant, document_id, "re-indexed by reconcile")
    source = read_path(Path(record.source_uri), SourceOptions(tenant, tuple(record.access_tags)))
    if isinstance(source, SourceFailure):
        return False
    return pipeline.ingest_one(source).status != "failed"


def promote_if_complete(comps: Components) -> str:
    """Move the serving alias to the configured generation once every indexed document
    lives in it (DESIGN.md "Index generations"); returns what happened, for the operator."""
    target = comps.collection
    current = comps.index.resolve_alias(comps.alias)
    if current == target:
        return f"serving {target}"
    elsewhere = sum(n for c, n in comps.registry.indexed_per_collection().items() if c != target)
    if elsewhere:
        return (f"generation {target} is incomplete: {elsewhere} document(s) are indexed only in older "
                f"generations; the alias stays on {current} until they are re-ingested")
    comps.index.set_alias(comps.alias, target)
    return f"alias {comps.alias} now serves {target}" + (f" (was {current})" if current else "")


def reindex(comps: Components, pipeline: IngestPipeline,
            on_document: Callable[[DocumentOutcome], None] | None = None) -> IngestSummary:
    """Build the configured generation for every document indexed only in an older one,
    from stored bytes (uploads, inline text, fetched pages) or the source file, reusing
    cached embeddings; the caller then moves the alias (``promote_if_complete``)."""
    pending = [r for r in comps.registry.indexed() if r.collection != pipeline.collection]
    summary = IngestSummary()
    for record in pending:
        if rereadable(record.source_uri) and Path(record.source_uri).is_file():
            source = read_path(Path(record.source_uri), SourceOptions(record.tenant, tuple(record.access_tags)))
            if isinstance(source, SourceDocument):
                source = SourceDocument(source.source_uri, source.data, record.tenant, record.document_id,
                                        tuple(record.access_tags), metadata=record.metadata)
        else:
            data = comps.source_store.get(record.tenant, record.version)
            source = (SourceDocument(record.source_uri, data, record.tenant, record.document_id,
                                     tuple(record.access_tags), metadata=record.metadata) if data is not None
                      else SourceFailure(record.source_uri, "its bytes were not kept and its source cannot be "
                                                            "re-read: ingest it again"))
        outcome = (DocumentOutcome(source.source_uri, "failed", record.document_id, error=source.error)
                   if isinstance(source, SourceFailure) else pipeline.ingest_one(source))
        summary.add(outcome)
        if on_document:
            on_document(outcome)
    return summary
