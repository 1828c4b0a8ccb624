"""What the readers take and give, and what parsing returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Source:
    """A reader's input: the upload's bytes (None for text submitted as JSON), its decoded text (text formats only),
    and the tesseract languages its scanned pages are read in ("+"-joined)."""

    data: bytes | None
    text: str | None
    ocr_languages: str


@dataclass
class Reading:
    """A reader's output; the router makes the ParsedDocument of it."""

    elements: list[Any]  # unstructured's elements: their first Title is the title, any Title makes it sectioned
    text: str
    pages: list[tuple[int, int]] = field(default_factory=list)  # only formats with pages of their own
    title: str | None = None  # None: the first Title element's text
    metadata: dict[str, Any] = field(default_factory=dict)
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    headed: bool = False  # the reader wrote a heading per section itself (slides, sheets)
