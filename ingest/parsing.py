"""Parse uploaded bytes (txt, md, html, docx, pdf, pptx, xlsx, csv, eml, msg, epub, odt, rtf) into Markdown-ish
text with `unstructured`.

Office, mail and e-book formats go through unstructured's own partitioners (python-pptx, openpyxl/pandas,
python-oxmsg, and pandoc for epub/odt/rtf). Slides are rendered one section per slide ("# Slide N", the slide
number kept as the page) with their speaker notes; spreadsheets one section per sheet ("# Sheet: name"), its rows a
Markdown table; mail as its body, with subject/from/to/date as extracted metadata and each attachment handed back
to be ingested as a document of its own.

Fully offline. Out of the box unstructured 0.27 would, on first use of its text classifiers,
download and pip-install the `en_core_web_sm` spaCy wheel from GitHub, and it sends a telemetry
ping to packages.unstructured.io when imported and on each partition call. Here the telemetry is
switched off by env vars set before unstructured is imported, and its spaCy loader is replaced by
a blank English pipeline (see `_load_unstructured`).

PDF: `unstructured.partition.pdf` cannot even be imported without `unstructured-inference`
(the [pdf] extra, which drags a CUDA torch in), so PDFs are read with pdfminer.six the way
unstructured's "fast" strategy does it: one element per pdfminer text box, classified by
unstructured's own `element_from_text` (Title/NarrativeText/ListItem/Header/Footer...).
Pages without a text layer (scans) are rendered with pypdfium2 and OCRed by the `tesseract` CLI
(Debian `tesseract-ocr` + `tesseract-ocr-eng`; `tesseract-ocr-osd` for sideways scans); the words
go through the same classification and rendering, ruled table rows as "cell | cell" lines. No
tesseract at run time: a PDF that is image-only fails with a ParseError saying so.
"""

from __future__ import annotations

import codecs
import functools
import importlib.metadata
import io
import itertools
import logging
import os
import re
import shutil
import statistics
import struct
import subprocess
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

# Must be set before `import unstructured` anywhere in the process: the library pings
# packages.unstructured.io at import and per partition call unless one of these is non-empty,
# and logs an advert on first partition unless UNSTRUCTURED_DISABLE_NOTICE=1.
os.environ["SCARF_NO_ANALYTICS"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"

PARSER_VERSION = (
    f"unstructured-{importlib.metadata.version('unstructured')}"
    f"+pdfminer-{importlib.metadata.version('pdfminer.six')}+render1+ocr1+plaintext1+csvheader1"
)

FORMATS = ("txt", "md", "html", "docx", "pdf", "pptx", "xlsx", "csv", "eml", "msg", "epub", "odt", "rtf")
_LABEL = {"txt": "text", "md": "Markdown", "html": "HTML", "docx": "DOCX", "pdf": "PDF", "pptx": "PPTX",
          "xlsx": "XLSX", "csv": "CSV", "eml": "e-mail (EML)", "msg": "Outlook message (MSG)", "epub": "EPUB",
          "odt": "ODT", "rtf": "RTF"}
# Binary containers: a failure to read one is "not a valid X" (a text format that fails "could not parse X").
_BINARY = ("pdf", "docx", "pptx", "xlsx", "msg", "epub", "odt")
# Formats whose rendering carries headings (a section per slide or sheet).
_SECTIONED = ("md", "html", "docx", "pptx", "xlsx", "epub", "odt", "rtf")
MAX_ATTACHMENTS = 50  # per mail: past that the rest are listed in the mail's metadata, not ingested

log = logging.getLogger(__name__)


class ParseError(Exception):
    """The document cannot be parsed; the message is a reason to show the user."""


@dataclass(frozen=True)
class ParsedDocument:
    text: str
    format: str
    structured: bool
    title: str | None
    elements: int
    # PDFs: (offset in `text` where a page's first block starts, 1-based page number), in text order; slides
    # (pptx) and sheets (xlsx) likewise, numbered from 1.
    pages: tuple[tuple[int, int], ...] = ()
    # What the file says about itself (mail: subject, from, to, date; slides, sheets): scalar or list values that go
    # into the hit's metadata beside the user's own (the user's win).
    metadata: tuple[tuple[str, Any], ...] = ()
    # Mail attachments: (file name, bytes), each ingested as a document of its own linked to the mail.
    attachments: tuple[tuple[str, bytes], ...] = ()


# --------------------------------------------------------------------------- format detection

_BOMS = (  # UTF-32 first: its little-endian BOM starts with the UTF-16 one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_HTML_TAG = re.compile(r"<(?:!doctype\s+html|html|head|body)\b")
# ATX heading, code fence, pipe-table delimiter row, [link](target). Bulleted lists alone are
# not enough: plain text uses them too, and partition_text turns them into ListItems anyway.
# A link counts only if its target looks like one (a scheme, a path, an anchor, a file name): chemistry and
# maths put brackets before parentheses too ("[Ca(2+)](i)", "[GHS-R](-/-)"), and 5 of SciFact's abstracts went
# through the Markdown parser for that.
_MARKDOWN = re.compile(
    r"^(?:#{1,6}[ \t]+\S|```|~~~|\|?[ \t]*:?-{3,}:?[ \t]*\|)"
    r"|\[[^\]\n]+\]\((?:[a-zA-Z][\w+.-]*:|[#/]|\.{1,2}/|\w[\w-]*(?:/|\.[a-zA-Z]))[^)\s]*\)", re.M
)
HEADER_CELL_CHARS, HEADER_CELL_WORDS = 64, 8  # a column name, not a sentence
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def detect_format(data: bytes, filename: str | None = None) -> str:
    """Return one of FORMATS, judged by content (the name only breaks ties between text formats); raise
    ParseError."""
    return _sniff(data, filename)[0]


def _sniff(data: bytes, filename: str | None) -> tuple[str, str | None]:
    """(format, decoded text for text formats / None for pdf and docx)."""
    if not data.strip():
        raise ParseError("empty file")
    if b"%PDF-" in data[:1024]:  # the spec lets junk precede the header
        return "pdf", None
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data), None
    if data.startswith(_OLE):
        return _sniff_ole(data), None
    if data.lstrip()[:5] == b"{\\rtf":
        return "rtf", None
    text = _decode(data)
    if not text.strip():  # e.g. a lone BOM
        raise ParseError("empty file")
    if _is_mail(text):
        return "eml", None
    return _text_format(text, filename), text


# A DOCX is a zip archive; its parts are read whole into memory. zipfile never inflates a member past the size
# its header declares, so the declared total bounds what parsing can cost.
MAX_UNZIPPED_BYTES = 128 * 1024 * 1024


def _sniff_zip(data: bytes) -> str:
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ParseError(f"not a valid DOCX, PPTX, XLSX, EPUB or ODT: corrupt or truncated zip archive ({e})") from e
    expanded = sum(i.file_size for i in infos)
    if expanded > MAX_UNZIPPED_BYTES:
        raise ParseError(f"zip archive of {len(data)} bytes expands to {expanded} bytes; at most "
                         f"{MAX_UNZIPPED_BYTES}: refused as a possible zip bomb")
    names = [i.filename for i in infos]
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "mimetype" in names:  # OpenDocument and EPUB name their type in a first, stored member
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            mimetype = z.read("mimetype")[:100].decode("ascii", "replace").strip()
        if mimetype == "application/epub+zip":
            return "epub"
        if mimetype == "application/vnd.oasis.opendocument.text":
            return "odt"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise ParseError(f"unsupported file type: zip archive that is not a DOCX, PPTX, XLSX, EPUB or ODT "
                     f"(contains {shown})")


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File Binary: .msg, and encrypted OOXML files


def _sniff_ole(data: bytes) -> str:
    import olefile

    try:
        with olefile.OleFileIO(data) as ole:
            streams = ["/".join(s) for s in ole.listdir()]
    except Exception as e:
        raise ParseError(f"not a valid Outlook message (MSG): corrupt compound file ({type(e).__name__}: {e})") from e
    if "EncryptedPackage" in streams:  # what Office writes for a password-protected docx/pptx/xlsx
        raise ParseError("encrypted (password-protected) Office document: remove the password and send it again")
    if any(s.startswith("__substg1.0_") for s in streams):
        return "msg"
    raise ParseError("unsupported file type: a compound file (legacy .doc/.xls/.ppt?) that is not an Outlook message")


# RFC 5322 headers a mail starts with; two of them on the first lines (before a blank one) make a text a mail.
_MAIL_HEADERS = ("from", "to", "subject", "date", "message-id", "mime-version", "received", "return-path",
                 "content-type", "cc", "reply-to", "delivered-to")
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]")


