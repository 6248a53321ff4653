"""Batching, caching, retries and cost control, written once around any Embedder.

Providers implement only ``embed_batch`` and ``count_tokens``; everything that decides
how often and how expensively they are called lives here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from ingest.embed.base import BatchingConfig, OverLongPolicy
from ingest.embed.cache import EmbeddingCache
from ingest.embed.errors import RateLimitedError
from schemas.errors import BudgetExceededError, EmbeddingError, TerminalError, TransientError
from schemas.ids import text_hash
from schemas.protocols import Embedder


class OverLongInputError(TerminalError):
    """An input exceeds the model's window and the policy is ``reject``."""


@dataclass
class EmbeddingStats:
    requests: int = 0
    embedded_texts: int = 0
    cache_hits: int = 0
    tokens: int = 0
    over_long: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_request(self, texts: int, tokens: int, cost: float) -> None:
        with self._lock:
            self.requests += 1
            self.embedded_texts += texts
            self.tokens += tokens
            self.cost_usd += cost


@dataclass(frozen=True)
class CostEstimate:
    texts: int
    uncached_texts: int
    tokens: int
    cost_usd: float


class _WaitRetryAfter(wait_base):
    """Exponential backoff with jitter, never shorter than the server's Retry-After."""

    def __init__(self, cap_s: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=cap_s)
        self._cap = cap_s

    def __call__(self, retry_state):  # type: ignore[no-untyped-def]
        backoff = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, RateLimitedError) else None
        return min(max(backoff, retry_after or 0.0), self._cap)


class EmbeddingClient:
    def __init__(self, embedder: Embedder, cache: EmbeddingCache | None, config: BatchingConfig,
                 price_per_million_tokens: float = 0.0, budget_usd: float | None = None) -> None:
        self.embedder = embedder
        self.config = config
        self.stats = EmbeddingStats()
        self._cache = cache
        self._price = price_per_million_tokens
        self._budget = budget_usd

    @property
    def model_version(self) -> str:
        return self.embedder.model_version

    @property
    def cache_key(self) -> str:
        """What a cached vector depends on: the model and how over-long inputs are handled."""
        return f"{self.embedder.model_version}|over-long={self.config.over_long.value}"

    def estimate(self, texts: Sequence[str]) -> CostEstimate:
        """Tokens and cost of embedding ``texts`` now, counting only cache misses."""
        unique = {text_hash(t): t for t in texts}
        cached = self._cache.get_many(self.cache_key, list(unique)) if self._cache else {}
        misses = [t for h, t in unique.items() if h not in cached]
        tokens = sum(self.embedder.count_tokens(misses)) if misses else 0
        return CostEstimate(len(texts), len(misses), tokens, tokens * self._price / 1_000_000)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in order (float32, shape (n, dimensions))."""
        hashes = [text_hash(t) for t in texts]
        unique = dict(zip(hashes, texts, strict=True))
        found = self._cache.get_many(self.cache_key, list(unique)) if self._cache else {}
        with self.stats._lock:
            self.stats.cache_hits += sum(1 for h in hashes if h in found)
        misses = {h: t for h, t in unique.items() if h not in found}
        if misses:
            fresh = self._embed_uncached(misses)
            if self._cache:
                self._cache.put_many(self.cache_key, fresh)
            found.update(fresh)
        out = np.empty((len(texts), self.embedder.dimensions), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = found[h]
        return out

    def _embed_uncached(self, misses: dict[str, str]) -> dict[str, np.ndarray]:
        keys = list(misses)
        counts = self.embedder.count_tokens([misses[k] for k in keys])
        pieces: list[tuple[str, str, int]] = []  # (key, text, tokens)
        for key, count in zip(keys, counts, strict=True):
            pieces.extend((key, text, n) for text, n in self._fit(misses[key], count))
        self._check_budget(sum(n for _, _, n in pieces))
        batches = list(self._batches(pieces))
        with ThreadPoolExecutor(max_workers=self.config.max_in_flight) as pool:
            results = list(pool.map(self._call_with_retry, batches))
        sums: dict[str, np.ndarray] = {}
        for batch, vectors in zip(batches, results, strict=True):
            for (key, _, _), vector in zip(batch, vectors, strict=True):
                sums[key] = sums[key] + vector if key in sums else np.array(vector, dtype=np.float32)
        return {k: v / max(float(np.linalg.norm(v)), 1e-12) for k, v in sums.items()}

    def _fit(self, text: str, count: int) -> list[tuple[str, int]]:
        """Apply the over-long policy: pieces of ``text`` that each fit the model."""
        limit = self.embedder.max_input_tokens
        if count <= limit:
            return [(text, count)]
        with self.stats._lock:
            self.stats.over_long += 1
        policy = self.config.over_long
        if policy is OverLongPolicy.REJECT:
            raise OverLongInputError(
                f"input of {count} tokens exceeds {self.embedder.model_version}'s limit of {limit} "
                f"(policy reject; starts {text[:60]!r})"
            )
        pieces = self._split_to_fit(text, count, limit)
        return pieces[:1] if policy is OverLongPolicy.TRUNCATE else pieces

    def _split_to_fit(self, text: str, count: int, limit: int) -> list[tuple[str, int]]:
        parts = math.ceil(count / limit * 1.15)
        size = math.ceil(len(text) / parts)
        cuts = [0]
        while cuts[-1] + size < len(text):
            cut = text.rfind(" ", cuts[-1] + size // 2, cuts[-1] + size)
            cuts.append(cut if cut > cuts[-1] else cuts[-1] + size)
        cuts.append(len(text))
        chunks = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b].strip()]
        out: list[tuple[str, int]] = []
        for chunk, n in zip(chunks, self.embedder.count_tokens(chunks), strict=True):
            out.extend([(chunk, n)] if n <= limit else self._split_to_fit(chunk, n, limit))
        return out

    def _batches(self, pieces: list[tuple[str, str, int]]) -> Iterator[list[tuple[str, str, int]]]:
        max_texts = min(self.config.max_batch_texts, self.embedder.max_batch)
        batch: list[tuple[str, str, int]] = []
        tokens = 0
        for piece in pieces:
            if batch and (len(batch) >= max_texts or tokens + piece[2] > self.config.max_batch_tokens):
                yield batch
                batch, tokens = [], 0
            batch.append(piece)
            tokens += piece[2]
        if batch:
            yield batch

    def _check_budget(self, tokens: int) -> None:
        if self._budget is None or not self._price:
            return
        cost = tokens * self._price / 1_000_000
        if self.stats.cost_usd + cost > self._budget:
            raise BudgetExceededError(
                f"embedding {tokens:,} more tokens would cost ${self.stats.cost_usd + cost:.4f}, over the run "
                f"budget of ${self._budget:.4f} (RAGLINE_EMBEDDING_BUDGET_USD); nothing more was embedded"
            )

    def _call_with_retry(self, batch: list[tuple[str, str, int]]) -> list[list[float]]:
        texts = [text for _, text, _ in batch]
        tokens = sum(n for _, _, n in batch)
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=_WaitRetryAfter(self.config.max_backoff_s),
            reraise=True,
        )
        try:
            vectors = retrying(self.embedder.embed_batch, texts)
        except TransientError as exc:
            raise EmbeddingError(f"embedding failed after {self.config.max_retries + 1} attempts: {exc}") from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(f"provider returned {len(vectors)} vectors for {len(texts)} inputs")
        self.stats.add_request(len(texts), tokens, tokens * self._price / 1_000_000)
        return vectors
