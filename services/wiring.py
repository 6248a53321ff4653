"""Build the components from Settings: the only place that knows every implementation.

Backends are picked from settings through small tables of lazy builders, so a missing
optional dependency surfaces as an install hint only when that backend is chosen.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from ingest.context import CONTEXT_HEADER_VERSION, HEADER_TOKENS
from ingest.embed.base import BatchingConfig
from retrieval.index.base import collection_name
from schemas import ids
from schemas.documents import ExtractedDocument
from schemas.errors import ConfigurationError
from schemas.protocols import Chunker, Embedder, Generator, Reranker, SparseEncoder, VectorIndex
from services.settings import Settings

if TYPE_CHECKING:
    # Each builder imports its implementation when called: a command loads only the stores and
    # runtimes it uses (``ragline search`` no pipeline, extractor, fetcher or lineage lake).
    from sqlalchemy import Engine

    from ingest.dedup import NearDuplicates, SignatureStore
    from ingest.embed import EmbeddingClient
    from ingest.fetch import FetchPolicy
    from ingest.pipeline import IngestPipeline
    from ingest.redact import PiiRedactor
    from ingest.registry import DocumentRegistry
    from ingest.source_store import SourceStore
    from lineage.archive import SqlChunkArchive
    from lineage.iceberg import IcebergLanding
    from lineage.kafka import KafkaConfig
    from lineage.lander import KafkaLander
    from lineage.relay import OutboxRelay, RelayWorker
    from lineage.store import SqlLineageStore
    from retrieval.retriever import RetrievalConfig
    from services.ingest_kafka import KafkaRequestLog, KafkaRequestProducer, RequestTopics

#: Bumped when extraction output changes in a way that should re-index everything.
EXTRACTION_VERSION = 3  # 2: PDF text from PDFium, running headers dropped, heading paths, OCR
# 3: HTML documentation (DocBook, Texinfo) and Q&A pages walked whole, text after headings kept,
#    navigation removed; e-mail headers in the text and metadata; EPUB/ODT/RTF through pandoc
#: Bumped when how point ids are derived changes (2: chunk ids scoped by tenant), so an
#: existing index is rebuilt as a new generation (``ragline reindex``) instead of mixing rules.
IDENTITY_VERSION = 2
_PARSERS = ("pdfplumber", "pypdfium2", "trafilatura", "unstructured", "pypandoc-binary")


def build_embedder(settings: Settings) -> Embedder:
    cfg = settings.embedding
    if cfg.provider == "local":
        from ingest.embed.local import open_local_embedder

        return open_local_embedder(cfg.local_model, threads=cfg.threads)
    from ingest.embed.openai_embedder import OpenAIEmbedder

    if cfg.api_key is None and cfg.base_url is None:
        raise ConfigurationError("RAGLINE_EMBEDDING__API_KEY is required for the openai embedding provider")
    return OpenAIEmbedder(cfg.model, cfg.api_key.get_secret_value() if cfg.api_key else None, cfg.base_url,
                          cfg.dimensions, cfg.timeout_s, encoding=settings.chunking.encoding)


def build_index(settings: Settings) -> VectorIndex:
    cfg = settings.index
    if cfg.backend == "edge":
        from retrieval.index.edge import QdrantEdgeIndex

        return QdrantEdgeIndex(settings.home / "index", cfg.hnsw)
    from retrieval.index.qdrant_server import QdrantServerIndex

    if cfg.qdrant_url is None and cfg.qdrant_path is None:
        raise ConfigurationError(
            "RAGLINE_INDEX__QDRANT_URL (or RAGLINE_INDEX__QDRANT_PATH) is required for backend qdrant")
    key = cfg.qdrant_api_key.get_secret_value() if cfg.qdrant_api_key else None
    path = str(cfg.qdrant_path) if cfg.qdrant_path else None
    return QdrantServerIndex.connect(cfg.qdrant_url, key, path, cfg.hnsw)


def build_generator(settings: Settings) -> Generator:
    cfg = settings.generation
    if cfg.provider == "extractive":
        from retrieval.generation.extractive import ExtractiveGenerator

        return ExtractiveGenerator(cfg.max_sentences)
    from retrieval.generation.openai_chat import OpenAIChatGenerator

    if cfg.api_key is None and cfg.base_url is None:
        raise ConfigurationError("RAGLINE_GENERATION__API_KEY is required for the openai generation provider")
    return OpenAIChatGenerator(
        cfg.model, cfg.api_key.get_secret_value() if cfg.api_key else None, cfg.base_url, cfg.timeout_s,
        cfg.max_retries, cfg.temperature, cfg.max_tokens,
    )


def build_reranker(settings: Settings) -> Reranker | None:
    cfg = settings.retrieval
    if cfg.reranker == "none":
        return None
    from retrieval.rerank.http import HttpReranker

    if not cfg.reranker_url:
        raise ConfigurationError("RAGLINE_RETRIEVAL__RERANKER_URL is required for the http reranker")
    key = cfg.reranker_api_key.get_secret_value() if cfg.reranker_api_key else None
    return HttpReranker(cfg.reranker_url, model=cfg.reranker_model, api=cfg.reranker_api, api_key=key,
                        timeout_s=cfg.reranker_timeout_s)


def retrieval_config(settings: Settings) -> RetrievalConfig:
    from retrieval.retriever import RetrievalConfig

    cfg = settings.retrieval
    return RetrievalConfig(mode=cfg.mode, rrf_k=cfg.rrf_k, rrf_weights=cfg.rrf_weights,
                           prefetch_limit=cfg.prefetch_limit, collapse_duplicates=cfg.collapse_duplicates,
                           duplicate_similarity=cfg.duplicate_similarity, rerank_top_n=cfg.rerank_top_n,
                           group_size=cfg.group_size, mmr=cfg.mmr, mmr_candidates=cfg.mmr_candidates)


def build_redactor(settings: Settings) -> PiiRedactor:
    """``RAGLINE_PII__*`` as the redaction stage (a key that is too short is refused here)."""
    from ingest.redact import PiiPolicy, PiiRedactor, TenantRule

    cfg = settings.pii
    tenants = {t: TenantRule(r.mode, frozenset(r.entities) if r.entities is not None else None)
               for t, r in cfg.tenants.items()}
    key = cfg.key.get_secret_value().encode("utf-8") if cfg.key else None
    return PiiRedactor(PiiPolicy(cfg.mode, frozenset(cfg.entities), tenants, key, cfg.phone_regions))


def build_fetch_policy(settings: Settings, *, operator: bool) -> FetchPolicy:
    """The one fetch policy: the API and workers reach public addresses only (plus
    ``RAGLINE_FETCH__ALLOW``); the operator's CLI may also name a private host, but is
    never redirected from a public host into a private one."""
    from ingest.fetch import FetchPolicy

    cfg = settings.fetch
    return FetchPolicy(allow=cfg.allow, timeout_s=cfg.timeout_s, max_bytes=cfg.max_bytes,
                       max_redirects=cfg.max_redirects, private_origin=operator)


def default_chunk_budget(embedder: Embedder) -> int:
    """A cl100k budget that fits the model's window for ordinary prose.

    WordPiece models read ~1.2 pieces per cl100k token on English text; the remainder
    (code, CJK) is caught by the embedding client's over-long policy and reported.
    """
    return min(512, int(embedder.max_input_tokens / 1.3))


class ChunkerSet:
    """Picks the chunker per media type: code chunker for source code, else the default."""

    def __init__(self, settings: Settings, budget: int) -> None:
        cfg = settings.chunking
        self._by_media_type = cfg.by_media_type
        self._default = cfg.default_chunker
        self._code = cfg.code_chunker
        self._common = {"max_tokens": budget, "encoding": cfg.encoding}
        self._overlap = min(cfg.overlap, budget // 4)
        self._built: dict[str, Chunker] = {}

    def name_for(self, media_type: str) -> str:
        from ingest.extract import detect

        if media_type in self._by_media_type:
            return self._by_media_type[media_type]
        return self._code if detect.language_of(media_type) else self._default

    def get(self, name: str) -> Chunker:
        if name not in self._built:
            from ingest.chunk import load_chunker

            extra = {"overlap": self._overlap} if name == "fixed" else {}
            self._built[name] = load_chunker(name, **self._common, **extra)
        return self._built[name]

    def __call__(self, document: ExtractedDocument) -> Chunker:
        return self.get(self.name_for(document.media_type))

    def fingerprint_config(self) -> dict[str, object]:
        names = {self._default, self._code, *self._by_media_type.values()}
        return {"by_media_type": self._by_media_type, "default": self._default, "code": self._code,
                "chunkers": {n: self.get(n).config() for n in sorted(names)}}


@dataclass
class Components:
    """Lazily built, shared clients for one process."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        from services.db import make_engine, migrate

        engine = make_engine(self.settings.sqlalchemy_url)
        migrate(engine)
        return engine

    @cached_property
    def embedder(self) -> Embedder:
        return build_embedder(self.settings)

    @cached_property
    def index(self) -> VectorIndex:
        return build_index(self.settings)

    @cached_property
    def registry(self) -> DocumentRegistry:
        from ingest.registry import DocumentRegistry

        return DocumentRegistry(self.engine)

    @cached_property
    def sparse_encoder(self) -> SparseEncoder:
        from ingest.embed.sparse import BM25SparseEncoder

        return BM25SparseEncoder(self.settings.retrieval.sparse)

    @cached_property
    def chunkers(self) -> ChunkerSet:
        # With contextual headers the default budget leaves room for the header in the model's window.
        reserve = HEADER_TOKENS if self.settings.retrieval.context_headers else 0
        budget = self.settings.chunking.max_tokens or default_chunk_budget(self.embedder) - reserve
        return ChunkerSet(self.settings, budget)

    @cached_property
    def redactor(self) -> PiiRedactor:
        return build_redactor(self.settings)

    @cached_property
    def pipeline_fingerprint(self) -> str:
        parsers = {name: _version(name) for name in _PARSERS}
        return ids.fingerprint({
            "extraction": EXTRACTION_VERSION, "identity": IDENTITY_VERSION, "parsers": parsers,
            "chunking": self.chunkers.fingerprint_config(),
            "embedding": self.embedder.model_version,
            "over_long": self.settings.embedding.batching.over_long.value,
            "pii": self.redactor.config(),  # mode, entities, tenants, the key's keyed id: what the index holds
            "sparse": self.sparse_encoder.config(),
            "context_headers": CONTEXT_HEADER_VERSION if self.settings.retrieval.context_headers else None,
        })

    @cached_property
    def collection(self) -> str:
        return collection_name(self.embedder.model_version, self.embedder.dimensions, self.pipeline_fingerprint)

    @property
    def alias(self) -> str:
        """The alias queries go through; it moves only when a generation is complete."""
        return f"ragline-{self.settings.deployment}"

    @cached_property
    def serving_collection(self) -> str:
        """The generation the alias points at, if it embeds with this process's model;
        otherwise (no alias yet, or a new model) the configured generation."""
        target = self.index.resolve_alias(self.alias)
        same_model = collection_name(self.embedder.model_version, self.embedder.dimensions, "")
        if target and target.startswith(same_model):
            return target
        return self.collection

    def embedding_client(self) -> EmbeddingClient:
        from ingest.embed import EmbeddingCache, EmbeddingClient

        cfg = self.settings.embedding
        price = cfg.price_per_million_tokens
        if price is None:
            price = float(getattr(self.embedder, "price_per_million_tokens", 0.0))
        batching: BatchingConfig = cfg.batching
        return EmbeddingClient(self.embedder, EmbeddingCache(self.engine), batching, price, cfg.budget_usd)

    def pipeline(self) -> IngestPipeline:
        from ingest.extract import ExtractionLimits
        from ingest.extract.ocr import OcrConfig
        from ingest.extract.sandbox import PoolConfig, shared_pool
        from ingest.pipeline import IngestPipeline

        ext = self.settings.extraction
        pool = PoolConfig(workers=ext.workers, recycle_after=ext.worker_recycle_after)
        shared_pool(pool).warm()  # the workers import their parsers while the model loads
        return IngestPipeline(
            limits=ExtractionLimits(ext.max_bytes, ext.max_pages, ext.timeout_s, ext.memory_mb,
                                    OcrConfig(ext.ocr, ext.ocr_languages, ext.ocr_max_pages), pool),
            chunker_for=self.chunkers, embedder=self.embedding_client(), index=self.index,
            registry=self.registry, collection=self.collection, pipeline_fingerprint=self.pipeline_fingerprint,
            archive=self.chunk_archive, on_change=self.lineage.record_document_change, redactor=self.redactor,
            source_store=self.source_store, also_to=self.coexisting_generations,
            sparse=self.sparse_encoder, context_headers=self.settings.retrieval.context_headers,
            near_duplicates=self.near_duplicates,
        )

    @cached_property
    def signature_store(self) -> SignatureStore:
        """The near-duplicate ledger: written by ingest, read by retrieval (``also_in``)."""
        from ingest.dedup.store import SignatureStore

        return SignatureStore(self.engine)

    @cached_property
    def near_duplicates(self) -> NearDuplicates:
        from ingest.dedup import DedupConfig
        from ingest.dedup.detector import NearDuplicates

        cfg = self.settings.retrieval
        return NearDuplicates(self.signature_store,
                              DedupConfig(enabled=cfg.dedup_at_ingest, similarity=cfg.duplicate_similarity))

    @cached_property
    def source_store(self) -> SourceStore:
        from ingest.source_store import SourceStore

        return SourceStore(self.settings.home / "sources")

    @property
    def coexisting_generations(self) -> tuple[str, ...]:
        """The generation still serving queries while the configured one is built: every
        write reaches it too, so a new upload is found before the alias moves."""
        serving = self.serving_collection
        return (serving,) if serving != self.collection else ()

    @cached_property
    def lineage(self) -> SqlLineageStore:
        """The LineageSink of every answer path (transactional outbox on ``engine``)."""
        from lineage.store import SqlLineageStore

        return SqlLineageStore(self.engine, deployment=self.settings.deployment)

    @cached_property
    def chunk_archive(self) -> SqlChunkArchive:
        from lineage.archive import SqlChunkArchive

        return SqlChunkArchive(self.engine)

    @cached_property
    def lineage_lake(self) -> IcebergLanding:
        """The Iceberg tables (opened lazily: the catalog is touched on first use)."""
        from lineage.iceberg import IcebergLanding, resolve_catalog_properties

        cfg = self.settings.lineage
        properties = resolve_catalog_properties(cfg.catalog_name, dict(cfg.catalog), self.settings.home)
        return IcebergLanding(cfg.catalog_name, properties, cfg.namespace)

    def relay(self) -> OutboxRelay:
        """Outbox -> Kafka when ``RAGLINE_KAFKA__BOOTSTRAP`` is set (the lander alone writes
        Iceberg then); else outbox -> Iceberg, the embedded default."""
        from lineage.base import RelayTarget
        from lineage.relay import OutboxRelay

        cfg = self.settings.lineage.relay
        target: RelayTarget = self.lineage_lake
        if self.settings.kafka.bootstrap:
            from lineage.kafka import KafkaPublisher

            target = KafkaPublisher(kafka_config(self.settings))
        return OutboxRelay(self.engine, target, batch_size=cfg.batch_size, max_age_s=cfg.max_age_s,
                           claim_timeout_s=cfg.claim_timeout_s, streams=self.lineage,
                           stream_stale_s=self.settings.lineage.stream_stale_s)

    def outbox_backlog(self) -> tuple[int, datetime | None]:
        """Outbox events not yet acknowledged by the relay's target, and the oldest one's time."""
        from lineage.relay import outbox_backlog

        return outbox_backlog(self.engine)

    def relay_worker(self) -> RelayWorker:
        """The background relay of ``ragline serve``: ``start()`` in the lifespan, ``stop()`` at shutdown."""
        from lineage.relay import RelayWorker

        return RelayWorker(self.relay(), self.settings.lineage.relay.interval_s)

    def lander(self) -> KafkaLander:
        """``ragline lander``: the lineage topics -> the Iceberg tables (needs a bootstrap)."""
        from lineage.lander import KafkaLander

        return KafkaLander(kafka_config(self.settings), self.lineage_lake)

    def request_log(self, client_id: str = "ragline-worker") -> KafkaRequestLog:
        """``ragline worker``: the consumer group on the requests topic, and its DLQ (needs a bootstrap)."""
        from services.ingest_kafka import KafkaRequestLog

        return KafkaRequestLog(kafka_config(self.settings), request_topics(self.settings), client_id=client_id)

    def request_producer(self) -> KafkaRequestProducer:
        """``ragline produce``: requests onto the requests topic (needs a bootstrap)."""
        from services.ingest_kafka import KafkaRequestProducer

        return KafkaRequestProducer(kafka_config(self.settings), request_topics(self.settings))

    def close(self) -> None:
        if "index" in self.__dict__:
            self.index.close()
        if "engine" in self.__dict__:
            self.engine.dispose()


