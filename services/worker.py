"""``ragline worker`` and ``ragline produce``: thin commands over the streaming use case
(registered in ``services.cli``), and the worker hosted by ``ragline serve --worker``.

Which to run: with the embedded index (Qdrant Edge, the default) one process owns the
index, so run either ``ragline serve --worker`` or one ``ragline worker`` (no server on
the same home); with a Qdrant server any number of workers and API replicas share it.
Kafka and the streaming use case load on use, so ``ragline --help`` stays quick.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services import output
from services.application import build_application

if TYPE_CHECKING:
    from services.application import Application
    from services.streaming import BackgroundWorker

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
EXIT_PARTIAL = 3


def worker_cmd(
    until_idle: Annotated[float | None, typer.Option(
        "--until-idle", min=0, help="exit after this many seconds with nothing to consume")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=1, max=65535, help="serve Prometheus metrics (lag, throughput) on this port")] = None,
    metrics_host: Annotated[str, typer.Option("--metrics-host", help="address of the metrics port")] = "127.0.0.1",
    relay: Annotated[bool, typer.Option(
        "--relay", help="also relay the lineage outbox (document events) from this process")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Index the documents requested on RAGLINE_KAFKA__INGEST_TOPIC (a consumer group; needs
    RAGLINE_KAFKA__BOOTSTRAP). SIGTERM or Ctrl-C finishes and commits the batch in flight."""
    from prometheus_client import start_http_server

    from services.streaming import WorkerMetrics

    application = build_application()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    relay_worker = None
    try:
        metrics = WorkerMetrics()
        if metrics_port:
            start_http_server(metrics_port, metrics_host, registry=metrics.prometheus)
        worker = application.streaming.worker(metrics=metrics)
        if relay:
            relay_worker = application.maintenance.relay_worker()
            relay_worker.start()
        if not as_json:
            output.stderr.print("indexing requests from Kafka; Ctrl-C stops after committing the batch in flight")
        report = worker.run(until_idle_s=until_idle, stop=stop)
    finally:
        if relay_worker is not None:
            relay_worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        application.close()
    if as_json:
        output.emit_json(asdict(report) | {"indexed": report.indexed})
        return
    output.stdout.print(
        f"{report.consumed} requests: {report.new} new, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.deleted} deleted, {report.dead_lettered} dead-lettered · {report.batches} batches committed")


def produce_cmd(
    targets: Annotated[list[str] | None, typer.Argument(help="files, folders or http(s) URLs")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="tenant (default: RAGLINE_DEFAULT_TENANT)")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="access tag (repeatable)")] = None,
    delete: Annotated[bool, typer.Option(
        "--delete", help="request deletion instead (a folder: every document registered from under it)")] = False,
    prune: Annotated[str | None, typer.Option(
        "--prune", metavar="ROOT", help="also request deletion of ROOT's documents whose source is gone")] = None,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="follow symlinks inside folders (only to targets inside the folder)")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Put document upsert (or delete) requests on RAGLINE_KAFKA__INGEST_TOPIC for `ragline
    worker`, walking folders as `ragline ingest` does (same source_uri, same document_id)."""
    from services.streaming import ProduceRequest

    if not targets and not prune:
        raise typer.BadParameter("give files, folders or URLs, or --prune ROOT", param_hint="TARGETS")
    application = build_application()
    try:
        request = ProduceRequest(list(targets or ()), tenant or application.settings.default_tenant,
                                 tuple(tag or ()), delete, prune, follow_symlinks)
        report = application.streaming.produce(request)
    finally:
        application.close()
    if as_json:
        output.emit_json(asdict(report))
    else:
        output.stdout.print(f"{report.upserts} upsert and {report.deletes} delete requests sent"
                            + (f" ({len(report.pruned)} pruned)" if prune else ""))
        for failure in report.failures:
            output.error(f"{failure['source']}: {failure['error']}")
    if report.failures:
        raise typer.Exit(EXIT_PARTIAL)


def hosted_worker(application: Application, metrics_registry: Any) -> BackgroundWorker:
    """The worker of ``ragline serve --worker``: a thread over the server's Application,
    its metrics on the server's /metrics."""
    from services.streaming import WorkerMetrics

    return application.streaming.background_worker(WorkerMetrics(metrics_registry))