def _is_mail(text: str) -> bool:
    names = set()
    for line in text.lstrip("\ufeff").splitlines()[:60]:
        if not line.strip():
            break
        if line[:1] in " \t":  # a folded header continues
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            return False
        names.add(m.group(1).lower())
    return len(names & set(_MAIL_HEADERS)) >= 2 and bool(names & {"from", "subject", "message-id"})


def _is_csv(text: str, filename: str | None) -> bool:
    """Rows of one delimiter (comma, semicolon, tab) with the same number of cells: a CSV/TSV. A file named .csv/.tsv
    needs two rows of two cells. Unnamed text needs a header and two rows of three cells, and a header of names (no
    cell longer than HEADER_CELL_CHARS or HEADER_CELL_WORDS words): prose rarely has the same count of commas on
    every line, but a title and an abstract with two commas each do (6 of SciFact's 5,183 documents were tables)."""
    import csv

    lines = [line for line in text.splitlines()[:50] if line.strip()]
    named = (filename or "").lower().endswith((".csv", ".tsv"))
    if len(lines) < (2 if named else 3):
        return False
    for delimiter in (",", ";", "\t"):
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(widths) != 1 or widths.pop() < (2 if named else 3):
            continue
        if named or all(len(c.strip()) <= HEADER_CELL_CHARS and len(c.split()) <= HEADER_CELL_WORDS for c in rows[0]):
            return True
    return False


def _decode(data: bytes) -> str:
    """Decode text bytes. BOM wins; else UTF-8; a few invalid bytes in otherwise-UTF-8 text become
    U+FFFD; text that is not UTF-8 at all is read as cp1252 (latin-1 for its 5 undefined bytes).
    charset_normalizer is not used: it guesses wildly on short or German text (utf_16_be,
    cp1250)."""
    codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    if codec:
        text = data.decode(codec, errors="replace")
    elif b"\x00" in data:  # text without a UTF-16/32 BOM never holds NUL bytes
        raise ParseError(f"unsupported file type: {_describe_binary(data)}")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            bad = text.count("\ufffd")
            if sum(ord(c) > 127 for c in text) - bad <= bad:  # not mostly-valid UTF-8
                try:
                    text = data.decode("cp1252")
                except UnicodeDecodeError:
                    text = data.decode("latin-1")
    sample = text[:4096]
    if len(_CONTROL.findall(sample)) > len(sample) / 10:
        raise ParseError(f"unsupported file type: {_describe_binary(data)}")
    return text


