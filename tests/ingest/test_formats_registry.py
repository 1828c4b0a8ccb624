"""ingest.formats.registry: one row per supported format, each row's sniffing rule recognises a real file of its
format (alone, and first in the whole registry), and a row is all the router needs to know of a format."""

from __future__ import annotations

import pytest

from ingest import formats
from ingest.formats import FORMATS, ParseError, detect_format, parse_bytes
from ingest.formats.detection import Signature, sniff
from ingest.formats.document import Reading
from ingest.formats.registry import REGISTRY, Format
from tests import office_files as files
from tests.ingest.format_samples import needs_samples, read

pytestmark = needs_samples

# The formats the README promises, each with a real file of it.
FIXTURES = {
    "txt": lambda: read("fake-text.txt"),
    "md": lambda: read("simple-table.md"),
    "html": lambda: read("fake-html.html"),
    "docx": lambda: read("fake.docx"),
    "pdf": lambda: read("fake-memo.pdf"),
    "pptx": files.pptx,
    "xlsx": files.xlsx,
    "csv": files.csv_text,
    "eml": files.eml,
    "msg": files.msg,
    "epub": files.epub,
    "odt": files.odt,
    "rtf": files.rtf,
}


def test_one_row_per_supported_format():
    names = [row.name for row in REGISTRY]
    assert len(names) == len(set(names)) and sorted(names) == sorted(FIXTURES)
    assert FORMATS == tuple(names)
    assert len({row.label for row in REGISTRY}) == len(REGISTRY)


@pytest.mark.parametrize("row", REGISTRY, ids=lambda row: row.name)
def test_each_rows_sniffing_recognises_its_fixture(row):
    data = FIXTURES[row.name]()
    assert sniff((row,), data, None)[0] is row  # its own rule, with no other row to fall back on
    assert detect_format(data) == row.name  # and no row tried before it claims the file
    doc = parse_bytes(data)
    assert doc.format == row.name and doc.text.strip()
    assert row.sectioned or not doc.structured


def test_a_new_format_is_one_row(monkeypatch):
    def read_notes(src, u):
        body = src.data.decode()[len("NOTES1\n"):]
        return Reading([], body, title="Notes", headed=True)

    row = Format("notes", "field notes (NOTES)", Signature(lambda data: data.startswith(b"NOTES1\n")), read_notes,
                 sectioned=True, binary=True)
    monkeypatch.setattr(formats, "REGISTRY", (row, *REGISTRY))
    doc = parse_bytes(b"NOTES1\nA heron by the weir.")
    assert (doc.format, doc.title, doc.structured, doc.text) == ("notes", "Notes", True, "A heron by the weir.")
    with pytest.raises(ParseError, match=r"^not a valid field notes \(NOTES\): UnicodeDecodeError"):
        parse_bytes(b"NOTES1\n\xff\xfe broken")
    with pytest.raises(ParseError, match=r"^no text found in field notes \(NOTES\)$"):
        parse_bytes(b"NOTES1\n ")
