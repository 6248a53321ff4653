"""HTML: main content without boilerplate, headings kept as structure.

Three kinds of page, told apart by their markup:

* **Generated documentation** (DocBook XSL, Texinfo's makeinfo/texi2any): the whole body
  is content except the navigation. trafilatura's article heuristics lose its structure
  (DocBook's headings sit in ``titlepage`` divs, and with no article container found its
  fallback keeps paragraphs only, so every heading and definition term went) and keep
  Texinfo's "Next: …, Previous: …, Up: …" line. These pages are walked block by block
  (:mod:`ingest.extract.html_blocks`) once their navigation and tables of contents are gone.
* **Q&A pages** marked up with schema.org ``Question``/``Answer`` microdata (Stack
  Exchange and others): the question's title and text, then each answer's text.
  trafilatura takes the first post body it finds, and on Stack Exchange its fallback kept
  the answers and the network banner but lost the question.
* **Everything else**: trafilatura's XML output, walked rather than its Markdown: the XML
  keeps headings (``<head rend="h2">``), lists and tables as elements, so sections and
  heading paths come from structure instead of re-parsing Markdown marks out of prose.

On every page, small blocks of next/previous/up links with little text of their own
are removed before extraction.
"""

from __future__ import annotations

import copy
from typing import Any

import trafilatura
from lxml import etree
from trafilatura.metadata import extract_metadata
from trafilatura.utils import load_html

from ingest.extract import detect, html_blocks
from ingest.extract.html_blocks import Block
from ingest.extract.tables import markdown_table
from schemas.documents import ExtractedDocument
from schemas.errors import ExtractionError

_META_KEYS = ("title", "author", "date", "url", "sitename", "description", "hostname")

#: DocBook XSL's division elements (``<div class="chapter">``): the content of the page.
_DOCBOOK_DIVISIONS = frozenset({
    "book", "part", "chapter", "appendix", "preface", "article", "section", "sect1", "sect2", "sect3", "sect4",
    "sect5", "simplesect", "refentry", "reference", "glossary", "bibliography", "index", "colophon", "set",
    "qandaset", "dedication", "acknowledgements", "partintro", "refsynopsisdiv", "refsect1", "refsection",
})
#: Texinfo 7's per-node wrappers (``<div class="section-level-extent">``).
_TEXINFO_EXTENTS = frozenset({"top-level-extent", "chapter-level-extent", "section-level-extent",
                              "subsection-level-extent", "subsubsection-level-extent", "unnumbered-level-extent",
                              "appendix-level-extent", "unit-level-extent"})


class HtmlExtractor:
    media_types = frozenset({detect.HTML})

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        tree = load_html(data)
        if tree is None:
            raise ExtractionError(source_uri, "HTML page has no main content that could be extracted")
        kind = page_kind(tree)
        if kind in ("docbook", "texinfo"):
            found = _documentation_blocks(tree, kind)
        elif kind == "qa":
            found = _qa_blocks(tree)
        else:
            found = None
        if found:
            metadata = _metadata(extract_metadata(copy.deepcopy(tree)))
        else:
            html_blocks.drop_navigation(tree)
            found, metadata = _trafilatura_blocks(tree, source_uri)
        text, sections = html_blocks.assemble(found)
        warnings = () if sections else (f"{source_uri}: page has no text",)
        return ExtractedDocument(source_uri, detect.HTML, text, tuple(sections), metadata, warnings)


def page_kind(tree: Any) -> str:
    """"docbook", "texinfo", "qa" or "article" (anything else)."""
    generator = " ".join(tree.xpath("//meta[translate(@name, 'GENRATO', 'genrato')='generator']/@content"))
    lowered = generator.lower()
    if "docbook" in lowered:
        return "docbook"
    if any(name in lowered for name in ("makeinfo", "texi2any", "texi2html")):
        return "texinfo"
    if _qa_question(tree) is not None:
        return "qa"
    classes = {c for value in tree.xpath("//body//div/@class") for c in value.lower().split()}
    if {"navheader", "navfooter"} & classes or ("titlepage" in classes and classes & _DOCBOOK_DIVISIONS):
        return "docbook"
    if "nav-panel" in classes or classes & _TEXINFO_EXTENTS:
        return "texinfo"
    return "article"


