"""ingest.formats.pdf: a PDF that cannot be read (truncated, encrypted, or without any text) fails with a reason.
(Text, pages, headers and footers: the samples in test_formats.py; scans: test_formats_ocr.py.)"""

from __future__ import annotations

import io

import pytest

from tests.ingest.format_samples import needs_samples, pdf, read, refused

pytestmark = needs_samples


def _encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(read("fake-memo.pdf")))
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


MALFORMED = {
    "truncated pdf": (lambda: read("fake-memo.pdf")[:4000], "not a valid PDF"),
    "pdf header only": (lambda: b"%PDF-1.7\n%%EOF", "not a valid PDF"),
    "encrypted pdf": (_encrypted_pdf, "password"),
    "blank pdf": (lambda: pdf(blank=1), "no text found in PDF"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_pdf_raises_parse_error(case):
    make, reason = MALFORMED[case]
    refused(make(), reason)
