"""Plain text and Markdown: encoding detected (never assumed UTF-8), structure kept.

Markdown headings become the ``heading_path`` of the sections under them, so a chunk
can say which section of the document it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import charset_normalizer

from ingest.extract import detect
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError

_BOMS = (("utf-8-sig", b"\xef\xbb\xbf"), ("utf-32", b"\xff\xfe\x00\x00"),
         ("utf-32", b"\x00\x00\xfe\xff"), ("utf-16", b"\xff\xfe"), ("utf-16", b"\xfe\xff"))
_PREFERRED_LEGACY = ("cp1252", "iso8859_15", "latin_1")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def decode_text(data: bytes, source_uri: str) -> tuple[str, str]:
    """Decode bytes to text; returns (text, encoding name)."""
    for name, bom in _BOMS:
        if data.startswith(bom):
            return data.decode(name), name
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    results = list(charset_normalizer.from_bytes(data))
    if not results:
        raise ExtractionError(source_uri, "not text: no character encoding decodes it")
    # Single-byte Latin code pages are near-ties on short Western text (cp1257 and cp1252
    # both decode French "crème"); among near-equal candidates prefer the most common one.
    best = results[0]
    close = [r for r in results if r.chaos <= best.chaos + 0.05]
    for preferred in _PREFERRED_LEGACY:
        match = next((r for r in close if preferred in (r.encoding, *r.could_be_from_charset)), None)
        if match is not None:
            return data.decode(preferred), preferred
    return str(best), best.encoding


def paragraph_sections(
    text: str, start: int, end: int, heading_path: tuple[str, ...] = (), page: int | None = None
) -> Iterator[Section]:
    """Blank-line separated paragraphs of ``text[start:end]`` as sections."""
    pos = start
    for match in re.finditer(r"\n[ \t]*\n\s*", text[start:end]):
        para_end = start + match.start()
        if text[pos:para_end].strip():
            yield Section(pos, para_end, "paragraph", page, heading_path)
        pos = start + match.end()
    if text[pos:end].strip():
        yield Section(pos, end, "paragraph", page, heading_path)


def markdown_sections(text: str) -> list[Section]:
    """Headings, paragraphs and fenced code blocks with their heading path."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    para_start: int | None = None
    fence: str | None = None
    fence_start = 0
    pos = 0
    prev_line_start = 0

    def close_paragraph(end: int) -> None:
        nonlocal para_start
        if para_start is not None and text[para_start:end].strip():
            sections.append(Section(para_start, end, "paragraph", None, tuple(h for _, h in path)))
        para_start = None

    for line in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(line)
        body = line.rstrip("\r\n")
        line_end = line_start + len(body)
        if fence is not None:
            if body.lstrip().startswith(fence):
                sections.append(Section(fence_start, line_end, "code", None, tuple(h for _, h in path)))
                fence = None
            continue
        fence_match = _FENCE.match(body)
        heading = _ATX.match(body)
        setext = _SETEXT.match(body) if para_start == prev_line_start else None
        if fence_match:
            close_paragraph(line_start)
            fence, fence_start = fence_match.group(1), line_start
        elif heading:
            close_paragraph(line_start)
            _push_heading(path, len(heading.group(1)), (heading.group(2) or "").strip())
            sections.append(Section(line_start, line_end, "heading", None, tuple(h for _, h in path)))
        elif setext and para_start is not None and text[para_start:line_start].strip():
            title = text[para_start:line_start].strip()
            _push_heading(path, 1 if body.strip()[0] == "=" else 2, title)
            sections.append(Section(para_start, line_end, "heading", None, tuple(h for _, h in path)))
            para_start = None
        elif not body.strip():
            close_paragraph(line_start)
        elif para_start is None:
            para_start = line_start
        prev_line_start = line_start
    if fence is not None:  # unterminated fence: the rest is code
        sections.append(Section(fence_start, len(text), "code", None, tuple(h for _, h in path)))
    close_paragraph(len(text))
    return _trim(text, sections)


def _push_heading(path: list[tuple[int, str]], level: int, title: str) -> None:
    while path and path[-1][0] >= level:
        path.pop()
    path.append((level, title))


def _trim(text: str, sections: list[Section]) -> list[Section]:
    """Drop trailing whitespace from every section so chunks never end in blank lines."""
    out = []
    for s in sections:
        end = s.start + len(text[s.start : s.end].rstrip())
        if end > s.start:
            out.append(Section(s.start, end, s.kind, s.page, s.heading_path))
    return out


class TextExtractor:
    """Plain text and Markdown."""

    media_types = frozenset({detect.PLAIN, detect.MARKDOWN})

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        text, encoding = decode_text(data, source_uri)
        media_type = detect.detect_media_type(data, source_uri)
        if media_type == detect.MARKDOWN:
            sections = markdown_sections(text)
        else:
            media_type = detect.PLAIN
            sections = _trim(text, list(paragraph_sections(text, 0, len(text))))
        title = next((s.heading_path[-1] for s in sections if s.kind == "heading"), None)
        metadata = {"encoding": encoding, **({"title": title} if title else {})}
        warnings = () if sections else (f"{source_uri}: document has no text",)
        return ExtractedDocument(source_uri, media_type, text, tuple(sections), metadata, warnings)
