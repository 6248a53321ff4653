"""Batching, caching, retries and cost control, written once around any Embedder.

Providers implement only ``embed_batch`` and ``count_tokens``; everything that decides
how often and how expensively they are called lives here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
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
class EmbeddingPlan:
    """Texts to embed: their hashes in order, the vectors the cache holds, and each missing
    text's pieces (one unless the over-long policy splits it) with their token counts."""

    hashes: list[str]
    found: dict[str, np.ndarray]
    misses: dict[str, list[tuple[str, int]]]

    @property
    def tokens(self) -> int:
        return sum(n for pieces in self.misses.values() for _, n in pieces)

    def pieces(self) -> list[tuple[str, str, int]]:
        return [(h, text, n) for h, pieces in self.misses.items() for text, n in pieces]


def unit(vector: np.ndarray) -> np.ndarray:
    """The vector scaled to length 1 (the sum of a split text's pieces, or one piece)."""
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


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
        self._reserved_usd = 0.0  # cost of the tokens admitted for embedding so far

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
        plan = self.plan(texts)
        fresh = self.embed_plan(plan)
        self.remember(fresh)
        return self.assemble(plan, fresh)

    def plan(self, texts: Sequence[str], same_as: Mapping[int, str] | None = None,
             hashes: Sequence[str] | None = None) -> EmbeddingPlan:
        """What embedding ``texts`` takes: the cached vectors (one lookup), and the misses cut
        to fit the model under the over-long policy (which may reject a text here).

        ``same_as``: position -> the text hash whose vector that text takes instead of its own
        (a near-duplicate reuses its canonical's), when that vector is cached or that text is
        among ``texts``; otherwise the text gets its own. ``hashes``: the texts' hashes, when
        the caller has computed them already."""
        own = list(hashes) if hashes is not None else [text_hash(t) for t in texts]
        unique = dict(zip(own, texts, strict=True))
        same_as = same_as or {}
        borrowed = {h for h in same_as.values() if h not in unique}
        found = self._cache.get_many(self.cache_key, [*unique, *borrowed]) if self._cache else {}
        hashes = [h if (h := same_as.get(i)) is not None and (h in unique or h in found) else mine
                  for i, mine in enumerate(own)]
        with self.stats._lock:
            self.stats.cache_hits += sum(1 for h in hashes if h in found)
        missing = {h: unique[h] for h in dict.fromkeys(hashes) if h not in found}
        counts = self.embedder.count_tokens(list(missing.values())) if missing else []
        misses = {h: self._fit(t, n) for (h, t), n in zip(missing.items(), counts, strict=True)}
        return EmbeddingPlan(hashes, found, misses)

    def embed_plan(self, plan: EmbeddingPlan) -> dict[str, np.ndarray]:
        """The vectors of a plan's misses (unit length, by text hash), within the budget."""
        self.reserve(plan.tokens)
        return self._embed_pieces(plan.pieces())

    def reserve(self, tokens: int) -> None:
        """Count ``tokens`` against the run's budget before they are sent (raises past it)."""
        if self._budget is None or not self._price:
            return
        cost = tokens * self._price / 1_000_000
        with self.stats._lock:
            if self._reserved_usd + cost > self._budget:
                raise BudgetExceededError(
                    f"embedding {tokens:,} more tokens would cost ${self._reserved_usd + cost:.4f}, over the run "
                    f"budget of ${self._budget:.4f} (RAGLINE_EMBEDDING_BUDGET_USD); nothing more was embedded")
            self._reserved_usd += cost

    @property
    def budgeted(self) -> bool:
        """Whether a run budget applies (then documents are admitted to embedding in order)."""
        return self._budget is not None and bool(self._price)

    def remember(self, fresh: dict[str, np.ndarray]) -> None:
        """Keep freshly embedded vectors in the persistent cache."""
        if self._cache and fresh:
            self._cache.put_many(self.cache_key, fresh)

    def assemble(self, plan: EmbeddingPlan, fresh: dict[str, np.ndarray]) -> np.ndarray:
        out = np.empty((len(plan.hashes), self.embedder.dimensions), dtype=np.float32)
        for i, h in enumerate(plan.hashes):
            out[i] = plan.found[h] if h in plan.found else fresh[h]
        return out

    def _embed_pieces(self, pieces: list[tuple[str, str, int]]) -> dict[str, np.ndarray]:
        """Embed (key, text, tokens) pieces, sorted by length so that a batch pads little."""
        if not pieces:
            return {}
        batches = list(self._batches(sorted(pieces, key=lambda p: p[2])))
        if len(batches) == 1 or self.config.max_in_flight == 1:
            results = [self.call(batch) for batch in batches]
        else:
            with ThreadPoolExecutor(max_workers=self.config.max_in_flight) as pool:
                results = list(pool.map(self.call, batches))
        sums: dict[str, np.ndarray] = {}
        for batch, vectors in zip(batches, results, strict=True):
            for (key, _, _), vector in zip(batch, vectors, strict=True):
                sums[key] = sums[key] + vector if key in sums else np.array(vector, dtype=np.float32)
        return {k: unit(v) for k, v in sums.items()}

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

    def call(self, batch: list[tuple[str, str, int]]) -> list[list[float]]:
        """One request for a batch of (key, text, tokens) pieces, retried on transient errors."""
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