def kafka_config(settings: Settings) -> KafkaConfig:
    """``RAGLINE_KAFKA__*`` as lineage's Kafka config (kafka-python is imported only when Kafka is used)."""
    from lineage.kafka import KafkaConfig

    cfg = settings.kafka
    if not cfg.bootstrap:
        raise ConfigurationError("RAGLINE_KAFKA__BOOTSTRAP is not set: no Kafka broker is configured")
    password = cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
    return KafkaConfig(
        bootstrap=cfg.bootstrap, answers_topic=cfg.answers_topic, documents_topic=cfg.documents_topic,
        dlq_topic=cfg.dlq_topic, max_inline_bytes=cfg.max_inline_bytes, partitions=cfg.partitions,
        replication_factor=cfg.replication_factor, linger_ms=cfg.linger_ms, batch_size=cfg.batch_size,
        compression=cfg.compression, retries=cfg.retries, request_timeout_ms=cfg.request_timeout_ms,
        delivery_timeout_ms=cfg.delivery_timeout_ms, max_block_ms=cfg.max_block_ms, lander_group=cfg.lander_group,
        lander_batch_size=cfg.lander_batch_size, lander_max_age_s=cfg.lander_max_age_s,
        session_timeout_ms=cfg.session_timeout_ms, max_poll_records=cfg.max_poll_records,
        fetch_max_bytes=cfg.fetch_max_bytes, security_protocol=cfg.security_protocol,
        sasl_mechanism=cfg.sasl_mechanism, sasl_username=cfg.sasl_username, sasl_password=password,
        ssl_cafile=str(cfg.ssl_cafile) if cfg.ssl_cafile else None)


def request_topics(settings: Settings) -> RequestTopics:
    """Streaming ingestion's part of ``RAGLINE_KAFKA__*``."""
    from services.ingest_kafka import RequestTopics

    cfg = settings.kafka
    return RequestTopics(requests=cfg.ingest_topic, dlq=cfg.ingest_dlq_topic, group=cfg.worker_group,
                         batch_size=cfg.worker_batch_size, max_poll_interval_ms=cfg.worker_max_poll_interval_ms)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
