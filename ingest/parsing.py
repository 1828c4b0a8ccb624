"""Parse uploaded bytes (txt, md, html, docx, pdf) into Markdown-ish text with `unstructured`.

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
    f"+pdfminer-{importlib.metadata.version('pdfminer.six')}+render1+ocr1+plaintext1"
)

FORMATS = ("txt", "md", "html", "docx", "pdf")
_LABEL = {"txt": "text", "md": "Markdown", "html": "HTML", "docx": "DOCX", "pdf": "PDF"}

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
    # PDFs: (offset in `text` where a page's first block starts, 1-based page number), in text order.
    pages: tuple[tuple[int, int], ...] = ()


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
_MARKDOWN = re.compile(
    r"^(?:#{1,6}[ \t]+\S|```|~~~|\|?[ \t]*:?-{3,}:?[ \t]*\|)|\[[^\]\n]+\]\([^)\s]+\)", re.M
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def detect_format(data: bytes, filename: str | None = None) -> str:
    """Return "txt" | "md" | "html" | "docx" | "pdf", judged by content; raise ParseError."""
    return _sniff(data, filename)[0]


def _sniff(data: bytes, filename: str | None) -> tuple[str, str | None]:
    """(format, decoded text for text formats / None for pdf and docx)."""
    if not data.strip():
        raise ParseError("empty file")
    if b"%PDF-" in data[:1024]:  # the spec lets junk precede the header
        return "pdf", None
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data), None
    text = _decode(data)
    if not text.strip():  # e.g. a lone BOM
        raise ParseError("empty file")
    return _text_format(text, filename), text


# A DOCX is a zip archive; its parts are read whole into memory. zipfile never inflates a member past the size
# its header declares, so the declared total bounds what parsing can cost.
MAX_UNZIPPED_BYTES = 128 * 1024 * 1024


def _sniff_zip(data: bytes) -> str:
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ParseError(f"not a valid DOCX: corrupt or truncated zip archive ({e})") from e
    expanded = sum(i.file_size for i in infos)
    if expanded > MAX_UNZIPPED_BYTES:
        raise ParseError(f"zip archive of {len(data)} bytes expands to {expanded} bytes; at most "
                         f"{MAX_UNZIPPED_BYTES}: refused as a possible zip bomb")
    names = [i.filename for i in infos]
    if "word/document.xml" in names:
        return "docx"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise ParseError(f"unsupported file type: zip archive that is not a DOCX (contains {shown})")


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
    try:
        elements = _partition(fmt, data, text, u)
    except ParseError:
        raise
    except Exception as e:  # any library failure is a per-document failure, never a crash
        prefix = f"not a valid {label}" if fmt in ("pdf", "docx") else f"could not parse {label}"
        raise ParseError(f"{prefix}: {type(e).__name__}: {e}".rstrip(": ")) from e
    if fmt == "pdf":  # running heads, page numbers
        elements = [e for e in elements if e.category not in ("Header", "Footer")]
    rendered, pages = _render(elements)
    if not rendered.strip():
        hint = " (no text layer, nor text that OCR could read)" if fmt == "pdf" else ""
        raise ParseError(f"no text found in {label}{hint}")
    titles = [e for e in elements if e.category == "Title" and e.text.strip()]
    return ParsedDocument(
        text=rendered,
        format=fmt,
        structured=fmt in ("md", "html", "docx") and bool(titles),
        title=" ".join(titles[0].text.split()) if titles else None,
        elements=len(elements),
        pages=tuple(pages) if fmt == "pdf" else (),
    )


def _partition(fmt: str, data: bytes | None, text: str | None, u: Any) -> list[Any]:
    if fmt == "pdf":
        return _pdf_elements(data, u)
    # languages=[""] skips langdetect (0.5 s to load, then per document): its metadata is unused.
    if fmt == "docx":
        return u.partition_docx(file=io.BytesIO(data), languages=[""])
    # Text formats get the text decoded above, so encoding handling is the same for all.
    partition = {"txt": u.partition_text, "md": u.partition_md, "html": u.partition_html}[fmt]
    return partition(text=text, languages=[""])


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
    from unstructured.partition.text import element_from_text, partition_text

    return types.SimpleNamespace(
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
            raise _OcrUnavailable(f"{_OCR_INSTALL} (tesseract found no English language data)")
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
    tsv = _tesseract(image, dpi, deadline, "-l", "eng", "--psm", "3", "tsv")
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


def _render_table(html: str | None) -> str:
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
    if len(rows) == 1 or len(keep) == 1:
        return "\n".join(" | ".join(c for c in r if c) for r in rows)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "---|" * len(keep))
    return "\n".join(lines)


def _span(value: str | None) -> int:
    try:
        return min(max(int(value or 1), 1), 100)  # bounded: colspan="5000" must not blow up
    except ValueError:
        return 1
