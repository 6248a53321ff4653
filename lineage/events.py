"""Build, serialize and validate lineage CloudEvents (CloudEvents 1.0, the CNCF SDK).

Builders are pure: they turn an :class:`AnswerRecord` or a :class:`DocumentChange`
into a CloudEvent whose ``data`` follows the versioned JSON Schema in
``schemas/jsonschema/<type>.json``. Sinks decide when to persist them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

import schemas
from lineage.errors import InvalidEventError
from schemas import ids
from schemas.lineage import (
    ANSWER_EVENT_TYPE,
    DOCUMENT_DELETED_EVENT_TYPE,
    DOCUMENT_INDEXED_EVENT_TYPE,
    AnswerRecord,
    DocumentChange,
)

SCHEMA_DIR = Path(schemas.__file__).parent / "jsonschema"
EVENT_TYPES = (ANSWER_EVENT_TYPE, DOCUMENT_INDEXED_EVENT_TYPE, DOCUMENT_DELETED_EVENT_TYPE)
_FORMAT = JSONFormat()


def dataschema_uri(event_type: str) -> str:
    """The ``dataschema`` attribute: the ``$id`` of the type's JSON Schema."""
    return f"urn:ragline:schema:{event_type}"


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (what SQLite hands back); aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


def answer_data(answer: AnswerRecord, *, keep_query_text: bool, query_sha256: str | None = None) -> dict[str, Any]:
    """The ``ai.ragline.answer.generated.v1`` payload (field names from DESIGN.md). ``query_sha256``
    is given when the record was rebuilt from rows that keep only the query's hash."""
    refs = sorted(answer.retrieved, key=lambda r: r.rank)
    documents: dict[tuple[str, str], None] = {(r.document_id, r.document_version): None for r in refs}
    data = {
        "answer_id": answer.answer_id, "tenant": answer.tenant, "status": answer.status,
        "endpoint": answer.endpoint, "request_id": answer.request_id,
        "query": answer.query if keep_query_text else None,
        "query_sha256": query_sha256 or ids.text_hash(answer.query),
        "answer_sha256": ids.text_hash(answer.answer_text),
        "retrieved": [{"chunk_id": r.chunk_id, "document_id": r.document_id, "document_version": r.document_version,
                       "source_uri": r.source_uri, "rank": r.rank, "score": r.score, "cited": r.cited}
                      for r in refs],
        "chunk_ids": [r.chunk_id for r in refs],
        "document_ids": list(dict.fromkeys(d for d, _ in documents)),
        "documents": [{"document_id": d, "document_version": v} for d, v in documents],
        "embedding_model_version": answer.embedding_model_version,
        "prompt_template_version": answer.prompt_template_version,
        "prompt_template_sha256": answer.prompt_template_sha256,
        "llm_model_version": answer.llm_model_version,
        "retrieval_timestamp": _iso(answer.retrieval_timestamp), "collection": answer.collection,
        "filters": answer.filters, "usage": answer.usage.model_dump(), "timings_ms": answer.timings_ms,
    }
    if answer.retrieval is not None:  # optional (answers recorded before hybrid search have none)
        data["retrieval"] = answer.retrieval
    return data


def build_answer_event(answer: AnswerRecord, *, deployment: str, keep_query_text: bool,
                       query_sha256: str | None = None) -> CloudEvent:
    """The lineage CloudEvent of a finished answer; its ``id`` is the answer_id."""
    if answer.status == "streaming":
        raise InvalidEventError(f"answer {answer.answer_id}: a streaming answer has no event until it finishes")
    attributes: dict[str, Any] = {
        "specversion": "1.0", "id": answer.answer_id, "source": f"/ragline/{deployment}/query-api",
        "type": ANSWER_EVENT_TYPE, "time": utc(answer.created_at), "subject": answer.answer_id,
        "datacontenttype": "application/json", "dataschema": dataschema_uri(ANSWER_EVENT_TYPE),
        "tenant": answer.tenant,
    }
    if answer.traceparent:
        attributes["traceparent"] = answer.traceparent
    return CloudEvent(attributes, answer_data(answer, keep_query_text=keep_query_text, query_sha256=query_sha256))


def document_event_id(change: DocumentChange) -> str:
    """Deterministic, so a repeated write of the same change is one event.

    An indexing is identified by (document version, index generation); a deletion also
    by its time, since a document can be deleted, re-indexed and deleted again.
    """
    parts = [change.kind, change.tenant, change.document_id, change.document_version, change.collection]
    if change.kind == "deleted":
        parts += [_iso(change.occurred_at), str(change.forgotten)]
    return str(uuid.uuid5(ids.RAGLINE_NAMESPACE, "\x1f".join(["document-event", *parts])))


def build_document_event(change: DocumentChange, *, deployment: str) -> CloudEvent:
    event_type = DOCUMENT_INDEXED_EVENT_TYPE if change.kind == "indexed" else DOCUMENT_DELETED_EVENT_TYPE
    data: dict[str, Any] = {
        "tenant": change.tenant, "document_id": change.document_id, "document_version": change.document_version,
        "source_uri": change.source_uri, "collection": change.collection,
    }
    if change.kind == "indexed":
        data |= {"pipeline_fingerprint": change.pipeline_fingerprint, "chunk_ids": change.chunk_ids,
                 "media_type": change.media_type}
        if change.pii_redacted is not None:
            data["pii_redacted"] = change.pii_redacted
    else:
        data["forgotten"] = change.forgotten
        if change.receipt is not None:
            data["receipt"] = change.receipt
    attributes = {
        "specversion": "1.0", "id": document_event_id(change), "source": f"/ragline/{deployment}/ingest",
        "type": event_type, "time": utc(change.occurred_at), "subject": change.document_id,
        "datacontenttype": "application/json", "dataschema": dataschema_uri(event_type), "tenant": change.tenant,
    }
    return CloudEvent(attributes, data)


def serialize(event: CloudEvent) -> str:
    """Structured-mode JSON (what the outbox stores and Iceberg keeps in ``event_json``)."""
    return _FORMAT.write(event).decode("utf-8")


def parse(payload: str | bytes) -> CloudEvent:
    return _FORMAT.read(None, payload)  # type: ignore[return-value]


@cache
def _validator(event_type: str) -> jsonschema.protocols.Validator:
    if event_type not in EVENT_TYPES:
        raise InvalidEventError(f"unknown event type {event_type!r}")
    schema = json.loads((SCHEMA_DIR / f"{event_type}.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_event(event: CloudEvent) -> None:
    """Check the envelope and the ``data`` against the type's JSON Schema."""
    event_type = event.get_type()
    if event.get_dataschema() != dataschema_uri(event_type):
        raise InvalidEventError(f"event {event.get_id()}: dataschema {event.get_dataschema()!r} is not {event_type}'s")
    if not event.get_extension("tenant"):
        raise InvalidEventError(f"event {event.get_id()}: missing the tenant extension")
    errors = sorted(_validator(event_type).iter_errors(event.get_data()), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        raise InvalidEventError(f"event {event.get_id()} ({event_type}): data/{where}: {errors[0].message}")
