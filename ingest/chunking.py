"""Chunking with llama-index node parsers: header-aware for structured text, sentence-aware for prose."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import llama_index.core
from llama_index.core import Document
from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter
from llama_index.core.utils import get_tokenizer

from ingest.normalize import content_hash


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
            "library": f"llama-index-core-{llama_index.core.__version__}",
            "structured": "MarkdownNodeParser+SentenceSplitter",
            "prose": "SentenceSplitter",
            "tokenizer": "tiktoken-cl100k",
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
        }


    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


class Chunker:
    def __init__(self, config: ChunkerConfig) -> None:
        self.config = config

    @cached_property
    def _splitter(self) -> SentenceSplitter:
        return SentenceSplitter(chunk_size=self.config.chunk_size, chunk_overlap=self.config.chunk_overlap)

    @cached_property
    def _markdown(self) -> MarkdownNodeParser:
        return MarkdownNodeParser(include_metadata=False, include_prev_next_rel=False)

    @cached_property
    def _count(self):
        return get_tokenizer()

    def chunk_hashes(self, text: str, structured: bool) -> dict[str, str]:
        """chunk hash -> chunk text, in document order; a chunk repeated inside the document is kept once."""
        return {content_hash(t): t for t in self.chunk(text, structured)}

    def chunk(self, text: str, structured: bool) -> list[str]:
        if not text.strip():
            return []
        if not structured:
            return [c for c in self._splitter.split_text(text) if c.strip()]
        sections = [n.get_content() for n in self._markdown.get_nodes_from_documents([Document(text=text)])]
        chunks: list[str] = []
        for section in self._merge_small(sections):
            chunks.extend(c for c in self._splitter.split_text(section) if c.strip())
        return chunks

    def _merge_small(self, sections: list[str]) -> list[str]:
        # A heading followed at once by a sub-heading makes a section of one line; alone it is a useless
        # chunk, so neighbouring sections are joined while they fit in one chunk.
        merged: list[str] = []
        size = 0
        for section in (s.strip() for s in sections):
            if not section:
                continue
            n = len(self._count(section))
            if merged and size + n <= self.config.chunk_size:
                merged[-1] = merged[-1] + "\n\n" + section
                size += n
            else:
                merged.append(section)
                size = n
        return merged
