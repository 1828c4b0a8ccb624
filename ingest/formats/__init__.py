"""Parse uploaded bytes (txt, md, html, docx, pdf, pptx, xlsx, csv, eml, msg, epub, odt, rtf) into Markdown-ish
text, fully offline, mostly with `unstructured`.

`parse_bytes` sniffs the format from the content (`detection`), finds its row in `registry` and hands the bytes
(or the decoded text) to the row's reader: `text`, `office`, `mail`, `pdf` (with `ocr` for scans). The readers
render unstructured's elements with `render`; `unstructured_setup` keeps unstructured offline. What is the same for
every format is here: failures become ParseError with the format's label, empty results are refused, the title and
whether the text is sectioned are decided, NUL characters are blanked.
"""

from __future__ import annotations

import importlib.metadata

from ingest.formats import unstructured_setup  # first: it sets the env vars unstructured reads at import
from ingest.formats.detection import MAX_UNZIPPED_BYTES, sniff, text_format
from ingest.formats.document import ParsedDocument, ParseError, Source
from ingest.formats.mail import MAX_ATTACHMENTS
from ingest.formats.registry import BY_NAME, REGISTRY, Format
from ingest.formats.render import plain_text

__all__ = ["FORMATS", "MAX_ATTACHMENTS", "MAX_UNZIPPED_BYTES", "PARSER_VERSION", "ParseError", "ParsedDocument",
           "detect_format", "parse_bytes", "parse_text", "plain_text", "warm_up"]

PARSER_VERSION = (
    f"unstructured-{importlib.metadata.version('unstructured')}"
    f"+pdfminer-{importlib.metadata.version('pdfminer.six')}+render1+ocr1+plaintext1+csvheader1"
)
FORMATS = tuple(row.name for row in REGISTRY)
DEFAULT_OCR_LANGUAGES = "eng"  # SNAPDEX_OCR_LANGUAGES's default


def detect_format(data: bytes, filename: str | None = None) -> str:
    """Return one of FORMATS, judged by content (the name only breaks ties between text formats); raise
    ParseError."""
    return sniff(REGISTRY, data, filename)[0].name


def parse_bytes(data: bytes, filename: str | None = None, *,
                ocr_languages: str = DEFAULT_OCR_LANGUAGES) -> ParsedDocument:
    """Parse an uploaded file; raise ParseError with a user-facing reason on any failure. Scanned PDF pages are
    read in `ocr_languages` (tesseract's, "+"-joined)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    fmt, text = sniff(REGISTRY, data, filename)
    return _parse(fmt, Source(data, text, ocr_languages))


def parse_text(text: str, filename: str | None = None) -> ParsedDocument:
    """Parse JSON-submitted text: Markdown if it looks like it (or is named .md), else plain text;
    a string that is plainly an HTML document is parsed as HTML rather than kept as tag soup.

    Plain text skips unstructured: its element classifiers guess titles and list items from the shape of each
    paragraph (a one-line text became a `# heading`), and they cost a third of ingest's time outside the model.
    Submitted text keeps its own paragraphs instead (`plain_text`)."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    if not text.strip():
        raise ParseError("empty text")
    fmt = text_format(REGISTRY, text, filename)
    if fmt is BY_NAME["txt"]:
        return ParsedDocument(text=plain_text(text), format="txt", structured=False, title=None, elements=0)
    return _parse(fmt, Source(None, text, DEFAULT_OCR_LANGUAGES))


def warm_up() -> None:
    """Import unstructured and set up its offline NLP now (~3 s) rather than on the first parse."""
    unstructured_setup.load_unstructured()


def _parse(fmt: Format, src: Source) -> ParsedDocument:
    # Looked up on the module at each call: the parse child wraps it to report the load.
    u = unstructured_setup.load_unstructured()  # outside the try: a broken install must not pass for a bad document
    try:
        read = fmt.reader(src, u)
    except ParseError:
        raise
    except Exception as e:  # any library failure is a per-document failure, never a crash
        prefix = f"not a valid {fmt.label}" if fmt.binary else f"could not parse {fmt.label}"
        raise ParseError(f"{prefix}: {type(e).__name__}: {e}".rstrip(": ")) from e
    if not read.text.strip():
        raise ParseError(f"no text found in {fmt.label}")
    titles = [e for e in read.elements if e.category == "Title" and e.text.strip()]
    title = read.title
    if title is None and titles:
        title = " ".join(titles[0].text.split())
    return ParsedDocument(
        # A file may decode to NUL characters (a mail body in base64, a PDF's unmapped glyphs), which no text column
        # of PostgreSQL takes: the document would fail to be stored, with its job. A space keeps every offset.
        text=read.text.replace("\x00", " "),
        format=fmt.name,
        structured=fmt.sectioned and (bool(titles) or read.headed),
        title=title.replace("\x00", " ") if title else title,
        elements=len(read.elements),
        pages=tuple(read.pages),
        metadata=tuple(sorted(read.metadata.items())),
        attachments=tuple(read.attachments),
    )
