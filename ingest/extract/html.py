"""HTML with trafilatura: main content without boilerplate, headings kept as structure.

trafilatura's XML output is walked rather than its Markdown: the XML keeps headings
(``<head rend="h2">``), lists and tables as elements, so sections and heading paths
come from structure instead of re-parsing Markdown marks out of prose.
"""

from __future__ import annotations

from typing import Any

import trafilatura
from lxml import etree

from ingest.extract import detect
from ingest.extract.tables import markdown_table
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError

_META_KEYS = ("title", "author", "date", "url", "sitename", "description", "hostname")


class HtmlExtractor:
    media_types = frozenset({detect.HTML})

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        xml = trafilatura.extract(
            data, output_format="xml", include_tables=True, include_comments=False,
            include_formatting=False, with_metadata=True,
        )
        if not xml:
            raise ExtractionError(source_uri, "HTML page has no main content that could be extracted")
        root = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(resolve_entities=False, huge_tree=False))
        blocks = list(_blocks(root.find("main")))
        text, sections = _assemble(blocks)
        metadata = {k: root.get(k) for k in _META_KEYS if root.get(k)}
        if "url" in metadata:
            metadata["canonical_url"] = metadata.pop("url")
        warnings = () if sections else (f"{source_uri}: page has no text",)
        return ExtractedDocument(source_uri, detect.HTML, text, tuple(sections), metadata, warnings)


def _blocks(main: Any) -> list[tuple[str, str, int]]:
    """(kind, text, heading level) for each top-level block of trafilatura's <main>."""
    out: list[tuple[str, str, int]] = []
    if main is None:
        return out
    for el in main:
        tag = el.tag
        if tag == "head":
            rend = el.get("rend") or "h2"
            level = int(rend[1]) if len(rend) == 2 and rend[1].isdigit() else 2
            out.append(("heading", _text(el), level))
        elif tag == "list":
            items = [f"- {_text(item)}" for item in el.iter("item") if _text(item)]
            out.append(("paragraph", "\n".join(items), 0))
        elif tag == "table":
            out.append(("table", _table(el), 0))
        elif tag == "code":
            out.append(("code", "".join(el.itertext()).strip("\n"), 0))
        else:
            out.append(("paragraph", _text(el), 0))
    return [(k, t, lvl) for k, t, lvl in out if t.strip()]


def _assemble(blocks: list[tuple[str, str, int]]) -> tuple[str, list[Section]]:
    parts: list[str] = []
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    pos = 0
    for kind, text, level in blocks:
        if parts:
            parts.append("\n\n")
            pos += 2
        if kind == "heading":
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, text))
        parts.append(text)
        sections.append(Section(pos, pos + len(text), kind, None, tuple(h for _, h in path)))
        pos += len(text)
    return "".join(parts), sections


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split())


def _table(el: Any) -> str:
    return markdown_table([[_text(cell) for cell in row.iter("cell")] for row in el.iter("row")])
