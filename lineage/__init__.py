"""Answer lineage: CloudEvents, the transactional outbox, the relational projection,
the relay into Iceberg and the auditor queries. Imports ``schemas`` only."""

from lineage.archive import ArchivedText, SqlChunkArchive
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
from lineage.events import build_answer_event, build_document_event, parse, serialize, validate_event
from lineage.iceberg import IcebergLanding, default_catalog_properties, resolve_catalog_properties
from lineage.queries import AnswerPage, AnswerTrace, AnswerUse, LineageQueries, SourceTrace
from lineage.relay import OutboxRelay, RelayReport, RelayWorker
from lineage.store import SqlLineageStore

__all__ = [
    "AnswerPage", "AnswerStateError", "AnswerTrace", "AnswerUse", "ArchivedText", "DuplicateAnswerError",
    "ForgetReport", "IcebergLanding", "InvalidCursorError", "InvalidEventError", "LandingError", "LineageError",
    "LineageQueries", "LineageStoreError", "OutboxEvent", "OutboxRelay", "RelayReport", "RelayTarget", "RelayWorker",
    "SourceTrace", "SqlChunkArchive", "SqlLineageStore", "build_answer_event", "build_document_event",
    "default_catalog_properties", "parse", "resolve_catalog_properties", "serialize", "validate_event",
]
