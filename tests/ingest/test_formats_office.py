"""ingest.formats.office on DOCX: headings, lists and tables (merged and nested cells too) come out as Markdown; a
broken DOCX fails with a reason. (PPTX, XLSX, EPUB, ODT, RTF: tests/unit/test_languages_tables_twins.py and
tests/test_formats_http.py.)"""

from __future__ import annotations

import io

import pytest

from ingest.formats import parse_bytes
from tests.ingest.format_samples import needs_samples, read, refused, zipped

pytestmark = needs_samples


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
    text = parse_bytes(read("docx-tables.docx")).text
    assert "| a | >b< | c |" in text  # nested table
    assert "| a | b |  |\n|---|---|---|\n|  | c | d |\n| e |  |  |" in text  # spans line up


MALFORMED = {
    "truncated docx": (lambda: read("fake.docx")[:3000], "not a valid DOCX"),
    "docx with broken xml": (
        lambda: zipped({"word/document.xml": "<w:document", "[Content_Types].xml": "<x"}),
        "not a valid DOCX",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_docx_raises_parse_error(case):
    make, reason = MALFORMED[case]
    refused(make(), reason)
