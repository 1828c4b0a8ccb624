"""Every format parsing knows, one row each. A new format is a module with its reader (and its sniffing test, if it
needs one) and a row here; nothing else names formats.

Row order is detection order within each kind of sniffing rule (see `detection`): HTML and Markdown before CSV,
and plain text, which takes any text, last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ingest.formats import mail, office, pdf, text
from ingest.formats.detection import DecodedUpload, OleStream, Rule, Signature, Text, ZipMember, ZipMimetype
from ingest.formats.document import Reading, Source


@dataclass(frozen=True)
class Format:
    name: str  # what ParsedDocument.format says
    label: str  # how messages name it
    sniff: Rule
    reader: Callable[[Source, Any], Reading]
    sectioned: bool  # its rendering carries headings to split at (when it has any)
    binary: bool = False  # a failure to read it is "not a valid X"; a text format's is "could not parse X"


REGISTRY: tuple[Format, ...] = (
    Format("pdf", "PDF", Signature(pdf.sniff), pdf.read, sectioned=False, binary=True),
    Format("rtf", "RTF", Signature(office.sniff_rtf), office.read_rtf, sectioned=True),
    Format("docx", "DOCX", ZipMember("word/document.xml"), office.read_docx, sectioned=True, binary=True),
    Format("pptx", "PPTX", ZipMember("ppt/presentation.xml"), office.read_pptx, sectioned=True, binary=True),
    Format("xlsx", "XLSX", ZipMember("xl/workbook.xml"), office.read_xlsx, sectioned=True, binary=True),
    Format("epub", "EPUB", ZipMimetype("application/epub+zip"), office.read_epub, sectioned=True, binary=True),
    Format("odt", "ODT", ZipMimetype("application/vnd.oasis.opendocument.text"), office.read_odt, sectioned=True,
           binary=True),
    Format("msg", "Outlook message (MSG)", OleStream("__substg1.0_"), mail.read_msg, sectioned=False, binary=True),
    Format("eml", "e-mail (EML)", DecodedUpload(mail.is_mail), mail.read_eml, sectioned=False),
    Format("html", "HTML", Text(text.is_html), text.read_html, sectioned=True),
    Format("md", "Markdown", Text(text.is_markdown), text.read_md, sectioned=True),
    Format("csv", "CSV", Text(text.is_csv), text.read_csv, sectioned=False),
    Format("txt", "text", Text(text.any_text), text.read_txt, sectioned=False),
)
BY_NAME = {row.name: row for row in REGISTRY}
