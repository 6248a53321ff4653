"""The ingestion use case: every way a document enters, changes or leaves the index.

The CLI, the HTTP API and the Kafka worker call these methods and render the result;
the rules (which generation is written, when the alias moves, what may be fetched, what
a caller may see or delete) live here or below, never in an adapter.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from ingest.embed.client import EmbeddingStats
from ingest.fetch import FetchPolicy, FetchRefused, fetch
from ingest.pipeline import DocumentOutcome, IngestPipeline, IngestSummary
from ingest.reconcile import ReconcileReport, reconcile
from ingest.registry import DocumentRecord, DocumentRegistry
from ingest.source_store import SourceStore, rereadable
from ingest.sources import SourceFailure, SourceOptions, count_sources, iter_sources, load_passwords, read_path
from schemas.documents import SourceDocument
from services.errors import InvalidInput
from services.generations import Generations
from services.jobs import Job, JobFailed, JobRunner

OnDocument = Callable[[DocumentOutcome], None]


@dataclass(frozen=True)
class IngestRun:
    summary: IngestSummary
    stats: EmbeddingStats
    generation: str | None  # what happened to the serving alias (None for an estimate)
    pruned: tuple[DocumentRecord, ...] = ()  # removed because their source under a pruned folder is gone


@dataclass(frozen=True)
class IngestTargets:
    """What an operator asked to ingest (CLI, ``ragline produce``)."""

    targets: list[str]
    tenant: str
    access_tags: tuple[str, ...] = ()
    passwords_file: Path | None = None
    follow_symlinks: bool = False
    #: Also remove the documents of these folders whose source is gone (``--prune``).
    prune: bool = False


def outcome_view(outcome: DocumentOutcome) -> dict[str, Any]:
    return {"document_id": outcome.document_id, "version": outcome.version, "status": outcome.status,
            "chunks": outcome.chunks, "near_duplicates": outcome.near_duplicates, "warnings": list(outcome.warnings),
            "error": outcome.error}


class LocalSources:
    """The operator's files: the hardened walk of ``ingest/sources.py``, and what the
    registry holds of a folder (for ``--prune``). It needs no index, so ``ragline produce``
    uses it beside a server that owns the embedded one.

    Pruning goes by the ``source_root`` the registry keeps: only documents read from disk
    (by ``ragline ingest`` or ``ragline produce``) whose ``source_uri`` (a resolved
    absolute path) lies under the folder, compared by whole path components, can be
    pruned; an upload or a client-given identity that looks like a path never is. A
    document is gone when the walk did not meet it and nothing exists at its path (a
    file the walk refused, or one in a folder it could not read, stays)."""

    def __init__(self, *, registry: DocumentRegistry, max_bytes: int, operator_fetch: FetchPolicy,
                 default_passwords_file: Path | None) -> None:
        self._registry = registry
        self._max_bytes = max_bytes
        self._operator_fetch = operator_fetch
        self._passwords_file = default_passwords_file

    def options(self, request: IngestTargets) -> SourceOptions:
        return SourceOptions(
            tenant=request.tenant, access_tags=request.access_tags,
            passwords=load_passwords(request.passwords_file or self._passwords_file),
            max_bytes=self._max_bytes, fetch=self._operator_fetch, follow_symlinks=request.follow_symlinks)

    def walk(self, request: IngestTargets) -> Iterator[SourceDocument | SourceFailure]:
        """Every source of the targets (files and folders read, URLs fetched), as ``ragline ingest`` reads them."""
        return iter_sources(request.targets, self.options(request))

    def count(self, request: IngestTargets) -> int:
        """How many sources :meth:`walk` yields (by the same walk, reading nothing): a progress total."""
        return count_sources(request.targets, self.options(request))

    @staticmethod
    def folder(target: str, option: str = "--prune") -> str:
        """The resolved folder ``target`` names; a missing or unreadable one prunes nothing."""
        root = os.path.realpath(target)
        if not os.path.isdir(root):
            raise InvalidInput(option, f"{target}: not a folder; nothing was pruned")
        return root

    def prune_roots(self, targets: list[str]) -> list[str]:
        """The folders among ``targets`` (``ragline ingest ROOT --prune``)."""
        folders = [t for t in targets if not t.startswith(("http://", "https://")) and os.path.isdir(t)]
        if not folders:
            raise InvalidInput("--prune", "needs a folder among the targets; nothing was pruned")
        return list(dict.fromkeys(self.folder(t) for t in folders))

    def registered_under(self, tenant: str, root: str) -> list[DocumentRecord]:
        """The tenant's documents read from disk whose source lies under ``root``."""
        return list(self._registry.under_root(tenant, root))

    def gone(self, tenant: str, root: str, seen: set[str] | frozenset[str] = frozenset()) -> list[DocumentRecord]:
        """Documents of ``root`` whose source is gone: not met by the walk (``seen``) and
        nothing at the path any more."""
        return [r for r in self._registry.under_root(tenant, root)
                if r.source_uri not in seen and _vanished(r.source_uri)]


