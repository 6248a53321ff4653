"""PII redaction between extraction and chunking: nothing downstream (embedder, embedding
cache, index payload, chunk archive, registry, lineage) sees a raw value.

The detectors load on first use (PEP 562): settings import the policy types from here."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ingest.redact.base import ENTITY_TYPES, MODES, Finding, Mode, PiiPolicy, TenantRule

if TYPE_CHECKING:
    from ingest.redact.document import redact_document, redact_value
    from ingest.redact.redactor import PiiRedactor

_LAZY = {"redact_document": "ingest.redact.document", "redact_value": "ingest.redact.document",
         "PiiRedactor": "ingest.redact.redactor"}

__all__ = ["ENTITY_TYPES", "MODES", "Finding", "Mode", "PiiPolicy", "PiiRedactor", "TenantRule", "redact_document",
           "redact_value"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ingest.redact' has no attribute {name!r}")