def _describe_binary(data: bytes) -> str:
    try:
        import magic  # needs the libmagic system library; only used to word the error

        return f"binary data ({magic.from_buffer(data[:4096])})"
    except Exception:
        return f"binary data (starts with {data[:8]!r})"


def _text_format(text: str, filename: str | None) -> str:
    name = (filename or "").lower()
    head = text[:1024].lstrip("\ufeff \t\r\n").lower()
    if head.startswith("<"):
        if _HTML_TAG.search(head) or name.endswith((".html", ".htm", ".xhtml")):
            return "html"
    if name.endswith((".md", ".markdown")) or _MARKDOWN.search(text):
        return "md"
    if _is_csv(text, filename):
        return "csv"
    return "txt"


# --------------------------------------------------------------------------- parsing


def parse_bytes(data: bytes, filename: str | None = None) -> ParsedDocument:
    """Parse an uploaded file; raise ParseError with a user-facing reason on any failure."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    fmt, text = _sniff(data, filename)
    return _parse(fmt, data, text)


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
    fmt = _text_format(text, filename)
    if fmt == "txt":
        return ParsedDocument(text=plain_text(text), format="txt", structured=False, title=None, elements=0)
    return _parse(fmt, None, text)


_BLANK_LINES = re.compile(r"\n[ \t\f\v\r]*\n\s*")
_LIST_LINE = re.compile(r"^(?:[-*+\u2022\u2023\u25e6\u2043\u2219]|\d{1,3}[.)])\s+\S")


def plain_text(text: str) -> str:
    """Paragraphs (split at blank lines) with runs of spaces folded and hard-wrapped lines joined; a paragraph
    whose lines are list items keeps one item per line. Nothing is turned into a heading."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    blocks = []
    for para in _BLANK_LINES.split(text):
        lines = [" ".join(line.split()) for line in para.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            continue
        if len(lines) > 1 and sum(bool(_LIST_LINE.match(line)) for line in lines) * 2 >= len(lines):
            blocks.append("\n".join(lines))
        else:
            blocks.append(" ".join(lines))
    return "\n\n".join(blocks)


def warm_up() -> None:
    """Import unstructured and set up its offline NLP now (~3 s) rather than on the first parse."""
    _load_unstructured()


def _parse(fmt: str, data: bytes | None, text: str | None) -> ParsedDocument:
    label = _LABEL[fmt]
    u = _load_unstructured()  # outside the try: a broken install must not pass for a bad document
    meta: dict[str, Any] = {}
    attachments: list[tuple[str, bytes]] = []
    try:
        if fmt in _OWN_RENDER:
            elements, rendered, pages, title = _OWN_RENDER[fmt](data, text, u, meta, attachments)
        else:
            elements = _partition(fmt, data, text, u)
            if fmt == "pdf":  # running heads, page numbers
                elements = [e for e in elements if e.category not in ("Header", "Footer")]
            rendered, pages = _render(elements)
            title = None
    except ParseError:
        raise
    except Exception as e:  # any library failure is a per-document failure, never a crash
        prefix = f"not a valid {label}" if fmt in _BINARY else f"could not parse {label}"
        raise ParseError(f"{prefix}: {type(e).__name__}: {e}".rstrip(": ")) from e
    if not rendered.strip():
        hint = " (no text layer, nor text that OCR could read)" if fmt == "pdf" else ""
        raise ParseError(f"no text found in {label}{hint}")
    titles = [e for e in elements if e.category == "Title" and e.text.strip()]
    if title is None and titles:
        title = " ".join(titles[0].text.split())
    return ParsedDocument(
        # A file may decode to NUL characters (a mail body in base64, a PDF's unmapped glyphs), which no text column
        # of PostgreSQL takes: the document would fail to be stored, with its job. A space keeps every offset.
        text=rendered.replace("\x00", " "),
        format=fmt,
        structured=fmt in _SECTIONED and (bool(titles) or fmt in ("pptx", "xlsx")),
        title=title.replace("\x00", " ") if title else title,
        elements=len(elements),
        pages=tuple(pages) if fmt in ("pdf", "pptx", "xlsx") else (),
        metadata=tuple(sorted(meta.items())),
        attachments=tuple(attachments),
    )


def _partition(fmt: str, data: bytes | None, text: str | None, u: Any) -> list[Any]:
    if fmt == "pdf":
        return _pdf_elements(data, u)
    # languages=[""] skips langdetect (0.5 s to load, then per document): its metadata is unused.
    if fmt == "docx":
        return u.partition_docx(file=io.BytesIO(data), languages=[""])
    if fmt in ("epub", "odt", "rtf"):  # pandoc converts them (to HTML or DOCX) for unstructured
        partition = {"epub": u.partition_epub, "odt": u.partition_odt, "rtf": u.partition_rtf}[fmt]
        try:
            return partition(file=io.BytesIO(data), languages=[""])
        except RuntimeError as e:
            if "pandoc" in str(e).lower() and "not" in str(e).lower() and "install" in str(e).lower():
                raise ParseError(f"{_LABEL[fmt]} needs pandoc (Debian package `pandoc`): {e}") from e
            raise
    # Text formats get the text decoded above, so encoding handling is the same for all.
    partition = {"txt": u.partition_text, "md": u.partition_md, "html": u.partition_html}[fmt]
    return partition(text=text, languages=[""])


# --------------------------------------------------------------------------- slides, sheets, mail


def _join_blocks(blocks: list[tuple[str, int | None]]) -> tuple[str, list[tuple[int, int]]]:
    """Blocks (text, page or None) joined by blank lines; where each page starts."""
    out, starts, at = [], [], 0
    for block, page in blocks:
        if not block.strip():
            continue
        if page is not None and (not starts or starts[-1][1] != page):
            starts.append((at, page))
        out.append(block)
        at += len(block) + 2
    return "\n\n".join(out), starts


def _pptx(data, text, u, meta, attachments):
    """One section per slide, in order: "# Slide N" (N is the slide's page), its text, then its speaker notes."""
    from pptx import Presentation

    elements = u.partition_pptx(file=io.BytesIO(data), include_slide_notes=False, languages=[""])
    by_slide: dict[int, list[Any]] = {}
    for el in elements:
        if (el.text or "").strip() or el.category == "Table":
            by_slide.setdefault(el.metadata.page_number or 1, []).append(el)
    notes = {}
    slides = Presentation(io.BytesIO(data)).slides
    for n, slide in enumerate(slides, start=1):
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes[n] = " ".join(slide.notes_slide.notes_text_frame.text.split())
    blocks: list[tuple[str, int | None]] = []
    for n in sorted(set(by_slide) | set(notes)):
        blocks.append((f"# Slide {n}", n))
        for el in by_slide.get(n, []):
            body = _render_table(el.metadata.text_as_html) if el.category == "Table" else ""
            blocks.append((body or " ".join(el.text.split()), n))
        if notes.get(n):
            blocks.append((f"Speaker notes: {notes[n]}", n))
    rendered, pages = _join_blocks(blocks)
    meta["slides"] = len(slides)
    first = next((el.text for n in sorted(by_slide) for el in by_slide[n] if el.category == "Title"), None)
    return elements, rendered, pages, " ".join(first.split()) if first else None


def _sheets(elements) -> tuple[str, list[tuple[int, int]], list[str]]:
    blocks, names = [], []
    for i, el in enumerate(elements, start=1):
        name = el.metadata.page_name or f"Sheet {i}"
        page = el.metadata.page_number or i
        names.append(name)
        blocks.append((f"# Sheet: {name}", page))
        blocks.append((_render_table(el.metadata.text_as_html, header=True) or el.text, page))
    rendered, pages = _join_blocks(blocks)
    return rendered, pages, names


def _xlsx(data, text, u, meta, attachments):
    try:
        elements = u.partition_xlsx(file=io.BytesIO(data), find_subtable=False, include_header=False,
                                    languages=[""])
    except Exception as e:
        if "encrypt" in str(e).lower() or type(e).__name__ == "FileFormatError":
            raise ParseError(f"encrypted or unreadable XLSX: {type(e).__name__}: {e}") from e
        raise
    rendered, pages, names = _sheets([e for e in elements if e.category == "Table"])
    meta["sheets"] = names
    return elements, rendered, pages, None


def _csv(data, text, u, meta, attachments):
    import csv

    rows = list(csv.reader(text.splitlines(), dialect=csv.Sniffer().sniff(text[:4096], delimiters=",;\t")))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ParseError("no rows found in CSV")
    width = max(map(len, rows))
    cells = [[" ".join(c.split()).replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "---|" * width)
    meta["rows"] = len(rows) - 1
    return [], "\n".join(lines), [], None


def _mail_meta(meta: dict, subject, sender, to, date) -> None:
    for key, value in (("subject", subject), ("from", sender), ("to", to), ("date", date)):
        if value:
            meta[key] = value


def _eml(data, text, u, meta, attachments):
    import email
    import email.policy
    import email.utils

    msg = email.message_from_bytes(data, policy=email.policy.default)
    if msg.defects and not msg.get_payload():
        raise ParseError(f"could not parse e-mail: {msg.defects[0]}")
    body = msg.get_body(preferencelist=("plain", "html"))
    content = body.get_content() if body is not None else ""
    elements: list[Any] = []
    if body is not None and body.get_content_type() == "text/html":
        elements = u.partition_html(text=content, languages=[""])
        rendered, _ = _render(elements)
    else:  # a plain body keeps its paragraphs: no heading guessed from a one-line signature
        rendered = plain_text(content)
    addresses = lambda h: [a for _, a in email.utils.getaddresses(msg.get_all(h, []))] or None  # noqa: E731
    date = None
    if msg["date"]:
        try:
            date = email.utils.parsedate_to_datetime(str(msg["date"])).isoformat()
        except (TypeError, ValueError):
            date = str(msg["date"])
    _mail_meta(meta, " ".join(str(msg["subject"] or "").split()) or None, (addresses("from") or [None])[0],
               addresses("to"), date)
    for part in msg.iter_attachments():
        if part.get_content_type() == "message/rfc822":  # a forwarded mail: ingested as a mail of its own
            inner = part.get_payload()
            payload = bytes(inner[0]) if isinstance(inner, list) and inner else None
            name = part.get_filename() or f"forwarded-{len(attachments) + 1}.eml"
            if payload:
                attachments.append((name, payload))
            continue
        payload = part.get_payload(decode=True)
        if payload:
            attachments.append((part.get_filename() or f"attachment-{len(attachments) + 1}", payload))
    _limit_attachments(meta, attachments)
    if not rendered.strip() and attachments:  # a mail that is only its attachments: its headers are its text
        rendered = meta.get("subject") or "(no text)"
    return elements, rendered, [], meta.get("subject")


def _msg(data, text, u, meta, attachments):
    import email.utils

    from oxmsg import Message

    msg = Message.load(io.BytesIO(data))
    elements: list[Any] = []
    if (msg.body or "").strip():  # a plain body keeps its paragraphs, as in an eml
        rendered = plain_text(msg.body)
    else:  # HTML only (or nothing): unstructured's partitioner renders it
        elements = u.partition_msg(file=io.BytesIO(data), process_attachments=False, languages=[""])
        rendered, _ = _render(elements)
    date = msg.sent_date.isoformat() if msg.sent_date else None
    sender = email.utils.parseaddr(msg.sender)[1] or msg.sender if msg.sender else None
    _mail_meta(meta, " ".join((msg.subject or "").split()) or None, sender,
               [r.email_address for r in msg.recipients if r.email_address] or None, date)
    for att in msg.attachments:
        if att.file_bytes:
            attachments.append((att.file_name or f"attachment-{len(attachments) + 1}", att.file_bytes))
    _limit_attachments(meta, attachments)
    if not rendered.strip() and attachments:
        rendered = meta.get("subject") or "(no text)"
    return elements, rendered, [], meta.get("subject")


def _limit_attachments(meta: dict, attachments: list) -> None:
    meta["attachments"] = [name for name, _ in attachments]
    del attachments[MAX_ATTACHMENTS:]
    if not meta["attachments"]:
        del meta["attachments"]


_OWN_RENDER = {"pptx": _pptx, "xlsx": _xlsx, "csv": _csv, "eml": _eml, "msg": _msg}


_AUX_VERBS = frozenset(
    "am is are was were be been being has have had do does did will would can could shall should "
    "may might must".split()
)


@functools.cache  # two threads racing here would both set up; harmless, the last one wins
def _load_unstructured() -> Any:
    """Import unstructured lazily (spaCy alone takes ~2 s) and make its NLP offline.

    unstructured.nlp.tokenize._get_nlp() loads `en_core_web_sm` and, if that is missing,
    downloads its wheel from GitHub and installs it into site-packages. We swap in a blank
    English pipeline: the sentencizer gives sentence counts, and a tiny rule tags auxiliaries
    and -ed/-ing words as verbs, so `contains_verb` (narrative text vs. title) still mostly works.
    """
    import types

    import spacy
    import unstructured.nlp.tokenize as tokenize

    if not hasattr(tokenize, "_get_nlp"):
        raise RuntimeError("unsupported unstructured version: nlp.tokenize._get_nlp not found")

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    verbs = nlp.add_pipe("attribute_ruler")
    verbs.add([[{"LOWER": {"IN": sorted(_AUX_VERBS)}}]], {"TAG": "VB"})
    verbs.add([[{"LOWER": {"REGEX": r"^[a-z]{3,}(?:ed|ing)$"}}]], {"TAG": "VB"})

    def offline_nlp() -> Any:
        return nlp

    tokenize._get_nlp = offline_nlp
    tokenize._load_spacy_model = offline_nlp  # belt and braces: nothing may reach the installer

    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTContainer, LTTextBox
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import Table
    from unstructured.nlp.patterns import UNICODE_BULLETS_RE
    from unstructured.partition.docx import partition_docx
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.epub import partition_epub
    from unstructured.partition.msg import partition_msg
    from unstructured.partition.odt import partition_odt
    from unstructured.partition.pptx import partition_pptx
    from unstructured.partition.rtf import partition_rtf
    from unstructured.partition.text import element_from_text, partition_text
    from unstructured.partition.xlsx import partition_xlsx

    return types.SimpleNamespace(
        partition_pptx=partition_pptx,
        partition_xlsx=partition_xlsx,
        partition_msg=partition_msg,
        partition_epub=partition_epub,
        partition_odt=partition_odt,
        partition_rtf=partition_rtf,
        partition_text=partition_text,
        partition_md=partition_md,
        partition_html=partition_html,
        partition_docx=partition_docx,
        element_from_text=element_from_text,
        UNICODE_BULLETS_RE=UNICODE_BULLETS_RE,
        PixelSpace=PixelSpace,
        Table=Table,
        extract_pages=extract_pages,
        LAParams=LAParams,
        LTContainer=LTContainer,
        LTTextBox=LTTextBox,
        pdf_locked=(PDFPasswordIncorrect, PDFEncryptionError),
    )


def _pdf_elements(data: bytes, u: Any) -> list[Any]:
    """One element per pdfminer text box, as unstructured's fast PDF strategy does; boxes holding
    several bulleted lines are split per bullet. Top-left coordinates let element_from_text
    tell page headers and footers apart. Pages with (almost) no text are OCRed instead."""
    pages: list[list[Any]] = []
    scanned: list[int] = []  # pages to OCR
    # all_texts: also lay out text inside figures/form XObjects, where some generators put it all.
    layout = u.extract_pages(io.BytesIO(data), laparams=u.LAParams(all_texts=True))
    try:
        for number, page in enumerate(layout):
            space = u.PixelSpace(width=page.width, height=page.height)
            elements = []
            for box in _text_boxes(page, u):
                x0, y0, x1, y1 = box.bbox
                top, bottom = page.height - y1, page.height - y0
                points = ((x0, top), (x0, bottom), (x1, bottom), (x1, top))
                for para in _box_paragraphs(box.get_text(), u):
                    elements.append(u.element_from_text(para, points, space))
            pages.append(elements)
            if sum(len("".join(e.text.split())) for e in elements) < OCR_MIN_CHARS:
                scanned.append(number)
    except u.pdf_locked as e:
        raise ParseError("PDF is password-protected or uses unsupported encryption") from e
    if scanned:
        _ocr_pages(data, pages, scanned, u)
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


def _box_paragraphs(text: str, u: Any) -> list[str]:
    paras: list[list[str]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if not paras or u.UNICODE_BULLETS_RE.match(line.strip()):
            paras.append([])
        paras[-1].append(line.strip())
    return [" ".join(" ".join(p).split()) for p in paras]


# --------------------------------------------------------------------------- OCR

OCR_MIN_CHARS = 20  # a page whose text layer has fewer non-blank characters than this is OCRed
OCR_MAX_PAGES = 50  # per document; later scanned pages are skipped (and logged)
OCR_PAGE_TIMEOUT = 30.0  # seconds per page, all its tesseract runs together (dense page: ~3 s)
OCR_DPI = 300
OCR_MAX_PIXELS = 40_000_000  # a poster-sized page is rendered at less than OCR_DPI
TESSERACT = "tesseract"
# Tesseract's languages for scanned pages, "+"-joined (SNAPDEX_OCR_LANGUAGES sets it at start-up); each needs its
# Debian tesseract-ocr-<lang> pack. A missing pack fails the scanned document with a reason naming it.
OCR_LANGUAGES = "eng"
_OCR_INSTALL = "OCR needs the tesseract-ocr and tesseract-ocr-eng packages"
# PDFium is not thread-safe: every pypdfium2 call in the process goes through this lock.
_PDFIUM_LOCK = threading.Lock()
# One OpenMP thread: tesseract's default thread team spins and takes twice as long on 2 cores.
_OCR_ENV = {"OMP_THREAD_LIMIT": "1"}
_RULE = re.compile(r"\s*\|+\s*")  # a vertical table rule read as "|"


class _OcrUnavailable(Exception):
    pass


def _ocr_pages(data: bytes, pages: list[list[Any]], numbers: list[int], u: Any) -> None:
    """Replace the elements of the pages `numbers` with OCRed ones where OCR finds text."""
    if len(numbers) > OCR_MAX_PAGES:
        log.warning("OCR limited to %d of %d pages without text", OCR_MAX_PAGES, len(numbers))
    todo = set(numbers)
    has_text = any(elements for n, elements in enumerate(pages) if n not in todo)
    try:
        if not shutil.which(TESSERACT):
            raise _OcrUnavailable(f"{_OCR_INSTALL} (`{TESSERACT}` is not installed)")
        for number in numbers[:OCR_MAX_PAGES]:
            try:
                elements = _ocr_page(data, number, u)
            except _OcrUnavailable:
                raise
            except Exception as e:  # a page that fails or times out is skipped, not the document
                log.warning("OCR of PDF page %d failed: %s: %s", number + 1, type(e).__name__, e)
                continue
            if elements:
                pages[number] = elements
    except _OcrUnavailable as e:
        if not has_text and _has_images(data, numbers[:OCR_MAX_PAGES]):
            raise ParseError(f"PDF is image-only (no text layer): {e}") from None
        log.warning("PDF pages without text not OCRed: %s", e)


def _ocr_page(data: bytes, number: int, u: Any) -> list[Any]:
    import numpy as np

    deadline = time.monotonic() + OCR_PAGE_TIMEOUT
    image, dpi = _render_page(data, number)
    if image is None or not (image < 128).any():  # no page, or nothing dark on it
        return []
    words = _tesseract_words(image, dpi, deadline)
    if not _read_well(words):  # sideways or upside-down scan? ask tesseract's OSD, keep the better
        try:
            rotate = _tesseract_rotation(image, dpi, deadline)
            if rotate:
                turned = np.rot90(image, -rotate // 90)
                turned_words = _tesseract_words(turned, dpi, deadline)
                if _ocr_score(turned_words) > _ocr_score(words):
                    image, words = turned, turned_words
        except (TimeoutError, RuntimeError) as e:  # keep what the first reading found
            log.warning("OCR of PDF page %d, rotated: %s", number + 1, e)
    return _ocr_elements(words, image.shape, u)


def _render_page(data: bytes, number: int) -> tuple[Any, float]:
    """Page `number` as a grayscale uint8 array (rows x columns), and its resolution in dpi."""
    import numpy as np
    import pypdfium2

    with _PDFIUM_LOCK:
        pdf = pypdfium2.PdfDocument(data)
        try:
            if number >= len(pdf):
                return None, 0
            page = pdf[number]
            width, height = page.get_size()  # points
            scale = min(
                OCR_DPI / 72,
                (OCR_MAX_PIXELS / max(width * height, 1)) ** 0.5,
                30_000 / max(width, height, 1),  # tesseract's limit is 32767 pixels a side
            )
            bitmap = page.render(scale=scale, grayscale=True)
            image = np.array(bitmap.to_numpy(), dtype=np.uint8).reshape(bitmap.height, bitmap.width)
            bitmap.close()
            page.close()
        finally:
            pdf.close()
    return image, scale * 72


def _has_images(data: bytes, numbers: list[int]) -> bool:
    import pypdfium2

    try:
        with _PDFIUM_LOCK:
            pdf = pypdfium2.PdfDocument(data)
            try:
                for number in (n for n in numbers if n < len(pdf)):
                    page = pdf[number]
                    images = page.get_objects(filter=[pypdfium2.raw.FPDF_PAGEOBJ_IMAGE])
                    found = next(images, None) is not None
                    page.close()
                    if found:
                        return True
            finally:
                pdf.close()
    except Exception:  # cannot tell: assume a scan, the likelier reason for a PDF without text
        return True
    return False


def _tesseract(image: Any, dpi: float, deadline: float, *args: str) -> str:
    """Run the tesseract CLI on a grayscale array (sent as PNG on stdin); return its stdout."""
    png = _png(image)
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise TimeoutError(f"OCR took longer than {OCR_PAGE_TIMEOUT:g} s")
    cmd = [TESSERACT, "stdin", "stdout", "--dpi", str(round(dpi)), *args]
    try:
        proc = subprocess.run(
            cmd, input=png, capture_output=True, timeout=timeout, env={**os.environ, **_OCR_ENV}
        )
    except FileNotFoundError as e:
        raise _OcrUnavailable(f"{_OCR_INSTALL} (`{TESSERACT}` is not installed)") from e
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"OCR took longer than {OCR_PAGE_TIMEOUT:g} s") from e
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode:
        if "Failed loading language" in err or "Error opening data file" in err:
            raise _OcrUnavailable(f"{_OCR_INSTALL} (tesseract found no language data for {OCR_LANGUAGES!r}: "
                                  "install tesseract-ocr-<lang> for each)")
        raise RuntimeError(f"tesseract exited with {proc.returncode}: {err.strip()[-300:]}")
    return proc.stdout.decode("utf-8", "replace")


def _png(image: Any) -> bytes:
    """A grayscale uint8 array as PNG: tesseract reads an 8 MB PGM from stdin 50% slower than
    the PNG, which takes 0.03 s to make."""
    import numpy as np

    height, width = image.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # each row: filter type 0, then pixels
    rows[:, 1:] = image

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes())) + chunk(b"IEND", b"")
    )


