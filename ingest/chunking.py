"""Chunking with llama-index node parsers: header-aware for structured text, sentence-aware for prose.

Every chunk is a span of the document's stored text: the parsers' pieces are located in it and the chunk's text
is the text of that span, so `stored_text[start:end] == chunk.text` holds for every chunk and a citation points
exactly where the chunk came from. (The parsers rebuild heading lines and strip white space, so a piece is found
verbatim when it can be, else with any run of white space matching any other.)

Tables (Markdown pipe tables, as every parser here renders them) are chunks of their own, whole when they fit a
chunk. A longer one is split by rows into parts at ingest, each part repeating the header row, and the parts are
what the stored text holds (`split_tables`): so a part's chunk carries its header and is still exactly a span of the
stored text. A chunk of a table says which one (1-based, in document order) and which of its data rows (1-based,
the header not counted) it holds.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property

from importlib.metadata import version
from typing import TYPE_CHECKING

from ingest.normalize import content_hash
from ingest.sentences import split_sentences

if TYPE_CHECKING:
    from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter

# llama-index is imported by the first Chunker that splits, not here: it costs ~2 s and ~100 MB, and a process that
# only serves queries (every API process, on every backend) never chunks.

# Joins the parent headings in MarkdownNodeParser's header_path: a character no heading contains.
_PATH_SEPARATOR = "\x1f"
_HEADING = re.compile(r"^(#+)\s(.*)")
# A Markdown pipe table: a header row, a delimiter row, data rows; each line starts with "|".
_TABLE = re.compile(r"^\|[^\n]*\|[ \t]*\n\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*(?:\n\|[^\n]*)*", re.M)


@cache
def _library_version() -> str:
    # Read once: every document records the chunker's fingerprint, and importlib.metadata scans site-packages.
    return version("llama-index-core")


@dataclass(frozen=True)
class ChunkerConfig:
    chunk_size: int = 256
    chunk_overlap: int = 32

    def __post_init__(self) -> None:
        if not 32 <= self.chunk_size <= 8192:
            raise ValueError(f"chunk_size={self.chunk_size} is out of range [32, 8192]")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap={self.chunk_overlap} must be in [0, chunk_size={self.chunk_size})")

    def canonical(self) -> dict:
        """What a snapshot hash covers: the parsers, their library version and every knob."""
        return {
            "library": f"llama-index-core-{_library_version()}",
            "structured": "MarkdownNodeParser+SentenceSplitter",
            "prose": "SentenceSplitter",
            "tokenizer": "tiktoken-cl100k",
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            # Chunks are spans of the stored text (offsets, heading paths and pages go into the snapshot payload):
            # documents chunked before this are re-chunked, so every snapshot carries offsets.
            "spans": "located-v1",
            # Tables are chunks of their own, whole or in parts of rows that repeat the header (see the module).
            "tables": "whole-rows-v1",
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Chunk:
    """A chunk: `text == stored_text[start:end]`; `headings` is the heading path it sits under (structured text),
    `pages` the 1-based pages it spans (PDFs)."""

    hash: str
    text: str
    start: int
    end: int
    headings: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    table: tuple[int, int, int] | None = None  # (table number, first data row, last data row), 1-based

    def layout(self) -> list:
        """How the catalog stores it (documents.chunk_spans, one entry per chunk in document order)."""
        entry = [self.hash, self.start, self.end, list(self.headings), list(self.pages)]
        return entry + [list(self.table)] if self.table else entry

    @classmethod
    def from_layout(cls, entry: list, text: str = "") -> "Chunk":
        h, start, end, headings, pages = entry[:5]
        table = tuple(entry[5]) if len(entry) > 5 and entry[5] else None
        return cls(h, text, start, end, tuple(headings), tuple(pages), table)


def pages_of(page_starts: list[tuple[int, int]] | None, start: int, end: int) -> tuple[int, ...]:
    """The pages a span [start, end) overlaps, from (offset where a page starts, page number) pairs."""
    if not page_starts:
        return ()
    offsets = [o for o, _ in page_starts]
    first = max(bisect.bisect_right(offsets, start) - 1, 0)
    last = max(bisect.bisect_left(offsets, max(end, start + 1)) - 1, first)
    return tuple(sorted({p for _, p in page_starts[first:last + 1]}))


def locate(text: str, piece: str, lo: int, hi: int | None = None) -> tuple[int, int] | None:
    """Where `piece` is in text[lo:hi]: verbatim if it is there, else with white space runs matched loosely."""
    hi = len(text) if hi is None else hi
    at = text.find(piece, lo, hi)
    if at >= 0:
        return at, at + len(piece)
    words = piece.split()
    if not words:
        return None
    m = re.compile(r"\s+".join(map(re.escape, words))).search(text, lo, hi)
    return (m.start(), m.end()) if m else None


def relocate(chunks: list[Chunk], old_text: str, text: str, page_starts: list | None = None) -> list[Chunk]:
    """The chunks of `old_text` placed in `text`, the same content with other white space (an exact duplicate or a
    re-sent document keeps its first version's chunks): each keeps its hash, its span is found in the new text."""
    out, at = [], 0
    for c in chunks:
        span = locate(text, old_text[c.start:c.end], at) or locate(text, old_text[c.start:c.end], 0)
        start, end = span or (c.start, min(c.end, len(text)))
        out.append(Chunk(c.hash, text[start:end], start, end, c.headings, pages_of(page_starts, start, end),
                         c.table))
        at = start + 1
    return out


class Chunker:
    def __init__(self, config: ChunkerConfig) -> None:
        self.config = config

    @cached_property
    def _splitter(self) -> SentenceSplitter:
        from llama_index.core.node_parser import SentenceSplitter

        # llama-index's own sentence splitting, on punkt compiled by `re` (ingest/sentences.py): the same chunks.
        return SentenceSplitter(chunk_size=self.config.chunk_size, chunk_overlap=self.config.chunk_overlap,
                                chunking_tokenizer_fn=split_sentences)

    @cached_property
    def _markdown(self) -> MarkdownNodeParser:
        from llama_index.core.node_parser import MarkdownNodeParser

        return MarkdownNodeParser(include_metadata=True, include_prev_next_rel=False,
                                  header_path_separator=_PATH_SEPARATOR)

    @cached_property
    def _count(self):
        from llama_index.core.utils import get_tokenizer

        return get_tokenizer()

    def chunk_hashes(self, text: str, structured: bool) -> dict[str, str]:
        """chunk hash -> chunk text, in document order; a chunk repeated inside the document is kept once."""
        return {c.hash: c.text for c in self.chunks(text, structured)}

    def chunk(self, text: str, structured: bool) -> list[str]:
        return [c.text for c in self.chunks(text, structured)]

    def split_tables(self, text: str, page_starts: tuple[tuple[int, int], ...] = ()
                     ) -> tuple[str, tuple[tuple[int, int], ...]]:
        """`text` with every table longer than a chunk split by rows into parts that fit one (at least one row
        each), each part repeating the header and delimiter rows, parts apart by a blank line. What ingest stores,
        so a part's chunk is a span of the stored text with its header. `page_starts` come back moved with it."""
        out, at, grown = [], 0, []  # grown: (end of a split table in `text`, characters it gained)
        for m in _TABLE.finditer(text):
            block = m.group(0).rstrip()
            if len(self._count(block)) <= self.config.chunk_size:
                continue
            lines = block.split("\n")
            head = "\n".join(lines[:2])
            budget = self.config.chunk_size - len(self._count(head)) - 1
            parts, rows, size = [], [], 0
            for row in lines[2:]:
                n = len(self._count(row)) + 1
                if rows and size + n > budget:
                    parts.append(rows)
                    rows, size = [], 0
                rows.append(row)
                size += n
            if rows:
                parts.append(rows)
            out.append(text[at:m.start()])
            out.append("\n\n".join(head + "\n" + "\n".join(p) for p in parts))
            at = m.start() + len(block)
            grown.append((at, len(out[-1]) - len(block)))
        if not out:
            return text, page_starts
        moved = tuple((o + sum(n for end, n in grown if end <= o), page) for o, page in page_starts)
        return "".join(out) + text[at:], moved

    def _tables(self, text: str) -> list[tuple[int, int, tuple[int, int, int]]]:
        """Each table block of `text` as (start, end, (table number, first row, last row)): a block that repeats the
        previous one's header with only white space between them is its next part (split_tables made it)."""
        found: list[tuple[int, int, tuple[int, int, int]]] = []
        number, prev_head, prev_end, row = 0, None, -1, 0
        for m in _TABLE.finditer(text):
            block = m.group(0).rstrip()
            lines = block.split("\n")
            head = "\n".join(lines[:2])
            if not (head == prev_head and not text[prev_end:m.start()].strip()):
                number, row = number + 1, 0
            rows = len(lines) - 2
            found.append((m.start(), m.start() + len(block), (number, row + 1 if rows else 0, row + rows)))
            number, prev_head, prev_end, row = number, head, m.start() + len(block), row + rows
        return found

    def chunks(self, text: str, structured: bool, page_starts: list[tuple[int, int]] | None = None) -> list[Chunk]:
        """Every chunk of `text` in document order (repeats included), each a span of it."""
        if not text.strip():
            return []
        sections = self._sections(text, {o for o, _ in page_starts or ()}) if structured else [(0, len(text), ())]
        tables = self._tables(text) if "|" in text else []
        out: list[Chunk] = []
        for lo, hi, headings in sections:
            for a, b, table in self._segments(lo, hi, tables):
                if table is not None and len(self._count(text[a:b])) <= self.config.chunk_size:
                    # A table (or a part of one) that fits: one chunk, whole.
                    out.append(Chunk(content_hash(text[a:b]), text[a:b], a, b, headings, pages_of(page_starts, a, b),
                                     table))
                    continue
                self._split(text, a, b, headings, page_starts, out, table)
        return out

    @staticmethod
    def _segments(lo: int, hi: int, tables: list) -> list[tuple[int, int, tuple[int, int, int] | None]]:
        """[lo, hi) cut into table blocks and the text between them (blank pieces left out)."""
        out, at = [], lo
        for a, b, table in tables:
            if b <= lo or a >= hi:
                continue
            a, b = max(a, lo), min(b, hi)
            if a > at:
                out.append((at, a, None))
            out.append((a, b, table))
            at = b
        if at < hi:
            out.append((at, hi, None))
        return out

    def _split(self, text: str, lo: int, hi: int, headings: tuple[str, ...], page_starts, out: list[Chunk],
               table: tuple[int, int, int] | None) -> None:
        """Chunks of text[lo:hi] by the sentence splitter (a table past a chunk: one of its rows that alone is)."""
        if not text[lo:hi].strip():
            return
        at = lo
        for piece in self._splitter.split_text(text[lo:hi]):
            if not piece.strip():
                continue
            span = locate(text, piece, at, hi)
            if span is None:  # the splitter changed more than white space: keep what is left of the section
                span = (at, hi)
            start, end = span
            # Stored white space at either end is not part of a chunk (the splitter strips it too).
            body = text[start:end]
            start, end = start + len(body) - len(body.lstrip()), end - (len(body) - len(body.rstrip()))
            if end <= start:
                continue
            out.append(Chunk(content_hash(text[start:end]), text[start:end], start, end, headings,
                             pages_of(page_starts, start, end), table))
            at = start + 1  # the next piece starts later (pieces overlap by chunk_overlap)

    def _sections(self, text: str, page_offsets: set[int] = frozenset()) -> list[tuple[int, int, tuple[str, ...]]]:
        """Heading sections as spans of `text` with their heading paths; neighbouring sections are joined while
        they fit in one chunk, except into one that starts a page (a slide, a sheet: each its own chunks)."""
        from llama_index.core import Document

        spans: list[tuple[int, int, tuple[str, ...], int, bool]] = []
        at = 0
        for node in self._markdown.get_nodes_from_documents([Document(text=text)]):
            section = node.get_content()
            span = locate(text, section, at)
            if span is None:
                continue
            parents = [h for h in node.metadata.get("header_path", "").split(_PATH_SEPARATOR) if h]
            own = _HEADING.match(section)
            path = tuple(" ".join(h.split()) for h in parents + ([own.group(2)] if own else []))
            lone = bool(own) and "\n" not in section.strip()  # its heading line and nothing else
            spans.append((span[0], span[1], path, len(self._count(section)), lone))
            at = span[1]
        if not spans:
            return [(0, len(text), ())]
        return self._merge_small(spans, page_offsets)

    def _merge_small(self, sections: list[tuple[int, int, tuple[str, ...], int, bool]],
                     page_offsets: set[int] = frozenset()) -> list[tuple[int, int, tuple[str, ...]]]:
        # A heading followed at once by a sub-heading makes a section of one line; alone it is a useless
        # chunk, so neighbouring sections are joined while they fit in one chunk. The joined span is cited under
        # the heading path of its first section with a body (a lone heading line is a title over what follows) and
        # a heading (text before the first heading has none).
        merged: list[list] = []
        size = 0
        for start, end, path, n, lone in sections:
            if merged and size + n <= self.config.chunk_size and start not in page_offsets:
                last = merged[-1]
                if last[3] or not last[2]:  # heading lines alone, or text before any heading: this path names it
                    last[2] = path
                last[1], last[3] = end, last[3] and lone
                size += n
            else:
                merged.append([start, end, path, lone])
                size = n
        return [(s, e, p) for s, e, p, _ in merged]

