"""EmbeddingClient around real providers: the offline MiniLM model, and the real ``openai``
SDK talking to a fake OpenAI embeddings endpoint (a paid API cannot run here)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np
import openai
import pytest

from ingest.embed import BatchingConfig, EmbeddingCache, EmbeddingClient, OverLongInputError, OverLongPolicy
from ingest.embed.local import LocalMiniLMEmbedder
from ingest.embed.openai_embedder import OpenAIEmbedder
from schemas.errors import EmbeddingError
from services.wiring import Components

#: Permutations of eight one-piece words: every text is exactly 8 + [CLS] + [SEP] = 10 pieces.
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far"]
TEN_PIECE_TEXTS = [" ".join(p) for p in itertools.islice(itertools.permutations(WORDS), 40)]
LONG_TEXT = " ".join(f"Sentence {i} explains how the retention policy treats archived records." for i in range(100))


@pytest.fixture
def cache(make_components: Callable[..., Components]) -> EmbeddingCache:
    """The persistent cache on a fresh, migrated SQLite database."""
    return EmbeddingCache(make_components().engine)


def client(embedder: object, cache: EmbeddingCache | None = None, price: float = 0.0, **batching: object
           ) -> EmbeddingClient:
    return EmbeddingClient(embedder, cache, BatchingConfig(**batching), price)  # type: ignore[arg-type]


# --- the real offline model ---------------------------------------------------------------


def test_second_call_is_served_from_the_cache(local_embedder: LocalMiniLMEmbedder, cache: EmbeddingCache) -> None:
    texts = ["retention of audit logs", "severity 1 incidents are acknowledged in 5 minutes"]
    first = client(local_embedder, cache)
    vectors = first.embed(texts)
    assert first.stats.requests == 1 and first.stats.embedded_texts == 2 and first.stats.cache_hits == 0

    again = first.embed(texts)
    assert first.stats.requests == 1 and first.stats.cache_hits == 2
    np.testing.assert_array_equal(again, vectors)
    # The cache is persistent: a new client (a new run) on the same database embeds nothing.
    later = client(local_embedder, cache)
    np.testing.assert_array_equal(later.embed(texts[::-1]), vectors[::-1])
    assert later.stats.requests == 0 and later.stats.cache_hits == 2
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_identical_texts_are_embedded_once(local_embedder: LocalMiniLMEmbedder) -> None:
    c = client(local_embedder)
    vectors = c.embed(["alpha", "beta", "alpha", "alpha"])
    assert c.stats.embedded_texts == 2 and c.stats.requests == 1
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[0], vectors[3])
    assert not np.allclose(vectors[0], vectors[1])


def test_embeddings_keep_meaning(local_embedder: LocalMiniLMEmbedder) -> None:
    a, b, c = client(local_embedder).embed(
        ["How quickly must a sev-1 incident be acknowledged?",
         "Severity 1 incidents are acknowledged within five minutes.",
         "Bake the bread at 220 degrees for forty minutes."])
    assert float(a @ b) > float(a @ c) + 0.3


def test_over_long_inputs_follow_the_policy(local_embedder: LocalMiniLMEmbedder) -> None:
    (count,) = local_embedder.count_tokens([LONG_TEXT])
    assert count > 3 * local_embedder.max_input_tokens

    split = client(local_embedder, over_long=OverLongPolicy.SPLIT)
    v_split = split.embed([LONG_TEXT, "short"])
    assert split.stats.over_long == 1
    windows = -(-count // local_embedder.max_input_tokens)
    assert split.stats.embedded_texts >= 1 + windows  # every window of the long text, plus the short one
    assert split.stats.tokens >= count

    truncate = client(local_embedder, over_long=OverLongPolicy.TRUNCATE)
    v_trunc = truncate.embed([LONG_TEXT, "short"])
    assert truncate.stats.over_long == 1 and truncate.stats.embedded_texts == 2
    assert truncate.stats.tokens <= local_embedder.max_input_tokens + 1

    np.testing.assert_allclose(np.linalg.norm(v_split, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(v_split[1], v_trunc[1], atol=1e-6)  # the short text is untouched
    assert 0.5 < float(v_split[0] @ v_trunc[0]) < 0.9999  # same topic, different coverage

    reject = client(local_embedder, over_long=OverLongPolicy.REJECT)
    with pytest.raises(OverLongInputError, match=r"exceeds .*limit of 256 \(policy reject"):
        reject.embed(["short", LONG_TEXT])
    assert reject.stats.over_long == 1 and reject.stats.requests == 0


def test_batches_by_count(local_embedder: LocalMiniLMEmbedder) -> None:
    c = client(local_embedder, max_batch_texts=4)
    c.embed(TEN_PIECE_TEXTS[:10])
    assert c.stats.requests == 3 and c.stats.embedded_texts == 10  # 4 + 4 + 2

    capped = client(local_embedder, max_batch_texts=1000)  # the model's own max_batch (16) still caps it
    capped.embed(TEN_PIECE_TEXTS)
    assert capped.stats.requests == 3  # 16 + 16 + 8


def test_batches_by_tokens(local_embedder: LocalMiniLMEmbedder) -> None:
    assert set(local_embedder.count_tokens(TEN_PIECE_TEXTS)) == {10}
    c = client(local_embedder, max_batch_tokens=25)
    c.embed(TEN_PIECE_TEXTS[:7])
    assert c.stats.requests == 4 and c.stats.tokens == 70  # 2 + 2 + 2 + 1 texts of 10 pieces


def test_requests_in_flight_keep_order(local_embedder: LocalMiniLMEmbedder) -> None:
    serial = client(local_embedder, max_batch_texts=3).embed(TEN_PIECE_TEXTS[:12])
    parallel = client(local_embedder, max_batch_texts=3, max_in_flight=4)
    np.testing.assert_allclose(parallel.embed(TEN_PIECE_TEXTS[:12]), serial, atol=1e-6)
    assert parallel.stats.requests == 4


# --- the real openai SDK against a fake endpoint ------------------------------------------


@dataclass
class FakeOpenAIEmbeddings(httpx.MockTransport):
    """Answers ``POST /v1/embeddings`` like OpenAI does: first the scripted error responses
    (status, headers, body), then 200 with deterministic unit vectors (base64 when the SDK
    asks for it). Records every call with its arrival time."""

    errors: Sequence[tuple[int, dict[str, str], dict[str, object]]] = ()
    dimensions: int = 1536
    calls: list[tuple[float, dict[str, object]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.respond)

    def respond(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append((time.monotonic(), body))
        assert request.url.path == "/v1/embeddings" and request.headers["authorization"] == "Bearer x"
        if len(self.calls) <= len(self.errors):
            status, headers, error = self.errors[len(self.calls) - 1]
            return httpx.Response(status, headers=headers, json={"error": error})
        data = []
        for i, text in reversed(list(enumerate(body["input"]))):  # out of order, as the API allows
            vector = fake_vector(text, self.dimensions)
            encoded = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                       if body.get("encoding_format") == "base64" else vector.tolist())
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(t.split()) for t in body["input"])
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"],
                                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def gaps(self) -> list[float]:
        times = [t for t, _ in self.calls]
        return [b - a for a, b in zip(times, times[1:], strict=False)]


def fake_vector(text: str, dimensions: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vector / np.linalg.norm(vector)


def openai_embedder(fake: FakeOpenAIEmbeddings, dimensions: int | None = None) -> OpenAIEmbedder:
    emb = OpenAIEmbedder("text-embedding-3-small", api_key="x", base_url="http://fake/v1", dimensions=dimensions)
    emb._client = openai.OpenAI(api_key="x", base_url="http://fake/v1", max_retries=0,
                                http_client=httpx.Client(transport=fake))
    return emb


def rate_limited(retry_after: str) -> tuple[int, dict[str, str], dict[str, object]]:
    return 429, {"retry-after": retry_after}, {"message": "Rate limit reached", "type": "requests",
                                              "code": "rate_limit_exceeded"}


def test_openai_embedder_accepts_any_compatible_base_url() -> None:
    emb = OpenAIEmbedder("text-embedding-3-small", api_key="x", base_url="http://fake/v1")
    assert str(emb._client.base_url) == "http://fake/v1/"
    assert emb._client.max_retries == 0, "retries belong to the EmbeddingClient, not the SDK"
    assert (emb.dimensions, emb.max_input_tokens) == (1536, 8191)
    assert emb.model_version == "openai:text-embedding-3-small:1536"


def test_vectors_come_back_in_input_order() -> None:
    fake = FakeOpenAIEmbeddings()
    c = client(openai_embedder(fake), max_batch_texts=2)
    texts = ["one", "two", "three"]
    vectors = c.embed(texts)
    np.testing.assert_allclose(vectors, [fake_vector(t, 1536) for t in texts], atol=1e-6)
    assert [body["input"] for _, body in fake.calls] == [["one", "two"], ["three"]]
    assert all(body["model"] == "text-embedding-3-small" and "dimensions" not in body for _, body in fake.calls)


def test_shortened_dimensions_are_requested() -> None:
    fake = FakeOpenAIEmbeddings(dimensions=256)
    emb = openai_embedder(fake, dimensions=256)
    assert client(emb).embed(["x"]).shape == (1, 256)
    assert fake.calls[0][1]["dimensions"] == 256


def test_rate_limits_are_retried_after_the_server_says() -> None:
    fake = FakeOpenAIEmbeddings(errors=[rate_limited("0.2"), rate_limited("0.2")])
    c = client(openai_embedder(fake), max_backoff_s=0.3)

    vectors = c.embed(["hello world"])

    assert len(fake.calls) == 3
    assert all(gap >= 0.2 - 0.01 for gap in fake.gaps())
    assert c.stats.requests == 1 and c.stats.embedded_texts == 1
    np.testing.assert_allclose(vectors[0], fake_vector("hello world", 1536), atol=1e-6)


def test_retry_after_beyond_the_backoff_is_honoured() -> None:
    # The first backoff is at most 0.5 s + 1 s of jitter: only Retry-After explains a longer wait.
    fake = FakeOpenAIEmbeddings(errors=[rate_limited("1.6")])
    c = client(openai_embedder(fake))
    c.embed(["hello"])
    assert len(fake.calls) == 2 and fake.gaps()[0] >= 1.6 - 0.01


def test_server_errors_are_retried_and_give_up_eventually() -> None:
    overloaded = (503, {}, {"message": "overloaded", "type": "server_error"})
    fake = FakeOpenAIEmbeddings(errors=[overloaded] * 3)
    c = client(openai_embedder(fake), max_retries=2, max_backoff_s=0.01)
    with pytest.raises(EmbeddingError, match="after 3 attempts"):
        c.embed(["hello"])
    assert len(fake.calls) == 3 and c.stats.requests == 0


def test_a_bad_request_fails_without_retry() -> None:
    invalid = (400, {}, {"message": "Invalid input", "type": "invalid_request_error"})
    fake = FakeOpenAIEmbeddings(errors=[invalid, invalid])
    c = client(openai_embedder(fake), max_backoff_s=0.01)
    with pytest.raises(EmbeddingError, match=r"rejected \(400\): .*Invalid input"):
        c.embed(["hello"])
    assert len(fake.calls) == 1 and c.stats.requests == 0


def test_cost_is_tokens_times_price(cache: EmbeddingCache) -> None:
    fake = FakeOpenAIEmbeddings()
    emb = openai_embedder(fake)
    c = client(emb, cache, price=emb.price_per_million_tokens)
    texts = ["The retention policy keeps audit logs for seven years.", "Severity 1: acknowledge in 5 minutes."]
    tokens = sum(emb.count_tokens(texts))

    estimate = c.estimate(texts + texts[:1])
    assert (estimate.texts, estimate.uncached_texts, estimate.tokens) == (3, 2, tokens)
    assert estimate.cost_usd == pytest.approx(tokens * 0.02 / 1_000_000)
    assert fake.calls == [], "an estimate calls no model"

    c.embed(texts)
    assert c.stats.tokens == tokens and c.stats.cost_usd == pytest.approx(estimate.cost_usd)
    assert c.estimate(texts).cost_usd == 0.0, "cached texts cost nothing"
