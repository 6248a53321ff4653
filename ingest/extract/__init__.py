"""Extractors: raw bytes in, text with ordered sections and offsets out."""

from ingest.extract.detect import detect_media_type
from ingest.extract.registry import ExtractionLimits, extract_document, supported_media_types

__all__ = ["ExtractionLimits", "detect_media_type", "extract_document", "supported_media_types"]
