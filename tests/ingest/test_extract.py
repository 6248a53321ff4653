"""Extractors against real documents from the test corpora (``tests/corpora``, see its README),
files derived from them at test time (a PDF cut in half), and generated office and HTML files."""

from __future__ import annotations

import dataclasses
import io
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from ingest.extract import ExtractionLimits, detect_media_type, extract_document
from ingest.extract.ocr import OcrConfig
from ingest.extract.pdf import PdfExtractor
from schemas.documents import ExtractedDocument, SourceDocument
from schemas.errors import ExtractionError, LimitExceededError

LIMITS = ExtractionLimits(timeout_s=20, memory_mb=768)
#: A 15-page Federal Register issue (a US government work): three columns, tables, scanned figures.
REGISTER = "pdfplumber-federal-register-2020-17221.pdf"
#: Ground-truth snippets pdfplumber does not produce (soft hyphens split by kerning, a
#: superscript without a line break, duplicated fake-bold glyphs, a broken ToUnicode map).
PDF_KNOWN_MISSES = {
    "files/pdfplumber-issue71-duplicate-chars.pdf",
    "files/pdfjs-issue13226-german-spacing.pdf",
    "files/pdfjs-text-rise-superscript.pdf",
    "files/pdfjs-issue18099-tounicode-short-hex.pdf",
}


def norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def extract(path: Path, password: str | None = None, name: str | None = None) -> ExtractedDocument:
    return extract_document(SourceDocument(name or str(path), path.read_bytes(), password=password), LIMITS)


def pdf_rows(corpora: Path) -> list[dict]:
    return [json.loads(line) for line in (corpora / "pdf" / "manifest.jsonl").open()]


def test_pdf_ground_truth_snippets(corpora: Path) -> None:
    """Every snippet the manifest names is extracted (text-layer PDFs with snippets)."""
    checked = 0
    missing = []
    for row in pdf_rows(corpora):
        if not row.get("must_contain") or "scanned" in " ".join(row.get("tags", [])) or row["file"] in PDF_KNOWN_MISSES:
            continue
        text = norm(extract(corpora / "pdf" / row["file"], row.get("password")).text)
        checked += 1
        missing += [(row["file"], s) for s in row["must_contain"] if norm(s) not in text]
    assert checked >= 15
    assert missing == []


@pytest.fixture(scope="module")
def register(corpora: Path) -> ExtractedDocument:
    return extract(corpora / "pdf" / "files" / REGISTER)


def test_pdf_pages_tables_and_metadata(corpora: Path, register: ExtractedDocument) -> None:
    doc = extract(corpora / "pdf" / "files" / "pdfplumber-senate-expenditures.pdf")
    tables = [s for s in doc.sections if s.kind == "table"]
    assert tables, "ruled table rendered as a Markdown table"
    table = doc.section_text(tables[0])
    assert table.startswith("| DOCUMENT NO. | DATE POSTED | PAYEE NAME | OBLIGATION/SERVICE DATES |")
    assert "|---|" in table and "| START | END |" in table
    assert {s.page for s in doc.sections} <= set(range(1, doc.metadata["pages"] + 1))

    assert register.metadata["pages"] == 15
    assert {s.page for s in register.sections} == set(range(1, 16))  # every page has text, none beyond 15
    assert register.metadata["created"] == "D:20200806095125Z"
    assert "Government Publishing Office" in register.metadata["producer"]
    costs = [register.section_text(s).splitlines() for s in register.sections if s.kind == "table"]
    assert [s.page for s in register.sections if s.kind == "table"] == [5, 6]
    assert costs[1][:2] == ["| Labor cost | Parts cost | Cost per product |", "|---|---|---|"]
    assert costs[1][2].startswith("| Up to 79 work-hours × $85 per hour = Up to $6,715. ")
    assert "| Up to $10,505" in costs[1][2]
    for s in register.sections:
        assert register.text[s.start : s.end].strip() == register.text[s.start : s.end]
    # RC4-encrypted with an empty user password: the document information is decrypted too.
    dmca = extract(corpora / "pdf" / "files" / "pdfminer-dmca-us-copyright-office.pdf")
    assert dmca.metadata["pages"] == 18 and max(s.page or 0 for s in dmca.sections) == 18
    assert (dmca.metadata["title"], dmca.metadata["subject"]) == (
        "The Digital Millennium Copyright Act of 1998", "Copyright Office Summary of the DMCA")


