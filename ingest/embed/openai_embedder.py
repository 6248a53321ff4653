"""OpenAI (or any OpenAI-compatible ``base_url``) embeddings through the ``openai`` SDK.

The SDK's own retries are turned off: retries, backoff and ``Retry-After`` are handled
once for every provider in :mod:`ingest.embed.client`, so this adapter only translates
the SDK's errors into transient/terminal ragline errors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import openai

from ingest.embed.errors import RateLimitedError
from schemas.errors import ConfigurationError, EmbeddingError, TransientError

#: Published input limits and prices (USD per 1M tokens) of OpenAI's embedding models.
KNOWN_MODELS = {
    "text-embedding-3-small": (1536, 8191, 0.02),
    "text-embedding-3-large": (3072, 8191, 0.13),
    "text-embedding-ada-002": (1536, 8191, 0.10),
}


class OpenAIEmbedder:
    max_batch = 256

    def __init__(self, model: str, api_key: str | None, base_url: str | None = None,
                 dimensions: int | None = None, timeout_s: float = 60.0,
                 max_input_tokens: int | None = None, encoding: str = "cl100k_base") -> None:
        known = KNOWN_MODELS.get(model)
        if dimensions is None and known is None:
            raise ConfigurationError(f"RAGLINE_EMBEDDING_DIMENSIONS must be set for unknown model {model!r}")
        self.model = model
        self.dimensions = dimensions or known[0]  # type: ignore[index]
        self.max_input_tokens = max_input_tokens or (known[1] if known else 8191)
        self.price_per_million_tokens = known[2] if known else 0.0
        self.model_version = f"openai:{model}:{self.dimensions}"
        self._request_dimensions = dimensions if (known and dimensions and dimensions != known[0]) else None
        self._client = openai.OpenAI(api_key=api_key or "unset", base_url=base_url, timeout=timeout_s, max_retries=0)
        self._encoding_name = encoding

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        from ingest.chunk.tokens import get_encoding

        return [len(ids) for ids in get_encoding(self._encoding_name).encode_ordinary_batch(list(texts))]

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        kwargs: dict[str, Any] = {"dimensions": self._request_dimensions} if self._request_dimensions else {}
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts), **kwargs)
        except openai.RateLimitError as exc:
            raise RateLimitedError(f"embedding rate limited: {exc}", _retry_after(exc)) from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 408:
                raise RateLimitedError(f"embedding provider error {exc.status_code}", _retry_after(exc)) from exc
            raise EmbeddingError(f"embedding request rejected ({exc.status_code}): {exc.message}") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise TransientError(f"embedding provider unreachable: {exc}") from exc
        ordered = sorted(response.data, key=lambda d: d.index)
        return [list(d.embedding) for d in ordered]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, or ``Retry-After`` in
    seconds or as an HTTP date."""
    if exc.response is None:
        return None
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        if value.strip().isdigit() or value.replace(".", "", 1).isdigit():
            return float(value)
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError):
        return None