def _tesseract_words(image: Any, dpi: float, deadline: float) -> list[dict[str, Any]]:
    """Recognised words with block/paragraph/line numbers, bounding box and confidence."""
    tsv = _tesseract(image, dpi, deadline, "-l", OCR_LANGUAGES, "--psm", "3", "tsv")
    words = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) != 12 or cols[0] != "5" or not cols[11].strip():
            continue
        block, par, line, left, top, width, height = map(int, cols[2:5] + cols[6:10])
        words.append(
            {"line": (block, par, line), "par": (block, par), "text": cols[11].strip(),
             "conf": float(cols[10]), "box": (left, top, left + width, top + height)}
        )
    return words


def _tesseract_rotation(image: Any, dpi: float, deadline: float) -> int:
    """Clockwise degrees that make the page upright, by tesseract's orientation detection; 0 if
    it cannot tell (too little text, or no tesseract-ocr-osd)."""
    try:
        osd = _tesseract(image, dpi, deadline, "--psm", "0")
    except (_OcrUnavailable, RuntimeError):
        return 0
    found = re.search(r"^Rotate:\s*(\d+)", osd, re.M)
    return int(found.group(1)) % 360 if found else 0


def _read_well(words: list[dict[str, Any]]) -> bool:
    """Confidently read, and along horizontal lines (tesseract also reads a sideways page, but
    then its line boxes stand upright and table columns cannot be told apart)."""
    return bool(words) and (
        statistics.fmean(w["conf"] for w in words) >= 60
        and sum(map(_horizontal, words)) > len(words) / 2
    )