def test_encrypted_pdfs_need_the_right_password(corpora: Path) -> None:
    rows = [r for r in pdf_rows(corpora) if r.get("encrypted")]
    with_password = [r for r in rows if r.get("password")]
    assert with_password
    for row in with_password:
        path = corpora / "pdf" / row["file"]
        extract(path, row["password"])
        if row["file"] == "files/pypdf-encrypted-r6-aes256.pdf":
            continue  # pdfminer.six opens this R6 file without its user password
        with pytest.raises(ExtractionError, match="password is required"):
            extract(path, None)
        with pytest.raises(ExtractionError, match="supplied password is wrong"):
            extract(path, "not-the-password")
    empty = [r for r in rows if r.get("password") == ""]
    for row in empty:  # an empty user password opens without asking
        extract(corpora / "pdf" / row["file"])


def test_scanned_pdf_warns_with_page_numbers(corpora: Path) -> None:
    """With OCR off, image-only pages yield no text and a warning naming them (OCR: test_pdf_ocr.py)."""
    path = corpora / "pdf" / "files" / "ocrmypdf-cardinal-rotated-scans.pdf"
    no_ocr = dataclasses.replace(LIMITS, ocr=OcrConfig(enabled=False))
    doc = extract_document(SourceDocument(str(path), path.read_bytes()), no_ocr)
    assert doc.sections == ()
    assert doc.warnings == (f"{path}: no text layer on page(s) 1-4 of 4 (scanned? OCR is off)",)


def test_pdf_with_its_xref_and_trailer_cut_off_is_repaired(corpora: Path) -> None:
    """Last 3% cut (xref, trailer, startxref): qpdf's repair gives back every page, the intact file's text."""
    path = corpora / "malformed" / "pdf" / "truncated-pdfplumber-nics-background-checks-2015-11-97pct.pdf"
    doc = extract(path)
    intact = extract(corpora / "pdf" / "files" / "pdfplumber-nics-background-checks-2015-11.pdf")
    assert doc.metadata["pages"] == intact.metadata["pages"] == 1
    assert doc.text == intact.text and len(doc.text) == 6619
    assert [(s.kind, s.start, s.end) for s in doc.sections] == [(s.kind, s.start, s.end) for s in intact.sections]
    assert doc.warnings == (f"{path}: damaged PDF: can't find startxref; repaired before extraction, "
                            "text may be incomplete",)


@pytest.mark.parametrize(("name", "damage", "text"), [
    ("qpdf-bad2.pdf", "can't find startxref", "Potato"),
    ("qpdf-bad13.pdf", "(trailer, offset 753): treating unexpected brace token as null", "Potato"),
    ("qpdf-append-xref-loop.pdf", "loop detected following xref tables", "Potato 0 new"),
])
def test_pdfs_pdfminer_cannot_open_are_repaired_with_a_warning(corpora: Path, name: str, damage: str,
                                                               text: str) -> None:
    path = corpora / "malformed" / "pdf" / name
    doc = extract(path)
    assert doc.text.startswith(text)
    assert doc.warnings[0] == f"{path}: damaged PDF: {damage}; repaired before extraction, text may be incomplete"


