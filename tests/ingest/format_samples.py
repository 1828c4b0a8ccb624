"""The real sample documents in ../shared/data/documents, and PDFs and zips made of them, for the format tests
(tests/ingest/test_formats*.py)."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from ingest.formats import ParseError, parse_bytes

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO.parent / "shared" / "data" / "documents"

needs_samples = pytest.mark.skipif(
    not DOCS.is_dir(), reason=f"sample documents not found at {DOCS} (../shared beside the repo)"
)

# file -> (format, phrases the rendered text must contain)
SAMPLES: dict[str, tuple[str, list[str]]] = {
    "README.md": ("md", ["# Real-world documents for parsing tests", "UTF-16 text"]),
    "a1977-backus-p21.pdf": ("pdf", ["permits the definition of new functional forms"]),
    "book-war-and-peace-1p.txt": (
        "txt",
        ["CHAPTER I", "so Genoa and Lucca are now just family estates of the Buonapartes"],
    ),
    "codeblock.md": ("md", ["# HTML Example", "# XML Example", "Don't forget me this weekend!"]),
    "docx-tables.docx": (
        "docx",
        ["Simple uniform table", "| Header Col 1 | Header Col 2 |", "| Lorem ipsum | A link example |"],
    ),
    "embedded-images-tables.pdf": (
        "pdf",
        ["Potentiodynamic polarization data for stainless steel", "0.0335", "Langmuir adsorption"],
    ),
    "example-10k-1p.html": (
        "html",
        ["Galaxy Gaming, Inc.", "| Common stock | GLXZ | OTCQB marketplace |", "| Item 1A. | Risk Factors | 9 |"],
    ),
    "example-docs-readme.md": (
        "md",
        ["## Example Docs", "#### XBRL 10-K", "- example-10k.html - A 10-K SEC filing in HTML format"],
    ),
    "example-list-items-multiple.docx": (
        "docx",
        ["Lorem Ipsum 2", "- a) The quick brown fox jumps over the lazy dog."],
    ),
    "fake-html-with-footer-and-header.html": ("html", ["# My First Heading", "My first paragraph."]),
    "fake-html.html": (
        "html",
        [
            "# My First Heading",
            "## My Second Heading",
            "### A Third Heading",
            "- With sub-bullets!",
            "| Column 1 | Column 2 |",
            "| Row 2, Cell 1 | Row 2, Cell 2 |",
        ],
    ),
    "fake-memo.pdf": ("pdf", ["20,000 bottles of water, 10,000 blankets, and 200 laptops"]),
    "fake-text-utf-16.txt": (
        "txt",
        ["This is a test document to use for unit tests.", "- Hamburgers are delicious"],
    ),
    "fake-text.txt": ("txt", ["This is a test document to use for unit tests.", "- Dogs are the best"]),
    "fake.docx": ("docx", ["Lorem ipsum dolor sit amet."]),
    "handbook-1p.docx": (
        "docx",
        ["The United States Trustee appoints and supervises standing trustees"],
    ),
    "ideas-page.html": (
        "html",
        ["The way to get new ideas is to notice anomalies", "could answer questions based on them"],
    ),
    "list-item-example.pdf": ("pdf", ["- What are product types?", "Design and Prototyping"]),
    "norwich-city.txt": (
        "txt",
        ["Iwan Wyn Roberts (born 26 June 1968) is a Welsh former professional footballer"],
    ),
    "simple-table.md": ("md", ["| Item | Price | # In stock |", "| Juicy Apples | 1.99 | 739 |"]),
    # A scan: its only content is an image of a ruled table, turned sideways in the page. OCRed.
    "single_table.pdf": ("pdf", ["Processing", "Chipper", "Base 256"]),
    "umlauts-utf8.md": ("md", ["## können", "äöüß"]),
}
SCANNED_PDF = "single_table.pdf"
HAVE_TESSERACT = shutil.which("tesseract") is not None
needs_tesseract = pytest.mark.skipif(
    not HAVE_TESSERACT,
    reason="tesseract is not installed (Debian tesseract-ocr, tesseract-ocr-eng; .ci/run installs them)",
)
SAMPLE_PARAMS = [
    pytest.param(name, marks=needs_tesseract) if name == SCANNED_PDF else name
    for name in sorted(SAMPLES)
]


def read(name: str) -> bytes:
    return (DOCS / name).read_bytes()


def zipped(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def pdf(*parts: str, blank: int = 0, rotate: int = 0) -> bytes:
    """The sample PDFs `parts` in one document, then `blank` empty pages; pages turned by `rotate`."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for name in parts:
        writer.append(str(DOCS / name))
    for _ in range(blank):
        writer.add_blank_page(612, 792)
    if rotate:
        for page in writer.pages:
            page.rotate(rotate)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def refused(data: bytes, reason: str) -> None:
    """An upload parse_bytes refuses with a ParseError matching `reason`, its message a reason to show."""
    with pytest.raises(ParseError, match=reason) as exc:
        parse_bytes(data, "upload.bin")
    assert str(exc.value)
