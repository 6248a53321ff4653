"""``ragline lineage …``, ``ragline relay``, ``ragline lander`` and ``ragline documents forget``:
thin commands over the audit and maintenance use cases (registered in ``services.cli``)."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from schemas.errors import ConfigurationError
from services import output
from services.application import build_application

if TYPE_CHECKING:
    from services.application import Application

lineage_app = typer.Typer(no_args_is_help=True, help="Audit answer lineage: which answers used what.")
relay_app = typer.Typer(help="Move outbox events into the Iceberg lineage tables.")
documents_app = typer.Typer(no_args_is_help=True, help="Manage indexed documents.")

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="only this tenant")]


def _application() -> Application:
    return build_application()


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigurationError(f"{option} {value!r}: expected an ISO 8601 date or time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@lineage_app.command("answers")
def answers_cmd(
    document: Annotated[str, typer.Option("--document", help="document id")],
    version: Annotated[str | None, typer.Option("--version", help="only this document version")] = None,
    since: Annotated[str | None, typer.Option("--since", help="from this time (ISO 8601, UTC if no zone)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="before this time (exclusive)")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page")] = None,
    tenant: TenantOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Answers that used a document, newest first."""
    application = _application()
    try:
        page = application.audit.answers_for_document(
            document, tenant=tenant, version=version, since=_moment(since, "--since"),
            until=_moment(until, "--until"), limit=limit, cursor=cursor)
    finally:
        application.close()
    if as_json:
        output.emit_json(page.to_dict())
        return
    output.table(f"answers that used {document}", ["answer", "created", "tenant", "version", "rank", "cited"],
                 [[a.answer_id, a.created_at.isoformat(timespec="seconds"), a.tenant, a.document_version[:12],
                   a.rank, "yes" if a.cited else ""] for a in page.answers])
    if page.next_cursor:
        output.stdout.print(f"more: --cursor {page.next_cursor}")


@lineage_app.command("show")
def show_cmd(answer_id: str, tenant: TenantOpt = None, as_json: JsonFlag = False) -> None:
    """The full trace of an answer: query, retrieved chunks with archived text, versions, timings."""
    application = _application()
    try:
        trace = application.audit.answer_trace(answer_id, tenant).to_dict()
    finally:
        application.close()
    if as_json:
        output.emit_json(trace)
        return
    for key in ("answer_id", "tenant", "created_at", "status", "endpoint", "query", "answer_text",
                "embedding_model_version", "prompt_template_version", "llm_model_version", "collection",
                "usage", "timings_ms"):
        output.stdout.print(f"[bold]{key}[/]: {trace[key]}", highlight=False)
    for s in trace["retrieved"]:
        text = "(forgotten)" if s["forgotten"] else " ".join((s["text"] or "(not archived)").split())[:200]
        output.stdout.print(f"[bold]{s['rank']}. {s['score']:.3f}{' cited' if s['cited'] else ''}[/] "
                            f"{s['source_uri']} @ {s['document_version'][:12]}\n   {text}", highlight=False)


@lineage_app.command("replay")
def replay_cmd(answer_id: str, tenant: TenantOpt = None, as_json: JsonFlag = False) -> None:
    """Rebuild the exact prompt that was sent for an answer."""
    application = _application()
    try:
        result = application.audit.replay(answer_id, tenant)
    finally:
        application.close()
    if as_json:
        output.emit_json(result.to_dict())
        return
    verdict = "matches" if result.template_matches else "[red]DIFFERS from the recorded hash[/]"
    output.stderr.print(f"template {result.template_version} (sha256 {result.template_sha256[:12]}) {verdict}")
    for message in result.messages:
        output.stdout.print(f"[bold]\\[{message['role']}][/]\n{message['content']}\n", highlight=False)
    if not result.template_matches:
        raise typer.Exit(1)


@lineage_app.command("stats")
def stats_cmd(as_json: JsonFlag = False) -> None:
    """Counts an operator checks at a glance (SQL projection, outbox, Iceberg)."""
    application = _application()
    try:
        stats = application.audit.stats()
    finally:
        application.close()
    if as_json:
        output.emit_json(stats)
        return
    output.table("lineage", ["what", "count"], [[k, v] for k, v in stats.items()])


@lineage_app.command("compact")
def compact_cmd(as_json: JsonFlag = False) -> None:
    """Rewrite each day of the Iceberg tables as one data file (small-file maintenance)."""
    application = _application()
    try:
        reports = application.maintenance.compact()
    finally:
        application.close()
    if as_json:
        output.emit_json([asdict(r) for r in reports])
        return
    for r in reports:
        output.stdout.print(f"{r.table}: {r.days} day(s) compacted, {r.files_before} -> {r.files_after} data files")


@relay_app.callback(invoke_without_command=True)
def relay_cmd(
    once: Annotated[bool, typer.Option("--once", help="drain the outbox and exit")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Land outbox events in Iceberg: with --once drain and exit, else relay in batches until Ctrl-C."""
    application = _application()
    try:
        if not once:
            worker = application.maintenance.relay_worker()
            worker.start()
            output.stderr.print("relaying outbox -> Iceberg; Ctrl-C stops after landing what is pending")
            try:
                while worker.alive:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                worker.stop()
            return
        report = application.maintenance.relay().drain()
    finally:
        application.close()
    if as_json:
        output.emit_json(asdict(report))
    else:
        output.stdout.print(f"{report.delivered} events delivered in {report.batches} batches "
                            f"({report.written} written, {report.taken_over} batches taken over)")


def lander_cmd(
    until_idle: Annotated[float | None, typer.Option(
        "--until-idle", min=0, help="exit after this many seconds with nothing to consume")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Land the Kafka lineage topics in Iceberg, exactly once (a consumer group; needs
    RAGLINE_KAFKA__BOOTSTRAP). SIGTERM or Ctrl-C commits what is pending, then exits."""
    application = _application()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        lander = application.maintenance.lander()
        if not as_json:
            output.stderr.print("landing the lineage topics in Iceberg; Ctrl-C stops after committing what is pending")
        report = lander.run(until_idle_s=until_idle, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        application.close()
    if as_json:
        output.emit_json(asdict(report))
    else:
        output.stdout.print(f"{report.landed} events landed in {report.commits} commits from {report.consumed} "
                            f"records ({report.duplicates} duplicates, {report.dead_lettered} dead-lettered)")


@documents_app.command("forget")
def forget_cmd(document_id: str, tenant: TenantOpt = None, as_json: JsonFlag = False) -> None:
    """Erasure: delete from retrieval, erase archived chunk text (ids kept), list answers that used it."""
    application = _application()
    try:
        report = application.audit.forget(tenant or application.settings.default_tenant, document_id)
    finally:
        application.close()
    if as_json:
        output.emit_json(asdict(report))
        return
    output.stdout.print(f"document {document_id}: {report.chunks_erased} chunk texts erased; "
                        f"{len(report.answer_ids)} answers referenced it")
    for answer_id in report.answer_ids:
        output.stdout.print(f"  {answer_id}")
