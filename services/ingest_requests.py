"""The ingestion requests on Kafka (``ragline.ingest.requests``): CloudEvents
``ai.ragline.document.upsert.v1`` and ``ai.ragline.document.delete.v1``.

Producers write binary content mode, like the lineage events: every attribute a ``ce_*``
header, ``content-type: application/json``, the value the event's ``data``, the key the
document_id (so one document's requests stay in order on one partition). A structured
mode record (``application/cloudevents+json``, the whole event as the value) is read
too, as other languages' SDKs often write it. ``data`` is validated against
``schemas/jsonschema/<type>.json`` on consume; anything that breaks the contract is an
:class:`InvalidRequest` (the worker dead-letters it). Pure: no Kafka client here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

import schemas
from schemas import ids
from schemas.documents import SourceDocument
from schemas.errors import TerminalError

UPSERT_TYPE = "ai.ragline.document.upsert.v1"
DELETE_TYPE = "ai.ragline.document.delete.v1"
REQUEST_TYPES = (UPSERT_TYPE, DELETE_TYPE)
SCHEMA_DIR = Path(schemas.__file__).parent / "jsonschema"
MAX_METADATA_BYTES = 64 * 1024  # as the API's uploads
_JSON = "application/json"
_STRUCTURED = "application/cloudevents+json"

Headers = list[tuple[str, bytes]]


class InvalidRequest(TerminalError):
    """A record that is not a valid ingestion request: dead-lettered, never retried."""


@dataclass(frozen=True, slots=True)
class UpsertRequest:
    tenant: str
    source_uri: str
    access_tags: tuple[str, ...] = ()
    document_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    media_type: str | None = None
    source_root: str | None = None
    content: bytes | None = None  # inline (text or base64); else ``uri`` is fetched
    uri: str | None = None

    @property
    def key(self) -> str:
        return self.document_id or ids.document_id(self.tenant, self.source_uri)

    def source(self, data: bytes) -> SourceDocument:
        return SourceDocument(self.source_uri, data, self.tenant, self.document_id, self.access_tags,
                              media_type=self.media_type, metadata=self.metadata, source_root=self.source_root)


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    tenant: str
    document_id: str

    @property
    def key(self) -> str:
        return self.document_id


IngestRequest = UpsertRequest | DeleteRequest


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """One request as a producer sends it (binary content mode)."""

    key: bytes
    value: bytes
    headers: Headers


# --- producing ------------------------------------------------------------------------

def upsert_data(source: SourceDocument) -> dict[str, Any]:
    """The upsert ``data`` of a document read by the producer: UTF-8 content as ``text``
    (no base64 inflation; the bytes, hence the version, are the same), else base64."""
    data: dict[str, Any] = {"tenant": source.tenant, "source_uri": source.source_uri,
                            "access_tags": list(source.access_tags)}
    if source.document_id:
        data["document_id"] = source.document_id
    if source.metadata:
        data["metadata"] = source.metadata
    if source.media_type:
        data["media_type"] = source.media_type
    if source.source_root:
        data["source_root"] = source.source_root
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError:
        data["content_base64"] = base64.b64encode(source.data).decode("ascii")
    else:
        data["text"] = text
    return data


def uri_data(tenant: str, uri: str, access_tags: tuple[str, ...]) -> dict[str, Any]:
    """An upsert the worker fetches (under the API's fetch rules); the URL is its identity."""
    return {"tenant": tenant, "source_uri": uri, "uri": uri, "access_tags": list(access_tags)}


def delete_data(tenant: str, *, document_id: str | None = None, source_uri: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"tenant": tenant}
    if document_id:
        data["document_id"] = document_id
    else:
        data["source_uri"] = source_uri
    return data


def encode(event_type: str, data: dict[str, Any], *, deployment: str, event_id: str | None = None,
           moment: datetime | None = None) -> EncodedRequest:
    """A request record; the data is validated first, so a producer never sends one the
    worker would dead-letter for its shape."""
    _validate(event_type, data)
    request = _request(event_type, data)
    headers: Headers = [
        ("ce_specversion", b"1.0"), ("ce_id", (event_id or ids.uuid7()).encode()),
        ("ce_source", f"/ragline/{deployment}/producer".encode()), ("ce_type", event_type.encode()),
        ("ce_time", (moment or datetime.now(UTC)).isoformat().replace("+00:00", "Z").encode()),
        ("ce_subject", request.key.encode()), ("content-type", _JSON.encode()),
        ("ce_dataschema", dataschema_uri(event_type).encode()), ("ce_tenant", request.tenant.encode())]
    value = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return EncodedRequest(request.key.encode(), value, headers)


def dataschema_uri(event_type: str) -> str:
    return f"urn:ragline:schema:{event_type}"


# --- consuming ------------------------------------------------------------------------

def decode(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> IngestRequest:
    """The request a record carries, validated; :class:`InvalidRequest` says why not."""
    attributes = _attributes(headers)
    if attributes.get("datacontenttype", "").split(";")[0].strip() == _STRUCTURED or (
            "type" not in attributes and (value or b"").lstrip()[:1] == b"{" and b'"specversion"' in (value or b"")):
        attributes, data = _structured(value)
    else:
        data = _json(value, "the record's value")
    event_type = attributes.get("type", "")
    if attributes.get("specversion") != "1.0":
        raise InvalidRequest(f"ce_specversion {attributes.get('specversion')!r} is not 1.0")
    if event_type not in REQUEST_TYPES:
        raise InvalidRequest(f"ce_type {event_type!r} is not one of {', '.join(REQUEST_TYPES)}")
    content_type = attributes.get("datacontenttype", _JSON).split(";")[0].strip()
    if content_type != _JSON:
        raise InvalidRequest(f"content-type {content_type!r} is not {_JSON}")
    if not isinstance(data, dict):
        raise InvalidRequest(f"{event_type}: data is not a JSON object")
    _validate(event_type, data)
    tenant = attributes.get("tenant")
    if tenant is not None and tenant != data["tenant"]:
        raise InvalidRequest(f"ce_tenant {tenant!r} differs from data.tenant {data['tenant']!r}")
    return _request(event_type, data)


def _attributes(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    try:
        for name, raw in headers:
            lowered = name.lower()
            if lowered.startswith("ce_"):
                attributes[lowered[3:]] = raw.decode()
            elif lowered == "content-type":
                attributes["datacontenttype"] = raw.decode()
    except (UnicodeDecodeError, AttributeError) as exc:
        raise InvalidRequest(f"unreadable header: {exc}") from exc
    return attributes


def _structured(value: bytes | None) -> tuple[dict[str, str], Any]:
    event = _json(value, "the structured-mode event")
    if not isinstance(event, dict):
        raise InvalidRequest("the structured-mode event is not a JSON object")
    data = event.pop("data", None)
    if "data_base64" in event:
        raise InvalidRequest("data_base64 is not accepted: data must be a JSON object")
    attributes = {k: v for k, v in event.items() if isinstance(v, str)}
    return attributes, data


def _json(value: bytes | None, what: str) -> Any:
    try:
        return json.loads((value or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"{what} is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _validate(event_type: str, data: dict[str, Any]) -> None:
    try:
        _validator(event_type)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidRequest(f"{event_type}: {exc.message[:300]}") from exc
    for name in ("tenant", "source_uri", "document_id", "source_root", "media_type", "uri"):
        _clean(data.get(name), name)
    for tag in data.get("access_tags", ()):
        _clean(tag, "access_tags")
    if len(json.dumps(data.get("metadata", {}), default=str)) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"{event_type}: metadata exceeds {MAX_METADATA_BYTES:,} bytes of JSON")


def _clean(value: object, name: str) -> None:
    """The API's rule for ids, tags and URIs: no lone surrogate (JSON escapes can carry one)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(f"{name}: must be valid Unicode (a lone surrogate is not)") from exc


def _request(event_type: str, data: dict[str, Any]) -> IngestRequest:
    tenant = data["tenant"]
    if event_type == DELETE_TYPE:
        return DeleteRequest(tenant, data.get("document_id") or ids.document_id(tenant, data["source_uri"]))
    content: bytes | None = None
    if "text" in data:
        try:
            content = data["text"].encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest("text: must be valid Unicode (a lone surrogate is not)") from exc
    elif "content_base64" in data:
        try:
            content = base64.b64decode(data["content_base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(f"content_base64: {exc}") from exc
    root = data.get("source_root")
    if root is not None and not (data["source_uri"] == root or data["source_uri"].startswith(root.rstrip("/") + "/")):
        raise InvalidRequest(f"source_root {root!r} does not contain source_uri {data['source_uri']!r}")
    return UpsertRequest(
        tenant=tenant, source_uri=data["source_uri"], access_tags=tuple(data.get("access_tags", ())),
        document_id=data.get("document_id"), metadata=data.get("metadata") or {}, media_type=data.get("media_type"),
        source_root=data.get("source_root"), content=content, uri=data.get("uri"))


@cache
def _validator(event_type: str) -> Any:
    """The type's JSON Schema compiled to Python (fastjsonschema, as the lander's)."""
    if event_type not in REQUEST_TYPES:
        raise InvalidRequest(f"unknown request type {event_type!r}")
    return fastjsonschema.compile(json.loads((SCHEMA_DIR / f"{event_type}.json").read_text(encoding="utf-8")))
