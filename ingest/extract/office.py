"""Office and other formats through unstructured's partitioners (the ``office`` extra).

unstructured 0.27 classifies paragraphs with spaCy and, on first use, downloads the
``en_core_web_sm`` model from GitHub. ragline never downloads at run time, so the
partitioners get spaCy's rule-based sentencizer instead (``_offline_nlp``): element
text is unchanged; only its Title/NarrativeText guess is rougher for unstyled text.
"""

from __future__ import annotations

import io
import os
import shutil
from typing import Any

from lxml import html as lxml_html

from ingest.extract import detect
from ingest.extract.tables import markdown_table
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ConfigurationError, ExtractionError

_PANDOC_TYPES = {detect.EPUB, detect.ODT, detect.RTF}


class OfficeExtractor:
    media_types = frozenset({detect.DOCX, detect.PPTX, detect.XLSX, detect.ODT, detect.EPUB, detect.RTF, detect.EML})

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        media_type = detect.detect_media_type(data, source_uri)
        if media_type in _PANDOC_TYPES and shutil.which("pandoc") is None:
            raise ExtractionError(source_uri, f"{media_type} needs pandoc, which is not installed "
                                              "(apt-get install pandoc)")
        partition = _partitioner()
        try:
            elements = partition(file=io.BytesIO(data), content_type=media_type, metadata_filename=source_uri)
        except ExtractionError:
            raise
        except Exception as exc:  # noqa: BLE001 - unstructured raises anything from zip, lxml, docx
            raise ExtractionError(source_uri, f"cannot read {media_type}: {type(exc).__name__}: {exc}"[:400]) from exc
        text, sections = _assemble(elements)
        warnings = () if sections else (f"{source_uri}: document has no text",)
        return ExtractedDocument(source_uri, media_type, text, tuple(sections), {}, warnings)


def _partitioner() -> Any:
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    try:
        import unstructured.nlp.tokenize as tokenize
        from unstructured.partition.auto import partition
    except ImportError as exc:
        raise ConfigurationError("office formats need the extra: pip install 'ragline[office]'") from exc
    tokenize._get_nlp = _offline_nlp  # type: ignore[assignment]  # (its spaCy loader downloads a model)
    return partition


def _offline_nlp() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _assemble(elements: list[Any]) -> tuple[str, list[Section]]:
    parts: list[str] = []
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    pos = 0
    for el in elements:
        kind, text = _render(el)
        if not text.strip():
            continue
        if kind == "heading":
            level = (getattr(el.metadata, "category_depth", None) or 0) + 1
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, text))
        if parts:
            parts.append("\n\n")
            pos += 2
        parts.append(text)
        page = getattr(el.metadata, "page_number", None)
        sections.append(Section(pos, pos + len(text), kind, page, tuple(h for _, h in path)))
        pos += len(text)
    return "".join(parts), sections


def _render(el: Any) -> tuple[str, str]:
    category = type(el).__name__
    if category == "Title":
        return "heading", " ".join(str(el).split())
    if category == "Table":
        table_html = getattr(el.metadata, "text_as_html", None)
        if table_html:
            rows = [[" ".join(c.text_content().split()) for c in tr.xpath("./td|./th")]
                    for tr in lxml_html.fromstring(table_html).iter("tr")]
            return "table", markdown_table(rows)
    if category == "ListItem":
        return "paragraph", f"- {el}"
    return "paragraph", str(el).strip()
