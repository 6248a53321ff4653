"""Near-duplicate chunks at ingest (issue 12), on real components (the offline MiniLM model,
Qdrant Edge, SQLite and PostgreSQL): a copy of a passage (case, trailing whitespace, one word
changed) within a document or across the tenant's documents is found, counted, not embedded
again, searched once and cited with every document holding it; tenants and access tags never
match across; deleting, forgetting or replacing the canonical's document leaves its copies
found; a restarted application still finds copies; the CLI reports ``near_duplicates``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ingest.dedup import DedupConfig, MinHashSketcher
from ingest.tables import chunk_bands, chunk_signatures, metadata
from retrieval.retriever import collapse_duplicates, passage_key
from schemas.documents import SourceDocument
from schemas.retrieval import DUPLICATE_OF, IndexedPoint, RetrievedChunk, SearchFilter
from services.application import Application
from services.wiring import Components

MakeComponents = Callable[..., Components]

ACCESS = ("Quarterly access reviews are mandatory for every production system that stores customer data. The "
          "service owner exports the list of accounts with their roles, confirms each one with the account's "
          "manager, and removes stale accounts within five working days. Shared accounts are not allowed; a "
          "service account names its owner and the system that uses it. The security team samples ten reviews "
          "every quarter and reports missing sign-offs to the risk committee, which tracks them until they are "
          "closed. Evidence of each review is kept for three years in the compliance archive.")
#: The same passage as another document holds it: other case, trailing whitespace, one word changed.
ACCESS_COPY = ACCESS.replace("five working days", "five business days").upper() + "   \n"
BACKUP = ("Nightly backups of every database are written to a second region and kept for thirty five days. Once "
          "a quarter the platform team restores a randomly chosen backup into an isolated environment, runs the "
          "application's smoke tests against it, and records how long the restore took. A restore that takes "
          "longer than four hours opens an incident. Backup encryption keys are rotated yearly and stored in the "
          "hardware security module; nobody can read a backup without two operators approving the key release. "
          "Deleted customer data leaves the backups when they expire.")
LEAVE = ("Employees accrue two days of paid leave per month, capped at thirty days carried over from one year to "
         "the next. Leave is requested in the HR portal at least two weeks ahead for absences longer than three "
         "days, and the manager answers within five working days. Unused leave above the cap lapses at the end of "
         "March. Sick leave is separate and needs a doctor's note after three consecutive days. Parental leave "
         "follows the local statutory rules and is never counted against the paid leave allowance of the year.")
ONBOARD = ("New engineers get a laptop, a hardware key and access to the staging environment on their first day. "
           "During the first week they pair with a buddy on a small production change, read the incident "
           "runbooks and shadow one on-call shift. Production access is granted after the second week, once the "
           "security training is complete and the manager has approved it in the access portal. The onboarding "
           "checklist is reviewed at the end of the first month with the team lead, and open items are closed "
           "before the probation review.")

QUESTION = "how often are access reviews of production accounts done"


def source(doc: str, *passages: str, tenant: str = "acme", tags: tuple[str, ...] = ()) -> SourceDocument:
    return SourceDocument(f"text://{tenant}/{doc}.txt", "\n\n".join(passages).encode(), tenant, document_id=doc,
                          access_tags=tags, media_type="text/plain")


@pytest.fixture
def make_app(db_url: str, make_components: MakeComponents, tmp_path: Path) -> Iterator[Callable[..., Application]]:
    """Applications over one home and one database (a second one is a restart)."""
    built: list[Application] = []

    def make(**overrides: Any) -> Application:
        app = Application(make_components(home=tmp_path / "home", database_url=db_url, **overrides))
        built.append(app)
        return app

    yield make
    for app in built:
        app.close()


def holders(app: Application, query: str, tenant: str = "acme", **flt: Any) -> list[set[str]]:
    """For each hit about access reviews: the documents it names (its own and ``also_in``)."""
    chunks, _ = app.answering.retrieve(query, 5, SearchFilter(tenant=tenant, **flt))
    return [{c.document_id, *c.also_in} for c in chunks if "access reviews" in c.text.lower()]


def points(app: Application, document_id: str) -> dict[int, IndexedPoint]:
    """The document's points in the index, by chunk index."""
    c = app.components
    stored = c.index.retrieve(c.collection, [r.chunk_id for r in c.signature_store.rows("acme",
                                                                                       document_id=document_id)])
    return {int(p.payload["chunk_index"]): p for p in stored}