def test_unreadable_pages_of_a_repaired_pdf_are_skipped_by_number(corpora: Path) -> None:
    path = corpora / "malformed" / "pdf" / "pdfjs-poppler-90-corrupt-ccittfax.pdf"
    doc = extract(path)
    assert doc.metadata["pages"] == 16 and {s.page for s in doc.sections} == {2, 3, 10, 14}
    assert doc.warnings[0].startswith(f"{path}: damaged PDF: ")
    assert doc.warnings[1] == (f"{path}: page(s) 1 of 16 could not be read and were skipped "
                               "(page 1: Error: Non-hexadecimal digit found)")


def page_texts(doc: ExtractedDocument) -> dict[int, str]:
    """Each page's text as the extractor gives it (its sections, in order)."""
    pages: dict[int, list[str]] = {}
    for section in doc.sections:
        pages.setdefault(section.page or 0, []).append(doc.section_text(section))
    return {page: "\n".join(texts) for page, texts in pages.items()}


@pytest.fixture(scope="session")
def register_cut_in_half(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 50% of the Federal Register issue's bytes (356,996 of 713,992), written at test time.

    The cut falls inside the scanned figure of page 11; the page tree, the catalog (at 78%) and
    the trailer are in the lost half, so qpdf cannot repair it and the pages are salvaged.
    """
    data = (corpora / "pdf" / "files" / REGISTER).read_bytes()
    path = tmp_path_factory.mktemp("truncated") / "truncated-pdfplumber-federal-register-2020-17221-50pct.pdf"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_pdf_cut_in_half_gives_back_the_pages_that_survive(register_cut_in_half: Path,
                                                           register: ExtractedDocument) -> None:
    """First 50% of a 15-page Federal Register issue: catalog, page tree and trailer are in the
    lost half; the 10 page objects of the first half come back, in file order, as pages 1-10.

    Unlike the bench corpus's half tracemonkey paper (whose fonts were all in the lost half),
    every font of this file is in its first 21%, so nothing stands in for them: each
    recovered page keeps 100% of the words of the intact file's page, in order (pages 7-10
    are scanned figures with a few lines of text). Line and paragraph breaks may differ:
    headings and running headers are found from the whole document, here 10 pages instead
    of 15. Page 11's content stream survives but its page object does not, so it is not a page.
    ``test_salvaged_pages_keep_their_content_streams_byte_for_byte`` shows that the pages
    themselves survive intact.
    """
    path = register_cut_in_half
    doc = extract(path)
    intact = page_texts(register)
    recovered = page_texts(doc)

    assert doc.metadata == {"pages": 10} and sorted(recovered) == list(range(1, 11))
    assert doc.warnings == (
        f"{path}: damaged PDF: no readable catalog or page tree (unable to find trailer dictionary while "
        "recovering damaged file); rebuilt from the 10 page object(s) that survive, numbered in file order "
        "(the original page numbers are unknown); text recovered from 10 of them; text may be incomplete",)
    for number, text in recovered.items():
        assert text.split() == intact[number].split(), number
    assert len(doc.text.split()) == 6767
    assert recovered[1].splitlines()[:2] == ["This section of the FEDERAL REGISTER",
                                             "contains notices to the public of the proposed"]


def content_streams(page: Any) -> list[tuple[bytes, bytes]]:
    """(bytes as stored, decoded bytes) of each of a page's content streams (/Contents may be an array)."""
    import pikepdf

    contents = page.obj.Contents
    streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents]
    return [(stream.read_raw_bytes(), stream.read_bytes()) for stream in streams]


def fonts(page: Any) -> dict[str, str]:
    return {str(name): str(font.BaseFont) for name, font in page.Resources.Font.items()}


