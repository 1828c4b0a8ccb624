"""ingest.parsing against the real sample documents in ../shared/data/documents."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ingest.parsing as parsing
from ingest.parsing import (
    PARSER_VERSION,
    ParsedDocument,
    ParseError,
    _load_unstructured,
    detect_format,
    parse_bytes,
    parse_text,
)

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO.parent / "shared" / "data" / "documents"

pytestmark = pytest.mark.skipif(
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


def _read(name: str) -> bytes:
    return (DOCS / name).read_bytes()


def test_every_sample_is_covered():
    assert sorted(SAMPLES) == sorted(p.name for p in DOCS.iterdir())


@pytest.mark.parametrize("name", SAMPLE_PARAMS)
def test_sample_parses(name):
    fmt, phrases = SAMPLES[name]
    doc = parse_bytes(_read(name), name)
    assert isinstance(doc, ParsedDocument)
    assert doc.format == fmt
    assert doc.text.strip()
    assert doc.elements > 0
    for phrase in phrases:
        assert phrase in doc.text, f"{phrase!r} missing from {name}"
    assert "\ufffd" not in doc.text and "\x00" not in doc.text


@pytest.mark.parametrize("name", SAMPLE_PARAMS)
def test_format_detected_by_content_not_name(name):
    fmt, _ = SAMPLES[name]
    data = _read(name)
    assert detect_format(data) == fmt  # no filename at all
    lie = "notes.md" if fmt in ("pdf", "docx", "html") else "report.pdf"
    assert detect_format(data, lie) == fmt
    if fmt in ("pdf", "docx"):
        assert parse_bytes(data, "notes.txt").format == fmt


def test_markdown_named_txt_and_text_named_md():
    assert detect_format(_read("simple-table.md"), "table.txt") == "md"
    # A .md name is enough for plain prose to be treated as Markdown.
    assert detect_format(_read("fake-text.txt"), "fake.md") == "md"
    # codeblock.md has "<!DOCTYPE html>" in its first KB, inside a fence: still Markdown.
    assert detect_format(_read("codeblock.md"), "codeblock.txt") == "md"


def test_headings_and_structure():
    md = parse_bytes(_read("example-docs-readme.md"), "example-docs-readme.md")
    assert md.structured and md.title == "Example Docs"
    html = parse_bytes(_read("fake-html.html"))
    assert html.structured and html.title == "My First Heading"
    assert html.text.startswith("# My First Heading\n\n## My Second Heading")
    for name in ("book-war-and-peace-1p.txt", "fake-memo.pdf"):
        assert not parse_bytes(_read(name), name).structured  # prose formats
    # docx without Heading styles has no titles, so nothing to split on
    assert not parse_bytes(_read("handbook-1p.docx")).structured


def test_docx_headings_lists_and_tables():
    import docx  # python-docx, installed with unstructured[docx]

    d = docx.Document()
    d.add_heading("Chapter One", level=1)
    d.add_paragraph("The quick brown fox jumps over the lazy dog.")
    d.add_heading("Section Two", level=2)
    d.add_paragraph("First point", style="List Bullet")
    d.add_paragraph("Second point", style="List Bullet")
    table = d.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "City", (0, 1): "Größe", (1, 0): "Zürich", (1, 1): "42"}.items():
        table.cell(r, c).text = text
    buf = io.BytesIO()
    d.save(buf)
    doc = parse_bytes(buf.getvalue(), "generated.docx")
    assert doc.format == "docx" and doc.structured and doc.title == "Chapter One"
    assert "# Chapter One\n\nThe quick brown fox" in doc.text
    assert "## Section Two" in doc.text
    assert "- First point\n- Second point" in doc.text
    assert "| City | Größe |\n|---|---|\n| Zürich | 42 |" in doc.text


def test_merged_and_nested_table_cells_keep_their_text():
    text = parse_bytes(_read("docx-tables.docx")).text
    assert "| a | >b< | c |" in text  # nested table
    assert "| a | b |  |\n|---|---|---|\n|  | c | d |\n| e |  |  |" in text  # spans line up


def test_utf16_decoded_like_utf8():
    utf16 = _read("fake-text-utf-16.txt")
    assert utf16.startswith(b"\xff\xfe")
    assert parse_bytes(utf16).text == parse_bytes(_read("fake-text.txt")).text


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"]
)
def test_text_encodings_keep_umlauts(encoding):
    text = "Grüße aus Köln: Äpfel, Öl und Übermut sind schön.\n\nZweiter Absatz mit ß."
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the BOM is what tells UTF-16 from binary
    doc = parse_bytes(data, "gruss.txt")
    assert doc.format == "txt"
    assert "Grüße aus Köln: Äpfel, Öl und Übermut sind schön." in doc.text
    assert "Zweiter Absatz mit ß." in doc.text


def test_invalid_utf8_bytes_are_replaced_not_fatal():
    data = "Grüße aus Köln, schön war es.".encode() + b"\xff\xfe\xfa" + " Ende.".encode()
    doc = parse_bytes(data, "broken.txt")
    assert "Grüße aus Köln, schön war es." in doc.text and "\ufffd" in doc.text


def test_a_nul_a_file_decodes_to_is_a_space_in_its_text():
    """PostgreSQL's text columns take no NUL: a mail body in base64 may decode to one (so may a PDF's glyphs)."""
    import base64

    body = base64.b64encode(b"Hello team,\n\nthe offsite is on\x00 Friday in Lisbon.\n").decode()
    mail = ("From: a@example.com\nTo: b@example.com\nSubject: Offsite\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" + body + "\n")
    doc = parsing.parse_bytes(mail.encode(), "offsite.eml")
    assert doc.text == "Hello team,\n\nthe offsite is on  Friday in Lisbon."


def test_html_detection():
    page = "\ufeff  <!DOCTYPE html><html><body><h1>Überblick</h1><p>Hallo Welt.</p></body></html>"
    doc = parse_bytes(page.encode("utf-8"), "page.txt")
    assert doc.format == "html" and doc.text.startswith("# Überblick") and doc.title == "Überblick"
    assert detect_format(page.encode("utf-16")) == "html"
    assert detect_format(b"<p>just a fragment</p>", "frag.html") == "html"
    assert detect_format(b"Text that mentions <html> later on.") == "txt"


def test_plain_json_text_keeps_its_paragraphs_and_invents_no_headings():
    one_line = parse_text("Aspirin lowers the risk of heart attack")
    assert one_line.text == "Aspirin lowers the risk of heart attack"  # unstructured made it "# Aspirin ..."
    assert (one_line.format, one_line.structured, one_line.title, one_line.elements) == ("txt", False, None, 0)
    doc = parse_text("Vitamin D and bones\r\n\r\nVitamin D deficiency is common\nin winter.   Bone density fell.\n"
                     "\n \n- one\n- two\n\n1. first\n2) second\n\n\n\nLast   words.")
    assert doc.text == ("Vitamin D and bones\n\nVitamin D deficiency is common in winter. Bone density fell.\n\n"
                        "- one\n- two\n\n1. first\n2) second\n\nLast words.")
    # Markdown sent as JSON still goes through unstructured, for its heading-aware chunking.
    assert parse_text("# Notes\n\nSome text.").structured
    # A link makes text Markdown; brackets before parentheses in chemistry or genetics do not.
    for link in ("[docs](https://example.com/a)", "[up](../README.md)", "[top](#intro)", "[mail](mailto:a@b.c)",
                 "[guide](guide.md)", "[img](docs/x)", "[local](/etc/hosts)"):
        assert parse_text(f"See {link} for more.").format == "md", link
    for notation in ("Slow changes in [Ca(2+)](i) reflect activity.", "Knockout [GHS-R](-/-) and wild-type mice.",
                     "6-gingerol ([M + K](+) at m/z 333.15).", "Intervals [0, 1](2) and [a](b c)."):
        assert parse_text(notation).format == "txt", notation


def test_parse_text():
    md = parse_text("# Notes\n\nSome text about parsing.\n\n- one\n- two")
    assert (md.format, md.structured, md.title) == ("md", True, "Notes")
    assert "- one\n- two" in md.text
    plain = parse_text("Just a sentence that is written here. And another one follows.")
    assert plain.format == "txt" and not plain.structured
    assert parse_text("plain words", "notes.md").format == "md"
    assert parse_text("<html><body><p>Hallo</p></body></html>").format == "html"
    for bad in ("", "  \n\t"):
        with pytest.raises(ParseError, match="empty"):
            parse_text(bad)


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(_read("fake-memo.pdf")))
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _pdf(*parts: str, blank: int = 0, rotate: int = 0) -> bytes:
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


MALFORMED = {
    "empty": (lambda: b"", "empty file"),
    "whitespace": (lambda: b" \n\t\r\n", "empty file"),
    "lone BOM": (lambda: b"\xff\xfe", "empty file"),
    "truncated pdf": (lambda: _read("fake-memo.pdf")[:4000], "not a valid PDF"),
    "pdf header only": (lambda: b"%PDF-1.7\n%%EOF", "not a valid PDF"),
    "encrypted pdf": (_encrypted_pdf, "password"),
    "blank pdf": (lambda: _pdf(blank=1), "no text found in PDF"),
    "zip, not docx": (lambda: _zip({"a.txt": "hello"}), "unsupported file type: zip"),
    "truncated docx": (lambda: _read("fake.docx")[:3000], "not a valid DOCX"),
    "docx with broken xml": (
        lambda: _zip({"word/document.xml": "<w:document", "[Content_Types].xml": "<x"}),
        "not a valid DOCX",
    ),
    "png": (lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "unsupported file type"),
    "nul bytes": (lambda: b"abc\x00def\x00" * 10, "unsupported file type"),
    "control chars": (lambda: bytes(range(1, 32)) * 20, "unsupported file type"),
    "html without text": (lambda: b"<html><body><div> </div></body></html>", "no text found"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_raises_parse_error(case):
    make, reason = MALFORMED[case]
    with pytest.raises(ParseError, match=reason) as exc:
        parse_bytes(make(), "upload.bin")
    assert str(exc.value)


def test_unexpected_library_errors_become_parse_errors(monkeypatch):
    def boom(**kwargs):
        raise ValueError("kaput")

    monkeypatch.setattr(_load_unstructured(), "partition_html", boom)
    with pytest.raises(ParseError, match="could not parse HTML: ValueError: kaput") as exc:
        parse_bytes(_read("fake-html.html"))
    assert isinstance(exc.value.__cause__, ValueError)


def test_parser_version_names_unstructured():
    from unstructured.__version__ import __version__

    assert PARSER_VERSION.startswith(f"unstructured-{__version__}+")


def test_no_network_during_parsing(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in sorted(SAMPLES):
        if name != SCANNED_PDF or HAVE_TESSERACT:
            parse_bytes(_read(name), name)
    parse_text("# Title\n\nSome text.")
    assert attempts == []


# --------------------------------------------------------------------------- OCR of scanned pages


def _table_rows_read(text: str) -> None:
    """The scanned table's rows come out as lines, each row's cells together."""
    lines = text.splitlines()
    for row in (("Base 128", "64,058", "800.73"), ("Chipper", "20,843", "96.20")):
        assert any(all(cell in line for cell in row) for line in lines), (row, text)


@needs_tesseract
def test_scanned_table_is_ocred_row_by_row():
    doc = parse_bytes(_read(SCANNED_PDF), SCANNED_PDF)
    assert doc.format == "pdf" and not doc.structured
    _table_rows_read(doc.text)
    assert "Processing | total chunks" in doc.text  # a ruled table: its rules separate the cells


@needs_tesseract
@pytest.mark.parametrize("rotate", [90, 180])
def test_sideways_and_upside_down_scans_are_turned_upright(rotate):
    _table_rows_read(parse_bytes(_pdf(SCANNED_PDF, rotate=rotate)).text)


@needs_tesseract
def test_only_pages_without_text_are_ocred_in_page_order(monkeypatch):
    ocred = []
    ocr_page = parsing._ocr_page
    spy = lambda data, n, u: ocred.append(n) or ocr_page(data, n, u)  # noqa: E731
    monkeypatch.setattr(parsing, "_ocr_page", spy)
    text = parse_bytes(_pdf("fake-memo.pdf", SCANNED_PDF, "fake-memo.pdf", blank=1)).text
    assert ocred == [1, 3]  # the scan and the blank page; the memo has a text layer
    memo = "20,000 bottles of water"
    assert text.index(memo) < text.index("Chipper") < text.rindex(memo)
    assert text.count(memo) == 2 and text.count("Chipper") == 1


@needs_tesseract
def test_ocr_is_bounded(monkeypatch):
    monkeypatch.setattr(parsing, "OCR_MAX_PAGES", 1)
    assert parse_bytes(_pdf(SCANNED_PDF, SCANNED_PDF)).text.count("Chipper") == 1
    # Every page times out: skipped, and the document fails alone, without a crash.
    monkeypatch.setattr(parsing, "OCR_PAGE_TIMEOUT", 0.01)
    with pytest.raises(ParseError, match="no text found in PDF"):
        parse_bytes(_read(SCANNED_PDF))


def test_image_only_pdf_without_tesseract_is_a_clear_parse_error(monkeypatch):
    monkeypatch.setattr(parsing.shutil, "which", lambda cmd, *args, **kwargs: None)
    with pytest.raises(ParseError, match=r"PDF is image-only .*tesseract-ocr") as exc:
        parse_bytes(_read(SCANNED_PDF), SCANNED_PDF)
    assert "not installed" in str(exc.value)
    # Pages that have text still count: a PDF with one scanned page is indexed without it.
    text = parse_bytes(_pdf("fake-memo.pdf", SCANNED_PDF)).text
    assert "20,000 bottles of water" in text and "Chipper" not in text


def test_tesseract_vanishing_after_the_check_is_the_same_parse_error(monkeypatch):
    monkeypatch.setattr(parsing.shutil, "which", lambda cmd, *args, **kwargs: "/usr/bin/tesseract")
    monkeypatch.setattr(parsing, "TESSERACT", "/nonexistent/tesseract")
    with pytest.raises(ParseError, match=r"PDF is image-only .*tesseract-ocr"):
        parse_bytes(_read(SCANNED_PDF))


# Runs in a fresh interpreter so the import of unstructured, its telemetry hook and the first
# spaCy use all happen under the guard; the opt-out variables are removed from its environment.
_FRESH_PROCESS = r"""
import json, os, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network disabled")
socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = refuse
socket.create_connection = refuse
from ingest.parsing import parse_bytes
docs = sys.argv[1]
formats = [parse_bytes(open(os.path.join(docs, n), "rb").read(), n).format for n in sys.argv[2:]]
import unstructured.nlp.tokenize as t
print(json.dumps({"attempts": attempts, "formats": formats, "tags": t.pos_tag("It is done.")}))
"""


def test_fresh_process_never_touches_the_network():
    files = ["fake-text.txt", "simple-table.md", "fake-html.html", "fake.docx", "fake-memo.pdf"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(DOCS), *files],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    assert result["formats"] == ["txt", "md", "html", "docx", "pdf"]
    assert ("is", "VB") in [tuple(t) for t in result["tags"]]  # our offline pipeline is in use
    assert "Thank you for using Unstructured" not in proc.stderr + proc.stdout


def test_a_zip_bomb_is_refused_before_anything_inflates_it():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (parsing.MAX_UNZIPPED_BYTES + 1))
    data = buf.getvalue()
    assert len(data) < 1024 * 1024  # well under any upload limit
    with pytest.raises(ParseError, match=r"expands to \d+ bytes; at most \d+: refused as a possible zip bomb"):
        parsing.detect_format(data, "innocent.docx")
