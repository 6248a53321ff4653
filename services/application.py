"""The composition root: the one place that builds ragline's use cases from settings.

Every runnable (the CLI, the HTTP API, the Kafka worker, the lander) holds an
``Application`` and calls its use cases (``ingestion``, ``answering``, ``audit``,
``maintenance``); none reaches for the index, the engine or the registry itself
(``tests/test_architecture.py`` holds them to it). Use cases are built on first use, so
a command builds only what it calls (``ragline lineage stats`` never loads the model).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where each use case is built, so that a command imports only what it calls
    # (``ragline --help`` none of it, ``ragline search`` no lineage lake, no ingest pipeline).
    from services.answering import AnswerService
    from services.audit import Audit
    from services.generations import Generations
    from services.ingestion import Ingestion, LocalSources
    from services.jobs import JobRunner
    from services.maintenance import Maintenance
    from services.settings import Settings
    from services.streaming import Streaming
    from services.wiring import Components


class Application:
    def __init__(self, components: Components) -> None:
        self.components = components  # the wiring below the use cases: for tests and benches, not adapters
        self._components = components
        self.settings = components.settings

    @cached_property
    def generations(self) -> Generations:
        from services.generations import Generations

        c = self._components
        return Generations(
            index=c.index, registry=c.registry, alias=c.alias, target=c.collection, serving=c.serving_collection,
            dimensions=c.embedder.dimensions, builds_hnsw_in_process=self.settings.index.backend == "edge",
            optimize_after_points=self.settings.index.optimize_after_points)

    @cached_property
    def ingestion(self) -> Ingestion:
        from services.ingestion import Ingestion
        from services.wiring import build_fetch_policy

        c = self._components
        return Ingestion(
            pipeline=c.pipeline, registry=c.registry, generations=self.generations, source_store=c.source_store,
            max_bytes=self.settings.extraction.max_bytes,
            operator_fetch=build_fetch_policy(self.settings, operator=True),
            service_fetch=build_fetch_policy(self.settings, operator=False),
            default_passwords_file=self.settings.extraction.passwords_file,
            jobs=lambda: self.jobs, sync_max_bytes=self.settings.api.sync_ingest_max_bytes, local=self.local_sources)

    @cached_property
    def local_sources(self) -> LocalSources:
        """The operator's files and what the registry holds of them; opens no index."""
        from services.ingestion import LocalSources
        from services.wiring import build_fetch_policy

        return LocalSources(registry=self._components.registry, max_bytes=self.settings.extraction.max_bytes,
                            operator_fetch=build_fetch_policy(self.settings, operator=True),
                            default_passwords_file=self.settings.extraction.passwords_file)

    @cached_property
    def streaming(self) -> Streaming:
        """``ragline worker`` / ``serve --worker`` and ``ragline produce`` (Kafka; imported on use)."""
        from services.streaming import Streaming

        c = self._components
        return Streaming(ingestion=lambda: self.ingestion, local=self.local_sources, request_log=c.request_log,
                         request_sink=c.request_producer, deployment=self.settings.deployment,
                         in_flight=self.settings.kafka.worker_in_flight, max_bytes=self.settings.extraction.max_bytes)

    @cached_property
    def answering(self) -> AnswerService:
        from retrieval.prompts import load_template
        from retrieval.retriever import Retriever
        from services.answering import AnswerPolicy, AnswerService
        from services.wiring import build_generator, build_reranker, retrieval_config

        c, gen, lineage = self._components, self.settings.generation, self.settings.lineage
        generations = self.generations
        generations.ensure()
        pii = self.settings.pii  # whose queries (and answer texts) lineage stores redacted
        policy = AnswerPolicy(min_score=gen.min_score, max_query_chars=self.settings.api.max_query_chars,
                              max_k=self.settings.api.max_k, store_query_text=lineage.store_query_text,
                              tenants_hashing_queries=frozenset(lineage.tenants_hashing_queries),
                              redactor=c.redactor, redact_queries=pii.queries,
                              tenants_raw_queries=frozenset(t for t, r in pii.tenants.items() if r.queries is False),
                              tenants_redacting_queries=frozenset(t for t, r in pii.tenants.items() if r.queries))
        retriever = Retriever(c.embedder, c.index, generations.serving, sparse=c.sparse_encoder,
                              config=retrieval_config(self.settings), reranker=build_reranker(self.settings),
                              passages=c.signature_store)
        return AnswerService(retriever, build_generator(self.settings), load_template(gen.template), c.lineage,
                             policy)

    @cached_property
    def audit(self) -> Audit:
        from ingest.embed.cache import EmbeddingCache
        from lineage.queries import LineageQueries
        from services.audit import Audit
        from services.db import scrub

        c = self._components
        return Audit(queries=LineageQueries(c.engine), ingestion=self.ingestion, archive=c.chunk_archive,
                     lineage=c.lineage, cache=EmbeddingCache(c.engine), lake=lambda: c.lineage_lake,
                     scrub=lambda: scrub(c.engine), collection=c.collection,
                     default_min_score=self.settings.generation.min_score)

    @cached_property
    def maintenance(self) -> Maintenance:
        from services.maintenance import Maintenance

        c = self._components
        return Maintenance(generations=lambda: self.generations, engine=c.engine, relay=c.relay,
                           relay_interval_s=self.settings.lineage.relay.interval_s, lake=lambda: c.lineage_lake,
                           lander=c.lander, outbox_backlog=c.outbox_backlog)

    @cached_property
    def jobs(self) -> JobRunner:
        from services.jobs import JobRunner

        runner = JobRunner(self._components.engine, self.settings.api.job_heartbeat_s)
        runner.start()
        return runner

    def close(self) -> None:
        if "jobs" in self.__dict__:
            self.jobs.close()
        self._components.close()


def build_application(settings: Settings | None = None) -> Application:
    from services.settings import Settings
    from services.wiring import Components

    return Application(Components(settings or Settings()))
