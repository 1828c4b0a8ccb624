"""OCR of PDF pages without a text layer (scans): each page is rendered with pypdfium2 and read by the `tesseract`
CLI (Debian `tesseract-ocr` + `tesseract-ocr-<lang>` per language; `tesseract-ocr-osd` for sideways scans); its
words become elements like pdfminer's text boxes, ruled table rows as "cell | cell" lines. No tesseract at run
time: a PDF that is image-only fails with a ParseError saying so.

The languages are the caller's (SNAPDEX_OCR_LANGUAGES, through the parse child): "+"-joined, each needs its Debian
tesseract-ocr-<lang> pack; a missing pack fails the scanned document with a reason naming it.
"""

from __future__ import annotations

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
import zlib
from typing import Any

from ingest.formats.document import ParseError
from ingest.formats.render import box_paragraphs

MAX_PAGES = 50  # per document; later scanned pages are skipped (and logged)
PAGE_TIMEOUT = 30.0  # seconds per page, all its tesseract runs together (dense page: ~3 s)
DPI = 300
MAX_PIXELS = 40_000_000  # a poster-sized page is rendered at less than DPI
TESSERACT = "tesseract"
_INSTALL = "OCR needs the tesseract-ocr and tesseract-ocr-eng packages"
# PDFium is not thread-safe: every pypdfium2 call in the process goes through this lock.
_PDFIUM_LOCK = threading.Lock()
# One OpenMP thread: tesseract's default thread team spins and takes twice as long on 2 cores.
_ENV = {"OMP_THREAD_LIMIT": "1"}
_RULE = re.compile(r"\s*\|+\s*")  # a vertical table rule read as "|"

log = logging.getLogger(__name__)


class _Unavailable(Exception):
    pass


def ocr_pages(data: bytes, pages: list[list[Any]], numbers: list[int], u: Any, languages: str) -> None:
    """Replace the elements of the pages `numbers` with OCRed ones where OCR finds text."""
    if len(numbers) > MAX_PAGES:
        log.warning("OCR limited to %d of %d pages without text", MAX_PAGES, len(numbers))
    todo = set(numbers)
    has_text = any(elements for n, elements in enumerate(pages) if n not in todo)
    try:
        if not shutil.which(TESSERACT):
            raise _Unavailable(f"{_INSTALL} (`{TESSERACT}` is not installed)")
        for number in numbers[:MAX_PAGES]:
            try:
                elements = ocr_page(data, number, u, languages)
            except _Unavailable:
                raise
            except Exception as e:  # a page that fails or times out is skipped, not the document
                log.warning("OCR of PDF page %d failed: %s: %s", number + 1, type(e).__name__, e)
                continue
            if elements:
                pages[number] = elements
    except _Unavailable as e:
        if not has_text and _has_images(data, numbers[:MAX_PAGES]):
            raise ParseError(f"PDF is image-only (no text layer): {e}") from None
        log.warning("PDF pages without text not OCRed: %s", e)


def ocr_page(data: bytes, number: int, u: Any, languages: str) -> list[Any]:
    import numpy as np

    deadline = time.monotonic() + PAGE_TIMEOUT
    image, dpi = _render_page(data, number)
    if image is None or not (image < 128).any():  # no page, or nothing dark on it
        return []
    words = _tesseract_words(image, dpi, deadline, languages)
    if not _read_well(words):  # sideways or upside-down scan? ask tesseract's OSD, keep the better
        try:
            rotate = _tesseract_rotation(image, dpi, deadline, languages)
            if rotate:
                turned = np.rot90(image, -rotate // 90)
                turned_words = _tesseract_words(turned, dpi, deadline, languages)
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
                DPI / 72,
                (MAX_PIXELS / max(width * height, 1)) ** 0.5,
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


def _tesseract(image: Any, dpi: float, deadline: float, languages: str, *args: str) -> str:
    """Run the tesseract CLI on a grayscale array (sent as PNG on stdin); return its stdout. `languages` names the
    language data a failure to load it is reported for."""
    png = _png(image)
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise TimeoutError(f"OCR took longer than {PAGE_TIMEOUT:g} s")
    cmd = [TESSERACT, "stdin", "stdout", "--dpi", str(round(dpi)), *args]
    try:
        proc = subprocess.run(
            cmd, input=png, capture_output=True, timeout=timeout, env={**os.environ, **_ENV}
        )
    except FileNotFoundError as e:
        raise _Unavailable(f"{_INSTALL} (`{TESSERACT}` is not installed)") from e
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"OCR took longer than {PAGE_TIMEOUT:g} s") from e
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode:
        if "Failed loading language" in err or "Error opening data file" in err:
            raise _Unavailable(f"{_INSTALL} (tesseract found no language data for {languages!r}: "
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


def _tesseract_words(image: Any, dpi: float, deadline: float, languages: str) -> list[dict[str, Any]]:
    """Recognised words with block/paragraph/line numbers, bounding box and confidence."""
    tsv = _tesseract(image, dpi, deadline, languages, "-l", languages, "--psm", "3", "tsv")
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


def _tesseract_rotation(image: Any, dpi: float, deadline: float, languages: str) -> int:
    """Clockwise degrees that make the page upright, by tesseract's orientation detection; 0 if
    it cannot tell (too little text, or no tesseract-ocr-osd)."""
    try:
        osd = _tesseract(image, dpi, deadline, languages, "--psm", "0")
    except (_Unavailable, RuntimeError):
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
        for para in box_paragraphs(text, u):
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
