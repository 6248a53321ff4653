"""Extractors against real documents from ../shared/corpora and generated office files."""

from __future__ import annotations

import difflib
import io
import json
import unicodedata
from pathlib import Path

import pytest

from ingest.extract import ExtractionLimits, detect_media_type, extract_document
from ingest.extract.pdf import PdfExtractor
from schemas.documents import ExtractedDocument, SourceDocument
from schemas.errors import ExtractionError, LimitExceededError

LIMITS = ExtractionLimits(timeout_s=20, memory_mb=768)
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


def test_pdf_pages_tables_and_metadata(corpora: Path) -> None:
    doc = extract(corpora / "pdf" / "files" / "pdfplumber-senate-expenditures.pdf")
    tables = [s for s in doc.sections if s.kind == "table"]
    assert tables, "ruled table rendered as a Markdown table"
    assert doc.section_text(tables[0]).startswith("| ") and "|---|" in doc.section_text(tables[0])
    assert {s.page for s in doc.sections} <= set(range(1, doc.metadata["pages"] + 1))
    paper = extract(corpora / "pdf" / "files" / "pdfjs-tracemonkey-paper.pdf")
    assert paper.metadata["pages"] == 14
    assert max(s.page or 0 for s in paper.sections) == 14
    for s in paper.sections:
        assert paper.text[s.start : s.end].strip() == paper.text[s.start : s.end]


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
    doc = extract(corpora / "pdf" / "files" / "ocrmypdf-cardinal-rotated-scans.pdf")
    assert doc.sections == ()
    assert any("page(s) 1-4 of 4" in w for w in doc.warnings)


def test_pdf_with_its_xref_and_trailer_cut_off_is_repaired(corpora: Path) -> None:
    """Last 3% cut (xref, trailer, startxref): qpdf's repair gives back every page, the intact file's text."""
    path = corpora / "malformed" / "pdf" / "truncated-pdfplumber-nics-background-checks-2015-11-97pct.pdf"
    doc = extract(path)
    intact = extract(corpora / "pdf" / "files" / "pdfplumber-nics-background-checks-2015-11.pdf")
    assert doc.metadata["pages"] == intact.metadata["pages"] == 1
    assert doc.text == intact.text and len(doc.text) == 6614
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
    assert doc.metadata["pages"] == 16 and {s.page for s in doc.sections} == {2, 14}
    assert doc.warnings[0].startswith(f"{path}: damaged PDF: ")
    assert doc.warnings[1] == (f"{path}: page(s) 1, 4-11, 13, 15 of 16 could not be read and were skipped "
                               "(page 1: Error: Non-hexadecimal digit found)")


def page_texts(doc: ExtractedDocument) -> dict[int, str]:
    """Each page's text as the extractor gives it (its sections, in order)."""
    pages: dict[int, list[str]] = {}
    for section in doc.sections:
        pages.setdefault(section.page or 0, []).append(doc.section_text(section))
    return {page: "\n".join(texts) for page, texts in pages.items()}


