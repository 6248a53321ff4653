"""An HTTP rerank endpoint as the :class:`schemas.protocols.Reranker`.

Two request/response shapes cover the common servers:

- ``cohere`` (Cohere ``/v2/rerank``, Jina ``/v1/rerank``, vLLM, Infinity):
  ``{"model", "query", "documents": [...], "top_n"}`` ->
  ``{"results": [{"index", "relevance_score"}, ...]}``;
- ``tei`` (Hugging Face text-embeddings-inference ``/rerank``):
  ``{"query", "texts": [...]}`` -> ``[{"index", "score"}, ...]``.

Network failures and 5xx/429 answers are transient (the request may be retried); any
other refusal or a malformed body is a :class:`RerankError` naming the endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import httpx

from schemas.errors import RaglineError, TransientError
from schemas.retrieval import RerankResult

RerankApi = Literal["cohere", "tei"]


class RerankError(RaglineError):
    """The rerank endpoint refused the request or answered something unreadable."""


class HttpReranker:
    def __init__(self, url: str, *, model: str | None = None, api: RerankApi = "cohere", api_key: str | None = None,
                 timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.model = model
        self.api = api
        self.model_version = f"http-rerank:{api}:{model or url}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def rerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        if not texts:
            return []
        body: dict[str, Any] = ({"query": query, "texts": list(texts), "truncate": True} if self.api == "tei" else
                                {"query": query, "documents": list(texts), "top_n": len(texts),
                                 **({"model": self.model} if self.model else {})})
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise TransientError(f"rerank endpoint {self.url}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"rerank endpoint {self.url} answered {response.status_code}")
        if response.status_code >= 400:
            raise RerankError(f"rerank endpoint {self.url} refused the request ({response.status_code}): "
                              f"{response.text[:300]}")
        try:
            data = response.json()
            items = data if self.api == "tei" else data["results"]
            results = [RerankResult(index=int(item["index"]),
                                    score=float(item["score" if self.api == "tei" else "relevance_score"]))
                       for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise RerankError(f"rerank endpoint {self.url}: unreadable answer ({exc})") from exc
        if sorted(r.index for r in results) != list(range(len(texts))):
            raise RerankError(f"rerank endpoint {self.url}: expected one score per text for {len(texts)} texts")
        return sorted(results, key=lambda r: -r.score)

    def close(self) -> None:
        self._client.close()
