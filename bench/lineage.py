"""Lineage at scale: auditor lookups on 1,000,000 answers, Iceberg landing rate, and the
cost lineage adds to an answer.

Run: ``python bench/lineage.py [--answers 1000000] [--sources 5] [--events 100000]``;
quick run: ``python bench/lineage.py --answers 100000 --events 30000``. PostgreSQL too
when ``RAGLINE_BENCH_POSTGRES_URL`` is set (e.g. ``$(deploy/dev/postgres.sh start)``;
a schema of its own is created and dropped).

1. Migrates a fresh database and bulk-loads ``--answers`` answers × ``--sources`` sources
   into ``answers``, ``answer_sources`` and ``answer_documents`` (executemany on SQLite,
   COPY on PostgreSQL; indexes rebuilt after the load). One document per 20 answers
   (so ~100 sources each), four tenants, two versions per document, ten hot documents in 5% of
   sources, answers spread over 30 days. Rows are synthetic but shaped like the store's.
2. "Answers that used document X": ``LineageQueries.answers_for_document`` (the API's
   and CLI's path) for random documents, a page of 50, mixed filters (none, version,
   7-day window, a second page by cursor); p50/p99.
3. Per-answer overhead of lineage: ``SqlLineageStore.record_answer`` of a realistic
   5-source answer on the loaded database (one transaction: answers, sources,
   documents, outbox with the CloudEvent); p50/p99.
4. Landing: ``--events`` real answer CloudEvents put in the outbox, then
   ``OutboxRelay(batch_size=10000).drain()`` into a fresh Iceberg table (claim, read,
   parse, Arrow, append, mark sent); events/s, and the count read back from Iceberg.

No timed assertions; it prints figures and a verdict line per target.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from lineage import (  # noqa: E402
    IcebergLanding,
    LineageQueries,
    OutboxRelay,
    SqlLineageStore,
    build_answer_event,
    default_catalog_properties,
    serialize,
)
from lineage.tables import answer_documents, answer_sources, answers, outbox, outbox_pending  # noqa: E402
from schemas import ids  # noqa: E402
from schemas.lineage import AnswerRecord, RetrievedRef, TokenUsage  # noqa: E402
from services.db import make_engine, migrate  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
TENANTS = ("acme", "globex", "initech", "umbrella")
TARGETS = {"lookup_p99_ms": 5.0, "landing_events_per_s": 10_000.0, "overhead_p50_ms": 2.0}


class Corpus:
    """Synthetic documents: ids, two versions each (v2 from a per-document switch time)."""

    def __init__(self, documents: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.ids = [str(uuid.UUID(int=self.rng.getrandbits(128))) for _ in range(documents)]
        self.versions = [(ids.document_version(f"{d} v1".encode()), ids.document_version(f"{d} v2".encode()))
                         for d in self.ids]
        self.switch = [T0 + SPAN * self.rng.random() for _ in range(documents)]

    def pick(self) -> int:
        return self.rng.randrange(10) if self.rng.random() < 0.05 else self.rng.randrange(len(self.ids))

    def refs(self, created: datetime, sources: int) -> list[RetrievedRef]:
        out = []
        for rank in range(1, sources + 1):
            d = self.pick()
            version = self.versions[d][created >= self.switch[d]]
            out.append(RetrievedRef(chunk_id=ids.chunk_id("bench", self.ids[d], version, "fp", rank),
                                    document_id=self.ids[d], document_version=version,
                                    source_uri=f"s3://corpus/{d}.pdf", rank=rank,
                                    score=round(1 - rank / 20, 3), cited=rank == 1))
        return out


def record(corpus: Corpus, created: datetime, sources: int, answer_id: str | None = None) -> AnswerRecord:
    return AnswerRecord(
        answer_id=answer_id or ids.uuid7(), tenant=corpus.rng.choice(TENANTS), created_at=created, status="complete",
        endpoint="/v1/query", request_id="bench", query="What is the retention period for audit logs?",
        answer_text="Audit logs are kept for seven years [1].", retrieved=corpus.refs(created, sources),
        embedding_model_version="minilm-l6-v2-int8", prompt_template_version="grounded_answer.v1",
        prompt_template_sha256="a" * 64, llm_model_version="extractive-1",
        retrieval_timestamp=created - timedelta(milliseconds=30), collection="minilm_384_fp",
        filters={"tenant": "acme"}, usage=TokenUsage(prompt_tokens=900, completion_tokens=40, total_tokens=940),
        timings_ms={"embed_ms": 4.0, "search_ms": 2.0, "generate_ms": 20.0},
        response={"answer": "Audit logs are kept for seven years [1]."})


def batches(corpus: Corpus, n: int, sources: int, size: int = 20_000) -> Iterator[tuple[list, list, list]]:
    """Rows of the three tables as the store writes them (minus the outbox), built as
    plain tuples: pydantic models and a UUIDv5 per chunk would make the load the bench."""
    step = SPAN / n
    query, text = "What is the retention period for audit logs?", "Audit logs are kept for seven years [1]."
    fixed = ("/v1/query", "bench", query, ids.text_hash(query), text, ids.text_hash(text), "minilm-l6-v2-int8",
             "grounded_answer.v1", "a" * 64, "extractive-1")
    json_cols = ('{"tenant": "acme"}', '{"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}',
                 '{"embed_ms": 4.0}', None, None)
    for start in range(0, n, size):
        a_rows: list[tuple[Any, ...]] = []
        s_rows: list[tuple[Any, ...]] = []
        d_rows: list[tuple[Any, ...]] = []
        for i in range(start, min(n, start + size)):
            created = T0 + step * i
            answer_id = str(uuid.UUID(int=(i << 64) | 0x7000_8000_0000_0000))
            tenant = TENANTS[i % len(TENANTS)]
            a_rows.append((answer_id, tenant, created, created, "complete", *fixed, created, "minilm_384_fp",
                           *json_cols))
            docs: dict[tuple[str, str], list[Any]] = {}
            for rank in range(1, sources + 1):
                d = corpus.pick()
                version = corpus.versions[d][created >= corpus.switch[d]]
                doc = corpus.ids[d]
                s_rows.append((answer_id, rank, f"{doc[:24]}{rank:04d}{version[:8]}", doc, version,
                               f"s3://corpus/{d}.pdf", 1 - rank / 20, rank == 1, tenant, created))
                row = docs.setdefault((doc, version), [answer_id, doc, version, tenant, created, rank, 0, False])
                row[6] += 1
                row[7] = row[7] or rank == 1
            d_rows += [tuple(r) for r in docs.values()]
        yield a_rows, s_rows, d_rows


def bulk_load(engine: Engine, corpus: Corpus, n: int, sources: int) -> tuple[float, int, int]:
    tables = (answers, answer_sources, answer_documents)
    started = time.perf_counter()
    with engine.begin() as conn:
        for table in tables:
            for index in table.indexes:
                index.drop(conn)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        n_sources = n_docs = 0
        for a_rows, s_rows, d_rows in batches(corpus, n, sources):
            for table, rows in zip(tables, (a_rows, s_rows, d_rows), strict=True):
                _insert(engine.dialect.name, cur, table.name, [c.name for c in table.columns], rows)
            n_sources += len(s_rows)
            n_docs += len(d_rows)
            raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        for table in tables:
            for index in table.indexes:
                index.create(conn)
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - started, n_sources, n_docs


def _insert(dialect: str, cur: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    if dialect == "postgresql":
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    # SQLAlchemy's SQLite DateTime text form, so the store and the queries compare like with like.
    rows = [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in r) for r in rows]
    cur.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def bench_lookups(engine: Engine, corpus: Corpus, count: int) -> tuple[float, float, float]:
    queries = LineageQueries(engine)
    rng = random.Random(11)
    samples, sizes = [], []
    for n in range(count):
        d = rng.randrange(10) if n % 10 == 0 else rng.randrange(len(corpus.ids))
        doc = corpus.ids[d]
        kind = n % 4
        kwargs: dict[str, Any] = {"limit": 50}
        if kind == 1:
            kwargs["version"] = corpus.versions[d][1]
        elif kind == 2:
            since = T0 + SPAN * rng.random()
            kwargs |= {"since": since, "until": since + timedelta(days=7)}
        elif kind == 3:
            first = queries.answers_for_document(doc, limit=50)
            kwargs["cursor"] = first.next_cursor
        page = None

        def run(doc: str = doc, kwargs: dict[str, Any] = kwargs) -> None:
            nonlocal page
            page = queries.answers_for_document(doc, **kwargs)

        samples.append(timed(run))
        sizes.append(len(page.answers) if page else 0)
    p50, p99 = percentiles(samples)
    return p50, p99, statistics.mean(sizes)


def bench_overhead(engine: Engine, corpus: Corpus, count: int, sources: int) -> tuple[float, float]:
    store = SqlLineageStore(engine, deployment="bench")
    now = T0 + SPAN
    prepared = [record(corpus, now + timedelta(seconds=i), sources) for i in range(count)]
    samples = [timed(lambda r=r: store.record_answer(r)) for r in prepared]  # type: ignore[misc]
    with engine.begin() as conn:  # leave the outbox to the landing pass
        conn.execute(outbox_pending.delete())
        conn.execute(outbox.delete())
    return percentiles(samples)


def bench_landing(engine: Engine, corpus: Corpus, events: int, sources: int, lake_dir: Path) -> tuple[float, int]:
    template = serialize(build_answer_event(record(corpus, T0, sources, "00000000-0000-7000-8000-000000000000"),
                                            deployment="bench", keep_query_text=True))
    now = datetime.now(UTC)
    step = timedelta(days=3) / events
    with engine.begin() as conn:
        for start in range(0, events, 10_000):
            rows = []
            for i in range(start, min(events, start + 10_000)):
                event_id = str(uuid.UUID(int=(i << 64) | 0x7000_8000_0000_0000))
                rows.append({"event_id": event_id, "event_type": "ai.ragline.answer.generated.v1", "tenant": "acme",
                             "event_time": now - step * i, "created_at": now,
                             "payload": template.replace("00000000-0000-7000-8000-000000000000", event_id)})
            seqs = conn.execute(outbox.insert().returning(outbox.c.seq, sort_by_parameter_order=True), rows)
            conn.execute(outbox_pending.insert(), [{"seq": seq, "created_at": now} for seq in seqs.scalars()])
    lake = IcebergLanding("bench", default_catalog_properties(lake_dir)).open()
    started = time.perf_counter()
    report = OutboxRelay(engine, lake, batch_size=10_000).drain()
    elapsed = time.perf_counter() - started
    assert report.delivered == events, report
    return events / elapsed, lake.count("answer_events")


def verdict(name: str, value: float, target: float, lower_is_better: bool) -> str:
    ok = value < target if lower_is_better else value >= target
    sign = "<" if lower_is_better else ">="
    return f"  {'PASS' if ok else 'MISS'} {name}: {value:,.2f} (target {sign} {target:,.0f})"


def run(backend: str, engine: Engine, args: argparse.Namespace, workdir: Path) -> None:
    migrate(engine)
    corpus = Corpus(max(100, args.answers // 20))
    print(f"\n== {backend}: {args.answers:,} answers x {args.sources} sources, {len(corpus.ids):,} documents")
    load_s, n_sources, n_docs = bulk_load(engine, corpus, args.answers, args.sources)
    print(f"bulk load: {load_s:,.1f} s ({(args.answers + n_sources + n_docs) / load_s:,.0f} rows/s; "
          f"{n_sources:,} answer_sources, {n_docs:,} answer_documents rows)")
    p50, p99, mean_rows = bench_lookups(engine, corpus, args.lookups)
    print(f"answers that used document X (page of 50, mixed filters, {args.lookups} lookups): "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {mean_rows:.1f} rows/page")
    o50, o99 = bench_overhead(engine, corpus, args.overhead, args.sources)
    print(f"lineage per answer (record_answer, one transaction, {args.overhead} answers): "
          f"p50 {o50:.2f} ms, p99 {o99:.2f} ms")
    rate, landed = bench_landing(engine, corpus, args.events, args.sources, workdir / f"lake-{backend}")
    print(f"landing {args.events:,} events outbox -> Iceberg (batches of 10,000): {rate:,.0f} events/s; "
          f"{landed:,} rows in Iceberg")
    print("verdicts:")
    print(verdict("lookup p99 ms", p99, TARGETS["lookup_p99_ms"], True))
    print(verdict("landing events/s", rate, TARGETS["landing_events_per_s"], False))
    print(verdict("lineage overhead p50 ms", o50, TARGETS["overhead_p50_ms"], True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--sources", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--overhead", type=int, default=2000, help="answers recorded through the store")
    parser.add_argument("--events", type=int, default=100_000, help="events landed in Iceberg")
    args = parser.parse_args()
    print(f"lineage bench · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f} (shared machine)")
    with tempfile.TemporaryDirectory(prefix="ragline-bench-lineage-") as tmp:
        workdir = Path(tmp)
        engine = make_engine(f"sqlite:///{workdir / 'lineage.db'}")
        run("sqlite", engine, args, workdir)
        engine.dispose()
        pg_url = os.environ.get("RAGLINE_BENCH_POSTGRES_URL")
        if pg_url:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(pg_url)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                engine = make_engine(f"{pg_url}?options=-csearch_path%3D{schema}")
                run("postgresql", engine, args, workdir)
                engine.dispose()
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        else:
            print("\n(PostgreSQL skipped: set RAGLINE_BENCH_POSTGRES_URL to include it)")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
