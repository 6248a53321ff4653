"""The ``ragline`` command line. Command bodies stay thin and delegate to the core."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas.errors import RaglineError
from services import output
from services.application import build_application
from services.lineage_cli import documents_app, lander_cmd, lineage_app, relay_app
from services.worker import hosted_worker, produce_cmd, worker_cmd

if TYPE_CHECKING:
    # Commands import what they use when they run: ``ragline --help`` loads no model runtime,
    # database, lineage lake or pipeline (``python -X importtime -m services.cli --help``).
    from pydantic import ValidationError

    from ingest.pipeline import DocumentOutcome, IngestSummary
    from services.application import Application

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="ragline: RAG ingestion with answer lineage.")
app.add_typer(lineage_app, name="lineage")
app.add_typer(relay_app, name="relay")
app.add_typer(documents_app, name="documents")
app.command("lander")(lander_cmd)
app.command("worker")(worker_cmd)
app.command("produce")(produce_cmd)

EXIT_PARTIAL = 3
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="tenant (default: RAGLINE_DEFAULT_TENANT)")]


def _application() -> Application:
    from services.settings import Settings

    return build_application(Settings())


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
    prune: Annotated[bool, typer.Option(
        "--prune", help="then remove the documents of these folders whose source is gone")] = False,
) -> None:
    """Index documents: extract, chunk, embed and upsert; unchanged ones cost nothing."""
    from services.ingestion import IngestTargets

    application = _application()
    request = IngestTargets(targets, tenant or application.settings.default_tenant, tuple(tag or ()), passwords,
                            follow_symlinks, prune)
    try:
        total = None if as_json else application.ingestion.count(request)
        with output.progress("ingesting", enabled=not as_json, total=total) as bar:
            run = application.ingestion.ingest(request, estimate=estimate,
                                               on_document=_progress(bar, as_json))
    finally:
        application.close()
    summary, stats, generation = run.summary, run.stats, run.generation
    _render_ingest(summary, stats, as_json, [{"document_id": r.document_id, "source_uri": r.source_uri}
                                             for r in run.pruned] if prune else None)
    if generation and not as_json:
        output.stderr.print(generation, highlight=False)
    if summary.stopped:
        output.error(summary.stopped)
        raise typer.Exit(1)
    raise typer.Exit(EXIT_PARTIAL if summary.documents["failed"] else 0)


def _render_ingest(summary: IngestSummary, stats: Any, as_json: bool,
                   pruned: list[dict[str, str]] | None = None) -> None:
    data: dict[str, Any] = {
        "documents": summary.documents, "chunks": summary.chunks, "near_duplicates": summary.near_duplicates,
        "embedded_texts": stats.embedded_texts,
        "embedding_requests": stats.requests, "errors": summary.errors,
        "cache_hits": stats.cache_hits, "embedding_tokens": stats.tokens, "cost_usd": round(stats.cost_usd, 6),
        "over_long_inputs": stats.over_long, "warnings": summary.warnings, "elapsed_s": round(summary.elapsed_s, 3),
        "pii_redacted": dict(sorted(summary.pii_redacted.items())),  # values redacted per entity type
    }
    if summary.estimate is not None:
        data["estimate"] = summary.estimate
    if summary.stopped:
        data["stopped"] = summary.stopped
    if pruned is not None:
        data["pruned"] = pruned
    if as_json:
        output.emit_json(data)
        return
    docs = summary.documents
    rate = sum(docs.values()) / max(summary.elapsed_s, 1e-6)
    output.stdout.print(
        f"documents: {docs['new']} new, {docs['updated']} updated, {docs['unchanged']} unchanged, "
        f"{docs['failed']} failed · {summary.chunks} chunks ({summary.near_duplicates} near-duplicates) · "
        f"{stats.embedded_texts} texts embedded in {stats.requests} requests ({stats.cache_hits} cached) · "
        f"{rate:.1f} docs/s"
    )
    if summary.pii_redacted:
        output.stdout.print("PII redacted: " + ", ".join(f"{n} {e}" for e, n in sorted(summary.pii_redacted.items())))
    if stats.over_long:
        output.stdout.print(f"{stats.over_long} chunk(s) exceeded the embedding model's window (policy applied)")
    if summary.estimate:
        est = summary.estimate
        output.stdout.print(f"estimate: {est['uncached_texts']} texts to embed, {est['tokens']:,} tokens, "
                            f"${est['cost_usd']:.4f}")
    for warning in summary.warnings:
        output.stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if pruned:
        output.stdout.print(f"pruned {len(pruned)} document(s) whose source is gone")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int, typer.Option("--k", min=1, max=100)] = 5,
    as_json: JsonFlag = False,
    tenant: TenantOpt = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="only chunks readable with these tags")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense, sparse or hybrid (default: the configured "
                                                                "mode, hybrid)")] = None,
    group_by: Annotated[str | None, typer.Option("--group-by", help="document: k documents, best chunks each")] = None,
    mmr: Annotated[float | None, typer.Option("--mmr", min=0.0, max=1.0, help="MMR λ: 1 keeps the ranking, lower "
                                              "values move passages like ones already shown down")] = None,
) -> None:
    """Search the index and print the best-matching chunks."""
    from schemas.retrieval import SearchFilter

    if mode not in (None, "dense", "sparse", "hybrid"):
        raise typer.BadParameter(f"{mode!r} is not one of dense, sparse, hybrid", param_hint="--mode")
    if group_by not in (None, "document"):
        raise typer.BadParameter(f"{group_by!r}: only 'document' is supported", param_hint="--group-by")
    application = _application()
    try:
        flt = SearchFilter(tenant=tenant or application.settings.default_tenant,
                           access_tags=tuple(tag) if tag else None)
        chunks, _ = application.answering.retrieve(query, k, flt, checked=False, mode=mode,  # type: ignore[arg-type]
                                                   group_by=group_by, mmr=mmr)  # type: ignore[arg-type]
    finally:
        application.close()
    if as_json:
        output.emit_json([
            {"chunk_id": c.chunk_id, "document_id": c.document_id, "source_uri": c.source_uri, "score": c.score,
             "rank_score": c.rank_score, "text": c.text, "page_start": c.page_start, "page_end": c.page_end}
            for c in chunks])
        return
    if not chunks:
        output.stdout.print("no results")
    for c in chunks:
        pages = f" p.{c.page_start}" + (f"-{c.page_end}" if c.page_end != c.page_start else "") if c.page_start else ""
        output.stdout.print(f"[bold]{c.rank}. {c.score:.3f}[/] {c.source_uri}{pages}")
        output.stdout.print("   " + " ".join(c.text.split())[:300], highlight=False)


@app.command(name="eval")
def eval_cmd(
    qrels_dir: Annotated[Path, typer.Argument(help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")],
    as_json: JsonFlag = False,
    use_index: Annotated[bool, typer.Option("--use-index", help="evaluate the current index as it is")] = False,
    home: Annotated[Path | None, typer.Option("--home", help="keep the throwaway home here (a rerun embeds "
                                                                "nothing)")] = None,
    mode: Annotated[list[str] | None, typer.Option("--mode", help="dense, sparse, hybrid or hybrid+rerank "
                                                                  "(repeatable; default: all)")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels file under qrels/")] = "test",
    tenant: TenantOpt = None,
    compare: Annotated[tuple[Path, Path] | None, typer.Option(
        "--compare", metavar="A.toml B.toml", help="two settings files (shaped like ragline.toml) side by side, "
        "with a paired significance test per metric")] = None,
) -> None:
    """Retrieval quality per mode on a BEIR test collection: nDCG@10, recall@10/100, MRR@10.
    Each document is ranked by its best chunk."""
    from services.evaluation import METRICS, RERANKED, run_eval
    from services.settings import Settings

    for m in mode or ():
        if m not in ("dense", "sparse", "hybrid", RERANKED):
            raise typer.BadParameter(f"{m!r} is not one of dense, sparse, hybrid, {RERANKED}", param_hint="--mode")
    if compare is not None:
        if use_index:
            raise typer.BadParameter("each configuration builds its own index", param_hint="--use-index")
        _eval_compare(qrels_dir, compare, as_json, home, tuple(mode or ()), split, tenant)
        return
    with output.progress("evaluating", enabled=not as_json) as bar:
        tick = bar.advance if bar else None
        report = run_eval(Settings(), qrels_dir, split=split, use_index=use_index, home=home,
                          modes=tuple(mode or ()), tenant=tenant, on_document=tick, on_query=tick)
    if as_json:
        output.emit_json(report.to_dict())
        return
    output.stdout.print(f"{report.dataset}: {report.queries} queries, {report.documents} documents, "
                        f"collection {report.collection}")
    output.table("retrieval quality", ["mode", *METRICS, "p50 ms"],
                 [[m, *(f"{s[k]:.4f}" for k in METRICS), f"{report.retrieve_ms_p50[m]:.1f}"]
                  for m, s in report.modes.items()])
    if report.duplicate_top10:
        output.error(f"{report.duplicate_top10} top-10 list(s) showed one passage twice")


def _eval_compare(qrels_dir: Path, files: tuple[Path, Path], as_json: bool, home: Path | None,
                  modes: tuple[str, ...], split: str, tenant: str | None) -> None:
    from services.evaluation import SIGNIFICANCE_SAMPLES, SIGNIFICANCE_TEST, run_compare
    from services.settings import Settings

    with output.progress("evaluating", enabled=not as_json) as bar:
        tick = bar.advance if bar else None
        report = run_compare(Settings(), qrels_dir, *files, split=split, home=home, modes=modes, tenant=tenant,
                             on_document=tick, on_query=tick)
    if as_json:
        output.emit_json(report.to_dict())
        return
    first, second = report.reports
    output.stdout.print(f"{first.dataset}: {first.queries} queries\n  A = {report.a}: {first.documents} documents, "
                        f"collection {first.collection}\n  B = {report.b}: {second.documents} documents, "
                        f"collection {second.collection}", highlight=False)
    output.table("A vs B", ["mode", "metric", "A", "B", "B - A", "p"],
                 [[mode, metric, f"{c.a:.4f}", f"{c.b:.4f}", f"{c.delta:+.4f}",
                   f"{c.p:.4f}" + ("*" if c.p < 0.05 else "")]
                  for mode, metrics in report.modes.items() for metric, c in metrics.items()])
    output.stdout.print(f"p: {SIGNIFICANCE_TEST}, {SIGNIFICANCE_SAMPLES:,} samples (exact with few queries); "
                        "* p < 0.05", highlight=False)


@app.command(name="reindex")
def reindex_cmd(as_json: JsonFlag = False) -> None:
    """Build the configured index generation for every document still only in an older one
    (from kept bytes or the source file; cached embeddings are reused), then move the alias."""
    application = _application()
    try:
        with output.progress("re-indexing", enabled=not as_json) as bar:
            run = application.ingestion.reindex(_progress(bar, as_json))
    finally:
        application.close()
    _render_ingest(run.summary, run.stats, as_json)
    if not as_json and run.generation:
        output.stderr.print(run.generation, highlight=False)
    raise typer.Exit(EXIT_PARTIAL if run.summary.documents["failed"] else 0)


def _progress(bar: output.Progress | None, as_json: bool) -> Callable[[DocumentOutcome], None]:
    """Per-document output: failures on stderr, and the progress count."""

    def on_document(outcome: DocumentOutcome) -> None:
        if outcome.status == "failed" and not as_json:
            output.error(f"{outcome.source_uri}: {outcome.error}")
        if bar:
            bar.advance(Path(outcome.source_uri).name[:40])

    return on_document


@app.command(name="reconcile")
def reconcile_cmd(
    repair: Annotated[bool, typer.Option("--repair", help="delete orphan points, re-index missing ones")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare the document registry with the vector index (and repair on request)."""
    application = _application()
    try:
        report = application.ingestion.reconcile(repair=repair)
    finally:
        application.close()
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
    application = _application()
    started = time.perf_counter()
    try:
        changed = application.maintenance.optimize()
    finally:
        application.close()
    output.stdout.print(f"{'optimized' if changed else 'already optimal'} in {time.perf_counter() - started:.1f} s")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    worker: Annotated[bool, typer.Option(
        "--worker", help="also run the Kafka ingestion worker in this process (the embedded index has one)")] = False,
) -> None:
    """Serve the HTTP API (uvicorn). Without API keys it binds only to loopback."""
    import ipaddress

    import uvicorn

    from services.api.app import create_app
    from services.settings import Settings

    settings = Settings()
    loopback = host == "localhost" or _is_loopback(host, ipaddress)
    if not settings.api.keys and not loopback:
        raise typer.BadParameter(
            f"refusing to serve {host} without API keys: configure RAGLINE_API__KEYS or bind 127.0.0.1",
            param_hint="--host")
    built = build_application(settings)
    application = create_app(built)
    if worker:  # started in the lifespan; stopped (batch committed) before the stores close
        application.state.background.append(hosted_worker(built, application.state.runtime.metrics.prometheus))
    output.stderr.print(f"ragline serving on http://{host}:{port} (docs: /docs)"
                        + (" with the ingestion worker" if worker else ""))
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
    except RaglineError as exc:
        output.error(str(exc))
        sys.exit(1)
    except Exception as exc:
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        output.error(_settings_message(exc))
        sys.exit(1)


def _settings_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        path = "__".join(str(p) for p in err["loc"]).upper()
        parts.append(f"RAGLINE_{path}={err.get('input')!r}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)
