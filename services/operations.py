"""Operations that need several packages at once (so they live in ``services``)."""

from __future__ import annotations

from pathlib import Path

from ingest.pipeline import IngestPipeline
from ingest.sources import SourceFailure, SourceOptions, read_path
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
