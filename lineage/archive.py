"""The chunk archive: every chunk's text as it was indexed, forever, keyed by chunk_id.

A chunk id names one (document, version, pipeline, index), so its text never changes:
archiving is insert-or-ignore. This is what lets ``show`` and ``replay`` rebuild an
answer's prompt after its document changed or was deleted. ``forget`` is the one
exception, for erasure requests: it erases the text and keeps every id, so lineage
still says which answers used the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from lineage.base import ForgetReport
from lineage.errors import store_error
from lineage.store import insert_ignoring_duplicates
from lineage.tables import answer_documents, answers, chunk_archive
from schemas import ids
from schemas.documents import ArchivedChunk

#: What an answer's text and its quotes of a forgotten document become.
FORGOTTEN_ANSWER = "[erased: this answer used a document that was forgotten at its owner's request]"
FORGOTTEN_QUOTE = "[erased]"


def _redacted_response(response: Any, document_id: str) -> Any:
    """The stored API response with the answer and this document's quotes replaced."""
    if not isinstance(response, dict):
        return response
    citations = [{**c, "quote": FORGOTTEN_QUOTE} if isinstance(c, dict) and c.get("document_id") == document_id
                 else c for c in response.get("citations") or []]
    return {**response, "answer": FORGOTTEN_ANSWER, "citations": citations}


@dataclass(frozen=True, slots=True)
class ArchivedText:
    """An archived chunk as read back; ``text`` is None once the document was forgotten."""

    chunk_id: str
    document_id: str
    document_version: str
    source_uri: str
    chunk_index: int
    text: str | None
    page_start: int | None
    page_end: int | None


class SqlChunkArchive:
    """:class:`schemas.protocols.ChunkArchive` on the lineage database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def archive_chunks(self, chunks: Sequence[ArchivedChunk]) -> None:
        if not chunks:
            return
        now = datetime.now(UTC)
        rows = [{"chunk_id": c.chunk_id, "tenant": c.tenant, "document_id": c.document_id,
                 "document_version": c.document_version, "source_uri": c.source_uri, "chunk_index": c.chunk_index,
                 "text": c.text, "text_sha256": ids.text_hash(c.text), "page_start": c.page_start,
                 "page_end": c.page_end, "archived_at": now} for c in chunks]
        try:
            with self._engine.begin() as conn:
                conn.execute(insert_ignoring_duplicates(conn, chunk_archive), rows)
        except SQLAlchemyError as exc:
            raise store_error(f"archiving {len(rows)} chunks of {chunks[0].document_id}", exc) from exc

    def texts(self, tenant: str, chunk_ids: Sequence[str]) -> dict[str, ArchivedText]:
        """Archived chunks by id (one ``IN`` query); ids never archived are absent."""
        if not chunk_ids:
            return {}
        query = select(chunk_archive).where(chunk_archive.c.tenant == tenant,
                                            chunk_archive.c.chunk_id.in_(list(chunk_ids)))
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise store_error("reading archived chunks", exc) from exc
        return {r["chunk_id"]: ArchivedText(r["chunk_id"], r["document_id"], r["document_version"], r["source_uri"],
                                            r["chunk_index"], r["text"], r["page_start"], r["page_end"])
                for r in rows}

    def forget(self, tenant: str, document_id: str) -> ForgetReport:
        """Erase the text of every archived chunk of the document (all versions), keep ids,
        and rewrite every answer that used it: its text, and the quotes of its citations of
        this document, become a marker (ids and hashes stay, so lineage stays queryable).
        One transaction. The report lists the answers and the erased chunk texts' hashes
        (for the embedding cache)."""
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                hashes = conn.execute(
                    select(chunk_archive.c.text_sha256).distinct()
                    .where(chunk_archive.c.tenant == tenant, chunk_archive.c.document_id == document_id)
                ).scalars().all()
                erased = conn.execute(
                    update(chunk_archive)
                    .where(chunk_archive.c.tenant == tenant, chunk_archive.c.document_id == document_id,
                           chunk_archive.c.text.is_not(None))
                    .values(text=None, forgotten_at=now)).rowcount
                answer_ids = conn.execute(
                    select(answer_documents.c.answer_id).distinct()
                    .where(answer_documents.c.document_id == document_id, answer_documents.c.tenant == tenant)
                    .order_by(answer_documents.c.answer_id)).scalars().all()
                redacted = self._redact_answers(conn, tenant, document_id, list(answer_ids))
        except SQLAlchemyError as exc:
            raise store_error(f"forgetting document {document_id}", exc) from exc
        return ForgetReport(tenant, document_id, erased, tuple(answer_ids), redacted, tuple(sorted(hashes)))

    @staticmethod
    def _redact_answers(conn: Connection, tenant: str, document_id: str, answer_ids: list[str]) -> int:
        redacted = 0
        for i in range(0, len(answer_ids), 500):
            rows = conn.execute(select(answers.c.answer_id, answers.c.response).where(
                answers.c.tenant == tenant, answers.c.answer_id.in_(answer_ids[i : i + 500]))).all()
            for answer_id, response in rows:
                conn.execute(update(answers).where(answers.c.answer_id == answer_id).values(
                    answer_text=FORGOTTEN_ANSWER, response=_redacted_response(response, document_id)))
                redacted += 1
        return redacted