def _vanished(path: str) -> bool:
    """Nothing at ``path``; a path that cannot be checked (permissions) is not gone."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _noting(sources: Iterable[SourceDocument | SourceFailure],
            seen: set[str]) -> Iterator[SourceDocument | SourceFailure]:
    for source in sources:
        seen.add(source.source_uri)
        yield source


class Ingestion:
    def __init__(self, *, pipeline: Callable[[], IngestPipeline], registry: DocumentRegistry,
                 generations: Generations, source_store: SourceStore, max_bytes: int,
                 operator_fetch: FetchPolicy, service_fetch: FetchPolicy,
                 default_passwords_file: Path | None, jobs: Callable[[], JobRunner], sync_max_bytes: int,
                 local: LocalSources | None = None) -> None:
        self._new_pipeline = pipeline
        self._registry = registry
        self._generations = generations
        self._sources = source_store
        self._max_bytes = max_bytes
        self._service_fetch = service_fetch
        self._jobs = jobs
        self._sync_max_bytes = sync_max_bytes
        self.local = local or LocalSources(registry=registry, max_bytes=max_bytes, operator_fetch=operator_fetch,
                                           default_passwords_file=default_passwords_file)
        self._shared: IngestPipeline | None = None
        self._unoptimized = 0  # points embedded in this process since the last HNSW build was due
        # The embedded index has one writer; embedding already uses every core.
        self._lock = threading.Lock()
        generations.ensure()

    # -- batch runs (CLI, worker) -------------------------------------------------------

    def source_options(self, request: IngestTargets) -> SourceOptions:
        return self.local.options(request)

    def count(self, request: IngestTargets) -> int:
        """The number of documents ``ingest(request)`` will report on (its progress total)."""
        return self.local.count(request)

    def ingest(self, request: IngestTargets, *, estimate: bool = False,
               on_document: OnDocument | None = None) -> IngestRun:
        """Walk, extract, chunk, embed and index the targets; then build HNSW when due and
        move the alias if the configured generation is complete. With ``request.prune``,
        then remove the documents of the folder targets whose source is gone, through the
        same delete as the API (after indexing: a renamed file is never missing)."""
        roots = self.local.prune_roots(request.targets) if request.prune and not estimate else []
        seen: set[str] = set()
        run = self.ingest_sources(_noting(self.local.walk(request), seen), estimate=estimate, on_document=on_document)
        if not roots or run.summary.stopped:
            return run
        pruned = [r for root in roots for r in self.local.gone(request.tenant, root, seen)
                  if self.delete(r.tenant, r.document_id)]
        return replace(run, pruned=tuple(pruned))

    def ingest_sources(self, sources: Iterable[SourceDocument | SourceFailure], *, estimate: bool = False,
                       on_document: OnDocument | None = None) -> IngestRun:
        """The run behind ``ragline ingest`` and each batch of ``ragline worker``: the
        sources through the pipeline, in order, then HNSW when due and the alias."""
        pipeline = self._new_pipeline()
        with self._lock:
            summary = pipeline.ingest(sources, estimate_only=estimate, on_document=on_document)
            generation = None if estimate else self._after_ingest(pipeline.embedder.stats.embedded_texts)
        return IngestRun(summary, pipeline.embedder.stats, generation)

    def _after_ingest(self, embedded: int) -> str:
        """Points embedded since the last build count across runs, so a worker's small
        batches add up to an HNSW build as one large ``ragline ingest`` would."""
        pending = self._unoptimized + embedded
        generation = self._generations.after_ingest(pending)
        self._unoptimized = 0 if pending >= self._generations.optimize_after_points else pending
        return generation

    def reindex(self, on_document: OnDocument | None = None) -> IngestRun:
        """Build the configured generation for every document indexed only in an older one,
        from kept bytes (uploads, inline text, fetched pages) or the source file, reusing
        cached embeddings; then move the alias if it is complete."""
        pipeline = self._new_pipeline()
        pending = [r for r in self._registry.indexed() if r.collection != pipeline.collection]
        summary = IngestSummary()
        with self._lock:
            for record in pending:
                source = self._stored_source(record)
                outcome = (DocumentOutcome(source.source_uri, "failed", record.document_id, error=source.error)
                           if isinstance(source, SourceFailure) else pipeline.ingest_one(source))
                summary.add(outcome)
                if on_document:
                    on_document(outcome)
            generation = self._generations.after_ingest(pipeline.embedder.stats.embedded_texts)
        return IngestRun(summary, pipeline.embedder.stats, generation)

    def reconcile(self, *, repair: bool) -> ReconcileReport:
        pipeline = self._new_pipeline()

        def reingest(tenant: str, document_id: str) -> bool:
            record = self._registry.get(tenant, document_id)
            if record is None:
                return False
            source = self._stored_source(record)
            if isinstance(source, SourceFailure):
                self._registry.record_stale(tenant, document_id, "points missing from the index; re-ingest the source")
                return False
            self._registry.record_stale(tenant, document_id, "re-indexed by reconcile")
            return pipeline.ingest_one(source).status != "failed"

        with self._lock:
            return reconcile(self._registry, self._generations.index, pipeline.collection, repair=repair,
                             reingest=reingest)

    def promote_if_complete(self) -> str:
        return self._generations.promote_if_complete()

    # -- one document at a time (API, worker) ----------------------------------------------

    def ingest_document(self, source: SourceDocument) -> DocumentOutcome:
        with self._lock:
            if self._shared is None:
                self._shared = self._new_pipeline()
            return self._shared.ingest_one(source)

    def accept(self, source: SourceDocument) -> DocumentOutcome | Job:
        """A document sent by a client: indexed now when small, else queued as a job that
        outlives this process (its outcome, failed or not, is the job's)."""
        if len(source.data) <= self._sync_max_bytes:
            return self.ingest_document(source)
        return self._jobs().submit(source.tenant, "ingest", partial(self._ingest_job, source))

    def job(self, tenant: str, job_id: str) -> Job | None:
        return self._jobs().get(tenant, job_id)

    def _ingest_job(self, source: SourceDocument) -> dict[str, Any]:
        outcome = self.ingest_document(source)
        if outcome.status == "failed":
            raise JobFailed(outcome.error or "document failed", outcome_view(outcome))
        return outcome_view(outcome)

    def fetch_for_tenant(self, uri: str, max_bytes: int) -> bytes:
        """A tenant's ``uri`` under the service policy (public addresses only, unless allowed);
        a refusal or a failed fetch is the caller's input error, before any job exists."""
        policy = replace(self._service_fetch, max_bytes=min(self._service_fetch.max_bytes, max_bytes))
        try:
            return fetch(uri, policy).data
        except FetchRefused as exc:
            raise InvalidInput("uri", f"refused: {exc}") from exc
        except httpx.HTTPError as exc:
            raise InvalidInput("uri", f"fetch failed: {exc}") from exc

    def delete(self, tenant: str, document_id: str, reader_tags: tuple[str, ...] | None = None) -> bool:
        """Remove a document from every generation it may be served from; a document the
        caller may not see is, to it, a document that does not exist."""
        if self._registry.get(tenant, document_id, reader_tags) is None:
            return False
        with self._lock:
            if self._shared is None:
                self._shared = self._new_pipeline()
            return self._shared.delete(tenant, document_id)

    def erase(self, tenant: str, document_id: str) -> list[str]:
        """Erasure's index half: delete the document from every generation it may be in, then
        rewrite those generations so no deleted byte stays in the engine's files; its kept
        bytes go too, and the registry keeps the row but nothing from its content. Returns
        the generations purged."""
        record = self._registry.get(tenant, document_id)
        generations = self._generations
        purged = list(dict.fromkeys(c for c in (record.collection if record else None, generations.target,
                                                 generations.serving) if c))
        with self._lock:
            if self._shared is None:
                self._shared = self._new_pipeline()
            self._shared.delete(tenant, document_id)
            if record is not None:
                self._sources.delete(tenant, record.version)
                self._registry.record_forgotten(tenant, document_id)
            for collection in purged:
                generations.index.purge(collection)
        return purged

    # -- reads --------------------------------------------------------------------------

    def get_document(self, tenant: str, document_id: str,
                     reader_tags: tuple[str, ...] | None = None) -> DocumentRecord | None:
        return self._registry.get(tenant, document_id, reader_tags)

    def list_documents(self, tenant: str, *, reader_tags: tuple[str, ...] | None, status: str | None = None,
                       source_prefix: str | None = None, limit: int = 50,
                       offset: int = 0) -> tuple[list[DocumentRecord], int]:
        return self._registry.list(tenant, status=status, source_prefix=source_prefix, limit=limit, offset=offset,
                                   reader_tags=reader_tags)

    def readable(self, tenant: str, document_ids: Iterable[str], reader_tags: tuple[str, ...] | None) -> set[str]:
        return self._registry.readable(tenant, list(document_ids), reader_tags)

    def _stored_source(self, record: DocumentRecord) -> SourceDocument | SourceFailure:
        if rereadable(record.source_uri) and Path(record.source_uri).is_file():
            read = read_path(Path(record.source_uri), SourceOptions(record.tenant, tuple(record.access_tags),
                                                                    max_bytes=self._max_bytes))
            if isinstance(read, SourceFailure):
                return read
            data = read.data
        else:
            kept = self._sources.get(record.tenant, record.version)
            if kept is None:
                return SourceFailure(record.source_uri, "its bytes were not kept and its source cannot be re-read: "
                                                        "ingest it again")
            data = kept
        return SourceDocument(record.source_uri, data, record.tenant, record.document_id, tuple(record.access_tags),
                              metadata=record.metadata, source_root=record.source_root)
