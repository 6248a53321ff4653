"""OCR of image-only PDF pages with the OS's Tesseract (installed by ``deploy/dev/os-deps.sh``),
on OCRmyPDF's scanned brochure page and its reference transcription (``tests/corpora/pdf``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rapidfuzz.distance import Levenshtein

from ingest.extract import ExtractionLimits, extract_document
from ingest.extract.ocr import OcrConfig, find_tesseract
from schemas.documents import ExtractedDocument, SourceDocument
from services.settings import Settings

LINN = "ocrmypdf-linn-scanned-two-column.pdf"
CARDINAL = "ocrmypdf-cardinal-rotated-scans.pdf"
LIMITS = ExtractionLimits(timeout_s=120, memory_mb=768)
#: Tesseract 5.3.0 (Debian 12, eng + osd data) reads the page at 99.0% character accuracy
#: (Levenshtein over whitespace-normalized text, bench/extract_quality.py); the margin
#: leaves room for other Tesseract versions.
MIN_ACCURACY = 0.95


@pytest.fixture(autouse=True, scope="module")
def tesseract_installed() -> None:
    assert find_tesseract() is not None, "tesseract is not installed: run deploy/dev/os-deps.sh (as root)"


def extract(corpora: Path, name: str, limits: ExtractionLimits = LIMITS) -> ExtractedDocument:
    path = corpora / "pdf" / "files" / name
    return extract_document(SourceDocument(name, path.read_bytes()), limits)


def accuracy(text: str, reference: str) -> float:
    got, want = " ".join(text.split()), " ".join(reference.split())
    return 1 - Levenshtein.distance(got, want) / len(want)


def test_a_scanned_page_is_read_by_ocr_and_marked_so(corpora: Path) -> None:
    doc = extract(corpora, LINN)
    reference = (corpora / "pdf" / "expected" / "ocrmypdf-linn.txt").read_text(encoding="utf-8")
    assert accuracy(doc.text, reference) >= MIN_ACCURACY
    assert "The LinnSequencer" in doc.text and "32 Track MIDI Sequence Recorder" in doc.text
    assert doc.metadata["ocr_pages"] == [1]
    assert doc.warnings == (f"{LINN}: no text layer on page(s) 1 of 1; their text comes from OCR and may "
                            "contain recognition errors",)
    assert doc.sections and all(s.page == 1 for s in doc.sections)
    for s in doc.sections:
        assert doc.text[s.start:s.end].strip() == doc.text[s.start:s.end]


def test_pages_scanned_sideways_and_upside_down_are_read(corpora: Path) -> None:
    """The same scan rotated 0/90/180/270 degrees in the image: orientation detection turns each."""
    doc = extract(corpora, CARDINAL)
    assert doc.metadata["ocr_pages"] == [1, 2, 3, 4]
    by_page = {n: " ".join(doc.section_text(s) for s in doc.sections if s.page == n) for n in range(1, 5)}
    assert all("LinnSequencer" in text for text in by_page.values()), by_page


def test_the_page_budget_names_the_pages_left_unread(corpora: Path) -> None:
    doc = extract(corpora, CARDINAL, dataclasses.replace(LIMITS, ocr=OcrConfig(max_pages=1)))
    assert doc.metadata["ocr_pages"] == [1]
    assert {s.page for s in doc.sections} == {1}
    assert doc.warnings[1] == (f"{CARDINAL}: no text layer on page(s) 2-4 of 4 (scanned? beyond the OCR budget "
                               "of 1 page(s))")


def test_a_language_without_data_is_reported_not_guessed(corpora: Path) -> None:
    doc = extract(corpora, LINN, dataclasses.replace(LIMITS, ocr=OcrConfig(languages="eng+qqq")))
    assert doc.text == "" and "ocr_pages" not in doc.metadata
    assert doc.warnings == (f"{LINN}: no text layer on page(s) 1 of 1 (scanned? no OCR: tesseract has no data "
                            "for language(s) qqq (Debian: tesseract-ocr-qqq))",)


def without_unicode_maps(path: Path, *fonts: str) -> bytes:
    """The PDF with the ToUnicode map of ``fonts`` (all when none are named) removed: its text
    is then drawn in glyphs no engine can map to characters, like PDFs made by tools that
    embed CID fonts without one (pdf.js's TAMReview.pdf, 80% of its glyphs)."""
    import io

    import pikepdf

    with pikepdf.open(path) as pdf:
        for page in pdf.pages:
            for name, font in page.obj.Resources.Font.items():
                if (not fonts or name in fonts) and "/ToUnicode" in font:
                    del font["/ToUnicode"]
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()


COURT = "pdfjs-issue11913-court-judgment.pdf"


def test_a_page_drawn_in_unmapped_glyphs_is_read_by_ocr_not_indexed_as_cid_codes(corpora: Path) -> None:
    path = corpora / "pdf" / "files" / COURT
    original = extract_document(SourceDocument(COURT, path.read_bytes()), LIMITS).text
    doc = extract_document(SourceDocument(COURT, without_unicode_maps(path)), LIMITS)
    assert "(cid:" not in doc.text
    assert accuracy(doc.text, original) >= MIN_ACCURACY
    assert doc.metadata["ocr_pages"] == doc.metadata["unmapped_glyph_pages"] == [1]
    assert doc.warnings == (f"{COURT}: page(s) 1 of 1 draw their text in fonts without a Unicode mapping (4779 "
                            "glyphs unreadable); their text comes from OCR and may contain recognition errors",)

    off = extract_document(SourceDocument(COURT, without_unicode_maps(path)),
                           dataclasses.replace(LIMITS, ocr=OcrConfig(enabled=False)))
    assert off.text == "" and "ocr_pages" not in off.metadata
    assert off.warnings == (f"{COURT}: page(s) 1 of 1 draw their text in fonts without a Unicode mapping (4779 "
                            "glyphs unreadable); left out (OCR is off)",)


def test_a_few_unmapped_glyphs_are_left_out_and_counted(corpora: Path) -> None:
    """Only the bold font lost its map: the page keeps its other text, without ``(cid:N)``."""
    path = corpora / "pdf" / "files" / COURT
    doc = extract_document(SourceDocument(COURT, without_unicode_maps(path, "/C2_1")), LIMITS)
    assert "(cid:" not in doc.text and "ocr_pages" not in doc.metadata
    assert "The first of these cases arises from the tragic handicap" in doc.text  # regular text, kept
    assert "THE SUPREME COURT" not in doc.text  # set in the bold font
    assert len(doc.warnings) == 1
    assert doc.warnings[0].startswith(f"{COURT}: ") and doc.warnings[0].endswith(
        " glyph(s) on page(s) 1 of 1 are in fonts without a Unicode mapping and were left out")


def test_a_scan_is_indexed_through_the_pipeline(make_components: Any, corpora: Path) -> None:
    """The default settings OCR a scan, so it is indexed instead of failing for lack of text."""
    from ingest.sources import SourceOptions, iter_sources
    from schemas import ids

    comps = make_components()
    scan = corpora / "pdf" / "files" / CARDINAL
    summary = comps.pipeline().ingest(iter_sources([str(scan)], SourceOptions(tenant="t")))
    assert summary.documents["failed"] == 0, summary.errors
    document_id = ids.document_id("t", str(scan.resolve()))
    assert comps.index.count(comps.collection, "t", document_id) == comps.registry.get("t", document_id).chunk_count > 0


def test_ocr_settings() -> None:
    ext = Settings(extraction={"ocr_languages": "eng+deu", "ocr_max_pages": 3}).extraction  # type: ignore[arg-type]
    assert (ext.ocr, ext.ocr_languages, ext.ocr_max_pages) == (True, "eng+deu", 3)
    for bad in ("eng; rm -rf /", "-l", ""):
        with pytest.raises(ValidationError):
            Settings(extraction={"ocr_languages": bad})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="OCR languages"):
            OcrConfig(languages=bad)
