"""Lineage operations that need several packages at once (so they live in ``services``):
replay needs lineage and the prompt templates; forget needs the ingest pipeline too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lineage import ForgetReport, LineageQueries
from lineage.queries import AnswerTrace
from retrieval.prompts import load_template
from schemas.errors import NotFoundError, TerminalError
from schemas.lineage import DocumentChange
from schemas.retrieval import RetrievedChunk
from services.wiring import Components


class ReplayError(TerminalError):
    """The recorded prompt cannot be rebuilt (query text not stored, chunk text forgotten)."""


@dataclass(frozen=True)
class Replay:
    answer_id: str
    template_version: str
    template_sha256: str
    template_matches: bool  # the template file today hashes to what the answer recorded
    messages: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {"answer_id": self.answer_id, "prompt_template_version": self.template_version,
                "prompt_template_sha256": self.template_sha256, "template_matches": self.template_matches,
                "messages": self.messages}


def answer_trace(comps: Components, answer_id: str, tenant: str | None = None,
                 reader_tags: tuple[str, ...] | None = None) -> AnswerTrace:
    """The trace, if the reader may see every document the answer retrieved: an answer
    built on a document hidden from the reader is as hidden as the document."""
    trace = LineageQueries(comps.engine).answer_trace(answer_id, tenant=tenant)
    missing = NotFoundError(f"answer {answer_id} not found" + (f" for tenant {tenant!r}" if tenant else ""))
    if trace is None:
        raise missing
    if reader_tags is not None:
        used = sorted({ref.document_id for ref in trace.record.retrieved})
        if comps.registry.readable(trace.record.tenant, used, reader_tags) != set(used):
            raise missing
    return trace


def replay(comps: Components, answer_id: str, tenant: str | None = None) -> Replay:
    """Rebuild the exact messages sent to the LLM: the recorded template version rendered
    over the recorded query and the archived text of the chunks that were evidence
    (score at or above the recorded ``min_score`` filter, else today's setting)."""
    trace = answer_trace(comps, answer_id, tenant)
    record = trace.record
    if not record.store_query_text:
        raise ReplayError(f"answer {answer_id}: its tenant stores only the query's hash; the prompt cannot be rebuilt")
    min_score = float(record.filters.get("min_score", comps.settings.generation.min_score))
    evidence = [s for s in trace.sources if s.score >= min_score]
    missing = [s.chunk_id for s in evidence if s.text is None]
    if missing:
        raise ReplayError(f"answer {answer_id}: archived text missing or forgotten for chunks {', '.join(missing)}")
    chunks = [RetrievedChunk(chunk_id=s.chunk_id, document_id=s.document_id, document_version=s.document_version,
                             source_uri=s.source_uri, rank=s.rank, score=s.score, text=s.text or "",
                             page_start=s.page_start, page_end=s.page_end) for s in evidence]
    template = load_template(record.prompt_template_version)
    return Replay(answer_id, template.version, template.sha256, template.sha256 == record.prompt_template_sha256,
                  template.render(record.query, chunks))


def forget_document(comps: Components, tenant: str, document_id: str,
                    delete: Callable[[str, str], bool]) -> ForgetReport:
    """Erasure: remove the document from retrieval (``delete``), erase its archived chunk
    text (ids stay), record a ``deleted`` event marked ``forgotten``, and report which
    answers used it."""
    registered = comps.registry.get(tenant, document_id)
    delete(tenant, document_id)
    report = comps.chunk_archive.forget(tenant, document_id)
    if registered is None and not report.chunks_erased and not report.answer_ids:
        raise NotFoundError(f"document {document_id} not found for tenant {tenant!r}")
    comps.lineage.record_document_change(DocumentChange(
        kind="deleted", tenant=tenant, document_id=document_id, forgotten=True, occurred_at=datetime.now(UTC),
        document_version=registered.version if registered else "", source_uri=registered.source_uri if registered
        else "", collection=registered.collection if registered else comps.collection))
    return report


def lineage_stats(comps: Components) -> dict[str, int]:
    """SQL counts and Iceberg counts side by side: after a drain they agree."""
    counts = LineageQueries(comps.engine).counts()
    lake = comps.lineage_lake
    return counts | {"iceberg_answer_events": lake.count("answer_events"),
                     "iceberg_document_events": lake.count("document_events")}
