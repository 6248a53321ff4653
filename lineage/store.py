"""The transactional outbox sink: relational projection + CloudEvent in one transaction.

One answer is one transaction inserting its ``answers`` row, one ``answer_sources`` row
per retrieved chunk, one ``answer_documents`` row per document version, and the
outbox row holding its CloudEvent (with its ``outbox_pending`` row). Either all of it
commits or the caller gets an error and must not serve the answer: there is never an
answer without lineage.

``record_answer`` is on the query path, so it skips SQLAlchemy's per-statement work:
fixed INSERT texts run on the DBAPI connection, one ``executemany`` per table, with
SQLAlchemy's own bind processors (values are stored exactly as the Core path stores
them). On PostgreSQL the whole answer is one statement (data-modifying CTEs, multi-row
VALUES) sent with its COMMIT in one pipelined round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Column, Connection, Dialect, Engine, Insert, Table, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from lineage import events
from lineage.errors import AnswerStateError, DuplicateAnswerError, LineageError, store_error
from lineage.tables import answer_documents, answer_sources, answers, forget_receipts, outbox, outbox_pending
from schemas import ids
from schemas.lineage import AnswerRecord, DocumentChange, RetrievedRef, TokenUsage

log = logging.getLogger(__name__)


class SqlLineageStore:
    """:class:`schemas.protocols.LineageSink` on SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, deployment: str = "local") -> None:
        self._engine = engine
        self._deployment = deployment
        self._sql = _Statements(engine.dialect)

    @staticmethod
    def keeps_query_text(answer: AnswerRecord) -> bool:
        """The record says whether its query text may be kept (the answering use case applies
        the deployment's and the tenant's policy); otherwise only its SHA-256 is."""
        return answer.store_query_text

    def record_answer(self, answer: AnswerRecord) -> None:
        if answer.status == "streaming":
            raise AnswerStateError(f"answer {answer.answer_id}: use begin_stream for a streaming answer")
        self._write(answer, self._answer_event(answer))

    def begin_stream(self, answer: AnswerRecord) -> None:
        """Commit the rows (status ``streaming``) before the first byte is sent; no event yet."""
        self._write(answer.model_copy(update={"status": "streaming"}), None)

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

    def finalize_stale_streams(self, older_than_s: float, limit: int = 500) -> list[str]:
        """Finalize streams begun more than ``older_than_s`` ago and never finished (their
        process died mid-stream) as ``incomplete``, each with its outbox event: the event of a
        stream cut short. Returns their answer ids. Each is a compare-and-swap from
        ``streaming``: two relays never finalize one stream twice, and a live stream finishing
        after it only loses that race (its ``finish_stream`` is an :class:`AnswerStateError`)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        # The literal lets SQLite and PostgreSQL use the partial index of streaming rows.
        query = (select(answers.c.answer_id)
                 .where(answers.c.status == literal_column("'streaming'"), answers.c.created_at <= cutoff)
                 .order_by(answers.c.created_at).limit(limit))
        try:
            with self._engine.connect() as conn:
                stale = list(conn.execute(query).scalars())
        except SQLAlchemyError as exc:
            raise store_error("finding stale streams", exc) from exc
        finalized = []
        for answer_id in stale:
            try:
                if self._finalize_stale(answer_id):
                    finalized.append(answer_id)
            except LineageError as exc:  # one bad row never blocks the others; it is retried next pass
                log.warning("finalizing stale stream %s failed: %s", answer_id, exc)
        return finalized

    def _finalize_stale(self, answer_id: str) -> bool:
        with self._transaction(answer_id) as conn:
            done = conn.execute(update(answers).where(answers.c.answer_id == answer_id, answers.c.status == "streaming")
                                .values(status="incomplete", finished_at=datetime.now(UTC)))
            if done.rowcount != 1:
                return False  # finished meanwhile, by its own process or another relay
            row = conn.execute(select(answers).where(answers.c.answer_id == answer_id)).mappings().one()
            refs = conn.execute(select(answer_sources).where(answer_sources.c.answer_id == answer_id)
                                .order_by(answer_sources.c.rank)).mappings().all()
            record = record_from_rows(row, refs)
            self._insert_event(conn, events.build_answer_event(
                record, deployment=self._deployment, keep_query_text=self.keeps_query_text(record),
                query_sha256=row["query_sha256"]))
        return True

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
            raise store_error(f"reading answer {answer_id}", exc) from exc
        return record_from_rows(row, refs)

    def record_document_change(self, change: DocumentChange) -> None:
        """Enqueue a document indexed/deleted event (idempotent: the event id is deterministic)."""
        event = events.build_document_event(change, deployment=self._deployment)
        with self._transaction(change.document_id) as conn:
            if change.receipt is not None:  # an erasure: its receipt and its event commit together
                conn.execute(insert_ignoring_duplicates(conn, forget_receipts), [{
                    "receipt_id": change.receipt["receipt_id"], "tenant": change.tenant,
                    "document_id": change.document_id, "erased_at": change.occurred_at,
                    "actor": str(change.receipt.get("actor", "")), "receipt": change.receipt}])
            self._insert_event(conn, event)

    def _answer_event(self, answer: AnswerRecord) -> CloudEvent:
        return events.build_answer_event(answer, deployment=self._deployment,
                                         keep_query_text=self.keeps_query_text(answer))

    def _write(self, answer: AnswerRecord, event: CloudEvent | None) -> None:
        """One transaction on the DBAPI connection: the answer's rows, and its event if any."""
        sql = self._sql
        created = events.utc(answer.created_at)
        statements = [(sql.answers, [_answer_row(answer, created, self.keeps_query_text(answer))])]
        if answer.retrieved:
            statements += [(sql.sources, _source_rows(answer, created)),
                           (sql.documents, _document_rows(answer, created))]
        queued = _event_row(event) if event is not None else None
        try:
            raw = self._engine.raw_connection()
        except SQLAlchemyError as exc:
            raise store_error(f"recording lineage of {answer.answer_id}", exc) from exc
        cursor = None
        try:
            cursor = raw.cursor()
            if sql.postgres:
                text, params = sql.combined(statements, queued)
                with raw.driver_connection.pipeline():  # type: ignore[union-attr]  # (a checked-out connection has one)
                    cursor.execute(text, params)
                    raw.commit()  # in the pipeline: the statement and COMMIT in one round trip
            else:
                for statement, rows in statements:
                    cursor.executemany(statement.text, statement.bind(rows))
                if queued is not None:
                    cursor.execute(sql.event.text, sql.event.bind([queued])[0])
                    if cursor.rowcount == 1:  # not a repeat of a queued event
                        cursor.execute(sql.pending.text, sql.pending.bind([(cursor.lastrowid, queued[-1])])[0])
                raw.commit()
        except sql.dbapi_error as exc:
            _rollback_quietly(raw)
            if self._engine.dialect.is_disconnect(exc, raw.dbapi_connection, cursor):  # type: ignore[arg-type]
                raw.invalidate(exc)
            if isinstance(exc, sql.integrity_error) and (
                    _is_answer_key_violation(exc) or sql.postgres and _answer_exists(raw, answer.answer_id)):
                # One PostgreSQL statement may report a child row's key first: the answer's own row decides.
                raise DuplicateAnswerError(answer.answer_id) from exc
            raise store_error(f"recording lineage of {answer.answer_id}", exc) from exc
        finally:
            raw.close()

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
        """The outbox row and, unless the event was already queued, its pending row."""
        row = dict(zip(_EVENT_COLUMNS, _event_row(event), strict=True))
        seq = conn.execute(insert_ignoring_duplicates(conn, outbox).returning(outbox.c.seq), [row]).scalar()
        if seq is not None:
            conn.execute(outbox_pending.insert(), [{"seq": seq, "created_at": row["created_at"]}])

    @contextmanager
    def _transaction(self, subject: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            if _is_answer_key_violation(exc):
                raise DuplicateAnswerError(subject) from exc
            raise store_error(f"recording lineage of {subject}", exc) from exc
        except SQLAlchemyError as exc:
            raise store_error(f"recording lineage of {subject}", exc) from exc


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect (a repeated event is one row)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement: Insert = dialect.insert(table).on_conflict_do_nothing()
    return statement


def _is_answer_key_violation(exc: BaseException) -> bool:
    message = str(exc.orig if isinstance(exc, IntegrityError) else exc).lower()
    return "pk_answers" in message or "answers.answer_id" in message


class _Statement:
    """An INSERT text for the DBAPI and the bind processors of its columns."""

    def __init__(self, dialect: Dialect, table: Table, columns: Sequence[Column[Any]], suffix: str = "") -> None:
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.name == "sqlite" else "%s"
        self.text = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) "
                     f"VALUES ({', '.join([mark] * len(columns))}){suffix}")
        self._processors = [(i, p) for i, c in enumerate(columns)
                            if (p := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None]

    def bind(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not self._processors:
            return list(rows)
        out = []
        for row in rows:
            values = list(row)
            for i, process in self._processors:
                values[i] = process(values[i])
            out.append(tuple(values))
        return out


class _Statements:
    """The write path's statements in one dialect, built once per store."""

    def __init__(self, dialect: Dialect) -> None:
        self.postgres = dialect.name == "postgresql"
        dbapi = dialect.loaded_dbapi
        self.dbapi_error: type[Exception] = dbapi.Error
        self.integrity_error: type[Exception] = dbapi.IntegrityError
        self.answers = _Statement(dialect, answers, list(answers.columns))
        self.sources = _Statement(dialect, answer_sources, [answer_sources.c[n] for n in _SOURCE_COLUMNS])
        self.documents = _Statement(dialect, answer_documents, [answer_documents.c[n] for n in _DOCUMENT_COLUMNS])
        event_columns = [outbox.c[n] for n in _EVENT_COLUMNS]
        # PostgreSQL: RETURNING feeds the pending row in the same statement (only a new event is queued).
        self.event = _Statement(dialect, outbox, event_columns,
                                " ON CONFLICT DO NOTHING" + (" RETURNING seq, created_at" if self.postgres else ""))
        self.pending = _Statement(dialect, outbox_pending, [outbox_pending.c.seq, outbox_pending.c.created_at])
        self._combined: dict[tuple[int, int, bool], str] = {}

    def combined(self, statements: Sequence[tuple[_Statement, list[tuple[Any, ...]]]],
                 queued: tuple[Any, ...] | None) -> tuple[str, list[Any]]:
        """PostgreSQL: every insert of one answer as a single statement (one text per shape,
        which psycopg prepares after a few uses)."""
        parts = [*statements, *([(self.event, [queued])] if queued is not None else [])]
        shape = (len(parts[1][1]) if len(parts) > 2 else 0, len(parts[2][1]) if len(parts) > 2 else 0,
                 queued is not None)
        text = self._combined.get(shape)
        if text is None:
            ctes = [_multi_row(statement.text, len(rows)) for statement, rows in parts]
            if queued is not None:
                ctes.append("INSERT INTO outbox_pending (seq, created_at) "
                            f"SELECT seq, created_at FROM w{len(ctes) - 1}")
            text = ("WITH " + ", ".join(f"w{i} AS ({cte})" for i, cte in enumerate(ctes[:-1])) + " " + ctes[-1]
                    if len(ctes) > 1 else ctes[0])
            self._combined[shape] = text
        return text, [value for statement, rows in parts for row in statement.bind(rows) for value in row]


_SOURCE_COLUMNS = ("answer_id", "rank", "chunk_id", "document_id", "document_version", "source_uri", "score",
                   "cited", "tenant", "created_at")
_DOCUMENT_COLUMNS = ("answer_id", "document_id", "document_version", "tenant", "created_at", "best_rank", "chunks",
                     "cited")
_EVENT_COLUMNS = ("event_id", "event_type", "tenant", "event_time", "payload", "created_at")


def _multi_row(text: str, rows: int) -> str:
    """``INSERT … VALUES (…)`` → ``INSERT … VALUES (…), (…)`` for ``rows`` rows (a trailing
    clause such as ``ON CONFLICT`` is kept)."""
    head, _, tail = text.partition(" VALUES ")
    group, close, rest = tail.partition(")")
    return f"{head} VALUES {', '.join([group + close] * rows)}{rest}"


def _answer_exists(raw: Any, answer_id: str) -> bool:
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1 FROM answers WHERE answer_id = %s", (answer_id,))
        found = cursor.fetchone() is not None
        raw.rollback()
        return found
    except Exception:  # noqa: BLE001 - the original error is the one to report
        return False


def _rollback_quietly(raw: Any) -> None:
    with suppress(Exception):  # the original error is the one to report
        raw.rollback()


def _event_row(event: CloudEvent) -> tuple[Any, ...]:
    """An outbox row in ``_EVENT_COLUMNS`` order (``created_at`` last)."""
    return (event.get_id(), event.get_type(), event.get_extension("tenant"), event.get_time(),
            events.serialize(event), datetime.now(UTC))


def _answer_row(answer: AnswerRecord, created: datetime, keep_query: bool) -> tuple[Any, ...]:
    """An ``answers`` row in the table's column order."""
    return (
        answer.answer_id, answer.tenant, created, None if answer.status == "streaming" else datetime.now(UTC),
        answer.status, answer.endpoint, answer.request_id, answer.query if keep_query else None,
        ids.text_hash(answer.query), answer.answer_text, ids.text_hash(answer.answer_text),
        answer.embedding_model_version, answer.prompt_template_version, answer.prompt_template_sha256,
        answer.llm_model_version, events.utc(answer.retrieval_timestamp), answer.collection, answer.filters,
        answer.usage.model_dump(), answer.timings_ms, answer.traceparent, answer.response, answer.request_fingerprint,
        answer.retrieval,
    )


def _source_rows(answer: AnswerRecord, created: datetime) -> list[tuple[Any, ...]]:
    return [(answer.answer_id, r.rank, r.chunk_id, r.document_id, r.document_version, r.source_uri, r.score,
             r.cited, answer.tenant, created) for r in answer.retrieved]


def _document_rows(answer: AnswerRecord, created: datetime) -> list[tuple[Any, ...]]:
    """One row per document version, in ``_DOCUMENT_COLUMNS`` order."""
    grouped: dict[tuple[str, str], list[Any]] = {}
    for ref in answer.retrieved:
        row = grouped.setdefault((ref.document_id, ref.document_version), [
            answer.answer_id, ref.document_id, ref.document_version, answer.tenant, created, ref.rank, 0, False])
        row[5] = min(row[5], ref.rank)
        row[6] += 1
        row[7] = row[7] or ref.cited
    return [tuple(r) for r in grouped.values()]


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
        traceparent=row["traceparent"], response=row["response"], request_fingerprint=row["request_fingerprint"],
        retrieval=row.get("retrieval"),
    )