def _ocr_score(words: list[dict[str, Any]]) -> float:
    """Characters read along horizontal lines, weighted by confidence."""
    return sum(len(w["text"]) * max(w["conf"], 0) for w in words if _horizontal(w)) / 100


def _horizontal(word: dict[str, Any]) -> bool:
    x0, top, x1, bottom = word["box"]
    return len(word["text"]) < 3 or x1 - x0 >= bottom - top


def _ocr_elements(words: list[dict[str, Any]], shape: tuple[int, ...], u: Any) -> list[Any]:
    """OCR words -> elements, like pdfminer text boxes: a tesseract paragraph is a box. Runs of
    two or more lines split into columns (by a wide gap or a ruled "|") are a table, one row per
    line, cells joined by " | "."""
    space = u.PixelSpace(width=shape[1], height=shape[0])
    lines = []
    for _, group in itertools.groupby(words, key=lambda w: w["line"]):
        line = list(group)
        lines.append((line[0]["par"], _ocr_cells(line), _union(w["box"] for w in line)))
    # A row has a split neighbour: a lone line with a wide gap is not a table. The appended False
    # is the neighbour past either end (split[-1] for the first line).
    split = [len(cells) > 1 for _, cells, _ in lines] + [False]
    rows = [s and (split[i - 1] or split[i + 1]) for i, s in enumerate(split[:-1])]
    elements = []
    keyed = [  # consecutive rows form one table, other lines group by paragraph
        (("table",) if row else par, cells, box)
        for row, (par, cells, box) in zip(rows, lines)
    ]
    for key, group in itertools.groupby(keyed, key=lambda line: line[0]):
        group = list(group)
        x0, top, x1, bottom = _union(box for _, _, box in group)
        points = ((x0, top), (x0, bottom), (x1, bottom), (x1, top))
        if key == ("table",):
            text = "\n".join(" | ".join(cells) for _, cells, _ in group)
            elements.append(u.Table(text=text, coordinates=points, coordinate_system=space))
            continue
        text = "\n".join(" ".join(cells) for _, cells, _ in group)
        for para in _box_paragraphs(text, u):
            elements.append(u.element_from_text(para, points, space))
    return elements


