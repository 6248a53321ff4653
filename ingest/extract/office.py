"""Office and other formats through unstructured's partitioners (the ``office`` extra).

unstructured 0.27 classifies paragraphs with spaCy and, on first use, downloads the
``en_core_web_sm`` model from GitHub. ragline never downloads at run time, so the
partitioners get spaCy's rule-based sentencizer instead (``_offline_nlp``): element
text is unchanged; only its Title/NarrativeText guess is rougher for unstyled text.

EPUB, ODT and RTF go through pandoc, which the extra installs inside the environment
(pypandoc-binary ships the executable in the ``pypandoc`` package, not on ``PATH``, so it
is looked up the way unstructured's own calls find it). unstructured runs pandoc with
``--sandbox`` (no network, no files but its input); the opt-out it honours is switched off.
E-mail has its own extractor (:mod:`ingest.extract.email`).
"""

from __future__ import annotations

import io
import os
import zipfile
from functools import cache
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from ingest.extract import detect
from ingest.extract.tables import markdown_table
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ConfigurationError, ExtractionError

_PANDOC_TYPES = {detect.EPUB, detect.ODT, detect.RTF}


class OfficeExtractor:
    media_types = frozenset({detect.DOCX, detect.PPTX, detect.XLSX, detect.ODT, detect.EPUB, detect.RTF})

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        media_type = detect.detect_media_type(data, source_uri)
        partition = _partitioner()
        if media_type in _PANDOC_TYPES and pandoc_path() is None:
            raise ExtractionError(source_uri, f"{media_type} needs pandoc, which comes with the office extra "
                                              "(pip install 'ragline[office]'), or apt-get install pandoc")
        try:
            elements = partition(file=io.BytesIO(data), content_type=media_type, metadata_filename=source_uri)
        except ExtractionError:
            raise
        except Exception as exc:  # noqa: BLE001 - unstructured raises anything from zip, lxml, docx
            raise ExtractionError(source_uri, f"cannot read {media_type}: {type(exc).__name__}: {exc}"[:400]) from exc
        text, sections = _assemble(elements)
        metadata = epub_metadata(data) if media_type == detect.EPUB else {}
        title = next((s.heading_path[-1] for s in sections if s.kind == "heading"), None)
        if title and "title" not in metadata:
            metadata["title"] = title
        warnings = () if sections else (f"{source_uri}: document has no text",)
        return ExtractedDocument(source_uri, media_type, text, tuple(sections), metadata, warnings)


#: The EPUB package files read for metadata are small XML; larger ones are not read.
_MAX_PACKAGE_FILE = 1 << 20
_DC = "{http://purl.org/dc/elements/1.1/}"


def epub_metadata(data: bytes) -> dict[str, Any]:
    """Title, author(s), language and date from an EPUB's package document (pandoc moves the
    title page into its own metadata, so the text never shows them); {} when unreadable."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            container = _read_small(book, "META-INF/container.xml")
            if container is None:
                return {}
            rootfile = next((el.get("full-path") for el in container.iter("{*}rootfile")), None)
            package = _read_small(book, rootfile) if rootfile else None
    except (zipfile.BadZipFile, OSError, etree.XMLSyntaxError, KeyError, ValueError):
        return {}
    if package is None:
        return {}
    values = {name: [" ".join("".join(el.itertext()).split()) for el in package.iter(_DC + name)]
              for name in ("title", "creator", "language", "date")}
    metadata: dict[str, Any] = {}
    if any(values["title"]):
        metadata["title"] = next(v for v in values["title"] if v)
    if any(values["creator"]):
        metadata["author"] = "; ".join(v for v in values["creator"] if v)
    for name in ("language", "date"):
        if any(values[name]):
            metadata[name] = next(v for v in values[name] if v)
    return metadata


def _read_small(book: zipfile.ZipFile, name: str) -> Any:
    info = book.getinfo(name)
    if info.file_size > _MAX_PACKAGE_FILE:
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(book.read(info)[:_MAX_PACKAGE_FILE], parser)


@cache
def pandoc_path() -> str | None:
    """The pandoc executable unstructured will run: on ``PATH``, or the one pypandoc-binary ships."""
    try:
        import pypandoc

        return str(pypandoc.get_pandoc_path())
    except (ImportError, OSError):
        return None


def _partitioner() -> Any:
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    # unstructured retries a failed ODT conversion without pandoc's sandbox when this is "true":
    # a hostile file could then make pandoc fetch URLs or read local files into the document.
    os.environ["ALLOW_PANDOC_NO_SANDBOX"] = "false"
    try:
        import unstructured.nlp.tokenize as tokenize
        from unstructured.partition.auto import partition
    except ImportError as exc:
        raise ConfigurationError("office formats need the extra: pip install 'ragline[office]'") from exc
    tokenize._get_nlp = _offline_nlp  # (its spaCy loader downloads a model)
    return partition


@cache  # as unstructured's own loader is: a blank pipeline costs ~55 ms to build, per paragraph otherwise
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
