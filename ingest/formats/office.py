"""Office and e-book formats, through unstructured's own partitioners: docx (python-docx), pptx (python-pptx), xlsx
(openpyxl/pandas), and epub, odt and rtf (pandoc converts them to HTML or DOCX for unstructured). Slides are
rendered one section per slide ("# Slide N", the slide number kept as the page) with their speaker notes;
spreadsheets one section per sheet ("# Sheet: name"), its rows a Markdown table."""

from __future__ import annotations

import io
from typing import Any

from ingest.formats.document import ParseError, Reading, Source
from ingest.formats.render import flowing, join_blocks, render_table


def read_docx(src: Source, u: Any) -> Reading:
    # languages=[""] skips langdetect (0.5 s to load, then per document): its metadata is unused.
    return flowing(u.partition_docx(file=io.BytesIO(src.data), languages=[""]))


def _pandoc(name: str):
    """The reader of a format pandoc converts for unstructured (`partition_<name>`)."""

    def read(src: Source, u: Any) -> Reading:
        try:
            return flowing(getattr(u, f"partition_{name}")(file=io.BytesIO(src.data), languages=[""]))
        except RuntimeError as e:
            if "pandoc" in str(e).lower() and "not" in str(e).lower() and "install" in str(e).lower():
                raise ParseError(f"{name.upper()} needs pandoc (Debian package `pandoc`): {e}") from e
            raise

    return read


read_epub = _pandoc("epub")
read_odt = _pandoc("odt")
read_rtf = _pandoc("rtf")


def sniff_rtf(data: bytes) -> bool:
    return data.lstrip()[:5] == b"{\\rtf"


def read_pptx(src: Source, u: Any) -> Reading:
    """One section per slide, in order: "# Slide N" (N is the slide's page), its text, then its speaker notes."""
    from pptx import Presentation

    elements = u.partition_pptx(file=io.BytesIO(src.data), include_slide_notes=False, languages=[""])
    by_slide: dict[int, list[Any]] = {}
    for el in elements:
        if (el.text or "").strip() or el.category == "Table":
            by_slide.setdefault(el.metadata.page_number or 1, []).append(el)
    notes = {}
    slides = Presentation(io.BytesIO(src.data)).slides
    for n, slide in enumerate(slides, start=1):
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes[n] = " ".join(slide.notes_slide.notes_text_frame.text.split())
    blocks: list[tuple[str, int | None]] = []
    for n in sorted(set(by_slide) | set(notes)):
        blocks.append((f"# Slide {n}", n))
        for el in by_slide.get(n, []):
            body = render_table(el.metadata.text_as_html) if el.category == "Table" else ""
            blocks.append((body or " ".join(el.text.split()), n))
        if notes.get(n):
            blocks.append((f"Speaker notes: {notes[n]}", n))
    text, pages = join_blocks(blocks)
    first = next((el.text for n in sorted(by_slide) for el in by_slide[n] if el.category == "Title"), None)
    return Reading(elements, text, pages, title=" ".join(first.split()) if first else None,
                   metadata={"slides": len(slides)}, headed=True)


def read_xlsx(src: Source, u: Any) -> Reading:
    try:
        elements = u.partition_xlsx(file=io.BytesIO(src.data), find_subtable=False, include_header=False,
                                    languages=[""])
    except Exception as e:
        if "encrypt" in str(e).lower() or type(e).__name__ == "FileFormatError":
            raise ParseError(f"encrypted or unreadable XLSX: {type(e).__name__}: {e}") from e
        raise
    blocks, names = [], []
    for i, el in enumerate((e for e in elements if e.category == "Table"), start=1):
        name = el.metadata.page_name or f"Sheet {i}"
        page = el.metadata.page_number or i
        names.append(name)
        blocks.append((f"# Sheet: {name}", page))
        blocks.append((render_table(el.metadata.text_as_html, header=True) or el.text, page))
    text, pages = join_blocks(blocks)
    return Reading(elements, text, pages, metadata={"sheets": names}, headed=True)
