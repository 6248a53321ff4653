"""The transactional outbox sink: relational projection + CloudEvent in one transaction.

One answer is one transaction inserting its ``answers`` row, one ``answer_sources`` row
per retrieved chunk, one ``answer_documents`` row per document version, and the
outbox row holding its CloudEvent. Either all of it commits or the caller gets an error
and must not serve the answer: there is never an answer without lineage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Connection, Engine, Insert, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from lineage import events
from lineage.errors import AnswerStateError, DuplicateAnswerError, LineageStoreError
from lineage.tables import answer_documents, answer_sources, answers, outbox
from schemas import ids
from schemas.lineage import AnswerRecord, DocumentChange, RetrievedRef, TokenUsage


class SqlLineageStore:
    """:class:`schemas.protocols.LineageSink` on SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, deployment: str = "local", store_query_text: bool = True,
                 tenants_hashing_queries: Sequence[str] = ()) -> None:
        self._engine = engine
        self._deployment = deployment
        self._store_query_text = store_query_text
        self._hashing = frozenset(tenants_hashing_queries)

    def keeps_query_text(self, answer: AnswerRecord) -> bool:
        """Query text is stored unless the deployment, the tenant or the request opts out."""
        return self._store_query_text and answer.store_query_text and answer.tenant not in self._hashing

    def record_answer(self, answer: AnswerRecord) -> None:
        if answer.status == "streaming":
            raise AnswerStateError(f"answer {answer.answer_id}: use begin_stream for a streaming answer")
        with self._transaction(answer.answer_id) as conn:
            self._insert_rows(conn, answer)
            self._insert_event(conn, self._answer_event(answer))

    def begin_stream(self, answer: AnswerRecord) -> None:
        """Commit the rows (status ``streaming``) before the first byte is sent; no event yet."""
        with self._transaction(answer.answer_id) as conn:
            self._insert_rows(conn, answer.model_copy(update={"status": "streaming"}))

    def finish_stream(self, answer: AnswerRecord) -> None:
        """Finalize a stream (``complete``, ``incomplete`` when cut short) and enqueue its event.

        The status change is a compare-and-swap from ``streaming``: finishing twice, or
        finishing a stream never begun, is an :class:`AnswerStateError`.
        """
        if answer.status == "streaming":
            raise AnswerStateError(f"answer {answer.answer_id}: finish_stream needs a final status")
        with self._transaction(answer.answer_id) as conn:
            done = conn.execute(
                update(answers).where(answers.c.answer_id == answer.answer_id, answers.c.tenant == answer.tenant,
                                      answers.c.status == "streaming")
                .values(status=answer.status, finished_at=datetime.now(UTC), answer_text=answer.answer_text,
                        answer_sha256=ids.text_hash(answer.answer_text), usage=answer.usage.model_dump(),
                        timings_ms=answer.timings_ms, response=answer.response))
            if done.rowcount != 1:
                raise AnswerStateError(f"answer {answer.answer_id} is not streaming (never begun or already finished)")
            self._mark_cited(conn, answer)
            self._insert_event(conn, self._answer_event(answer))

    def find_answer(self, tenant: str, answer_id: str) -> AnswerRecord | None:
        try:
            with self._engine.connect() as conn:
                row = conn.execute(select(answers).where(answers.c.answer_id == answer_id,
                                                         answers.c.tenant == tenant)).mappings().first()
                if row is None:
                    return None
                refs = conn.execute(select(answer_sources).where(answer_sources.c.answer_id == answer_id)
                                    .order_by(answer_sources.c.rank)).mappings().all()
        except SQLAlchemyError as exc:
            raise LineageStoreError(f"reading answer {answer_id}: {exc}") from exc
        return record_from_rows(row, refs)

    def record_document_change(self, change: DocumentChange) -> None:
        """Enqueue a document indexed/deleted event (idempotent: the event id is deterministic)."""
        event = events.build_document_event(change, deployment=self._deployment)
        with self._transaction(change.document_id) as conn:
            self._insert_event(conn, event)

    def _answer_event(self, answer: AnswerRecord) -> CloudEvent:
        return events.build_answer_event(answer, deployment=self._deployment,
                                         keep_query_text=self.keeps_query_text(answer))

    def _insert_rows(self, conn: Connection, answer: AnswerRecord) -> None:
        created = events.utc(answer.created_at)
        conn.execute(answers.insert(), [_answer_row(answer, created, self.keeps_query_text(answer))])
        refs = answer.retrieved
        if not refs:
            return
        conn.execute(answer_sources.insert(), [
            {"answer_id": answer.answer_id, "rank": r.rank, "chunk_id": r.chunk_id, "document_id": r.document_id,
             "document_version": r.document_version, "source_uri": r.source_uri, "score": r.score,
             "cited": r.cited, "tenant": answer.tenant, "created_at": created} for r in refs])
        conn.execute(answer_documents.insert(), _document_rows(answer, created))

    def _mark_cited(self, conn: Connection, answer: AnswerRecord) -> None:
        """Citations are only known once a stream has ended."""
        cited = [r for r in answer.retrieved if r.cited]
        for ref in cited:
            conn.execute(update(answer_sources).where(answer_sources.c.answer_id == answer.answer_id,
                                                      answer_sources.c.rank == ref.rank).values(cited=True))
        for document_id, version in {(r.document_id, r.document_version) for r in cited}:
            conn.execute(update(answer_documents).where(
                answer_documents.c.answer_id == answer.answer_id, answer_documents.c.document_id == document_id,
                answer_documents.c.document_version == version).values(cited=True))

    def _insert_event(self, conn: Connection, event: CloudEvent) -> None:
        row = {"event_id": event.get_id(), "event_type": event.get_type(), "tenant": event.get_extension("tenant"),
               "event_time": event.get_time(), "payload": events.serialize(event), "status": "pending",
               "created_at": datetime.now(UTC)}
        conn.execute(insert_ignoring_duplicates(conn, outbox), [row])

    @contextmanager
    def _transaction(self, subject: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            if _is_answer_key_violation(exc):
                raise DuplicateAnswerError(subject) from exc
            raise LineageStoreError(f"recording lineage of {subject}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise LineageStoreError(f"recording lineage of {subject}: {exc}") from exc


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect (a repeated event is one row)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _is_answer_key_violation(exc: IntegrityError) -> bool:
    message = str(exc.orig).lower()
    return "pk_answers" in message or "answers.answer_id" in message


def _answer_row(answer: AnswerRecord, created: datetime, keep_query: bool) -> dict[str, Any]:
    return {
        "answer_id": answer.answer_id, "tenant": answer.tenant, "created_at": created,
        "finished_at": None if answer.status == "streaming" else datetime.now(UTC), "status": answer.status,
        "endpoint": answer.endpoint, "request_id": answer.request_id,
        "query": answer.query if keep_query else None, "query_sha256": ids.text_hash(answer.query),
        "answer_text": answer.answer_text, "answer_sha256": ids.text_hash(answer.answer_text),
        "embedding_model_version": answer.embedding_model_version,
        "prompt_template_version": answer.prompt_template_version,
        "prompt_template_sha256": answer.prompt_template_sha256, "llm_model_version": answer.llm_model_version,
        "retrieval_timestamp": events.utc(answer.retrieval_timestamp), "collection": answer.collection,
        "filters": answer.filters, "usage": answer.usage.model_dump(), "timings_ms": answer.timings_ms,
        "traceparent": answer.traceparent, "response": answer.response,
    }


def _document_rows(answer: AnswerRecord, created: datetime) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in answer.retrieved:
        key = (ref.document_id, ref.document_version)
        row = grouped.setdefault(key, {
            "answer_id": answer.answer_id, "document_id": ref.document_id, "document_version": ref.document_version,
            "tenant": answer.tenant, "created_at": created, "best_rank": ref.rank, "chunks": 0, "cited": False})
        row["best_rank"] = min(row["best_rank"], ref.rank)
        row["chunks"] += 1
        row["cited"] = row["cited"] or ref.cited
    return list(grouped.values())


def record_from_rows(row: Any, refs: Sequence[Any]) -> AnswerRecord:
    """Rebuild an AnswerRecord from its ``answers`` row and ``answer_sources`` rows."""
    return AnswerRecord(
        answer_id=row["answer_id"], tenant=row["tenant"], created_at=events.utc(row["created_at"]),
        status=row["status"], endpoint=row["endpoint"], request_id=row["request_id"], query=row["query"] or "",
        store_query_text=row["query"] is not None, answer_text=row["answer_text"],
        retrieved=[RetrievedRef(chunk_id=r["chunk_id"], document_id=r["document_id"],
                                document_version=r["document_version"], source_uri=r["source_uri"], rank=r["rank"],
                                score=r["score"], cited=r["cited"]) for r in refs],
        embedding_model_version=row["embedding_model_version"],
        prompt_template_version=row["prompt_template_version"],
        prompt_template_sha256=row["prompt_template_sha256"], llm_model_version=row["llm_model_version"],
        retrieval_timestamp=events.utc(row["retrieval_timestamp"]), collection=row["collection"],
        filters=row["filters"], usage=TokenUsage(**row["usage"]), timings_ms=row["timings_ms"],
        traceparent=row["traceparent"], response=row["response"],
    )
