"""The maintenance use case: what an operator (or a background thread) runs to keep the
stores healthy: HNSW builds, lineage delivery (relay, lander), compaction, readiness."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from lineage import IcebergLanding, OutboxRelay, RelayWorker
from lineage.iceberg import CompactionReport
from services.generations import Generations

if TYPE_CHECKING:
    from lineage.lander import KafkaLander


class Maintenance:
    def __init__(self, *, generations: Callable[[], Generations], engine: Engine,
                 relay: Callable[[], OutboxRelay], relay_interval_s: float, lake: Callable[[], IcebergLanding],
                 lander: Callable[[], KafkaLander], outbox_backlog: Callable[[], tuple[int, datetime | None]]) -> None:
        self._generations = generations  # needs the embedder: built only by the commands that use it
        self._engine = engine
        self._relay = relay
        self._relay_interval_s = relay_interval_s
        self._lake = lake
        self._lander = lander
        self.outbox_backlog = outbox_backlog

    def optimize(self) -> bool:
        """Build the HNSW graph of the configured generation (Qdrant Edge: blocks this process)."""
        generations = self._generations()
        generations.ensure()
        return generations.optimize()

    def relay(self) -> OutboxRelay:
        return self._relay()

    def relay_worker(self) -> RelayWorker:
        """The background relay of ``ragline serve``: ``start()`` at startup, ``stop()`` at shutdown."""
        return RelayWorker(self._relay(), self._relay_interval_s)

    def lander(self) -> KafkaLander:
        return self._lander()

    def compact(self) -> list[CompactionReport]:
        return self._lake().compact()

    def readiness(self) -> dict[str, str]:
        """Each dependency's state: ``ok`` or the error it gave."""
        checks: dict[str, str] = {}
        try:
            generations = self._generations()
            generations.index.count(generations.serving)
            checks["index"] = "ok"
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure
            checks["index"] = f"error: {exc}"
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"error: {exc}"
        return checks

    def serving_generation(self) -> str:
        return self._generations().serving