def words_kept(original: str, recovered: str) -> float:
    """Share of the original's words that the recovered text has, in the same order."""
    words = original.split()
    matcher = difflib.SequenceMatcher(None, words, recovered.split(), autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(words)


def test_pdf_cut_in_half_gives_back_the_pages_that_survive(corpora: Path) -> None:
    """First 50% of a 14-page paper: catalog, page tree, trailer and every font are in the lost
    half; the 11 page objects of the first half come back, in file order, as pages 1-11.

    Their text cannot equal the intact file's: without the fonts, ligatures and symbols
    lose their encoding ("fi" and bullets come out as (cid:N)) and Times-Roman widths
    stand in, which shifts word gaps where the font changes within a line; page 11 also
    lost its resources, and with them its chart (a form XObject cut in half). So this
    asserts, against pdfplumber's text of the intact file: every recovered page is, of
    the 14 original pages, most like the one at its position; keeps at least 80% of that
    page's words in order (observed 0.84 on page 11, 0.90-0.97 on pages 1-10); 93% of all
    words over the 11 pages (observed 0.936); and the title line is exact.
    ``test_salvaged_pages_keep_their_content_streams_byte_for_byte`` shows that the
    pages themselves survive intact.
    """
    path = corpora / "malformed" / "pdf" / "truncated-pdfjs-tracemonkey-paper-50pct.pdf"
    doc = extract(path)
    intact = page_texts(extract(corpora / "pdf" / "files" / "pdfjs-tracemonkey-paper.pdf"))
    recovered = page_texts(doc)

    assert doc.metadata["pages"] == 11 and sorted(recovered) == list(range(1, 12))
    assert doc.warnings == (
        f"{path}: damaged PDF: no readable catalog or page tree (unable to find trailer dictionary while "
        "recovering damaged file); rebuilt from the 11 page object(s) that survive, numbered in file order "
        "(the original page numbers are unknown); text recovered from 11 of them; fonts lost on page(s) 1-11: "
        "Times-Roman widths stand in, so word spacing and symbols may be wrong; text may be incomplete",)
    for number, text in recovered.items():
        closest = max(intact, key=lambda n: difflib.SequenceMatcher(None, intact[n].split(), text.split(),
                                                                    autojunk=False).ratio())
        assert closest == number
        assert words_kept(intact[number], text) >= 0.8, number
    kept = sum(words_kept(intact[n], recovered[n]) * len(intact[n].split()) for n in recovered)
    assert kept / sum(len(intact[n].split()) for n in recovered) >= 0.93
    assert recovered[1].splitlines()[0] == intact[1].splitlines()[0] == (
        "Trace-based Just-in-Time Type Specialization for Dynamic")


def test_salvaged_pages_keep_their_content_streams_byte_for_byte(corpora: Path) -> None:
    """In-process: the rebuilt file's pages are the original's pages 1-11, content streams
    identical; only their fonts are missing (all 11 get the stand-in) and none lost its MediaBox."""
    import pikepdf

    from ingest.extract.pdf_repair import salvage as rebuild

    cut = (corpora / "malformed" / "pdf" / "truncated-pdfjs-tracemonkey-paper-50pct.pdf").read_bytes()
    salvage = rebuild(cut, 2000, "cut.pdf")
    assert salvage is not None
    assert (salvage.pages, salvage.lost_fonts, salvage.boxless) == (11, tuple(range(1, 12)), ())
    with pikepdf.open(io.BytesIO(salvage.data)) as rebuilt, \
            pikepdf.open(corpora / "pdf" / "files" / "pdfjs-tracemonkey-paper.pdf") as intact:
        assert len(rebuilt.pages) == 11
        for page, original in zip(rebuilt.pages, intact.pages[:11], strict=True):
            assert page.Contents.read_bytes() == original.Contents.read_bytes()
            assert page.MediaBox == original.MediaBox
            assert {str(f.BaseFont) for f in page.Resources.Font.values()} == {"/Times-Roman"}


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


def test_html_main_content_against_ground_truth(corpora: Path) -> None:
    """trafilatura's pages with hand-annotated snippets: keep content, drop boilerplate."""
    rows = [json.loads(line) for line in (corpora / "html-main-content" / "ground_truth.jsonl").open()]
    rows = [r for r in rows if r["ground_truth"] == "snippets"]
    found = total = leaked = negatives = 0
    for row in rows:
        text = norm(extract(corpora / "html-main-content" / row["file"]).text)
        total += len(row["must_contain"])
        found += sum(norm(s) in text for s in row["must_contain"])
        negatives += len(row.get("must_not_contain") or [])
        leaked += sum(norm(s) in text for s in row.get("must_not_contain") or [])
    assert total > 50
    assert found / total >= 0.85, f"recall {found}/{total}"
    assert leaked / negatives <= 0.2, f"boilerplate leaked {leaked}/{negatives}"


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
    data = (corpora / "pdf" / "files" / "pdfjs-tracemonkey-paper.pdf").read_bytes()
    with pytest.raises(LimitExceededError, match="exceeds the limit"):
        extract_document(SourceDocument("big.pdf", data), ExtractionLimits(max_bytes=1000))
    with pytest.raises(LimitExceededError, match="14 pages exceeds the limit of 5"):
        extract_document(SourceDocument("long.pdf", data), ExtractionLimits(max_pages=5))
    with pytest.raises(LimitExceededError, match="longer than"):
        extract_document(SourceDocument("slow.pdf", data), ExtractionLimits(timeout_s=0.05))


def test_file_named_pdf_that_is_not_one() -> None:
    with pytest.raises(ExtractionError, match="named as application/pdf but the content is not"):
        extract_document(SourceDocument("report.pdf", b"hello, I am text"), LIMITS)
