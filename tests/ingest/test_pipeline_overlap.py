"""The pipelined ingest: documents extracted, chunked and embedded side by side, with the
sequential guarantees kept (outcomes in input order, a bounded window, a repeated
document settled in order, an embedding failure confined to its documents), and the
cross-document embedding batcher (documents share requests, vectors unchanged)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from ingest.embed import BatchingConfig, EmbeddingClient
from ingest.embed.batcher import EmbeddingBatcher
from ingest.embed.local import LocalMiniLMEmbedder
from ingest.pipeline import DocumentOutcome
from ingest.sources import SourceOptions, iter_sources
from schemas import ids
from schemas.documents import SourceDocument
from schemas.errors import EmbeddingError
from services.wiring import Components

MakeComponents = Callable[..., Components]
TEXTS = [f"Note {i}: the {w} team reviews {i} incidents every week and files a report." for i, w in
         enumerate(["blue", "red", "green", "amber", "violet", "grey", "teal", "gold"] * 5)]


class GatedEmbedder:
    """The real model behind a gate: the first request waits until the test opens it, so
    that everything submitted meanwhile is pending at once (no timing involved)."""

    def __init__(self, inner: LocalMiniLMEmbedder) -> None:
        self._inner = inner
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []
        self.model_version, self.dimensions = inner.model_version, inner.dimensions
        self.max_input_tokens, self.max_batch = inner.max_input_tokens, inner.max_batch

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.started.set()
        self.gate.wait(30)
        self.batches.append(len(texts))
        return self._inner.embed_batch(texts)


class PoisonedEmbedder(GatedEmbedder):
    """Refuses any request holding the word "poison", as a provider refuses a bad input (400)."""

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        if any("poison" in t for t in texts):
            raise EmbeddingError("the provider refused the input (400)")
        return self._inner.embed_batch(texts)


def test_documents_share_requests_and_get_the_vectors_embedding_alone_gives(
        local_embedder: LocalMiniLMEmbedder) -> None:
    gated = GatedEmbedder(local_embedder)
    client = EmbeddingClient(gated, None, BatchingConfig())  # type: ignore[arg-type]
    results: dict[int, dict[str, np.ndarray]] = {}
    done = threading.Semaphore(0)

    def receiver(i: int) -> Callable[[dict[str, np.ndarray] | None, BaseException | None], None]:
        def receive(fresh: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
            assert error is None and fresh is not None
            results[i] = fresh
            done.release()
        return receive

    with EmbeddingBatcher(client) as batcher:
        batcher.submit(client.plan(TEXTS[:1]), receiver(0))
        assert gated.started.wait(30)  # the first request is in the model, held at the gate
        for i in range(1, len(TEXTS)):  # 39 one-chunk documents arrive meanwhile
            batcher.submit(client.plan(TEXTS[i:i + 1]), receiver(i))
        gated.gate.set()
        for _ in TEXTS:
            assert done.acquire(timeout=60)

    assert gated.batches == [1, 16, 16, 7]  # 40 documents, 4 requests
    alone = EmbeddingClient(local_embedder, None, BatchingConfig(max_batch_texts=1)).embed(TEXTS)  # type: ignore[arg-type]
    together = np.stack([next(iter(results[i].values())) for i in range(len(TEXTS))])
    # int8 activations are quantized per request, so batch-mates move a vector a little.
    assert np.min(np.sum(alone * together, axis=1)) > 0.995


def test_a_text_two_documents_wait_for_is_embedded_once(local_embedder: LocalMiniLMEmbedder) -> None:
    gated = GatedEmbedder(local_embedder)
    client = EmbeddingClient(gated, None, BatchingConfig())  # type: ignore[arg-type]
    got: list[dict[str, np.ndarray]] = []
    done = threading.Semaphore(0)

    def receive(fresh: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
        got.append(fresh or {})
        done.release()

    with EmbeddingBatcher(client) as batcher:
        batcher.submit(client.plan(["warm-up"]), lambda fresh, error: None)
        assert gated.started.wait(30)
        for _ in range(2):
            batcher.submit(client.plan(["the same boilerplate footer", "unique"]), receive)
        batcher.submit(client.plan([]), receive)  # nothing to embed: done at once
        gated.gate.set()
        for _ in range(3):
            assert done.acquire(timeout=60)
    assert gated.batches == [1, 2]
    assert got[0] == {} and got[1].keys() == got[2].keys() and len(got[1]) == 2


def inline(uri: str, text: str, tenant: str = "t") -> SourceDocument:
    return SourceDocument(uri, text.encode(), tenant)


def test_outcomes_come_in_input_order_and_the_window_stays_bounded(
        make_components: MakeComponents, corpora: Path, tmp_path: Path) -> None:
    comps = make_components()
    slow = corpora / "pdf" / "files" / "pdfplumber-federal-register-2020-17221.pdf"  # 15 pages: slow to parse
    folder = tmp_path / "notes"
    folder.mkdir()
    for i, text in enumerate(TEXTS[:12]):
        (folder / f"{i:02d}.txt").write_text(text)
    pulled = 0

    def sources() -> Iterator[object]:
        nonlocal pulled
        for source in iter_sources([str(slow), str(folder)], SourceOptions(tenant="t")):
            pulled += 1
            yield source

    pipeline = comps.pipeline()
    pipeline.max_documents = 4
    seen: list[str] = []

    def on_document(outcome: DocumentOutcome) -> None:
        seen.append(outcome.source_uri)
        assert pulled - len(seen) <= 3, "never more than max_documents in flight"

    summary = pipeline.ingest(sources(), on_document=on_document)  # type: ignore[arg-type]
    assert summary.documents["new"] == 13 and summary.errors == [], summary
    assert seen == [str(slow.resolve())] + [str((folder / f"{i:02d}.txt").resolve()) for i in range(12)]


def test_a_document_twice_in_one_run_is_settled_in_order(make_components: MakeComponents) -> None:
    comps = make_components()
    first, second = inline("upload://report", TEXTS[0]), inline("upload://report", TEXTS[1])
    outcomes: list[DocumentOutcome] = []
    summary = comps.pipeline().ingest([first, second, inline("upload://other", TEXTS[2]), first],
                                      on_document=outcomes.append)

    assert [o.status for o in outcomes] == ["new", "updated", "new", "updated"]
    assert summary.documents == {"new": 2, "updated": 2, "unchanged": 0, "failed": 0}
    doc = ids.document_id("t", "upload://report")
    record = comps.registry.get("t", doc)
    assert record is not None and record.version == ids.document_version(first.data)
    assert {v for (_, d, v) in comps.index.document_versions(comps.collection) if d == doc} == {record.version}
    # Only the version indexed last keeps its bytes.
    assert comps.source_store.get("t", record.version) == first.data
    assert comps.source_store.get("t", ids.document_version(second.data)) is None


def test_an_embedding_failure_fails_only_its_document(make_components: MakeComponents,
                                                      local_embedder: LocalMiniLMEmbedder) -> None:
    comps = make_components(embedding={"batching": {"max_batch_texts": 1}})
    comps.__dict__["embedder"] = PoisonedEmbedder(local_embedder)
    outcomes: list[DocumentOutcome] = []
    sources = [inline(f"upload://{i}", text) for i, text in enumerate(TEXTS[:6])]
    sources.insert(2, inline("upload://bad", "a poison paragraph the provider refuses"))
    summary = comps.pipeline().ingest(sources, on_document=outcomes.append)

    assert [o.status for o in outcomes] == ["new", "new", "failed", "new", "new", "new", "new"]
    assert "refused the input" in (outcomes[2].error or "") and summary.stopped is None
    record = comps.registry.get("t", ids.document_id("t", "upload://bad"))
    assert record is not None and record.status == "failed"


@pytest.mark.parametrize("estimate", [False, True])
def test_a_source_that_cannot_be_read_is_reported_in_its_place(make_components: MakeComponents,
                                                               tmp_path: Path, estimate: bool) -> None:
    comps = make_components()
    (tmp_path / "a.txt").write_text(TEXTS[0])
    outcomes: list[DocumentOutcome] = []
    comps.pipeline().ingest(iter_sources([str(tmp_path / "a.txt"), str(tmp_path / "missing.txt")],
                                         SourceOptions(tenant="t")), estimate_only=estimate,
                            on_document=outcomes.append)
    assert [(Path(o.source_uri).name, o.status) for o in outcomes] == [("a.txt", "new"), ("missing.txt", "failed")]
