"""The ``ragline`` command line. Command bodies stay thin and delegate to the core."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ingest.pipeline import DocumentOutcome, IngestSummary
from ingest.reconcile import reconcile
from ingest.sources import SourceOptions, iter_sources, load_passwords
from schemas.errors import RaglineError
from services import output
from services.lineage_cli import documents_app, lander_cmd, lineage_app, relay_app
from services.operations import promote_if_complete, reindex, reingest_from_source
from services.settings import Settings
from services.wiring import Components, build_fetch_policy

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="ragline: RAG ingestion with answer lineage.")
app.add_typer(lineage_app, name="lineage")
app.add_typer(relay_app, name="relay")
app.add_typer(documents_app, name="documents")
app.command("lander")(lander_cmd)

EXIT_PARTIAL = 3
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="tenant (default: RAGLINE_DEFAULT_TENANT)")]


def _components() -> Components:
    return Components(Settings())


@app.command()
def ingest(
    targets: Annotated[list[str], typer.Argument(help="files, folders or http(s) URLs")],
    as_json: JsonFlag = False,
    tenant: TenantOpt = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="access tag (repeatable)")] = None,
    estimate: Annotated[bool, typer.Option("--estimate", help="print tokens and cost; embed nothing")] = False,
    passwords: Annotated[Path | None, typer.Option("--passwords", help="JSON file: name -> PDF password")] = None,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="follow symlinks inside folders (only to targets inside the folder)")] = False,
) -> None:
    """Index documents: extract, chunk, embed and upsert; unchanged ones cost nothing."""
    comps = _components()
    settings = comps.settings
    options = SourceOptions(
        tenant=tenant or settings.default_tenant, access_tags=tuple(tag or ()),
        passwords=load_passwords(passwords or settings.extraction.passwords_file),
        max_bytes=settings.extraction.max_bytes, fetch=build_fetch_policy(settings, operator=True),
        follow_symlinks=follow_symlinks,
    )
    pipeline = comps.pipeline()
    with output.progress("ingesting", enabled=not as_json) as bar:
        started = time.perf_counter()
        done = 0

        def on_document(outcome: DocumentOutcome) -> None:
            nonlocal done
            done += 1
            if outcome.status == "failed" and not as_json:
                output.error(f"{outcome.source_uri}: {outcome.error}")
            if bar:
                rate = done / max(time.perf_counter() - started, 1e-6)
                bar[0].update(bar[1], advance=1, rate=rate, last=Path(outcome.source_uri).name[:40])

        summary = pipeline.ingest(iter_sources(targets, options), estimate_only=estimate, on_document=on_document)
    stats = pipeline.embedder.stats
    optimize_due = stats.embedded_texts >= settings.index.optimize_after_points
    if not estimate and settings.index.backend == "edge" and optimize_due:
        if not as_json:
            output.stderr.print(f"building the HNSW index for {pipeline.collection} …")
        comps.index.optimize(pipeline.collection)
    generation = promote_if_complete(comps) if not estimate else None
    comps.close()
    _render_ingest(summary, stats, as_json)
    if generation and not as_json:
        output.stderr.print(generation, highlight=False)
    if summary.stopped:
        output.error(summary.stopped)
        raise typer.Exit(1)
    raise typer.Exit(EXIT_PARTIAL if summary.documents["failed"] else 0)


def _render_ingest(summary: IngestSummary, stats: Any, as_json: bool) -> None:
    data: dict[str, Any] = {
        "documents": summary.documents, "chunks": summary.chunks, "embedded_texts": stats.embedded_texts,
        "embedding_requests": stats.requests, "errors": summary.errors,
        "cache_hits": stats.cache_hits, "embedding_tokens": stats.tokens, "cost_usd": round(stats.cost_usd, 6),
        "over_long_inputs": stats.over_long, "warnings": summary.warnings, "elapsed_s": round(summary.elapsed_s, 3),
    }
    if summary.estimate is not None:
        data["estimate"] = summary.estimate
    if summary.stopped:
        data["stopped"] = summary.stopped
    if as_json:
        output.emit_json(data)
        return
    docs = summary.documents
    rate = sum(docs.values()) / max(summary.elapsed_s, 1e-6)
    output.stdout.print(
        f"documents: {docs['new']} new, {docs['updated']} updated, {docs['unchanged']} unchanged, "
        f"{docs['failed']} failed · {summary.chunks} chunks · {stats.embedded_texts} texts embedded in "
        f"{stats.requests} requests ({stats.cache_hits} cached) · {rate:.1f} docs/s"
    )
    if stats.over_long:
        output.stdout.print(f"{stats.over_long} chunk(s) exceeded the embedding model's window (policy applied)")
    if summary.estimate:
        est = summary.estimate
        output.stdout.print(f"estimate: {est['uncached_texts']} texts to embed, {est['tokens']:,} tokens, "
                            f"${est['cost_usd']:.4f}")
    for warning in summary.warnings:
        output.stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int, typer.Option("--k", min=1, max=100)] = 5,
    as_json: JsonFlag = False,
    tenant: TenantOpt = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="only chunks readable with these tags")] = None,
) -> None:
    """Search the index and print the best-matching chunks."""
    from retrieval.retriever import Retriever
    from schemas.retrieval import SearchFilter

    comps = _components()
    comps.index.ensure_collection(comps.serving_collection, comps.embedder.dimensions)
    retriever = Retriever(comps.embedder, comps.index, comps.serving_collection)
    flt = SearchFilter(tenant=tenant or comps.settings.default_tenant, access_tags=tuple(tag) if tag else None)
    chunks, _ = retriever.retrieve(query, k, flt)
    comps.close()
    if as_json:
        output.emit_json([
            {"chunk_id": c.chunk_id, "document_id": c.document_id, "source_uri": c.source_uri, "score": c.score,
             "text": c.text, "page_start": c.page_start, "page_end": c.page_end} for c in chunks])
        return
    if not chunks:
        output.stdout.print("no results")
    for c in chunks:
        pages = f" p.{c.page_start}" + (f"-{c.page_end}" if c.page_end != c.page_start else "") if c.page_start else ""
        output.stdout.print(f"[bold]{c.rank}. {c.score:.3f}[/] {c.source_uri}{pages}")
        output.stdout.print("   " + " ".join(c.text.split())[:300], highlight=False)


@app.command(name="reindex")
def reindex_cmd(as_json: JsonFlag = False) -> None:
    """Build the configured index generation for every document still only in an older one
    (from kept bytes or the source file; cached embeddings are reused), then move the alias."""
    comps = _components()
    pipeline = comps.pipeline()
    comps.index.ensure_collection(comps.collection, comps.embedder.dimensions)
    started = time.perf_counter()
    with output.progress("re-indexing", enabled=not as_json) as bar:
        def on_document(outcome: DocumentOutcome) -> None:
            if outcome.status == "failed" and not as_json:
                output.error(f"{outcome.source_uri}: {outcome.error}")
            if bar:
                done = bar[0].tasks[0].completed + 1
                bar[0].update(bar[1], advance=1, rate=done / max(time.perf_counter() - started, 1e-6),
                              last=Path(outcome.source_uri).name[:40])

        summary = reindex(comps, pipeline, on_document)
    if comps.settings.index.backend == "edge" and pipeline.embedder.stats.embedded_texts:
        comps.index.optimize(pipeline.collection)
    generation = promote_if_complete(comps)
    comps.close()
    _render_ingest(summary, pipeline.embedder.stats, as_json)
    if not as_json:
        output.stderr.print(generation, highlight=False)
    raise typer.Exit(EXIT_PARTIAL if summary.documents["failed"] else 0)


@app.command(name="reconcile")
def reconcile_cmd(
    repair: Annotated[bool, typer.Option("--repair", help="delete orphan points, re-index missing ones")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare the document registry with the vector index (and repair on request)."""
    comps = _components()
    pipeline = comps.pipeline()

    comps.index.ensure_collection(comps.collection, comps.embedder.dimensions)
    report = reconcile(comps.registry, comps.index, comps.collection, repair=repair,
                       reingest=lambda t, d: reingest_from_source(comps, pipeline, t, d))
    comps.close()
    if as_json:
        output.emit_json(report.to_dict())
    else:
        output.stdout.print(f"{report.collection}: {report.documents} documents, {report.points} points")
        output.table("discrepancies", ["kind", "tenant", "document", "version", "expected", "found", "repaired"],
                     [[d.kind, d.tenant, d.document_id, d.version[:12], d.expected, d.found, d.repaired]
                      for d in report.discrepancies])
    raise typer.Exit(0 if report.consistent else EXIT_PARTIAL)


