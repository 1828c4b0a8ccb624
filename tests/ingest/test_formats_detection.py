"""ingest.formats.detection: formats are told by content (a name breaks ties between text formats only), text is
decoded whatever its encoding, and what is no supported format is refused with a reason."""

from __future__ import annotations

import io
import zipfile

import pytest

from ingest.formats import MAX_UNZIPPED_BYTES, ParseError, detect_format, parse_bytes
from tests.ingest.format_samples import SAMPLE_PARAMS, SAMPLES, needs_samples, read, refused, zipped

pytestmark = needs_samples


@pytest.mark.parametrize("name", SAMPLE_PARAMS)
def test_format_detected_by_content_not_name(name):
    fmt, _ = SAMPLES[name]
    data = read(name)
    assert detect_format(data) == fmt  # no filename at all
    lie = "notes.md" if fmt in ("pdf", "docx", "html") else "report.pdf"
    assert detect_format(data, lie) == fmt
    if fmt in ("pdf", "docx"):
        assert parse_bytes(data, "notes.txt").format == fmt


def test_markdown_named_txt_and_text_named_md():
    assert detect_format(read("simple-table.md"), "table.txt") == "md"
    # A .md name is enough for plain prose to be treated as Markdown.
    assert detect_format(read("fake-text.txt"), "fake.md") == "md"
    # codeblock.md has "<!DOCTYPE html>" in its first KB, inside a fence: still Markdown.
    assert detect_format(read("codeblock.md"), "codeblock.txt") == "md"


def test_utf16_decoded_like_utf8():
    utf16 = read("fake-text-utf-16.txt")
    assert utf16.startswith(b"\xff\xfe")
    assert parse_bytes(utf16).text == parse_bytes(read("fake-text.txt")).text


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


def test_html_detection():
    page = "\ufeff  <!DOCTYPE html><html><body><h1>Überblick</h1><p>Hallo Welt.</p></body></html>"
    doc = parse_bytes(page.encode("utf-8"), "page.txt")
    assert doc.format == "html" and doc.text.startswith("# Überblick") and doc.title == "Überblick"
    assert detect_format(page.encode("utf-16")) == "html"
    assert detect_format(b"<p>just a fragment</p>", "frag.html") == "html"
    assert detect_format(b"Text that mentions <html> later on.") == "txt"


UNSUPPORTED = {
    "empty": (lambda: b"", "empty file"),
    "whitespace": (lambda: b" \n\t\r\n", "empty file"),
    "lone BOM": (lambda: b"\xff\xfe", "empty file"),
    "zip, not docx": (lambda: zipped({"a.txt": "hello"}), "unsupported file type: zip"),
    "png": (lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "unsupported file type"),
    "nul bytes": (lambda: b"abc\x00def\x00" * 10, "unsupported file type"),
    "control chars": (lambda: bytes(range(1, 32)) * 20, "unsupported file type"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_what_is_no_supported_format_raises_parse_error(case):
    make, reason = UNSUPPORTED[case]
    refused(make(), reason)


def test_a_zip_bomb_is_refused_before_anything_inflates_it():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (MAX_UNZIPPED_BYTES + 1))
    data = buf.getvalue()
    assert len(data) < 1024 * 1024  # well under any upload limit
    with pytest.raises(ParseError, match=r"expands to \d+ bytes; at most \d+: refused as a possible zip bomb"):
        detect_format(data, "innocent.docx")
