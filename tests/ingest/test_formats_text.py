"""ingest.formats.text: text sent as JSON keeps its paragraphs and invents no heading; Markdown and HTML are told
apart from prose (and chemistry's brackets are not links)."""

from __future__ import annotations

import pytest

from ingest.formats import ParseError, parse_text
from tests.ingest.format_samples import refused


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


def test_html_without_text_raises_parse_error():
    refused(b"<html><body><div> </div></body></html>", "no text found")