def _ocr_cells(line: list[dict[str, Any]]) -> list[str]:
    """A line's words as cells: a gap wider than 1.5 times the text height, or a "|", splits."""
    height = statistics.median(w["box"][3] - w["box"][1] for w in line)
    cells: list[list[str]] = [[]]
    prev_right = None
    for w in line:
        if prev_right is not None and w["box"][0] - prev_right > 1.5 * height and cells[-1]:
            cells.append([])
        prev_right = w["box"][2]
        for i, part in enumerate(_RULE.split(w["text"])):
            if i and cells[-1]:
                cells.append([])
            if part:
                cells[-1].append(part)
    return [" ".join(c) for c in cells if c]


def _union(boxes: Any) -> tuple[int, int, int, int]:
    x0s, tops, x1s, bottoms = zip(*boxes)
    return min(x0s), min(tops), max(x1s), max(bottoms)


# --------------------------------------------------------------------------- rendering


def _render(elements: list[Any]) -> tuple[str, list[tuple[int, int]]]:
    """The text, and where each page starts in it (elements with a page number: PDFs)."""
    blocks: list[str] = []
    starts: list[tuple[int, int]] = []  # (block index, page), a new entry where the page changes
    prev = None
    for el in elements:
        cat = el.category
        text = (el.text or "").strip()
        if cat == "Table":
            block = _render_table(el.metadata.text_as_html) or text
        elif not text:
            continue
        elif cat == "Title":
            depth = el.metadata.category_depth or 0  # 0-based: h1/"#" -> 0
            block = "#" * min(depth + 1, 6) + " " + " ".join(text.split())
        elif cat == "ListItem":
            block = "- " + " ".join(text.split())
            if prev == "ListItem":  # keep a list together as one block
                blocks[-1] += "\n" + block
                continue
        elif cat == "CodeSnippet":
            block = "```\n" + el.text.strip("\n") + "\n```"
        else:
            block = text
        if block:
            blocks.append(block)
            prev = cat
            page = getattr(el.metadata, "page_number", None)
            if page and (not starts or starts[-1][1] != page):
                starts.append((len(blocks) - 1, page))
    offsets, at = [], 0
    for b in blocks:
        offsets.append(at)
        at += len(b) + 2
    return "\n\n".join(blocks), [(offsets[i], page) for i, page in starts]


