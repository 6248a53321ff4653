"""PII redaction between extraction and chunking: nothing downstream (embedder, embedding
cache, index payload, chunk archive, registry, lineage) sees a raw value."""

from ingest.redact.base import ENTITY_TYPES, MODES, Finding, Mode, PiiPolicy, TenantRule
from ingest.redact.document import redact_document, redact_value
from ingest.redact.redactor import PiiRedactor

__all__ = ["ENTITY_TYPES", "MODES", "Finding", "Mode", "PiiPolicy", "PiiRedactor", "TenantRule", "redact_document",
           "redact_value"]
