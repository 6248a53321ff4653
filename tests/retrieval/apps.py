"""One application over a few Markdown documents, on either index backend the retrieval
tests run against (Qdrant Edge, qdrant-client's local mode)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas.documents import SourceDocument
from services.application import Application

BACKENDS = ["edge", "qdrant-local"]


def application_over(make_components: Any, tmp_path: Path, backend: str, docs: Mapping[str, str]) -> Application:
    """``docs`` (document id -> Markdown) ingested, each one new."""
    extra = {} if backend == "edge" else {"index": {"backend": "qdrant", "qdrant_path": tmp_path / "q"}}
    application = Application(make_components(**extra))
    for name, text in docs.items():
        outcome = application.ingestion.ingest_document(SourceDocument(
            source_uri=f"mem://{name}.md", data=text.encode(), document_id=name, media_type="text/markdown"))
        assert outcome.status == "new", outcome.error
    return application
