"""Auditor queries on the relational projection.

"Which answers used document X [version V] [between T1 and T2], newest first" reads
``answer_documents`` through ``(document_id[, document_version], created_at,
answer_id)``: an index range scan in both SQLite and PostgreSQL, paginated by keyset
(the last row's ``(created_at, answer_id)``), so page 1,000 costs what page 1 does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from lineage.archive import SqlChunkArchive
from lineage.errors import InvalidCursorError, store_error
from lineage.events import utc
from lineage.store import record_from_rows
from lineage.tables import answer_documents, answer_sources, answers, outbox, outbox_pending
from schemas.lineage import AnswerRecord


@dataclass(frozen=True, slots=True)
class AnswerUse:
    """One answer that used the document (its best-ranked chunk of it, and whether cited)."""

    answer_id: str
    created_at: datetime
    tenant: str
    document_version: str
    rank: int
    cited: bool
    chunks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class AnswerPage:
    answers: list[AnswerUse]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"answers": [a.to_dict() for a in self.answers], "next_cursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class SourceTrace:
    chunk_id: str
    document_id: str
    document_version: str
    source_uri: str
    rank: int
    score: float
    cited: bool
    text: str | None  # None: never archived, or forgotten
    forgotten: bool
    page_start: int | None
    page_end: int | None


@dataclass(frozen=True, slots=True)
class AnswerTrace:
    """The full trace of one answer: what was asked, retrieved (with archived text) and by which versions."""

    record: AnswerRecord
    query_sha256: str
    answer_sha256: str
    finished_at: datetime | None
    sources: list[SourceTrace]

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "answer_id": r.answer_id, "tenant": r.tenant, "status": r.status, "endpoint": r.endpoint,
            "request_id": r.request_id, "created_at": r.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "query": r.query if r.store_query_text else None, "query_sha256": self.query_sha256,
            "answer_text": r.answer_text, "answer_sha256": self.answer_sha256,
            "embedding_model_version": r.embedding_model_version, "prompt_template_version": r.prompt_template_version,
            "prompt_template_sha256": r.prompt_template_sha256, "llm_model_version": r.llm_model_version,
            "retrieval_timestamp": r.retrieval_timestamp.isoformat(), "collection": r.collection,
            "filters": r.filters, "usage": r.usage.model_dump(), "timings_ms": r.timings_ms,
            "traceparent": r.traceparent, "retrieved": [asdict(s) for s in self.sources],
        }


class LineageQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Reads need no transaction: autocommit saves PostgreSQL the BEGIN and the ROLLBACK
        # round trips around every lookup (the query is one statement, one snapshot).
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._archive = SqlChunkArchive(engine)

    def answers_for_document(self, document_id: str, *, tenant: str | None = None, version: str | None = None,
                             since: datetime | None = None, until: datetime | None = None, limit: int = 50,
                             cursor: str | None = None) -> AnswerPage:
        """Answers that used the document, newest first; ``until`` is exclusive; ``tenant``
        None means every tenant (operators' CLI), the API always passes the caller's."""
        query = _uses_query(document_id, tenant, version, since, until, cursor).limit(limit + 1)
        rows = self._read(f"answers that used {document_id}", query)
        uses = [AnswerUse(r.answer_id, utc(r.created_at), r.tenant, r.document_version, r.best_rank, r.cited,
                          r.chunks) for r in rows[:limit]]
        more = len(rows) > limit
        return AnswerPage(uses, _cursor(uses[-1]) if more and uses else None)

    def answer_trace(self, answer_id: str, *, tenant: str | None = None) -> AnswerTrace | None:
        where = [answers.c.answer_id == answer_id] + ([answers.c.tenant == tenant] if tenant else [])
        found = self._read(f"answer {answer_id}", select(answers).where(*where))
        if not found:
            return None
        row = found[0]._mapping
        refs = [r._mapping for r in self._read(f"sources of {answer_id}", select(answer_sources).where(
            answer_sources.c.answer_id == answer_id).order_by(answer_sources.c.rank))]
        record = record_from_rows(row, refs)
        archived = self._archive.texts(record.tenant, [r.chunk_id for r in record.retrieved])
        sources = []
        for ref in record.retrieved:
            chunk = archived.get(ref.chunk_id)
            sources.append(SourceTrace(
                ref.chunk_id, ref.document_id, ref.document_version, ref.source_uri, ref.rank, ref.score, ref.cited,
                chunk.text if chunk else None, bool(chunk and chunk.text is None),
                chunk.page_start if chunk else None, chunk.page_end if chunk else None))
        finished = utc(row["finished_at"]) if row["finished_at"] else None
        return AnswerTrace(record, row["query_sha256"], row["answer_sha256"], finished, sources)

    def counts(self) -> dict[str, int]:
        """Row counts an operator checks at a glance."""
        queries = {
            "answers": select(func.count()).select_from(answers),
            "answer_sources": select(func.count()).select_from(answer_sources),
            "outbox_pending": select(func.count()).select_from(outbox_pending),
            "outbox": select(func.count()).select_from(outbox),
        }
        counts = {name: int(self._read(name, q)[0][0]) for name, q in queries.items()}
        counts["outbox_sent"] = counts.pop("outbox") - counts["outbox_pending"]
        return counts

    def _read(self, what: str, query: Select[Any]) -> Sequence[Any]:
        try:
            with self._reader.connect() as conn:
                return conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise store_error(f"reading {what}", exc) from exc


def _uses_query(document_id: str, tenant: str | None, version: str | None, since: datetime | None,
                until: datetime | None, cursor: str | None) -> Select[Any]:
    t = answer_documents
    where = [t.c.document_id == document_id]
    if version:
        where.append(t.c.document_version == version)
    if tenant:
        where.append(t.c.tenant == tenant)
    if since:
        where.append(t.c.created_at >= utc(since))
    if until:
        where.append(t.c.created_at < utc(until))
    if cursor:
        at, answer_id = _decode_cursor(cursor)
        where.append(or_(t.c.created_at < at, and_(t.c.created_at == at, t.c.answer_id < answer_id)))
    return select(t).where(*where).order_by(t.c.created_at.desc(), t.c.answer_id.desc())


def _cursor(last: AnswerUse) -> str:
    raw = json.dumps([last.created_at.isoformat(), last.answer_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, answer_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return utc(datetime.fromisoformat(at)), str(answer_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError(f"invalid cursor {cursor!r}") from exc
