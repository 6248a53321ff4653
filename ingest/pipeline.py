"""sources -> extract -> redact PII -> chunk -> dedup -> embed -> index, several documents at a time.

Re-ingest semantics (DESIGN.md): an unchanged document under the same pipeline
fingerprint is a no-op that costs no embedding call; a changed one is indexed under
its new version first and only then are its old version's points deleted, so there is
never a moment with the document missing from search.

With a ``redactor``, PII is replaced right after extraction (text, heading paths and
metadata): chunks, their offsets (into the redacted text), embeddings, the embedding
cache, index payloads, the chunk archive, the registry and lineage only ever see the
redacted document. Per document, counts per entity type are recorded, never values.

The stages overlap (see :class:`IngestPipeline`): extraction runs in the sandbox's warm
workers, one document per core, chunking beside it, and one embedding batcher mixes the
chunks of every document in flight into length-sorted requests; the writes stay on the
calling thread, in input order.

With ``near_duplicates``, each chunk is matched (MinHash/LSH, ``ingest.dedup``) against the
canonical chunks already indexed in its scope and the earlier ones of its document. A copy is
not embedded (it reuses its canonical's cached vector), is indexed with ``duplicate_of`` so
searches pass over it, and is counted in ``near_duplicates``; when a canonical's document is
deleted, forgotten or replaced, its copies are promoted before its points go.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy.exc import DataError, IntegrityError

from ingest.context import contextual_text
from ingest.dedup.base import Match, Sketches
from ingest.dedup.detector import NearDuplicates
from ingest.dedup.promote import Retirer
from ingest.embed.batcher import EmbeddingBatcher
from ingest.embed.client import CostEstimate, EmbeddingClient, EmbeddingPlan
from ingest.extract.registry import ExtractionLimits, extract_document
from ingest.extract.sandbox import shared_pool
from ingest.extract.sanitize import clean_value, without_nul
from ingest.memory import release_freed_memory
from ingest.redact import redact_document, redact_value
from ingest.registry import DocumentRecord, DocumentRegistry
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
    driver_message,
)
from schemas.lineage import DocumentChange
from schemas.protocols import ChunkArchive, Chunker, Redactor, SparseEncoder, VectorIndex
from schemas.retrieval import DUPLICATE_OF, IndexedPoint

Status = Literal["new", "updated", "unchanged", "failed"]
MAX_DOCUMENT_ID = 64  # the registry's key column
#: The heap is trimmed (~1 ms) once the documents written since the last trim held this much:
#: after every large document, not after each of a run of small or unchanged ones.
_RELEASE_AFTER_BYTES = 1 << 20


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
    near_duplicates: int = 0  # chunks recorded as copies of a canonical chunk (not embedded, not searched twice)


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
    near_duplicates: int = 0

    def add(self, outcome: DocumentOutcome) -> None:
        self.documents[outcome.status] += 1
        self.chunks += outcome.chunks
        self.near_duplicates += outcome.near_duplicates
        for entity, n in outcome.pii_redacted.items():
            self.pii_redacted[entity] = self.pii_redacted.get(entity, 0) + n
        self.warnings.extend(outcome.warnings)
        if outcome.error:
            self.errors.append({"source": outcome.source_uri, "error": outcome.error})


@dataclass
class _Work:
    """One document on its way through the pipeline, and what each stage found."""

    source: SourceDocument | SourceFailure
    outcome: DocumentOutcome | None = None  # settled without indexing (unchanged, refused)
    failure: str | None = None  # extraction or embedding failed: recorded as failed
    crash: BaseException | None = None  # an error that stops the run (store down), raised in order
    doc_id: str = ""
    version: str = ""
    existing: DocumentRecord | None = None
    document: ExtractedDocument | None = None
    chunks: list[Chunk] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    chunk_ids: list[str] = field(default_factory=list)
    text_hashes: list[str] = field(default_factory=list)  # of ``texts`` (what a copy's canonical is cached under)
    sketches: Sketches | None = None  # MinHash signatures (near-duplicate detection on)
    plan: EmbeddingPlan | None = None
    fresh: dict[str, np.ndarray] | None = None  # vectors embedded for this document's misses
    cost: CostEstimate | None = None  # --estimate
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def held(self) -> int:
        """Bytes this document holds while in flight (what bounds the window)."""
        data = len(self.source.data) if isinstance(self.source, SourceDocument) else 0
        return data + 2 * sum(len(t) for t in self.texts)

    def embedded(self, fresh: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
        if isinstance(error, TerminalError | EmbeddingError):
            self.failure = str(error)
        elif error is not None:
            self.crash = error
        self.fresh = fresh
        self.ready.set()


class IngestPipeline:
    """Documents through extract -> redact -> chunk -> embed -> index, several at a time.

    :meth:`ingest` overlaps the stages: up to ``workers`` documents are extracted at once
    (one per sandbox worker, so every core parses), chunked as soon as each is extracted,
    and handed to one :class:`~ingest.embed.batcher.EmbeddingBatcher` whose requests mix
    every document in flight (sorted by length), so the model is never starved by one
    slow parse and small documents share requests. Writes (index, registry, archive,
    lineage) happen on the calling thread, one document at a time **in input order**, and
    ``on_document`` is called in that order too: a document is indexed only after every
    one before it. In flight at most ``max_documents`` documents or ``max_bytes`` of their
    bytes and texts: memory stays flat however large the corpus (a slow document holds
    the window until it is done, while the model works through the ones after it).
    """

    def __init__(self, *, limits: ExtractionLimits, chunker_for: Callable[[ExtractedDocument], Chunker],
                 embedder: EmbeddingClient, index: VectorIndex, registry: DocumentRegistry, collection: str,
                 pipeline_fingerprint: str, archive: ChunkArchive | None = None, redactor: Redactor | None = None,
                 on_change: Callable[[DocumentChange], None] | None = None,
                 source_store: SourceStore | None = None, also_to: tuple[str, ...] = (),
                 sparse: SparseEncoder | None = None, context_headers: bool = False,
                 near_duplicates: NearDuplicates | None = None,
                 max_documents: int = 64, max_bytes: int = 256 * 1024 * 1024) -> None:
        """``also_to``: other generations that must see every write while they coexist with
        ``collection`` (the one still serving queries, until the new one is complete).
        ``sparse``: each chunk also gets a lexical sparse vector (hybrid search);
        ``context_headers``: each chunk is embedded with its document's title and heading path
        in front (:func:`ingest.context.contextual_text`); the stored text stays the chunk's own.
        ``near_duplicates``: the ledger of copies (detection runs when it is enabled; copies of a
        deleted document's chunks are promoted whenever it is given). Copies are marked in
        ``collection`` only: ``also_to`` generations get every chunk as its own point."""
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
        self._dedup = near_duplicates
        self._retirer = None if near_duplicates is None else Retirer(
            near_duplicates, index, embedder.embed, (collection, *self._also_to), context_headers)
        self.max_documents = max_documents
        self.max_bytes = max_bytes

    def _embedded_texts(self, document: ExtractedDocument, chunks: list[Chunk]) -> list[str]:
        if not self._context_headers:
            return [c.text for c in chunks]
        return [contextual_text(document.metadata.get("title"), c.heading_path, c.text) for c in chunks]

    # -- many documents ------------------------------------------------------------------

    def ingest(self, sources: Iterable[SourceDocument | SourceFailure], *, estimate_only: bool = False,
               on_document: Callable[[DocumentOutcome], None] | None = None) -> IngestSummary:
        summary = IngestSummary()
        started = time.perf_counter()
        estimate = {"texts": 0, "uncached_texts": 0, "tokens": 0, "cost_usd": 0.0}
        self._index.ensure_collection(self.collection, self.embedder.embedder.dimensions)
        pool = shared_pool(self._limits.pool)
        pool.warm()  # the workers import their parsers while the first files are read
        # In a budgeted run a document is admitted to embedding only when it is next to be
        # written, so the budget stops the run exactly where sequential ingestion would.
        batcher = None if estimate_only else EmbeddingBatcher(self.embedder)
        eager = batcher if batcher is not None and not self.embedder.budgeted else None
        # Threads, not cores: most of them wait on a sandbox worker; the extra ones keep files read
        # in process (text, code) moving while every worker is busy with a slow PDF.
        prepare = ThreadPoolExecutor(2 * pool.config.size + 2, thread_name_prefix="ragline-prepare")
        window: deque[_Work] = deque()
        pending = iter(sources)
        held = 0
        unreleased = 0  # bytes held by the documents written since the heap was last trimmed
        clean = False
        try:
            while True:
                while len(window) < self.max_documents and held < self.max_bytes:
                    source = next(pending, None)
                    if source is None:
                        break
                    work = _Work(source)
                    window.append(work)
                    held += work.held
                    prepare.submit(self._prepare, work, eager, estimate_only)
                if not window:
                    break
                work = window.popleft()
                work.ready.wait()
                held = sum(w.held for w in window)
                try:
                    if estimate_only:
                        outcome = self._settle_estimate(work, estimate)
                    else:
                        if batcher is not None and eager is None:
                            self._embed_now(work, batcher)
                        outcome = self._settle(work)
                except BudgetExceededError as exc:
                    summary.stopped = str(exc)
                    break
                summary.add(outcome)
                unreleased += work.held
                del work  # its text, chunks and vectors: freed before the heap is trimmed
                if unreleased >= _RELEASE_AFTER_BYTES:
                    release_freed_memory()
                    unreleased = 0
                if on_document:
                    on_document(outcome)
            clean = True
        finally:
            # Preparing writes nothing: on an abort, documents still being parsed are left to finish alone.
            prepare.shutdown(wait=clean, cancel_futures=True)
            if batcher is not None:
                batcher.close()
        summary.estimate = estimate if estimate_only else None
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def _embed_now(self, work: _Work, batcher: EmbeddingBatcher) -> None:
        """A budgeted run: reserve this document's tokens (or stop), then embed it."""
        if work.plan is None or work.outcome or work.failure or work.crash:
            return
        self.embedder.reserve(work.plan.tokens)
        work.ready.clear()
        batcher.submit(work.plan, work.embedded)
        work.ready.wait()

    # -- one document ----------------------------------------------------------------------

    def ingest_one(self, source: SourceDocument) -> DocumentOutcome:
        """Index one document; a bad document becomes a failed outcome, never an exception."""
        work = _Work(source)
        self._prepare(work, None, False)
        if work.plan is not None and not (work.outcome or work.failure or work.crash):
            try:
                fresh = self.embedder.embed_plan(work.plan)
            except EmbeddingError as exc:
                work.failure = str(exc)
            else:
                work.fresh = fresh
        outcome = self._settle(work)
        large = work.held >= _RELEASE_AFTER_BYTES
        del work  # a long-lived process (the API, a worker) trims after each large document
        if large:
            release_freed_memory()
        return outcome

    def _prepare(self, work: _Work, batcher: EmbeddingBatcher | None, estimate_only: bool) -> None:
        """Everything before the write that can run beside other documents: the registry's
        verdict, extraction (sandboxed), redaction, chunking, the embedding plan (cache
        lookup, over-long policy), and, given a ``batcher``, the request for the vectors."""
        submitted = False
        try:
            source = work.source
            if isinstance(source, SourceFailure):
                work.outcome = DocumentOutcome(source.source_uri, "failed", error=source.error)
            elif estimate_only:
                self._prepare_estimate(work, source)
            elif self._check_identity(work, source):
                self._prepare_document(work, source)
                if batcher is not None and work.plan is not None and work.failure is None:
                    batcher.submit(work.plan, work.embedded)
                    submitted = True
        except BaseException as exc:  # noqa: BLE001 - raised on the writing thread, in order
            work.crash = exc
        finally:
            if not submitted:
                work.ready.set()

    def _check_identity(self, work: _Work, source: SourceDocument) -> bool:
        """Settle a document with a bad id or unchanged content; True if it is to be indexed."""
        if source.document_id is not None and not 0 < len(source.document_id) <= MAX_DOCUMENT_ID:
            work.outcome = DocumentOutcome(source.source_uri, "failed", source.document_id[:MAX_DOCUMENT_ID],
                                           error=f"document_id must be 1 to {MAX_DOCUMENT_ID} characters")
            return False
        work.doc_id = source.document_id or ids.document_id(source.tenant, source.source_uri)
        work.version = ids.document_version(source.data)
        work.existing = self._registry.get(source.tenant, work.doc_id)
        if self._unchanged(work.existing, work.version):
            work.outcome = DocumentOutcome(source.source_uri, "unchanged", work.doc_id, work.version,
                                           work.existing.chunk_count if work.existing else 0)
            return False
        return True

    def _unchanged(self, existing: DocumentRecord | None, version: str) -> bool:
        return bool(existing and existing.status == "indexed" and existing.version == version
                    and existing.pipeline_fingerprint == self.fingerprint and existing.collection == self.collection)

    def _prepare_document(self, work: _Work, source: SourceDocument) -> None:
        try:
            work.document, work.chunks, work.pii = self._extract_and_chunk(source)
            work.texts = self._embedded_texts(work.document, work.chunks)
            work.chunk_ids = [ids.chunk_id(source.tenant, work.doc_id, work.version, self.fingerprint, c.index)
                              for c in work.chunks]
            copies = self._copies(work, source)
            work.plan = self.embedder.plan(work.texts, copies, work.text_hashes or None)
        except TerminalError as exc:
            work.failure = exc.reason if isinstance(exc, ExtractionError) else str(exc)

    def _copies(self, work: _Work, source: SourceDocument) -> dict[int, str]:
        """Sketch the chunks and find the copies among them: position -> the embedded-text hash
        of its canonical, whose vector it takes (no model call for it)."""
        if self._dedup is None or not self._dedup.enabled:
            return {}
        work.text_hashes = [ids.text_hash(t) for t in work.texts]
        work.sketches = self._dedup.sketch([c.text for c in work.chunks], self.collection, source.access_tags)
        found = self._dedup.match(source.tenant, work.doc_id, work.chunk_ids, work.text_hashes, work.sketches)
        return {i: m.text_sha256 for i, m in enumerate(found) if m is not None}

    def _settle_copies(self, work: _Work, source: SourceDocument, vectors: np.ndarray) -> list[Match | None]:
        """The copies as they stand at the write, on this thread: a document written since
        preparing may hold a chunk's canonical, and a canonical gone since is not one. A chunk
        whose vector was taken from a canonical it no longer copies is embedded after all."""
        if self._dedup is None or work.sketches is None or work.plan is None:
            return [None] * len(work.chunks)
        found = self._dedup.match(source.tenant, work.doc_id, work.chunk_ids, work.text_hashes, work.sketches)
        own = set(work.text_hashes)
        stale = [i for i, (taken, match) in enumerate(zip(work.plan.hashes, found, strict=True))
                 if taken != work.text_hashes[i]
                 and (match is None or (taken not in own and match.text_sha256 != taken))]
        if stale:
            for i, vector in zip(stale, self.embedder.embed([work.texts[i] for i in stale]), strict=True):
                vectors[i] = vector
        return found

    def _prepare_estimate(self, work: _Work, source: SourceDocument) -> None:
        try:
            document, chunks, work.pii = self._extract_and_chunk(source)
        except TerminalError as exc:
            work.outcome = DocumentOutcome(source.source_uri, "failed", error=str(exc))
            return
        work.chunks = chunks
        work.cost = self.embedder.estimate(self._embedded_texts(document, chunks))

    def _settle_estimate(self, work: _Work, estimate: dict[str, Any]) -> DocumentOutcome:
        if work.crash is not None:
            raise work.crash
        if work.outcome is not None:
            return work.outcome
        assert work.cost is not None
        estimate["texts"] += work.cost.texts
        estimate["uncached_texts"] += work.cost.uncached_texts
        estimate["tokens"] += work.cost.tokens
        estimate["cost_usd"] += work.cost.cost_usd
        return DocumentOutcome(work.source.source_uri, "new", chunks=len(work.chunks), pii_redacted=work.pii)

    def _settle(self, work: _Work) -> DocumentOutcome:
        """The writing half, on the calling thread: record a failure, or index the document."""
        source = work.source
        try:
            if work.crash is not None:
                raise work.crash
            if work.outcome is not None:
                if (work.outcome.status == "unchanged" and work.existing is not None
                        and isinstance(source, SourceDocument)
                        and work.existing.source_root != source.source_root):  # read again from another root
                    self._registry.record_source_root(source.tenant, work.doc_id, source.source_root)
                return work.outcome
            assert isinstance(source, SourceDocument)
            if work.failure is not None:
                self._registry.record_failed(
                    tenant=source.tenant, document_id=work.doc_id, version=work.version,
                    source_uri=source.source_uri, error=work.failure, pipeline_fingerprint=self.fingerprint,
                    collection=self.collection, source_root=source.source_root)
                return DocumentOutcome(source.source_uri, "failed", work.doc_id, work.version, error=work.failure)
            return self._write(work, source)
        except (BudgetExceededError, TransientError, VectorIndexError):
            raise
        except (TerminalError, DataError, IntegrityError) as exc:
            # A store refused this document's data: this document fails, the run goes on,
            # and the message carries no SQL text or parameters.
            return DocumentOutcome(source.source_uri, "failed", work.doc_id or None,
                                   error=f"could not record the document: {driver_message(exc)}")

    def _write(self, work: _Work, source: SourceDocument) -> DocumentOutcome:
        doc_id, version, document, chunks, pii = work.doc_id, work.version, work.document, work.chunks, work.pii
        assert document is not None and work.plan is not None and work.fresh is not None
        # Read again: an earlier document of this run may have been this one (a repeated upsert).
        existing = self._registry.get(source.tenant, doc_id)
        if self._unchanged(existing, version):
            return DocumentOutcome(source.source_uri, "unchanged", doc_id, version, len(chunks))
        self.embedder.remember(work.fresh)
        vectors = self.embedder.assemble(work.plan, work.fresh)
        chunk_ids = work.chunk_ids
        copies = self._settle_copies(work, source, vectors)
        payload_base = {
            "tenant": source.tenant, "document_id": doc_id, "document_version": version,
            "source_uri": source.source_uri, "media_type": document.media_type,
            "access_tags": list(source.access_tags), "title": document.metadata.get("title"),
        }
        sparse = self._sparse.encode_documents(work.texts) if self._sparse is not None else [None] * len(chunks)
        points = [IndexedPoint(chunk_id=cid, vector=vec.tolist(), payload={**payload_base, **_chunk_payload(c)},
                               sparse=sv)
                  for cid, c, vec, sv in zip(chunk_ids, chunks, vectors, sparse, strict=True)]
        marked = [p.model_copy(update={"payload": {**p.payload, DUPLICATE_OF: m.canonical}}) if m else p
                  for p, m in zip(points, copies, strict=True)]
        if self._archive:
            self._archive.archive_chunks([
                ArchivedChunk(cid, source.tenant, doc_id, version, source.source_uri, c.index, c.text,
                              c.page_start, c.page_end)
                for cid, c in zip(chunk_ids, chunks, strict=True)])
        if self._sources is not None and not rereadable(source.source_uri):
            self._sources.put(source.tenant, version, source.data)
        if self._dedup is not None and work.sketches is not None:
            self._dedup.record(source.tenant, self.collection, doc_id, version, chunk_ids, work.text_hashes,
                               work.sketches, copies)
        self._index.upsert(self.collection, marked)
        if self._retirer is not None:  # the copies of its replaced chunks stay found once those go
            self._retirer.retire(source.tenant, doc_id, keep=set(chunk_ids))
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
                               pii_redacted=pii, near_duplicates=sum(m is not None for m in copies))


    def delete(self, tenant: str, document_id: str, also_from: tuple[str, ...] = ()) -> bool:
        """Remove a document from retrieval (lineage and archived chunks stay), in its own
        generation and in ``also_from`` (e.g. an older generation still being served)."""
        record = self._registry.get(tenant, document_id)
        if record is None or record.status == "deleted":
            return False
        if self._retirer is not None:  # copies of its chunks elsewhere become canonical first
            self._retirer.retire(tenant, document_id)
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


def _chunk_payload(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_index": chunk.index, "text": chunk.text, "start": chunk.start, "end": chunk.end,
        "token_count": chunk.token_count, "page_start": chunk.page_start, "page_end": chunk.page_end,
        "heading_path": list(chunk.heading_path), "symbol": chunk.symbol,
    }
