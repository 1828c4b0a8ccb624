"""OCR languages are a setting, passed down (SNAPDEX_OCR_LANGUAGES -> ParseLimits -> the parse child ->
parse_bytes(ocr_languages=...)): a scanned German page read with German language data keeps its ß and umlauts; a
language whose Debian pack is missing fails the scan with a reason naming it, in process and in the parse child."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from ingest.formats import ParseError, parse_bytes
from ingest.parse_process import ParseLimits, ParserPool

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core
GERMAN = ["Die Straße führt über die Brücke.", "Größere Häuser stehen am Fluss."]

pytestmark = pytest.mark.skipif(not shutil.which("tesseract") or not FONT.exists(),
                                reason="needs tesseract-ocr and fonts-dejavu-core (scripts/apt-packages.txt)")


def _scanned_pdf(lines: list[str]) -> bytes:
    """A page that is only an image of the lines (no text layer), as a scanner makes it."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("L", (2480, 3508), 255)  # A4 at 300 dpi
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), 60)
    for i, line in enumerate(lines):
        draw.text((200, 300 + i * 120), line, font=font, fill=0)
    out = io.BytesIO()
    page.save(out, "PDF", resolution=300)
    return out.getvalue()


def _installed(lang: str) -> bool:
    import subprocess

    return lang in subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()


@pytest.mark.skipif(not _installed("deu") if shutil.which("tesseract") else True,
                    reason="needs tesseract-ocr-deu (scripts/apt-packages.txt)")
def test_german_scan_read_with_german_language_data():
    text = parse_bytes(_scanned_pdf(GERMAN), ocr_languages="deu+eng").text
    for word in ("Straße", "führt", "über", "Brücke", "Größere", "Häuser"):
        assert word in text, text


def test_a_missing_language_pack_fails_the_scan_naming_it():
    with pytest.raises(ParseError, match="image-only.*'zzz'"):
        parse_bytes(_scanned_pdf(GERMAN), ocr_languages="zzz")


def test_the_parse_child_reads_scans_in_the_languages_it_is_given():
    pool = ParserPool(ParseLimits(timeout_s=60, memory_mb=4096, ocr_languages="zzz"))
    try:
        with pytest.raises(ParseError, match="image-only.*'zzz'"):
            pool.parse_bytes(_scanned_pdf(GERMAN), "scan.pdf")
    finally:
        pool.close()


def test_the_setting_is_checked():
    from pydantic import ValidationError

    from snapdex.settings import Settings

    assert Settings(ocr_languages="eng+deu").ocr_languages == "eng+deu"
    with pytest.raises(ValidationError):
        Settings(ocr_languages="eng; rm -rf /")
