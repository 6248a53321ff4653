"""Running headers and footers, headings from font sizes and outlines: the pure functions of
``ingest/extract/layout.py`` on hand-made pages, then on real PDFs of ``tests/corpora``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.extract.layout import (
    Line,
    OutlineEntry,
    heading_levels,
    heading_paths,
    outline_lines,
    running_key,
    running_lines,
)
from ingest.extract.pdf import PdfExtractor


def page(*texts: str, first_top: float = 40.0, step: float = 14.0) -> list[Line]:
    return [Line(text, first_top + i * step, 10.0) for i, text in enumerate(texts)]


def test_running_key_ignores_page_numbers_case_and_spacing() -> None:
    assert running_key("Federal Register / Vol. 85, No. 152  47699") == running_key(
        "47700 FEDERAL REGISTER / Vol. 85, No. 152")
    assert running_key("Page 3 of 10") == running_key("Page 12 of 10") == "page of"
    assert running_key("- 4 -") == running_key("- 17 -")
    assert running_key("xii") == running_key("7") == ""


def test_headers_and_footers_repeating_on_most_pages_go_page_numbers_varying() -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    pages = [page("ACME Annual Report 2024", f"{w} opens the page.", f"{w} goes on.", "Closing line.",
                  "Another line.", "And another.", f"{w} ends.", "Confidential", f"Page {n} of 5")
             for n, w in enumerate(words, start=1)]
    drop = running_lines(pages)
    assert drop == [{0, 7, 8}] * 5  # the body's own lines at the edges differ from page to page: kept


def test_alternating_book_headers_and_short_documents() -> None:
    pages = [page("Chapter One: Beginnings" if n % 2 else "A Book Title", f"text {n}", "x", "y", "z", "w", "v",
                  str(n)) for n in range(1, 9)]
    drop = running_lines(pages)
    assert all({0, 7} <= d for d in drop)
    two = [page("Header", "a"), page("Header", "b")]
    assert running_lines(two) == [set(), set()]  # fewer than three pages: nothing is "running"


def test_a_line_on_only_some_pages_or_in_the_middle_stays() -> None:
    pages = [page(opening, "mid", "mid", "mid", "mid", "mid", "mid", "mid", "end of page")
             for opening in ["Introduction", "Methods", "Results", "Discussion", "Results"]]
    # "mid" repeats on every page but never at the top or bottom three lines
    drop = running_lines(pages, edge=1)
    assert drop == [{8}] * 5


def test_position_not_reading_order_decides_the_edges() -> None:
    """A header drawn last in the content stream is still at the top of the page."""
    pages = [[Line("body one", 100.0, 10), Line("body two", 114.0, 10), Line("body three", 128.0, 10),
              Line("body four", 142.0, 10), Line("body five", 156.0, 10), Line("body six", 170.0, 10),
              Line("body seven", 184.0, 10), Line("Running Head", 20.0, 9)] for _ in range(4)]
    assert running_lines(pages, edge=1) == [{7, 6}] * 4


def test_headings_from_font_sizes_and_numbering() -> None:
    body = [Line(f"Plain body line number {i} of the text.", None, 10.0) for i in range(12)]
    pages = [[Line("A Study of Things", None, 18.0), Line("1 Introduction", None, 14.0), *body[:6],
              Line("1.1 Motivation", None, 12.0, bold=True), *body[6:]],
             [Line("2 Methods", None, 14.0), *body, Line("Figure 2. A caption set large", None, 14.0),
              Line("• not a heading", None, 14.0)]]
    levels = heading_levels(pages)
    assert levels == {(0, 0): 1, (0, 1): 1, (0, 8): 2, (1, 0): 1}
    assert heading_levels([[Line("no sizes")]]) == {}


def test_a_style_used_everywhere_is_not_a_heading_style() -> None:
    pages = [[Line(f"Bold row {i}", None, 10.0, bold=True) for i in range(30)] + [Line("body " * 20, None, 10.0)]]
    assert heading_levels(pages) == {}


def test_outline_entries_land_on_their_lines() -> None:
    pages = [page("Title page"), page("Some text", "2 Methods and", "Materials", "body", first_top=50),
             page("body", "2.1 Samples", "body")]
    outline = [OutlineEntry("2 Methods and Materials", 0, 1, 60.0), OutlineEntry("2.1 Samples", 1, 2, None),
               OutlineEntry("Missing Title", 1, 2, 60.0), OutlineEntry("Out of range", 0, 9, None)]
    assert outline_lines(pages, outline) == {(1, 1): (1, "2 Methods and Materials"), (2, 1): (2, "2.1 Samples"),
                                             (2, 2): (2, "Missing Title")}


def test_heading_paths_close_deeper_levels() -> None:
    levels = [1, None, 2, None, 2, 3, None, 1, None]
    titles = ["A", "", "A.1", "", "A.2", "A.2.a", "", "B", ""]
    assert heading_paths(levels, titles) == [("A",), ("A",), ("A", "A.1"), ("A", "A.1"), ("A", "A.2"),
                                             ("A", "A.2", "A.2.a"), ("A", "A.2", "A.2.a"), ("B",), ("B",)]


# --- on real PDFs ---------------------------------------------------------------------


def extract(corpora: Path, name: str, password: str | None = None):  # type: ignore[no-untyped-def]
    return PdfExtractor().extract((corpora / "pdf" / "files" / name).read_bytes(), name, password=password)


def test_running_headers_of_a_real_document_are_gone(corpora: Path) -> None:
    """The DMCA summary repeats its title and "Copyright Office Summary December 1998 Page N"
    at the top of pages 2-18; the Federal Register its masthead line and print-job footer."""
    dmca = extract(corpora, "pdfminer-dmca-us-copyright-office.pdf")
    assert "Page 2" not in dmca.text and "Page 17" not in dmca.text
    assert dmca.text.count("The Digital Millennium Copyright Act of 1998") <= 1
    assert "signed into law" in dmca.text
    register = extract(corpora, "pdfplumber-federal-register-2020-17221.pdf")
    assert "VerDate Sep<11>2014" not in register.text
    assert "Federal Register / Vol. 85, No. 152 / Thursday, August 6, 2020 / Proposed Rules" not in register.text
    assert register.text.startswith("This section of the FEDERAL REGISTER")


def test_pdf_chunks_get_heading_paths_from_font_sizes(corpora: Path) -> None:
    dmca = extract(corpora, "pdfminer-dmca-us-copyright-office.pdf")
    paths = {s.heading_path for s in dmca.sections if s.kind == "heading"}
    assert ("Technological Protection and Copyright Management Systems", "Remedies") in paths
    body = next(s for s in dmca.sections if "Remedies" in s.heading_path and s.kind == "paragraph")
    assert body.page == 7
    for s in dmca.sections:
        assert dmca.text[s.start:s.end].strip() == dmca.text[s.start:s.end]


@pytest.mark.parametrize(("name", "password", "minimum"), [
    # poppler's pdftotext (22.12) word counts, measured once; pdfplumber's default
    # tolerances gave 221, 991 and 2 words: glued words.
    ("pdfplumber-senate-expenditures.pdf", None, 637),
    ("samplefiles-026-latex-multicolumn.pdf", None, 1041),
    ("pypdf-encrypted-r6-aes256.pdf", "asdfzxcv", 5),
])
def test_words_are_not_glued(corpora: Path, name: str, password: str | None, minimum: int) -> None:
    doc = extract(corpora, name, password)
    assert len(doc.text.split()) >= 0.97 * minimum
