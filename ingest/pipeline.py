"""sources -> extract -> redact PII -> chunk -> embed -> index, one document at a time.

Re-ingest semantics (DESIGN.md): an unchanged document under the same pipeline
fingerprint is a no-op that costs no embedding call; a changed one is indexed under
its new version first and only then are its old version's points deleted, so there is
never a moment with the document missing from search.

With a ``redactor``, PII is replaced right after extraction (text, heading paths and
metadata): chunks, their offsets (into the redacted text), embeddings, the embedding
cache, index payloads, the chunk archive, the registry and lineage only ever see the
redacted document. Per document, counts per entity type are recorded, never values.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.exc import DataError, IntegrityError

from ingest.context import contextual_text
from ingest.embed.client import EmbeddingClient
from ingest.extract.registry import ExtractionLimits, extract_document
from ingest.extract.sanitize import clean_value, without_nul
from ingest.redact import redact_document, redact_value
from ingest.registry import DocumentRegistry
from ingest.source_store import SourceStore, rereadable
from ingest.sources import SourceFailure
from schemas import ids
from schemas.documents import ArchivedChunk, Chunk, ExtractedDocument, SourceDocument
from schemas.errors import (
    BudgetExceededError,
    EmbeddingError,
    ExtractionError,
    TerminalError,
    TransientError,
    VectorIndexError,
)
from schemas.lineage import DocumentChange
from schemas.protocols import ChunkArchive, Chunker, Redactor, SparseEncoder, VectorIndex
from schemas.retrieval import IndexedPoint

Status = Literal["new", "updated", "unchanged", "failed"]
MAX_DOCUMENT_ID = 64  # the registry's key column


@dataclass(frozen=True)
class DocumentOutcome:
    source_uri: str
    status: Status
    document_id: str | None = None
    version: str | None = None
    chunks: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    pii_redacted: dict[str, int] = field(default_factory=dict)  # values replaced per entity type


@dataclass
class IngestSummary:
    documents: dict[str, int] = field(default_factory=lambda: {"new": 0, "updated": 0, "unchanged": 0, "failed": 0})
    chunks: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stopped: str | None = None
    estimate: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    pii_redacted: dict[str, int] = field(default_factory=dict)  # totals per entity type, never values

    def add(self, outcome: DocumentOutcome) -> None:
        self.documents[outcome.status] += 1
        self.chunks += outcome.chunks
        for entity, n in outcome.pii_redacted.items():
            self.pii_redacted[entity] = self.pii_redacted.get(entity, 0) + n
        self.warnings.extend(outcome.warnings)
        if outcome.error:
            self.errors.append({"source": outcome.source_uri, "error": outcome.error})


class IngestPipeline:
    def __init__(self, *, limits: ExtractionLimits, chunker_for: Callable[[ExtractedDocument], Chunker],
                 embedder: EmbeddingClient, index: VectorIndex, registry: DocumentRegistry, collection: str,
                 pipeline_fingerprint: str, archive: ChunkArchive | None = None, redactor: Redactor | None = None,
                 on_change: Callable[[DocumentChange], None] | None = None,
                 source_store: SourceStore | None = None, also_to: tuple[str, ...] = (),
                 sparse: SparseEncoder | None = None, context_headers: bool = False) -> None:
        """``also_to``: other generations that must see every write while they coexist with
        ``collection`` (the one still serving queries, until the new one is complete).
        ``sparse``: each chunk also gets a lexical sparse vector (hybrid search);
        ``context_headers``: each chunk is embedded with its document's title and heading path
        in front (:func:`ingest.context.contextual_text`); the stored text stays the chunk's own."""
        self._limits = limits
        self._chunker_for = chunker_for
        self.embedder = embedder
        self._index = index
        self._registry = registry
        self.collection = collection
        self.fingerprint = pipeline_fingerprint
        self._archive = archive
        self._on_change = on_change  # lineage: document indexed/deleted events
        self._sources = source_store
        self._also_to = tuple(c for c in also_to if c != collection)
        self._redactor = redactor  # PII redaction between extraction and chunking (None: none)
        self._sparse = sparse
        self._context_headers = context_headers

    def _embedded_texts(self, document: ExtractedDocument, chunks: list[Chunk]) -> list[str]:
        if not self._context_headers:
            return [c.text for c in chunks]
        return [contextual_text(document.metadata.get("title"), c.heading_path, c.text) for c in chunks]

    def ingest(self, sources: Iterable[SourceDocument | SourceFailure], *, estimate_only: bool = False,
               on_document: Callable[[DocumentOutcome], None] | None = None) -> IngestSummary:
        summary = IngestSummary()
        started = time.perf_counter()
        estimate = {"texts": 0, "uncached_texts": 0, "tokens": 0, "cost_usd": 0.0}
        self._index.ensure_collection(self.collection, self.embedder.embedder.dimensions)
        for source in sources:
            try:
                if isinstance(source, SourceFailure):
                    outcome = DocumentOutcome(source.source_uri, "failed", error=source.error)
                elif estimate_only:
                    outcome = self._estimate_one(source, estimate)
                else:
                    outcome = self.ingest_one(source)
            except BudgetExceededError as exc:
                summary.stopped = str(exc)
                break
            summary.add(outcome)
            if on_document:
                on_document(outcome)
        summary.estimate = estimate if estimate_only else None
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def ingest_one(self, source: SourceDocument) -> DocumentOutcome:
        """Index one document; a bad document becomes a failed outcome, never an exception."""
        if source.document_id is not None and not 0 < len(source.document_id) <= MAX_DOCUMENT_ID:
            return DocumentOutcome(source.source_uri, "failed", source.document_id[:MAX_DOCUMENT_ID],
                                   error=f"document_id must be 1 to {MAX_DOCUMENT_ID} characters")
        try:
            return self._ingest_checked(source)
        except (BudgetExceededError, TransientError, VectorIndexError):
            raise
        except (TerminalError, DataError, IntegrityError) as exc:
            # A store refused this document's data: this document fails, the run goes on,
            # and the message carries no SQL text or parameters.
            return DocumentOutcome(source.source_uri, "failed", error=f"could not record the document: "
                                                                      f"{_describe(exc)}")

    def _ingest_checked(self, source: SourceDocument) -> DocumentOutcome:
        doc_id = source.document_id or ids.document_id(source.tenant, source.source_uri)
        version = ids.document_version(source.data)
        existing = self._registry.get(source.tenant, doc_id)
        if (existing and existing.status == "indexed" and existing.version == version
                and existing.pipeline_fingerprint == self.fingerprint and existing.collection == self.collection):
            if existing.source_root != source.source_root:  # read again from another root, or not from disk
                self._registry.record_source_root(source.tenant, doc_id, source.source_root)
            return DocumentOutcome(source.source_uri, "unchanged", doc_id, version, existing.chunk_count)
        try:
            document, chunks, pii = self._extract_and_chunk(source)
            texts = self._embedded_texts(document, chunks)
            vectors = self.embedder.embed(texts)
        except BudgetExceededError:
            raise
        except (TerminalError, EmbeddingError) as exc:
            error = exc.reason if isinstance(exc, ExtractionError) else str(exc)
            self._registry.record_failed(
                tenant=source.tenant, document_id=doc_id, version=version, source_uri=source.source_uri,
                error=error, pipeline_fingerprint=self.fingerprint, collection=self.collection,
                source_root=source.source_root)
            return DocumentOutcome(source.source_uri, "failed", doc_id, version, error=error)
        chunk_ids = [ids.chunk_id(source.tenant, doc_id, version, self.fingerprint, c.index) for c in chunks]
        payload_base = {
            "tenant": source.tenant, "document_id": doc_id, "document_version": version,
            "source_uri": source.source_uri, "media_type": document.media_type,
            "access_tags": list(source.access_tags), "title": document.metadata.get("title"),
        }
        sparse = self._sparse.encode_documents(texts) if self._sparse is not None else [None] * len(chunks)
        points = [IndexedPoint(chunk_id=cid, vector=vec.tolist(), payload={**payload_base, **_chunk_payload(c)},
                               sparse=sv)
                  for cid, c, vec, sv in zip(chunk_ids, chunks, vectors, sparse, strict=True)]
        if self._archive:
            self._archive.archive_chunks([
                ArchivedChunk(cid, source.tenant, doc_id, version, source.source_uri, c.index, c.text,
                              c.page_start, c.page_end)
                for cid, c in zip(chunk_ids, chunks, strict=True)])
        if self._sources is not None and not rereadable(source.source_uri):
            self._sources.put(source.tenant, version, source.data)
        self._index.upsert(self.collection, points)
        self._index.delete_document(self.collection, source.tenant, doc_id, keep_version=version)
        for other in self._also_to:
            # Another generation's chunks of even the same version have other ids: replace them all.
            self._index.delete_document(other, source.tenant, doc_id)
            self._index.upsert(other, points)
        self._registry.record_indexed(
            tenant=source.tenant, document_id=doc_id, version=version, source_uri=source.source_uri,
            media_type=document.media_type, pipeline_fingerprint=self.fingerprint, collection=self.collection,
            chunk_count=len(chunks), access_tags=list(source.access_tags), pii_redacted=pii,
            title=document.metadata.get("title"), metadata={**document.metadata, **self._caller_metadata(source, pii)},
            source_root=source.source_root)
        if self._on_change:
            self._on_change(DocumentChange(
                kind="indexed", tenant=source.tenant, document_id=doc_id, document_version=version,
                source_uri=source.source_uri, collection=self.collection, occurred_at=datetime.now(UTC),
                pipeline_fingerprint=self.fingerprint, chunk_ids=chunk_ids, media_type=document.media_type,
                pii_redacted=pii if self._redactor is not None else None))
        if (self._sources is not None and existing and existing.version != version
                and not rereadable(existing.source_uri)):
            self._sources.delete(source.tenant, existing.version)
        status: Status = "updated" if existing and existing.status == "indexed" else "new"
        return DocumentOutcome(source.source_uri, status, doc_id, version, len(chunks), warnings=document.warnings,
                               pii_redacted=pii)

    def delete(self, tenant: str, document_id: str, also_from: tuple[str, ...] = ()) -> bool:
        """Remove a document from retrieval (lineage and archived chunks stay), in its own
        generation and in ``also_from`` (e.g. an older generation still being served)."""
        record = self._registry.get(tenant, document_id)
        if record is None or record.status == "deleted":
            return False
        for collection in dict.fromkeys((record.collection, *also_from, *self._also_to)):
            self._index.delete_document(collection, tenant, document_id)
        self._registry.record_deleted(tenant, document_id)
        if self._sources is not None:
            self._sources.delete(tenant, record.version)
        if self._on_change:
            self._on_change(DocumentChange(
                kind="deleted", tenant=tenant, document_id=document_id, document_version=record.version,
                source_uri=record.source_uri, collection=record.collection, occurred_at=datetime.now(UTC)))
        return True

    def _extract_and_chunk(self, source: SourceDocument) -> tuple[ExtractedDocument, list[Chunk], dict[str, int]]:
        """The extracted document, redacted, its chunks (offsets into the redacted text) and
        the values redacted per entity type."""
        document = without_nul(extract_document(source, self._limits))
        if not document.sections:
            detail = "; ".join(document.warnings) or "no text"
            raise ExtractionError(source.source_uri, f"no extractable text ({detail})")
        pii: dict[str, int] = {}
        if self._redactor is not None:
            document, pii = redact_document(self._redactor, document, source.tenant)
        chunks = self._chunker_for(document).chunk(document)
        if not chunks:
            raise ExtractionError(source.source_uri, "chunking produced no chunks")
        return document, chunks, pii

    def _caller_metadata(self, source: SourceDocument, counts: dict[str, int]) -> dict[str, Any]:
        """The caller's metadata as the registry may keep it (its redactions added to ``counts``)."""
        metadata: dict[str, Any] = clean_value(source.metadata)
        if self._redactor is None:
            return metadata
        found: Counter[str] = Counter()
        metadata = redact_value(self._redactor, metadata, source.tenant, found)
        for entity, n in found.items():
            counts[entity] = counts.get(entity, 0) + n
        return metadata

    def _estimate_one(self, source: SourceDocument, estimate: dict[str, Any]) -> DocumentOutcome:
        try:
            document, chunks, pii = self._extract_and_chunk(source)
        except TerminalError as exc:
            return DocumentOutcome(source.source_uri, "failed", error=str(exc))
        cost = self.embedder.estimate(self._embedded_texts(document, chunks))
        estimate["texts"] += cost.texts
        estimate["uncached_texts"] += cost.uncached_texts
        estimate["tokens"] += cost.tokens
        estimate["cost_usd"] += cost.cost_usd
        return DocumentOutcome(source.source_uri, "new", chunks=len(chunks), pii_redacted=pii)


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {(lines[0] if lines else '')[:300]}"


def _chunk_payload(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_index": chunk.index, "text": chunk.text, "start": chunk.start, "end": chunk.end,
        "token_count": chunk.token_count, "page_start": chunk.page_start, "page_end": chunk.page_end,
        "heading_path": list(chunk.heading_path), "symbol": chunk.symbol,
    }
