"""Answer lineage: CloudEvents, the transactional outbox, the relational projection,
the relay into Iceberg and the auditor queries. Imports ``schemas`` only.

The stores, the relay and the Iceberg landing load on first use (PEP 562): importing
one part (the outbox store, on the answer path) does not import pyiceberg, so the CLI
and the API start fast."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from lineage.base import ForgetReport, OutboxEvent, RelayTarget
from lineage.errors import (
    AnswerStateError,
    DuplicateAnswerError,
    InvalidCursorError,
    InvalidEventError,
    LandingError,
    LineageError,
    LineageStoreError,
)

if TYPE_CHECKING:
    from lineage.archive import ArchivedText, SqlChunkArchive
    from lineage.events import build_answer_event, build_document_event, parse, serialize, validate_event
    from lineage.iceberg import IcebergLanding, default_catalog_properties, resolve_catalog_properties
    from lineage.queries import AnswerPage, AnswerTrace, AnswerUse, LineageQueries, SourceTrace
    from lineage.relay import OutboxRelay, RelayReport, RelayWorker
    from lineage.store import SqlLineageStore

_LAZY = {
    "ArchivedText": "archive", "SqlChunkArchive": "archive",
    "build_answer_event": "events", "build_document_event": "events", "parse": "events", "serialize": "events",
    "validate_event": "events",
    "IcebergLanding": "iceberg", "default_catalog_properties": "iceberg", "resolve_catalog_properties": "iceberg",
    "AnswerPage": "queries", "AnswerTrace": "queries", "AnswerUse": "queries", "LineageQueries": "queries",
    "SourceTrace": "queries",
    "OutboxRelay": "relay", "RelayReport": "relay", "RelayWorker": "relay",
    "SqlLineageStore": "store",
}

__all__ = [
    "AnswerPage", "AnswerStateError", "AnswerTrace", "AnswerUse", "ArchivedText", "DuplicateAnswerError",
    "ForgetReport", "IcebergLanding", "InvalidCursorError", "InvalidEventError", "LandingError", "LineageError",
    "LineageQueries", "LineageStoreError", "OutboxEvent", "OutboxRelay", "RelayReport", "RelayTarget", "RelayWorker",
    "SourceTrace", "SqlChunkArchive", "SqlLineageStore", "build_answer_event", "build_document_event",
    "default_catalog_properties", "parse", "resolve_catalog_properties", "serialize", "validate_event",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"lineage.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lineage' has no attribute {name!r}")
