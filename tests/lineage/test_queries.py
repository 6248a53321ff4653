"""Auditor queries on SQLite and PostgreSQL: answers that used a document (filters,
newest first, keyset pages, an index range scan), traces with archived text, forget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lineage_records import doc_version, make_answer
from sqlalchemy import Engine, select, text

from lineage import InvalidCursorError, LineageQueries, SqlChunkArchive, SqlLineageStore
from lineage.queries import _uses_query
from lineage.tables import chunk_archive
from schemas.documents import ArchivedChunk

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def history(store: SqlLineageStore) -> list[str]:
    """30 answers a minute apart using doc-a (v1 for the first 20, then v2), plus noise."""
    ids = []
    for n in range(30):
        answer = make_answer(documents=("doc-a", "doc-b"), created_at=T0 + timedelta(minutes=n),
                             version=1 if n < 20 else 2)
        store.record_answer(answer)
        ids.append(answer.answer_id)
        store.record_answer(make_answer(documents=("doc-z",), created_at=T0 + timedelta(minutes=n)))
    store.record_answer(make_answer("globex", documents=("doc-a",), created_at=T0))
    return ids


def test_answers_for_a_document_newest_first_in_pages(engine: Engine, history: list[str]) -> None:
    queries = LineageQueries(engine)
    seen, cursor = [], None
    while True:
        page = queries.answers_for_document("doc-a", tenant="acme", limit=7, cursor=cursor)
        seen += page.answers
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [u.answer_id for u in seen] == history[::-1]
    assert all(u.rank == 1 and u.cited and u.chunks == 3 for u in seen)
    assert [u.created_at for u in seen] == sorted((u.created_at for u in seen), reverse=True)


def test_filters_by_version_time_window_and_tenant(engine: Engine, history: list[str]) -> None:
    queries = LineageQueries(engine)
    v2 = queries.answers_for_document("doc-a", tenant="acme", version=doc_version("doc-a", 2), limit=100)
    assert [u.answer_id for u in v2.answers] == history[20:][::-1]
    window = queries.answers_for_document("doc-a", tenant="acme", since=T0 + timedelta(minutes=5),
                                          until=T0 + timedelta(minutes=8), limit=100)
    assert [u.answer_id for u in window.answers] == history[5:8][::-1]
    everyone = queries.answers_for_document("doc-a", limit=100)
    assert {u.tenant for u in everyone.answers} == {"acme", "globex"} and len(everyone.answers) == 31
    assert queries.answers_for_document("doc-a", tenant="initech").answers == []
    with pytest.raises(InvalidCursorError):
        queries.answers_for_document("doc-a", cursor="not-a-cursor")


def test_the_document_lookup_is_an_index_range_scan(engine: Engine, history: list[str]) -> None:
    cursor = LineageQueries(engine).answers_for_document("doc-a", limit=5).next_cursor
    for version in (None, doc_version("doc-a", 2)):
        query = _uses_query("doc-a", "acme", version, T0, T0 + timedelta(days=1), cursor).limit(50)
        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
                assert "USING INDEX ix_answer_documents_doc" in plan and "TEMP B-TREE" not in plan, plan
            else:  # tiny tables: forbid the seq scan to see which plan the index gives
                conn.execute(text("SET enable_seqscan = off"))
                plan = " ".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
                assert "ix_answer_documents_doc" in plan and "Sort" not in plan, plan


def test_trace_has_the_archived_text_and_forget_erases_it_keeping_ids(
        engine: Engine, store: SqlLineageStore) -> None:
    answer = make_answer(documents=("doc-a", "doc-b"), sources=4)
    store.record_answer(answer)
    archive = SqlChunkArchive(engine)
    chunks = [ArchivedChunk(r.chunk_id, "acme", r.document_id, r.document_version, r.source_uri, r.rank,
                            f"text of chunk {r.rank}", page_start=r.rank, page_end=r.rank) for r in answer.retrieved]
    archive.archive_chunks(chunks)
    archive.archive_chunks(chunks)  # immutable per chunk id: a repeat is a no-op

    trace = LineageQueries(engine).answer_trace(answer.answer_id, tenant="acme")
    assert trace is not None
    assert [s.text for s in trace.sources] == [f"text of chunk {n}" for n in range(1, 5)]
    assert trace.to_dict()["query"] == answer.query

    report = archive.forget("acme", "doc-a")
    assert report.chunks_erased == 2 and report.answer_ids == (answer.answer_id,)
    with engine.connect() as conn:
        kept = conn.execute(select(chunk_archive.c.chunk_id, chunk_archive.c.text)
                            .where(chunk_archive.c.document_id == "doc-a")).all()
    assert len(kept) == 2 and all(t is None for _, t in kept)
    trace = LineageQueries(engine).answer_trace(answer.answer_id)
    assert trace is not None
    by_doc = {(s.document_id, s.forgotten, s.text is None) for s in trace.sources}
    assert by_doc == {("doc-a", True, True), ("doc-b", False, False)}
    assert [s.chunk_id for s in trace.sources] == [r.chunk_id for r in answer.retrieved]
    assert LineageQueries(engine).answer_trace(answer.answer_id, tenant="globex") is None
