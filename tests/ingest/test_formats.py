"""ingest.formats, the router: every real sample document parses to its format with its phrases; what is decided
for every format (failures as ParseError, sectioning, the title) holds."""

from __future__ import annotations

import pytest

from ingest.formats import PARSER_VERSION, ParsedDocument, ParseError, parse_bytes
from ingest.formats.unstructured_setup import load_unstructured
from tests.ingest.format_samples import DOCS, SAMPLE_PARAMS, SAMPLES, needs_samples, read

pytestmark = needs_samples


def test_every_sample_is_covered():
    assert sorted(SAMPLES) == sorted(p.name for p in DOCS.iterdir())


@pytest.mark.parametrize("name", SAMPLE_PARAMS)
def test_sample_parses(name):
    fmt, phrases = SAMPLES[name]
    doc = parse_bytes(read(name), name)
    assert isinstance(doc, ParsedDocument)
    assert doc.format == fmt
    assert doc.text.strip()
    assert doc.elements > 0
    for phrase in phrases:
        assert phrase in doc.text, f"{phrase!r} missing from {name}"
    assert "\ufffd" not in doc.text and "\x00" not in doc.text


def test_headings_and_structure():
    md = parse_bytes(read("example-docs-readme.md"), "example-docs-readme.md")
    assert md.structured and md.title == "Example Docs"
    html = parse_bytes(read("fake-html.html"))
    assert html.structured and html.title == "My First Heading"
    assert html.text.startswith("# My First Heading\n\n## My Second Heading")
    for name in ("book-war-and-peace-1p.txt", "fake-memo.pdf"):
        assert not parse_bytes(read(name), name).structured  # prose formats
    # docx without Heading styles has no titles, so nothing to split on
    assert not parse_bytes(read("handbook-1p.docx")).structured


def test_unexpected_library_errors_become_parse_errors(monkeypatch):
    def boom(**kwargs):
        raise ValueError("kaput")

    monkeypatch.setattr(load_unstructured(), "partition_html", boom)
    with pytest.raises(ParseError, match="could not parse HTML: ValueError: kaput") as exc:
        parse_bytes(read("fake-html.html"))
    assert isinstance(exc.value.__cause__, ValueError)


def test_parser_version_names_unstructured():
    from unstructured.__version__ import __version__

    assert PARSER_VERSION.startswith(f"unstructured-{__version__}+")