def test_salvaged_pages_keep_their_content_streams_byte_for_byte(register_cut_in_half: Path,
                                                                  corpora: Path) -> None:
    """In-process: the rebuilt file's pages are the original's pages 1-10: content streams
    identical as stored and decoded, same MediaBox, same fonts (none was lost, none stands in)."""
    import pikepdf

    from ingest.extract.pdf_repair import salvage as rebuild

    salvage = rebuild(register_cut_in_half.read_bytes(), 2000, "cut.pdf")
    assert salvage is not None
    assert (salvage.pages, salvage.lost_fonts, salvage.boxless) == (10, (), ())
    with pikepdf.open(io.BytesIO(salvage.data)) as rebuilt, \
            pikepdf.open(corpora / "pdf" / "files" / REGISTER) as intact:
        assert len(rebuilt.pages) == 10
        assert len(content_streams(intact.pages[0])) > 1  # page 1's /Contents is an array of streams
        for page, original in zip(rebuilt.pages, intact.pages[:10], strict=True):
            assert content_streams(page) == content_streams(original)
            assert page.MediaBox == original.MediaBox
            assert fonts(page) == fonts(original)


def test_a_page_cut_off_from_its_fonts_reads_with_the_stand_in(corpora: Path) -> None:
    """First 50% of a one-page pandoc/LaTeX file: the page and its content stream survive, its fonts
    (written after them) do not. Times-Roman stands in for all of them, so the words come back in
    order; only the typographic quotes, which the lost fonts' encoding mapped, are lost (PDFium reads
    them as control characters, which are dropped)."""
    import pikepdf

    from ingest.extract.pdf_repair import salvage as rebuild

    source = corpora / "pdf" / "files" / "pdfminer-simple5-pandoc.pdf"
    data = source.read_bytes()
    cut = data[: len(data) // 2]
    doc = extract_document(SourceDocument("cut.pdf", cut), LIMITS)
    assert doc.warnings == (
        "cut.pdf: damaged PDF: no readable catalog or page tree (unable to find trailer dictionary while "
        "recovering damaged file); rebuilt from the 1 page object(s) that survive, numbered in file order "
        "(the original page numbers are unknown); text recovered from 1 of them; fonts lost on page(s) 1: "
        "Times-Roman widths stand in, so word spacing and symbols may be wrong; text may be incomplete",)
    intact = extract(source).text
    assert "“that is”" in intact
    assert doc.text == intact.replace("“", "").replace("”", "")
    salvage = rebuild(cut, 2000, "cut.pdf")
    assert salvage is not None and (salvage.pages, salvage.lost_fonts) == (1, (1,))
    with pikepdf.open(io.BytesIO(salvage.data)) as rebuilt, pikepdf.open(source) as original:
        assert content_streams(rebuilt.pages[0]) == content_streams(original.pages[0])
        assert set(fonts(rebuilt.pages[0]).values()) == {"/Times-Roman"}
        assert set(fonts(rebuilt.pages[0])) == set(fonts(original.pages[0]))


def test_salvage_fills_in_page_size_and_names_pages_without_text() -> None:
    """A file cut inside page 3's content stream: no catalog, no page tree, no trailer.

    Page 2 had inherited its MediaBox from the lost tree; a string that says /Type /Page and
    a /Pages node are not taken for pages.
    """
    def content(number: int, text: bytes) -> bytes:
        ops = b"BT /F1 12 Tf 72 300 Td (" + text + b") Tj ET"
        return b"%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (number, len(ops), ops)

    def page(number: int, contents: int, box: bytes = b"/MediaBox [0 0 300 400]") -> bytes:
        return b"%d 0 obj\n<< /Type /Page /Parent 9 0 R %s /Contents %d 0 R >>\nendobj\n" % (number, box, contents)

    data = (b"%PDF-1.4\n" + content(10, b"First page") + page(1, 10) + content(11, b"Second page")
            + page(2, 11, b"") + b"8 0 obj\n(/Type /Page)\nendobj\n9 0 obj\n<< /Type /Pages /Kids [1 0 R] >>\nendobj\n"
            + page(3, 12) + b"12 0 obj\n<< /Length 40 >>\nstream\nBT /F1 12 Tf 72 300 Td (Thi")
    doc = extract_document(SourceDocument("cut.pdf", data), LIMITS)
    assert doc.metadata["pages"] == 3
    assert doc.text == "First page\n\nSecond page"
    assert doc.warnings == (
        "cut.pdf: damaged PDF: no readable catalog or page tree (unable to find trailer dictionary while "
        "recovering damaged file); rebuilt from the 3 page object(s) that survive, numbered in file order (the "
        "original page numbers are unknown); text recovered from 2 of them, none from page(s) 3; fonts lost on "
        "page(s) 1-3: Times-Roman widths stand in, so word spacing and symbols may be wrong; page size lost on "
        "page(s) 2: the size of page 1 assumed; text may be incomplete",
        "cut.pdf: no text layer on page(s) 3 of 3 (content or fonts lost with the damaged part)",
    )
    many = b"%PDF-1.4\n" + b"".join(page(n, 10) for n in range(1, 7)) + content(10, b"x")
    with pytest.raises(LimitExceededError, match="more than 5 page objects survive, exceeds the limit of 5"):
        extract_document(SourceDocument("many.pdf", many), ExtractionLimits(max_pages=5))


@pytest.mark.parametrize(("name", "reason"), [
    ("ocrmypdf-invalid-header-then-eof.pdf", "PDFSyntaxError: No /Root object! - Is this really a PDF?; qpdf could "
                                             "not repair it: unable to find trailer dictionary while recovering "
                                             "damaged file; no readable page object survives to rebuild a page "
                                             "tree from"),
    # The file's own trailer survives but leads to no page tree; its one page object yields no text.
    ("pdfjs-poppler-395-inaccessible-pages.pdf", "ValueError: Ascii85 overflow; qpdf could not repair it: unable to "
                                                 "find page tree; no text was recovered from the 1 page object(s) "
                                                 "that survive"),
    ("pdfjs-pdfbox-3148-corrupt-metadata-xref.pdf", "ValueError: Non-Ascii85 digit found: ±; "
                                                    "qpdf repaired it but no text was recovered from its 1 page(s)"),
])
def test_pdfs_damaged_beyond_recovery_fail_with_a_clear_error(corpora: Path, name: str, reason: str) -> None:
    path = corpora / "malformed" / "pdf" / name
    with pytest.raises(ExtractionError) as raised:
        extract(path)
    assert type(raised.value) is ExtractionError
    assert str(raised.value) == f"{path}: damaged PDF, beyond recovery: {reason}"


def test_healthy_and_encrypted_pdfs_never_reach_the_repair_pass(corpora: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (not sandboxed) so that the patched repair is the one that would run."""
    def no_repair(*args: object) -> None:
        raise AssertionError(f"repair pass run for {args[0]!r:.20}")

    monkeypatch.setattr("ingest.extract.pdf_repair.repair", no_repair)
    files = corpora / "pdf" / "files"
    for name in ["pdfplumber-nics-background-checks-2015-11.pdf", "ocrmypdf-cardinal-rotated-scans.pdf"]:
        doc = PdfExtractor().extract((files / name).read_bytes(), name)
        assert not any("damaged" in w for w in doc.warnings)
    encrypted = (files / "pdfplumber-password-example.pdf").read_bytes()
    assert PdfExtractor().extract(encrypted, "locked.pdf", password="test").text
    with pytest.raises(ExtractionError, match="supplied password is wrong"):
        PdfExtractor().extract(encrypted, "locked.pdf", password="not-the-password")
    with pytest.raises(ExtractionError, match="password is required"):
        PdfExtractor().extract(encrypted, "locked.pdf")


#: The annotated pages whose content is CC-licensed (the only ones in tests/corpora; the full set has 30).
HTML_PAGES = {
    "pages/trafilatura-en.wikipedia.org.tsne.html",
    "pages/trafilatura-german.stackexchange.com.ausgeraubt.html",
    "pages/trafilatura-achtundvierzig.hypotheses.org.822.html",
}

def test_html_main_content_against_ground_truth(corpora: Path) -> None:
    """trafilatura's pages with hand-annotated snippets (the three whose content is CC-licensed):
    every must_contain snippet is kept (the Stack Exchange question's body too, which trafilatura
    alone drops: the page is read as a schema.org Q&A page), and no must_not_contain snippet
    (navigation, comment forms, dates of comments, category links), each of which is on the
    page, leaks into the text."""
    import lxml.html

    rows = [json.loads(line) for line in (corpora / "html-main-content" / "ground_truth.jsonl").open()]
    rows = [r for r in rows if r["file"] in HTML_PAGES]
    assert len(rows) == 3 and all(r["ground_truth"] == "snippets" for r in rows)
    missing, leaked, negatives = set(), [], 0
    for row in rows:
        data = (corpora / "html-main-content" / row["file"]).read_bytes()
        text = norm(extract_document(SourceDocument(row["file"], data), LIMITS).text)
        page = norm(lxml.html.document_fromstring(data).text_content())
        missing |= {(row["file"], s) for s in row["must_contain"] if norm(s) not in text}
        for snippet in row["must_not_contain"]:
            assert norm(snippet) in page, f"{row['file']}: {snippet!r} is not on the page"
            negatives += 1
            leaked += [(row["file"], snippet)] if norm(snippet) in text else []
    assert sum(len(r["must_contain"]) for r in rows) == 8 and negatives == 8
    assert missing == set(), f"snippets lost: {sorted(missing)}"
    assert leaked == [], f"boilerplate leaked: {leaked}"


def test_html_article_kept_and_boilerplate_dropped() -> None:
    """A page written for this test: a cookie banner, a navigation bar, a sidebar of related
    stories and a footer around a short article; the text is the article, nothing else."""
    article = [
        "Northern quay reopens after sea-wall repairs",
        "The harbour authority reopened the northern quay on Tuesday after eleven weeks of repairs to the sea wall.",
        "Forty metres of new wall",
        "Engineers replaced forty metres of cracked concrete and drove new steel piles into the silt below the berth.",
        "Fishing crews, who had unloaded at the southern slipway since January, said the queue there had cost them "
        "a tide a day.",
    ]
    boilerplate = ["We use cookies", "Accept all cookies", "Manage preferences", "Home", "Weather",
                   "Related stories", "Ferry timetable changes", "Subscribe to our newsletter", "All rights reserved"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{article[0]}</title></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
<button>Accept all cookies</button> <a href="/privacy">Manage preferences</a></div>
<header class="site-header"><nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></nav></header>
<div class="content">
<article class="post"><h1>{article[0]}</h1><p>{article[1]}</p><h2>{article[2]}</h2><p>{article[3]}</p>
<p>{article[4]}</p></article>
<aside class="sidebar"><h3>Related stories</h3><ul><li><a href="/a">Ferry timetable changes for spring</a></li>
<li><a href="/b">Lifeboat crew honoured at awards</a></li></ul></aside>
</div>
<footer class="site-footer"><p>Subscribe to our newsletter for daily headlines.</p>
<p>© 2026 Harbour Gazette. All rights reserved.</p></footer>
</body></html>"""
    assert all(phrase in page for phrase in boilerplate)
    doc = extract_document(SourceDocument("quay.html", page.encode()), LIMITS)
    assert doc.text == "\n\n".join(article)
    assert not [phrase for phrase in boilerplate if phrase in doc.text]
    assert doc.metadata["title"] == article[0]
    assert doc.sections[-1].heading_path == (article[0], article[2])


def test_html_structure_and_metadata() -> None:
    html = (Path(__file__).resolve().parents[2] / "deploy" / "samples" / "retention-policy.html").read_bytes()
    doc = extract_document(SourceDocument("policy.html", html), LIMITS)
    assert doc.media_type == "text/html"
    assert doc.metadata["title"] == "Data retention and erasure policy"
    assert doc.metadata["canonical_url"] == "https://example.com/policies/retention"
    assert "Cookie settings" not in doc.text and "Home" not in doc.text.split()
    erasure = [s for s in doc.sections if "erased" in doc.section_text(s)]
    assert erasure and erasure[0].heading_path[-1] == "Erasure requests"


def test_markdown_headings_and_offsets() -> None:
    text = "# Guide\n\nIntro para.\n\n## Install\n\nRun it.\n\n```\n# not a heading\n```\n\nSetext\n------\n\nLast.\n"
    doc = extract_document(SourceDocument("guide.md", text.encode()), LIMITS)
    assert doc.media_type == "text/markdown"
    paths = {doc.section_text(s): s.heading_path for s in doc.sections}
    assert paths["Run it."] == ("Guide", "Install")
    assert paths["```\n# not a heading\n```"] == ("Guide", "Install")
    assert paths["Last."] == ("Guide", "Setext")


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "cp1252"])
def test_text_encoding_is_detected(encoding: str) -> None:
    text = "Große Straße, café crème et garçon: naïve façades.\n" * 5
    doc = extract_document(SourceDocument("notes.txt", text.encode(encoding)), LIMITS)
    assert norm(doc.text) == norm(text)


