"""ingest.formats.ocr: PDF pages without a text layer are OCRed (and only those, in page order), sideways scans
are turned upright, tables come out row by row; OCR is bounded, and a scan without tesseract is a clear error.
(Languages: test_ocr_languages.py.)"""

from __future__ import annotations

import pytest

from ingest.formats import ParseError, ocr, parse_bytes
from tests.ingest.format_samples import SCANNED_PDF, needs_samples, needs_tesseract, pdf, read

pytestmark = needs_samples


def _table_rows_read(text: str) -> None:
    """The scanned table's rows come out as lines, each row's cells together."""
    lines = text.splitlines()
    for row in (("Base 128", "64,058", "800.73"), ("Chipper", "20,843", "96.20")):
        assert any(all(cell in line for cell in row) for line in lines), (row, text)


@needs_tesseract
def test_scanned_table_is_ocred_row_by_row():
    doc = parse_bytes(read(SCANNED_PDF), SCANNED_PDF)
    assert doc.format == "pdf" and not doc.structured
    _table_rows_read(doc.text)
    assert "Processing | total chunks" in doc.text  # a ruled table: its rules separate the cells


@needs_tesseract
@pytest.mark.parametrize("rotate", [90, 180])
def test_sideways_and_upside_down_scans_are_turned_upright(rotate):
    _table_rows_read(parse_bytes(pdf(SCANNED_PDF, rotate=rotate)).text)


@needs_tesseract
def test_only_pages_without_text_are_ocred_in_page_order(monkeypatch):
    ocred = []
    ocr_page = ocr.ocr_page
    spy = lambda data, n, u, languages: ocred.append(n) or ocr_page(data, n, u, languages)  # noqa: E731
    monkeypatch.setattr(ocr, "ocr_page", spy)
    text = parse_bytes(pdf("fake-memo.pdf", SCANNED_PDF, "fake-memo.pdf", blank=1)).text
    assert ocred == [1, 3]  # the scan and the blank page; the memo has a text layer
    memo = "20,000 bottles of water"
    assert text.index(memo) < text.index("Chipper") < text.rindex(memo)
    assert text.count(memo) == 2 and text.count("Chipper") == 1


@needs_tesseract
def test_ocr_is_bounded(monkeypatch):
    monkeypatch.setattr(ocr, "MAX_PAGES", 1)
    assert parse_bytes(pdf(SCANNED_PDF, SCANNED_PDF)).text.count("Chipper") == 1
    # Every page times out: skipped, and the document fails alone, without a crash.
    monkeypatch.setattr(ocr, "PAGE_TIMEOUT", 0.01)
    with pytest.raises(ParseError, match="no text found in PDF"):
        parse_bytes(read(SCANNED_PDF))


def test_image_only_pdf_without_tesseract_is_a_clear_parse_error(monkeypatch):
    monkeypatch.setattr(ocr.shutil, "which", lambda cmd, *args, **kwargs: None)
    with pytest.raises(ParseError, match=r"PDF is image-only .*tesseract-ocr") as exc:
        parse_bytes(read(SCANNED_PDF), SCANNED_PDF)
    assert "not installed" in str(exc.value)
    # Pages that have text still count: a PDF with one scanned page is indexed without it.
    text = parse_bytes(pdf("fake-memo.pdf", SCANNED_PDF)).text
    assert "20,000 bottles of water" in text and "Chipper" not in text


def test_tesseract_vanishing_after_the_check_is_the_same_parse_error(monkeypatch):
    monkeypatch.setattr(ocr.shutil, "which", lambda cmd, *args, **kwargs: "/usr/bin/tesseract")
    monkeypatch.setattr(ocr, "TESSERACT", "/nonexistent/tesseract")
    with pytest.raises(ParseError, match=r"PDF is image-only .*tesseract-ocr"):
        parse_bytes(read(SCANNED_PDF))
