"""The one configuration object: ``RAGLINE_*`` environment variables and ``ragline.toml``.

Nested groups use ``__`` in environment variables, e.g.
``RAGLINE_EMBEDDING__PROVIDER=openai`` or ``RAGLINE_INDEX__BACKEND=qdrant``. Built once
in ``services`` and passed down; nothing reads the environment anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.embed.base import BatchingConfig
from retrieval.index.base import HnswConfig


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmbeddingSettings(_Group):
    provider: Literal["local", "openai"] = "local"
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


class IndexSettings(_Group):
    backend: Literal["edge", "qdrant"] = "edge"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = Field(None, description="qdrant-client local mode (tests, small setups)")
    hnsw: HnswConfig = HnswConfig()
    optimize_after_points: int = Field(
        10_000, ge=0, description="Qdrant Edge: build HNSW after an ingest run that added this many points"
    )


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
    index: IndexSettings = IndexSettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls), file_secret_settings

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'ragline.db').resolve()}"
