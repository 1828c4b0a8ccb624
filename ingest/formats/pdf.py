"""PDF. `unstructured.partition.pdf` cannot even be imported without `unstructured-inference` (the [pdf] extra,
which drags a CUDA torch in), so PDFs are read with pdfminer.six the way unstructured's "fast" strategy does it: one
element per pdfminer text box, classified by unstructured's own `element_from_text`
(Title/NarrativeText/ListItem/Header/Footer...). Pages without a text layer (scans) are OCRed (`ocr.py`)."""

from __future__ import annotations

import io
from typing import Any

from ingest.formats import ocr
from ingest.formats.document import ParseError, Reading, Source
from ingest.formats.render import box_paragraphs, render

OCR_MIN_CHARS = 20  # a page whose text layer has fewer non-blank characters than this is OCRed


def sniff(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]  # the spec lets junk precede the header


def read(src: Source, u: Any) -> Reading:
    elements = [e for e in _elements(src, u) if e.category not in ("Header", "Footer")]  # running heads, page numbers
    text, pages = render(elements)
    if not text.strip():
        raise ParseError("no text found in PDF (no text layer, nor text that OCR could read)")
    return Reading(elements, text, pages)


def _elements(src: Source, u: Any) -> list[Any]:
    """One element per pdfminer text box, as unstructured's fast PDF strategy does; boxes holding
    several bulleted lines are split per bullet. Top-left coordinates let element_from_text
    tell page headers and footers apart. Pages with (almost) no text are OCRed instead."""
    pages: list[list[Any]] = []
    scanned: list[int] = []  # pages to OCR
    # all_texts: also lay out text inside figures/form XObjects, where some generators put it all.
    layout = u.extract_pages(io.BytesIO(src.data), laparams=u.LAParams(all_texts=True))
    try:
        for number, page in enumerate(layout):
            space = u.PixelSpace(width=page.width, height=page.height)
            elements = []
            for box in _text_boxes(page, u):
                x0, y0, x1, y1 = box.bbox
                top, bottom = page.height - y1, page.height - y0
                points = ((x0, top), (x0, bottom), (x1, bottom), (x1, top))
                for para in box_paragraphs(box.get_text(), u):
                    elements.append(u.element_from_text(para, points, space))
            pages.append(elements)
            if sum(len("".join(e.text.split())) for e in elements) < OCR_MIN_CHARS:
                scanned.append(number)
    except u.pdf_locked as e:
        raise ParseError("PDF is password-protected or uses unsupported encryption") from e
    if scanned:
        ocr.ocr_pages(src.data, pages, scanned, u, src.ocr_languages)
    for number, elements in enumerate(pages):
        for e in elements:  # where a citation of the text rendered from it points
            e.metadata.page_number = number + 1
    return [e for elements in pages for e in elements]


def _text_boxes(item: Any, u: Any):
    for child in item:
        if isinstance(child, u.LTTextBox):
            yield child
        elif isinstance(child, u.LTContainer):
            yield from _text_boxes(child, u)
