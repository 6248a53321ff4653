"""Lineage's own seam and data types.

``RelayTarget`` is where the outbox relay delivers events: the embedded default lands
them straight into Iceberg (:class:`lineage.iceberg.IcebergLanding`); a Kafka producer
is the production target (with a lander consuming into Iceberg behind it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One outbox row: a serialized CloudEvent waiting to be delivered."""

    seq: int
    event_id: str
    event_type: str
    tenant: str
    event_time: datetime
    payload: str  # structured-mode CloudEvent JSON


@runtime_checkable
class RelayTarget(Protocol):
    """Delivers a claimed outbox batch. ``deliver`` must be idempotent per ``batch_id``:
    a relay that crashed after delivering and before marking the rows sent delivers the
    same batch again under the same id, and that must add nothing."""

    def deliver(self, batch_id: str, events: Sequence[OutboxEvent]) -> int:
        """Deliver the batch; returns how many events were newly written."""
        ...


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What an erasure did: chunk texts erased (ids kept) and the answers that used them."""

    tenant: str
    document_id: str
    chunks_erased: int
    answer_ids: tuple[str, ...]
    answers_redacted: int = 0  # answers whose text (and quotes of the document) became a marker
    text_sha256s: tuple[str, ...] = ()  # the erased chunk texts' hashes (to drop cached embeddings)