def _render_table(html: str | None, header: bool = False) -> str:
    """text_as_html -> Markdown table. Merged cells are spread over the grid (text in the first
    position) so columns line up; spacer rows and columns are dropped; a table left with a single
    row or column (a layout table, e.g. a web page in one cell) becomes plain lines."""
    if not html:
        return ""
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except Exception:
        return ""
    table = next(root.iter("table"), None)
    if table is None:
        return ""
    for br in root.iter("br"):  # text_content() would glue the words around a <br>
        br.tail = " " + (br.tail or "")
    # Rows of the outer table only; a nested table's text stays inside its outer cell.
    trs = [tr for tr in table.iter("tr") if next(tr.iterancestors("table")) is table]
    taken: set[tuple[int, int]] = set()
    grid: list[dict[int, str]] = []
    for r, tr in enumerate(trs):
        row: dict[int, str] = {}
        c = 0
        for cell in tr.xpath("td|th"):
            while (r, c) in taken:
                c += 1
            rowspan = min(_span(cell.get("rowspan")), len(trs) - r)
            colspan = _span(cell.get("colspan"))
            taken.update((r + i, c + j) for i in range(rowspan) for j in range(colspan))
            row[c] = " ".join(cell.text_content().split()).replace("|", "\\|")
            c += colspan
        grid.append(row)
    width = max((c + 1 for _, c in taken), default=0)
    rows = [[row.get(c, "") for c in range(width)] for row in grid]
    rows = [r for r in rows if any(r)]
    keep = [c for c in range(width) if any(r[c] for r in rows)]
    rows = [[r[c] for c in keep] for r in rows]
    if not rows:
        return ""
    if not header and (len(rows) == 1 or len(keep) == 1):  # header: a sheet is a table, however narrow
        return "\n".join(" | ".join(c for c in r if c) for r in rows)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "---|" * len(keep))
    return "\n".join(lines)


def _span(value: str | None) -> int:
    try:
        return min(max(int(value or 1), 1), 100)  # bounded: colspan="5000" must not blow up
    except ValueError:
        return 1