def test_source_code_language_and_exact_text(corpora: Path) -> None:
    for path in sorted((corpora / "code" / "files").rglob("*.*")):
        doc = extract(path)
        assert doc.text == path.read_bytes().decode("utf-8")
        assert doc.language in {"python", "javascript", "typescript", "go", "java", "rust"}
    assert detect_media_type(b"#!/usr/bin/env python3\nprint(1)\n", "tool") == "text/x-python"
    assert detect_media_type(b"#!/bin/bash\necho hi\n", "deploy") == "text/x-shell"


def test_office_docx_through_unstructured() -> None:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", 1)
    document.add_paragraph("Revenue grew by ten percent in the third quarter.")
    document.add_heading("Outlook", 2)
    document.add_paragraph("We expect growth to continue.")
    table = document.add_table(rows=2, cols=2)
    for (r, c), value in {(0, 0): "region", (0, 1): "sales", (1, 0): "north", (1, 1): "42"}.items():
        table.cell(r, c).text = value
    buf = io.BytesIO()
    document.save(buf)
    doc = extract_document(SourceDocument("report.bin", buf.getvalue()), LIMITS)  # detected by content
    assert doc.media_type.endswith("wordprocessingml.document")
    growth = next(s for s in doc.sections if "continue" in doc.section_text(s))
    assert growth.heading_path == ("Quarterly report", "Outlook")
    assert "| region | sales |" in doc.text


def test_limits_are_enforced(corpora: Path) -> None:
    """An 18-page US Copyright Office summary (72,756 bytes; about 0.8 s to extract)."""
    data = (corpora / "pdf" / "files" / "pdfminer-dmca-us-copyright-office.pdf").read_bytes()
    with pytest.raises(LimitExceededError, match="72,756 bytes exceeds the limit of 1,000"):
        extract_document(SourceDocument("big.pdf", data), ExtractionLimits(max_bytes=1000))
    with pytest.raises(LimitExceededError, match="18 pages exceeds the limit of 5"):
        extract_document(SourceDocument("long.pdf", data), ExtractionLimits(max_pages=5))
    with pytest.raises(LimitExceededError, match="longer than"):
        extract_document(SourceDocument("slow.pdf", data), ExtractionLimits(timeout_s=0.05))


def test_file_named_pdf_that_is_not_one() -> None:
    with pytest.raises(ExtractionError, match="named as application/pdf but the content is not"):
        extract_document(SourceDocument("report.pdf", b"hello, I am text"), LIMITS)
