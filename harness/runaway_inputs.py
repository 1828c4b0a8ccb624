"""Documents the parser never finishes (issue 31), made by code rather than kept as binaries.

`looping_pdf()`: 591 bytes that PDFium never finishes loading. The page's /Resources name a form XObject whose own
/Resources are the page's, and the form draws itself twice. PDFium follows the self-reference level after level
(2^n draws), allocating as it goes (~240 MB/s here, 8.6 GB after 36 s, never done); pdfminer refuses the circular
form, finds no text, and hands the page to OCR, which renders it with PDFium.

`SLOW_TEXT`: JSON text that is one line of "[": the Markdown sniffer's link pattern is quadratic on it (1.3 s for
20,000, 52-60 s for 150,000 on this machine; `slow_text(400_000)` takes ~6 min), CPU only, in a regular expression
that holds the GIL."""

from __future__ import annotations



def slow_text(n: int = 150_000) -> bytes:
    return b"[" * n


SLOW_TEXT = slow_text()

OBJECTS = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /Resources 4 0 R /Contents 5 0 R >>",
    b"<< /XObject << /X 6 0 R >> >>",  # the page's resources: one form, X
    b"/X Do",  # the page draws X
    (b"/Subtype /Form /Resources 4 0 R", b"/X Do /X Do"),  # X's resources are the page's: X draws X, twice
]


def _stream(dictionary: bytes, body: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(body) + body + b"\nendstream"


def looping_pdf() -> bytes:
    out, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(OBJECTS, start=1):
        if isinstance(obj, tuple):
            obj = _stream(*obj)
        elif not obj.startswith(b"<<"):
            obj = _stream(b"", obj)
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(OBJECTS) + 1)
    out += b"".join(b"%010d 00000 n \n" % at for at in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(OBJECTS) + 1, xref)
