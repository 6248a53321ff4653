"""Source code: language from extension or shebang, text kept byte-for-byte."""

from __future__ import annotations

from ingest.extract import detect
from ingest.extract.text import decode_text
from schemas.documents import ExtractedDocument, Section


class CodeExtractor:
    media_types = frozenset(detect.code_media_type(lang) for lang in set(detect.CODE_EXTENSIONS.values()))

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        text, encoding = decode_text(data, source_uri)
        media_type = detect.detect_media_type(data, source_uri)
        language = detect.language_of(media_type) or "text"
        sections = (Section(0, len(text), "code"),) if text.strip() else ()
        warnings = () if sections else (f"{source_uri}: source file is empty",)
        return ExtractedDocument(
            source_uri, media_type, text, sections, {"encoding": encoding, "language": language},
            warnings, language=language,
        )
