"""Embedding configuration shared by every provider."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class OverLongPolicy(StrEnum):
    """What happens to an input longer than the model reads (never silent).

    ``split``: embed consecutive windows of the model's own tokens and average them,
    so every token counts; ``truncate``: keep the first window; ``reject``: fail the
    document. The ingest summary reports how many inputs each policy touched.
    """

    SPLIT = "split"
    TRUNCATE = "truncate"
    REJECT = "reject"


class BatchingConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_batch_texts: int = Field(16, ge=1, description="texts per request")
    max_batch_tokens: int = Field(8192, ge=1, description="model tokens per request")
    max_in_flight: int = Field(1, ge=1, le=64, description="concurrent requests")
    max_retries: int = Field(6, ge=0)
    max_backoff_s: float = Field(60.0, gt=0)
    over_long: OverLongPolicy = OverLongPolicy.SPLIT
