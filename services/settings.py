"""The one configuration object: ``RAGLINE_*`` environment variables and ``ragline.toml``.

Nested groups use ``__`` in environment variables, e.g.
``RAGLINE_EMBEDDING__PROVIDER=openai`` or ``RAGLINE_INDEX__BACKEND=qdrant``. Built once
in ``services`` and passed down; nothing reads the environment anywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.embed.base import BatchingConfig
from ingest.embed.sparse import SparseConfig
from ingest.redact.base import ENTITY_TYPES, MIN_KEY_CHARS
from retrieval.index.base import HnswConfig


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmbeddingSettings(_Group):
    provider: Literal["local", "openai"] = "local"
    local_model: Literal["minilm", "multilingual-e5-small"] = Field(
        "minilm", description="the offline model of the local provider (README \"Embeddings\"); "
                              "multilingual-e5-small needs the embedders extra")
    model: str = "text-embedding-3-small"  # openai provider only
    base_url: str | None = None
    api_key: SecretStr | None = None
    dimensions: int | None = None
    timeout_s: float = 60.0
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads for the local model (0 = all cores)")
    batching: BatchingConfig = BatchingConfig()
    budget_usd: float | None = Field(None, ge=0, description="stop an ingest run before it spends more")
    price_per_million_tokens: float | None = Field(None, ge=0, description="override the known price")


class ChunkingSettings(_Group):
    encoding: str = "cl100k_base"
    max_tokens: int | None = Field(None, ge=16, description="default: fits the embedding model's window")
    overlap: int = Field(0, ge=0, description="token overlap of the fixed chunker")
    default_chunker: str = "recursive"
    code_chunker: str = "code"
    by_media_type: dict[str, str] = Field(default_factory=dict, description="media type -> chunker name")


class ExtractionSettings(_Group):
    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    timeout_s: float = 60.0
    memory_mb: int = 1024
    passwords_file: Path | None = Field(None, description="JSON object: file name or path -> PDF password")
    ocr: bool = Field(True, description="OCR image-only PDF pages with Tesseract when it is installed")
    ocr_languages: str = Field("eng", pattern=r"^[A-Za-z0-9_/]+(\+[A-Za-z0-9_/]+)*$",
                               description="Tesseract languages, e.g. eng or eng+deu (their OS data packages)")
    ocr_max_pages: int = Field(50, ge=0, description="pages OCR'd per document at most; the rest are named in a "
                               "warning (OCR also stops at 3/4 of timeout_s: ~2.5 s a page)")
    workers: int = Field(0, ge=0, description="sandboxed extraction workers kept warm (0: one per core)")
    worker_recycle_after: int = Field(200, ge=1, description="files an extraction worker parses before it is "
                                      "replaced by a fresh one")


class FetchSettings(_Group):
    """What ``uri`` ingestion may fetch (API, CLI, worker): public addresses only, unless allowed."""

    allow: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="hosts or CIDRs fetched even when their address is private, e.g. an intranet wiki; "
                        "a JSON list or comma-separated")
    timeout_s: float = Field(30.0, gt=0, description="one overall deadline per fetch, redirects included")
    max_bytes: int = Field(50 * 1024 * 1024, ge=1, description="largest response body accepted")
    max_redirects: int = Field(5, ge=0, le=20)

    @field_validator("allow", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value


class IndexSettings(_Group):
    backend: Literal["edge", "qdrant"] = "edge"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = Field(None, description="qdrant-client local mode (tests, small setups)")
    hnsw: HnswConfig = HnswConfig()
    optimize_after_points: int = Field(
        10_000, ge=0, description="Qdrant Edge: build HNSW after an ingest run that added this many points"
    )


class RetrievalSettings(_Group):
    """How queries are matched and ranked (``RAGLINE_RETRIEVAL__*``). Every chunk gets a
    dense and a sparse (BM25-style) vector; ``mode`` is the default of every entry point."""

    mode: Literal["dense", "sparse", "hybrid"] = Field("hybrid", description="default retrieval mode")
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant (hybrid)")
    rrf_weights: tuple[float, float] | None = Field(None, description="(dense, sparse) weights of the fusion")
    prefetch_limit: int = Field(100, ge=1, le=10_000, description="candidates per side fused in hybrid mode")
    collapse_duplicates: bool = Field(True, description="no passage twice in a top-k (case/whitespace, shingles)")
    duplicate_similarity: float = Field(0.9, gt=0, le=1, description="word-shingle Jaccard of one passage, at "
                                        "query time (exact) and at ingest (MinHash estimate)")
    dedup_at_ingest: bool = Field(True, description="record near-duplicate chunks at ingest (MinHash/LSH at "
                                  "duplicate_similarity, same tenant and access tags): a copy reuses its canonical's "
                                  "vector, searches pass over it, and its document is named in also_in")
    group_size: int = Field(3, ge=1, le=100, description="chunks per document with group_by=document")
    context_headers: bool = Field(True, description="embed each chunk with its title and heading path in front "
                                                    "(part of the pipeline fingerprint)")
    sparse: SparseConfig = SparseConfig()
    reranker: Literal["none", "http"] = Field("none", description="http: a Cohere/Jina/TEI-shaped /rerank endpoint")
    reranker_url: str | None = None
    reranker_api: Literal["cohere", "tei"] = "cohere"
    reranker_model: str | None = None
    reranker_api_key: SecretStr | None = None
    reranker_timeout_s: float = Field(10.0, gt=0)
    rerank_top_n: int = Field(50, ge=1, le=1000, description="fused candidates the reranker re-scores")
    mmr: float | None = Field(None, ge=0, le=1, description="MMR λ of requests that name none: 1 keeps the ranking, "
                                                            "lower values favour diversity; unset: off")
    mmr_candidates: int = Field(50, ge=1, le=1000, description="candidates MMR re-orders (at least the fetch size)")


class ApiKey(_Group):
    """One API key: who it is (tenant), what it may do (roles), what it may read (tags)."""

    key: SecretStr
    tenant: str
    roles: tuple[Literal["reader", "ingester", "auditor", "admin"], ...] = ("reader",)
    access_tags: tuple[str, ...] = Field(
        (), description="tags this key may read besides untagged chunks; '*' reads every tag (admins always do)")


class ApiSettings(_Group):
    keys: tuple[ApiKey, ...] = Field((), description="no keys: local use, one default tenant, loopback only")
    cors_origins: tuple[str, ...] = ()
    max_query_chars: int = Field(4000, ge=1)
    max_k: int = Field(50, ge=1, le=1000)
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="request bodies of every route but uploads")
    sync_ingest_max_bytes: int = Field(1024 * 1024, ge=0, description="larger uploads become background jobs")
    job_heartbeat_s: float = Field(10.0, gt=0, description="background jobs: seconds between liveness marks; a job "
                                   "that missed three (its server stopped) is failed as interrupted")


class GenerationSettings(_Group):
    provider: Literal["extractive", "openai"] = "extractive"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = 60.0
    max_retries: int = Field(2, ge=0)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=1)
    template: str = "grounded_answer.v1"
    min_score: float = Field(0.25, description="below this retrieval score a chunk is not evidence")
    max_sentences: int = Field(4, ge=1, description="extractive generator: sentences per answer")


class RelaySettings(_Group):
    """When the outbox relay lands a batch: ``batch_size`` rows pending, or the oldest older than ``max_age_s``."""

    batch_size: int = Field(10_000, ge=1, description="outbox rows per Iceberg commit (big batches, few files)")
    max_age_s: float = Field(5.0, ge=0, description="land a smaller batch once its oldest row is this old")
    interval_s: float = Field(1.0, gt=0, description="background relay: seconds between outbox checks")
    claim_timeout_s: float = Field(60.0, ge=0, description="take over a batch another relay claimed this long ago")


class LineageSettings(_Group):
    store_query_text: bool = Field(True, description="False: answers keep only the query's SHA-256")
    tenants_hashing_queries: tuple[str, ...] = Field((), description="tenants whose query text is never stored")
    catalog_name: str = Field("ragline", description="pyiceberg catalog name (its own config may define it)")
    catalog: dict[str, str] = Field(
        default_factory=dict, description="pyiceberg catalog properties; default: SQL catalog on SQLite under home")
    namespace: str = "lineage"
    relay: RelaySettings = RelaySettings()
    stream_stale_s: float = Field(
        300.0, gt=0, description="the relay finalizes a stream begun this long ago and never finished (its process "
        "died) as incomplete; must exceed the generation timeout")


class KafkaSettings(_Group):
    """The Kafka event log (``RAGLINE_KAFKA__*``). With no ``bootstrap`` the embedded default
    stays: the relay lands outbox rows straight into the local Iceberg tables."""

    bootstrap: str | None = Field(None, description="host:port[,host:port]; set: the relay publishes to Kafka "
                                                     "and only `ragline lander` writes Iceberg")
    max_inline_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest record sent inline")
    answers_topic: str = "ragline.lineage.answers"
    documents_topic: str = "ragline.lineage.documents"
    dlq_topic: str = Field("ragline.lineage.dlq", description="lineage records the lander cannot land")
    partitions: int = Field(3, ge=1, description="partitions of the topics ragline creates")
    replication_factor: int = Field(1, ge=1)
    linger_ms: int = Field(20, ge=0)
    batch_size: int = Field(1024 * 1024, ge=1024, description="producer batch bytes per partition")
    compression: Literal["none", "gzip", "zstd", "lz4", "snappy"] = Field(
        "zstd", description="zstd (zstandard comes with pyiceberg): ~5x smaller records, and the lander's "
                            "fetches carry 5x the events (measured: lander 5.6k -> 13k events/s)")
    retries: int = Field(5, ge=1, description="producer retries per batch (bounded by delivery_timeout_ms too)")
    request_timeout_ms: int = Field(15_000, ge=100)
    delivery_timeout_ms: int = Field(30_000, ge=100, description="a send not acknowledged by then fails")
    max_block_ms: int = Field(10_000, ge=0, description="how long a send waits for metadata of a down broker")
    lander_group: str = "ragline-lander"
    lander_batch_size: int = Field(5000, ge=1, description="records per Iceberg commit")
    lander_max_age_s: float = Field(5.0, ge=0, description="commit a smaller batch once its first record is this old")
    session_timeout_ms: int = Field(10_000, ge=1000)
    max_poll_records: int = Field(5000, ge=1)
    fetch_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    ingest_topic: str = Field("ragline.ingest.requests", description="document upsert/delete requests "
                                                                      "(`ragline produce` -> `ragline worker`)")
    ingest_dlq_topic: str = Field("ragline.ingest.dlq", description="requests the worker could not index, with "
                                                                    "the error and the original record")
    worker_group: str = "ragline-worker"
    worker_batch_size: int = Field(32, ge=1, description="requests per poll; offsets are committed once the whole "
                                                         "batch is indexed (or dead-lettered)")
    worker_in_flight: int = Field(4, ge=1, description="documents decoded and fetched ahead of the one indexed")
    worker_max_poll_interval_ms: int = Field(
        600_000, ge=10_000, description="a batch taking longer than this loses its partitions to another worker "
                                        "(which indexes it again: idempotent)")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None


PiiMode = Literal["off", "mask", "pseudonymize"]


def _names(value: object) -> object:
    """A JSON list or a comma-separated string, as a tuple of stripped names."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return tuple(json.loads(text))
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return value


