"""The seams between ragline's packages. Implementations live in their own package;
``services`` wires them together. Each seam has one required method where possible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from schemas.documents import ArchivedChunk, Chunk, ExtractedDocument
from schemas.lineage import AnswerRecord
from schemas.privacy import Redaction
from schemas.retrieval import (
    Generation,
    IndexedPoint,
    Passage,
    RerankResult,
    RetrievedChunk,
    SearchFilter,
    SearchHit,
    SparseVector,
    VectorQuery,
)


@runtime_checkable
class Extractor(Protocol):
    """Turns raw bytes of one media type into text with sections and offsets."""

    media_types: frozenset[str]

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        ...


@runtime_checkable
class Chunker(Protocol):
    """A pure function of the extracted document and the chunker's own config."""

    name: str

    def config(self) -> dict[str, object]:
        """Everything that changes the output; it enters the pipeline fingerprint."""
        ...

    def chunk(self, document: ExtractedDocument) -> list[Chunk]:
        ...


@runtime_checkable
class Redactor(Protocol):
    """Removes PII from text before anything stores it: a pure function of the text, the
    tenant (whose policy applies: mode, entity types, pseudonym key scope) and its config.

    The result holds the redacted text, how many values of each entity type were replaced
    (never the values) and the offset mapping from the original text to the redacted one.
    """

    def config(self) -> dict[str, object]:
        """Everything that changes the output (a key only as a keyed id); it enters the
        pipeline fingerprint."""
        ...

    def redact(self, text: str, tenant: str) -> Redaction:
        ...


@runtime_checkable
class Embedder(Protocol):
    """A provider writes ``embed_batch``; batching, caching and retries wrap it once."""

    model_version: str
    dimensions: int
    max_input_tokens: int  # in the model's own tokens
    max_batch: int

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts in the model's own tokenizer (to enforce ``max_input_tokens``)."""
        ...


@runtime_checkable
class QueryEmbedder(Protocol):
    """An embedder whose model was trained asymmetric (E5's ``query: ``/``passage: ``, BGE's
    instruction) embeds a search query differently from a passage: ``embed_batch`` embeds
    passages, ``embed_query`` a query. Retrieval uses it when the embedder has it."""

    def embed_query(self, text: str) -> list[float]:
        ...


@runtime_checkable
class SparseEncoder(Protocol):
    """Lexical (BM25-style) sparse vectors, computed by ragline for every backend alike;
    the index applies IDF. ``config()`` enters the pipeline fingerprint."""

    version: str

    def config(self) -> dict[str, object]: ...

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def encode_query(self, text: str) -> SparseVector: ...


@runtime_checkable
class Reranker(Protocol):
    """Re-scores the top candidates of a search against the query (a cross-encoder or an
    HTTP ``/rerank`` endpoint). ``model_version`` is recorded in lineage."""

    model_version: str

    def rerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        """One result per text (``index`` into ``texts``), best first."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """A vector store holding one index generation (collection) per embedding setup.

    Collections hold a dense vector and a sparse one (IDF applied by the engine);
    ``query`` runs dense, sparse or hybrid searches (fusion in the engine)."""

    def ensure_collection(self, name: str, dimensions: int) -> None: ...

    def upsert(self, collection: str, points: Sequence[IndexedPoint]) -> None: ...

    def delete_document(
        self, collection: str, tenant: str, document_id: str, keep_version: str | None = None
    ) -> None:
        """Delete a document's points; with ``keep_version``, only its other versions."""
        ...

    def retrieve(self, collection: str, chunk_ids: Sequence[str]) -> list[IndexedPoint]:
        """The stored points (payload, dense and sparse vectors) of these ids; unknown ids are
        left out. What a near-duplicate's promotion to canonical rewrites."""
        ...

    def search(
        self, collection: str, vector: Sequence[float], k: int, flt: SearchFilter
    ) -> list[SearchHit]:
        """Dense search (cosine), best first."""
        ...

    def query(self, collection: str, query: VectorQuery, flt: SearchFilter) -> list[SearchHit]:
        """Dense, sparse or hybrid search, best first."""
        ...

    def has_sparse(self, collection: str) -> bool:
        """Whether the collection holds sparse vectors (generations built before them do not)."""
        ...

    def count(self, collection: str, tenant: str | None = None, document_id: str | None = None) -> int: ...

    def document_versions(self, collection: str) -> dict[tuple[str, str, str], int]:
        """Points per (tenant, document_id, document_version): what reconcile compares."""
        ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one atomic step (index generations)."""
        ...

    def resolve_alias(self, alias: str) -> str | None: ...

    def optimize(self, collection: str) -> bool:
        """Build pending HNSW structures; may block for a long time."""
        ...

    def purge(self, collection: str) -> None:
        """Leave no byte of deleted points in the collection's files (write-ahead log and
        segments included): erasure needs more than a delete marker."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PassageIndex(Protocol):
    """The near-duplicate chunks recorded at ingest, as retrieval reads them: for each hit,
    the passage it belongs to and every document holding that passage. Only documents that
    ``flt`` lets its reader see are named (its tenant, access tags and narrowing filters)."""

    def passages(self, flt: SearchFilter, chunk_ids: Sequence[str]) -> dict[str, Passage]:
        """``chunk_id -> Passage`` for the chunks recorded in a passage (others are left out)."""
        ...


@runtime_checkable
class ChunkArchive(Protocol):
    """Keeps the text of every chunk ever indexed (written by ingest, read by lineage)."""

    def archive_chunks(self, chunks: Sequence[ArchivedChunk]) -> None: ...


@runtime_checkable
class LineageSink(Protocol):
    """Persists an answer's lineage. Every answer path goes through it; if it raises,
    the client gets an error, never an answer without lineage.

    ``record_answer`` writes the relational rows and the outbox event in one
    transaction. Streaming answers call ``begin_stream`` before the first byte (rows
    with status ``streaming``) and ``finish_stream`` when the stream ends (status
    ``complete`` or ``incomplete``; the event enters the outbox in that transaction).
    """

    def record_answer(self, answer: AnswerRecord) -> None: ...

    def begin_stream(self, answer: AnswerRecord) -> None: ...

    def finish_stream(self, answer: AnswerRecord) -> None: ...

    def find_answer(self, tenant: str, answer_id: str) -> AnswerRecord | None:
        """The recorded answer (for idempotent retries), or None."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Turns a question and its retrieved chunks into a cited answer.

    ``messages`` is the rendered prompt template (what an LLM is sent); ``stream``
    yields text deltas and, last, the complete :class:`Generation`.
    """

    model_version: str

    def generate(self, query: str, chunks: Sequence[RetrievedChunk], messages: list[dict[str, str]]) -> Generation:
        ...

    def stream(
        self, query: str, chunks: Sequence[RetrievedChunk], messages: list[dict[str, str]]
    ) -> Iterator[str | Generation]:
        ...