@app.command()
def optimize() -> None:
    """Build the HNSW index of the current collection (Qdrant Edge; blocks this process)."""
    comps = _components()
    comps.index.ensure_collection(comps.collection, comps.embedder.dimensions)
    started = time.perf_counter()
    changed = comps.index.optimize(comps.collection)
    comps.close()
    output.stdout.print(f"{'optimized' if changed else 'already optimal'} in {time.perf_counter() - started:.1f} s")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Serve the HTTP API (uvicorn). Without API keys it binds only to loopback."""
    import ipaddress

    import uvicorn

    from services.api.app import create_app

    settings = Settings()
    loopback = host == "localhost" or _is_loopback(host, ipaddress)
    if not settings.api.keys and not loopback:
        raise typer.BadParameter(
            f"refusing to serve {host} without API keys: configure RAGLINE_API__KEYS or bind 127.0.0.1",
            param_hint="--host")
    comps = Components(settings)
    application = create_app(comps)
    output.stderr.print(f"ragline serving {comps.serving_collection} on http://{host}:{port} (docs: /docs)")
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _is_loopback(host: str, ipaddress: Any) -> bool:
    try:
        return bool(ipaddress.ip_address(host).is_loopback)
    except ValueError:
        return False


def main() -> None:
    """Entry point: one error trap turns ragline errors into stderr messages and exit code 1.

    Usage errors stay with the CLI framework (exit 2); commands exit 0, or 3 on partial failure.
    """
    try:
        app()
    except ValidationError as exc:
        output.error(_settings_message(exc))
        sys.exit(1)
    except RaglineError as exc:
        output.error(str(exc))
        sys.exit(1)


def _settings_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        path = "__".join(str(p) for p in err["loc"]).upper()
        parts.append(f"RAGLINE_{path}={err.get('input')!r}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)