def _check_entities(variable: str, entities: tuple[str, ...]) -> None:
    unknown = [e for e in entities if e not in ENTITY_TYPES]
    if unknown:
        raise ValueError(f"{variable}: unknown PII entity type(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(ENTITY_TYPES)}")


class PiiTenantSettings(_Group):
    """One tenant's override of the PII policy; an unset field keeps the deployment's."""

    mode: PiiMode | None = None
    entities: tuple[str, ...] | None = None
    queries: bool | None = Field(None, description="redact PII in this tenant's queries before lineage stores them")


class PiiSettings(_Group):
    """PII redaction between extraction and chunking (``RAGLINE_PII__*``): nothing stored
    (index, chunk archive, embedding cache, registry, lineage) holds a raw value."""

    mode: PiiMode = Field("mask", description="off | mask ([EMAIL], [CARD], ...) | pseudonymize ([EMAIL:3f9a1c02], "
                                              "a keyed HMAC token, stable per tenant; needs RAGLINE_PII__KEY)")
    entities: Annotated[tuple[str, ...], NoDecode] = Field(
        ENTITY_TYPES, description=f"entity types acted on, a JSON list or comma-separated: {', '.join(ENTITY_TYPES)}")
    tenants: dict[str, PiiTenantSettings] = Field(
        default_factory=dict, description='per-tenant overrides, JSON: {"tenant": {"mode": ..., "entities": [...], '
                                          '"queries": false}}')
    key: SecretStr | None = Field(None, description=f"HMAC key of the pseudonyms (at least {MIN_KEY_CHARS} "
                                                    "characters); only its keyed id enters the pipeline fingerprint")
    queries: bool = Field(True, description="redact PII in a query (and its answer text) before lineage stores them; "
                                            "retrieval and generation still use the original query")
    phone_regions: Annotated[tuple[str, ...], NoDecode] = Field(
        ("US", "GB", "DE", "FR"), description="regions whose national phone formats are recognised (numbers "
                                              "written with + and a country code are found for every country)")

    @field_validator("entities", "phone_regions", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _names(value)

    @model_validator(mode="after")
    def _consistent(self) -> PiiSettings:
        _check_entities("RAGLINE_PII__ENTITIES", self.entities)
        for tenant, rule in self.tenants.items():
            _check_entities(f"RAGLINE_PII__TENANTS[{tenant!r}].entities", rule.entities or ())
        pseudonymizing = ["RAGLINE_PII__MODE=pseudonymize"] if self.mode == "pseudonymize" else []
        pseudonymizing += [f"RAGLINE_PII__TENANTS[{t!r}].mode=pseudonymize" for t, r in self.tenants.items()
                           if r.mode == "pseudonymize"]
        # The key's length is checked when the redactor is built (PiiPolicy): an error raised
        # here would print the settings' input, the key with it.
        if pseudonymizing and not (self.key and self.key.get_secret_value()):
            raise ValueError(f"{pseudonymizing[0]} needs RAGLINE_PII__KEY, the HMAC key of the pseudonyms (at least "
                             f"{MIN_KEY_CHARS} characters, e.g. `openssl rand -hex 32`)")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGLINE_", env_nested_delimiter="__", toml_file="ragline.toml", extra="forbid", frozen=True,
    )

    home: Path = Field(Path(".ragline"), description="all embedded state lives here")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home")
    default_tenant: str = "default"
    deployment: str = "local"
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    extraction: ExtractionSettings = ExtractionSettings()
    fetch: FetchSettings = FetchSettings()
    index: IndexSettings = IndexSettings()
    api: ApiSettings = ApiSettings()
    generation: GenerationSettings = GenerationSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    lineage: LineageSettings = LineageSettings()
    kafka: KafkaSettings = KafkaSettings()
    pii: PiiSettings = PiiSettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls), file_secret_settings

    @model_validator(mode="after")
    def _streams_outlive_generation(self) -> Settings:
        stale, timeout = self.lineage.stream_stale_s, self.generation.timeout_s
        if stale <= timeout:
            raise ValueError(f"RAGLINE_LINEAGE__STREAM_STALE_S={stale:g} must exceed RAGLINE_GENERATION__TIMEOUT_S="
                             f"{timeout:g}: a stream younger than that may still be live on another replica")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'ragline.db').resolve()}"