def copies_in_index(app: Application, document_id: str) -> dict[int, str | None]:
    """The document's chunks: the canonical each copies (None: canonical)."""
    return {i: p.payload.get(DUPLICATE_OF) for i, p in points(app, document_id).items()}


def test_the_migration_matches_the_table_definitions(make_app: Callable[..., Application]) -> None:
    engine = make_app().components.engine
    ours = {chunk_signatures.name, chunk_bands.name}

    def dedup_only(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return (name in ours) if type_ == "table" else obj.table.name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": dedup_only})
        assert compare_metadata(context, metadata) == []


def test_copies_within_and_across_documents_are_counted_and_not_embedded(
        make_app: Callable[..., Application]) -> None:
    app = make_app()
    first = app.ingestion.ingest_sources([
        source("handbook", ACCESS, BACKUP),
        source("notes", LEAVE, LEAVE.replace("end of March", "end of April")),  # a copy in its own document
        source("wiki", ONBOARD, ACCESS_COPY),  # in flight with the handbook: found at the write
    ])
    assert first.summary.documents["new"] == 3 and first.summary.chunks == 6
    assert first.summary.near_duplicates == 2
    assert first.stats.embedded_texts == 5  # the notes' copy reused its canonical's vector
    notes, wiki = copies_in_index(app, "notes"), copies_in_index(app, "wiki")
    assert notes[0] is None and notes[1] is not None and wiki[0] is None and wiki[1] is not None

    later = app.ingestion.ingest_sources([source("faq", ACCESS.replace("three years", "3 years"))])
    assert later.summary.near_duplicates == 1
    assert later.stats.embedded_texts == 0 and later.stats.requests == 0  # a copy costs no model call


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_search_shows_the_passage_once_naming_every_holder(mode: str, make_app: Callable[..., Application]) -> None:
    app = make_app()
    app.ingestion.ingest_sources([source("handbook", ACCESS, BACKUP), source("wiki", ONBOARD, ACCESS_COPY),
                                  source("faq", LEAVE), source("faq-2", ACCESS)])
    chunks, _ = app.answering.retrieve(QUESTION, 5, SearchFilter(tenant="acme"), mode=mode)  # type: ignore[arg-type]
    keys = [passage_key(c.text) for c in chunks]
    assert len(keys) == len(set(keys))
    (review,) = [c for c in chunks if "access reviews" in c.text.lower()]
    assert {review.document_id, *review.also_in} == {"handbook", "wiki", "faq-2"}
    assert review.document_id not in review.also_in
    # Narrowed to the copy's document, the copy itself is found (and still names its holders).
    (narrowed,) = holders(app, QUESTION, document_ids=("wiki",))
    assert narrowed == {"wiki"}


def test_citations_name_every_document_holding_the_passage(make_app: Callable[..., Application]) -> None:
    from services.answering import AnswerRequest

    app = make_app()
    app.ingestion.ingest_sources([source("handbook", ACCESS), source("wiki", ACCESS_COPY)])
    answered = app.answering.answer(AnswerRequest(QUESTION, 3, SearchFilter(tenant="acme"), "/v1/query"))
    (cited,) = [c for c in answered.payload["citations"] if c["document_id"] in {"handbook", "wiki"}]
    assert {cited["document_id"], *cited["also_in"]} == {"handbook", "wiki"}


def test_tenants_and_access_tags_never_match(make_app: Callable[..., Application]) -> None:
    app = make_app()
    assert app.ingestion.ingest_sources([source("handbook", ACCESS)]).summary.near_duplicates == 0
    other_tenant = app.ingestion.ingest_sources([source("handbook", ACCESS, tenant="globex")])
    tagged = app.ingestion.ingest_sources([source("hr-copy", ACCESS_COPY, tags=("hr",))])
    assert other_tenant.summary.near_duplicates == 0 and tagged.summary.near_duplicates == 0
    assert app.ingestion.ingest_sources([source("hr-2", ACCESS, tags=("hr",))]).summary.near_duplicates == 1
    # Each tenant's search names only its own documents; a reader without "hr" never sees the tagged
    # ones, one with it sees the passage once (the query-time collapse joins the two scopes' hits).
    assert holders(app, QUESTION, tenant="globex") == [{"handbook"}]
    assert holders(app, QUESTION, access_tags=()) == [{"handbook"}]
    assert holders(app, QUESTION, access_tags=("hr",)) == [{"handbook", "hr-copy", "hr-2"}]


@pytest.mark.parametrize("how", ["delete", "forget", "replace"])
def test_the_copies_of_a_gone_canonical_stay_found(how: str, make_app: Callable[..., Application]) -> None:
    app = make_app()
    for doc in (source("handbook", ACCESS, BACKUP), source("wiki", ONBOARD, ACCESS_COPY), source("zfaq", ACCESS)):
        app.ingestion.ingest_sources([doc])
    assert holders(app, QUESTION) == [{"handbook", "wiki", "zfaq"}]
    canonical = points(app, "handbook")[0].vector
    assert points(app, "wiki")[1].vector == canonical  # a copy carries its canonical's vector
    if how == "delete":
        assert app.ingestion.delete("acme", "handbook")
    elif how == "forget":
        app.audit.forget("acme", "handbook")
    else:  # a new version without the passage: its old chunks go
        assert app.ingestion.ingest_sources([source("handbook", BACKUP)]).summary.documents["updated"] == 1
    assert holders(app, QUESTION) == [{"wiki", "zfaq"}]
    # In document order the wiki's copy is canonical now (searched, embedded from its own text: no
    # vector of the gone document's text stays); the other copy points at it and takes its vector.
    promoted = points(app, "wiki")[1]
    assert copies_in_index(app, "wiki") == {0: None, 1: None}
    assert copies_in_index(app, "zfaq") == {0: promoted.chunk_id} and points(app, "zfaq")[0].vector == promoted.vector
    (own,) = app.components.embedding_client().embed([promoted.payload["text"]])
    assert promoted.vector == pytest.approx(own.tolist(), abs=1e-5) and promoted.vector != canonical
    remaining = app.components.signature_store.rows("acme", document_id="handbook")
    assert [r.chunk_index for r in remaining] == ([0] if how == "replace" else [])


def test_a_restarted_application_still_finds_copies(make_app: Callable[..., Application]) -> None:
    first = make_app()
    first.ingestion.ingest_sources([source("handbook", ACCESS)])
    first.close()
    restarted = make_app()
    run = restarted.ingestion.ingest_sources([source("wiki", ACCESS_COPY)])
    assert run.summary.near_duplicates == 1 and run.stats.embedded_texts == 0
    assert holders(restarted, QUESTION) == [{"handbook", "wiki"}]


def test_one_threshold_at_ingest_and_query_time() -> None:
    """The detector's MinHash estimate and the query-time collapse's exact Jaccard agree on
    copies and on passages that are merely related."""
    sketcher = MinHashSketcher(DedupConfig())
    related = ACCESS.split(". ")
    pairs = {"copy": (ACCESS, ACCESS_COPY, True),
             "half rewritten": (ACCESS, ". ".join(related[:3] + [s[::-1] for s in related[3:]]), False),
             "other passage": (ACCESS, BACKUP, False)}
    for name, (a, b, same) in pairs.items():
        sketches = sketcher.sketch([a, b], sketcher.scope("c", ()))
        estimated = sketcher.similarity(sketches.signatures[0], sketches.signatures[1]) >= 0.9
        hits = [RetrievedChunk(chunk_id=str(i), document_id=str(i), document_version="v", source_uri="u", rank=i,
                               score=0.5, text=t) for i, t in enumerate((a, b))]
        assert estimated == same == (len(collapse_duplicates(hits, 0.9)) == 1), name


def test_ingest_json_reports_near_duplicates(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "handbook.txt").write_text(f"{ACCESS}\n\n{BACKUP}\n", encoding="utf-8")
    (folder / "wiki.txt").write_text(f"{ONBOARD}\n\n{ACCESS_COPY}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ragline"), "ingest", str(folder), "--json"],
                          capture_output=True, text=True, timeout=240,
                          env={**env, "RAGLINE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["near_duplicates"] == 1 and report["chunks"] == 4