def _documentation_blocks(tree: Any, kind: str) -> list[Block]:
    body = tree.find(".//body")
    if body is None:
        return []
    if kind == "docbook":
        html_blocks.drop_navigation(body, html_blocks.DOCBOOK_NAVIGATION)
        roots = _outermost(body, lambda el: bool(_DOCBOOK_DIVISIONS & html_blocks.classes_of(el)))
    else:
        html_blocks.drop_navigation(body, html_blocks.TEXINFO_NAVIGATION)
        roots = _outermost(body, lambda el: bool(_TEXINFO_EXTENTS & html_blocks.classes_of(el)))
    inside = {el for root in roots for el in root.iter("h1", "h2", "h3", "h4", "h5", "h6")}
    if not roots or any(h not in inside for h in body.iter("h1", "h2", "h3", "h4", "h5", "h6")):
        roots = [body]  # content outside the divisions too (a reference page's title and name)
    return html_blocks.blocks(roots)


def _outermost(body: Any, matches: Any) -> list[Any]:
    """Elements under ``body`` that match and have no matching ancestor, in document order."""
    found: list[Any] = []
    for el in body.iter("div"):
        if matches(el) and not any(a in found for a in el.iterancestors("div")):
            found.append(el)
    return found


def _qa_question(tree: Any) -> Any | None:
    questions = tree.xpath("//*[@itemscope][contains(@itemtype, 'schema.org/Question')]")
    return questions[0] if questions else None


def _qa_blocks(tree: Any) -> list[Block]:
    """The question's name and text, then every answer's text (comments and votes left out)."""
    question = _qa_question(tree)
    if question is None:
        return []
    name = next(iter(_own_props(question, "name")), None)
    title = html_blocks.inline_text(name) if name is not None else ""
    posts = [question, *tree.xpath("//*[@itemscope][contains(@itemtype, 'schema.org/Answer')]")]
    texts = [_own_props(post, "text") for post in posts]
    if not all(texts):
        return []  # a post whose text is not marked up: trafilatura reads the page
    bodies = [el for post_texts in texts for el in post_texts]
    # headings written inside a post rank below the question's title
    found: list[Block] = [(kind, text, max(level, 2) if kind == "heading" else level)
             for kind, text, level in html_blocks.blocks(bodies)]
    return [("heading", title, 1), *found] if title else found


def _own_props(item: Any, prop: str) -> list[Any]:
    """Elements with ``itemprop=prop`` that belong to ``item`` itself, not to an item nested in it."""
    own = []
    for el in item.iter():
        if isinstance(el.tag, str) and prop in (el.get("itemprop") or "").split() and el is not item:
            scope = el.getparent()
            while scope is not None and scope is not item and scope.get("itemscope") is None:
                scope = scope.getparent()
            if scope is item:
                own.append(el)
    return own


def _metadata(document: Any) -> dict[str, Any]:
    metadata = {k: str(v) for k in _META_KEYS if (v := getattr(document, k, None))}
    if "url" in metadata:
        metadata["canonical_url"] = metadata.pop("url")
    return metadata


def _trafilatura_blocks(tree: Any, source_uri: str) -> tuple[list[Block], dict[str, Any]]:
    xml = trafilatura.extract(
        tree, output_format="xml", include_tables=True, include_comments=False,
        include_formatting=False, with_metadata=True,
    )
    if not xml:
        raise ExtractionError(source_uri, "HTML page has no main content that could be extracted")
    root = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(resolve_entities=False, huge_tree=False))
    metadata = {k: root.get(k) for k in _META_KEYS if root.get(k)}
    if "url" in metadata:
        metadata["canonical_url"] = metadata.pop("url")
    return _blocks(root.find("main")), metadata


def _blocks(main: Any) -> list[Block]:
    """(kind, text, heading level) for each top-level block of trafilatura's <main>, and for
    the text between them (trafilatura leaves a paragraph after a heading as the heading's tail)."""
    out: list[Block] = []
    if main is None:
        return out
    if main.text:
        out.append(("paragraph", " ".join(main.text.split()), 0))
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
        if el.tail and el.tail.strip():
            out.append(("paragraph", " ".join(el.tail.split()), 0))
    return [(k, t, lvl) for k, t, lvl in out if t.strip()]


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split())


def _table(el: Any) -> str:
    return markdown_table([[_text(cell) for cell in row.iter("cell")] for row in el.iter("row")])
