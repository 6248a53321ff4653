"""The audit use case: which answers used a document, an answer's full trace, the exact
prompt replayed, erasure, and the counts an operator checks. The CLI and the API call the
same methods, so ``ragline documents forget`` and ``POST /v1/documents/{id}/forget`` are
one operation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingest.embed import EmbeddingCache
from lineage import ForgetReport, IcebergLanding, LineageQueries, SqlChunkArchive, SqlLineageStore
from lineage.queries import AnswerPage, AnswerTrace
from retrieval.prompts import load_template
from schemas import ids
from schemas.errors import NotFoundError, TerminalError
from schemas.lineage import DocumentChange
from schemas.retrieval import RetrievedChunk
from services.ingestion import Ingestion


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


class Audit:
    def __init__(self, *, queries: LineageQueries, ingestion: Ingestion, archive: SqlChunkArchive,
                 lineage: SqlLineageStore, cache: EmbeddingCache, lake: Callable[[], IcebergLanding],
                 scrub: Callable[[], None], collection: str, default_min_score: float) -> None:
        self._queries = queries
        self._ingestion = ingestion
        self._archive = archive
        self._lineage = lineage
        self._cache = cache
        self._scrub = scrub  # the database's own erasure step (SQLite: truncate the WAL)
        self._lake = lake  # opened on first use: most audit calls never touch the catalog
        self._collection = collection
        self._min_score = default_min_score

    def answers_for_document(self, document_id: str, *, tenant: str | None,
                             reader_tags: tuple[str, ...] | None = None, version: str | None = None,
                             since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                             cursor: str | None = None) -> AnswerPage:
        """Answers that used the document, newest first; a document hidden from the reader
        by its access tags is, to the reader, not found."""
        if reader_tags is not None and tenant is not None and not self._ingestion.readable(
                tenant, [document_id], reader_tags):
            raise NotFoundError(f"document {document_id} not found")
        return self._queries.answers_for_document(document_id, tenant=tenant, version=version, since=since,
                                                  until=until, limit=limit, cursor=cursor)

    def answer_trace(self, answer_id: str, tenant: str | None = None,
                     reader_tags: tuple[str, ...] | None = None) -> AnswerTrace:
        """The trace, if the reader may see every document the answer retrieved: an answer
        built on a document hidden from the reader is as hidden as the document."""
        trace = self._queries.answer_trace(answer_id, tenant=tenant)
        missing = NotFoundError(f"answer {answer_id} not found" + (f" for tenant {tenant!r}" if tenant else ""))
        if trace is None:
            raise missing
        if reader_tags is not None:
            used = {ref.document_id for ref in trace.record.retrieved}
            if self._ingestion.readable(trace.record.tenant, used, reader_tags) != used:
                raise missing
        return trace

    def replay(self, answer_id: str, tenant: str | None = None) -> Replay:
        """Rebuild the exact messages sent to the LLM: the recorded template version rendered
        over the recorded query and the archived text of the chunks that were evidence
        (score at or above the recorded ``min_score`` filter, else today's setting)."""
        trace = self.answer_trace(answer_id, tenant)
        record = trace.record
        if not record.store_query_text:
            raise ReplayError(f"answer {answer_id}: its tenant stores only the query's hash; "
                              "the prompt cannot be rebuilt")
        min_score = float(record.filters.get("min_score", self._min_score))
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

    def forget(self, tenant: str, document_id: str, actor: str = "operator") -> ForgetReport:
        """Erasure, complete: the document leaves every index generation and the engine's
        files, its kept bytes, its cached embeddings, its archived chunk text and the
        registry's copy of its title and metadata; every answer that used it has its text
        and quotes of it replaced by a marker (ids and hashes stay). A receipt of what was
        erased where is stored and emitted with the document's ``deleted`` event."""
        registered = self._ingestion.get_document(tenant, document_id)
        generations = self._ingestion.erase(tenant, document_id)
        report = self._archive.forget(tenant, document_id)
        if registered is None and not report.chunks_erased and not report.answer_ids:
            raise NotFoundError(f"document {document_id} not found for tenant {tenant!r}")
        cached = self._cache.forget(report.text_sha256s)
        erased_at = datetime.now(UTC)
        receipt = {
            "receipt_id": ids.uuid7(), "erased_at": erased_at.isoformat(), "actor": actor,
            "index": {"generations_purged": generations}, "kept_source_bytes": registered is not None,
            "chunk_archive": {"texts_erased": report.chunks_erased},
            "embedding_cache": {"vectors_dropped": cached},
            "answers": {"rewritten": report.answers_redacted, "answer_ids": list(report.answer_ids)},
            "registry": {"title_and_metadata_erased": registered is not None},
        }
        self._lineage.record_document_change(DocumentChange(
            kind="deleted", tenant=tenant, document_id=document_id, forgotten=True, occurred_at=erased_at,
            document_version=registered.version if registered else "",
            source_uri=registered.source_uri if registered else "",
            collection=registered.collection if registered else self._collection, receipt=receipt))
        self._scrub()
        return report

    def stats(self) -> dict[str, int]:
        """SQL counts and Iceberg counts side by side: after a drain they agree."""
        lake = self._lake()
        return self._queries.counts() | {"iceberg_answer_events": lake.count("answer_events"),
                                         "iceberg_document_events": lake.count("document_events")}
