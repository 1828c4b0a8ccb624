"""Sentence windows: the small passages a chunk is scored by in the late-interaction second stage.

A 256-token chunk embedded as one vector blurs the one or two sentences a query is about; scoring a chunk by its
best window of consecutive sentences (each prefixed with the document title, which carries the topic) recovers
them. Measured on SciFact: MiniLM over whole abstracts nDCG@10 0.645, by best two-sentence window 0.699.

Late windows (the default) come from the chunk's own forward pass: the token embeddings of a window's sentences,
averaged, so a chunk and all its windows cost one pass of the model and each window still reads its neighbours.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from encoders.embedding import EmbeddingService, Gate, Part, Passage
from ingest.normalize import content_hash
from ingest.sentences import english
from options import WINDOW_METHODS

MIN_SENTENCE_CHARS = 24  # punkt cuts after "et al." or "Fig."; shorter pieces are joined to the next one

METHODS = WINDOW_METHODS


@dataclass(frozen=True)
class WindowConfig:
    size: int = 2     # sentences per window
    stride: int = 1   # first sentences of consecutive windows are this far apart
    max_windows: int = 32  # per chunk: bounds the multivector (a 256-token chunk rarely has more sentences)
    # "late": a window's vector is the mean of its tokens' embeddings from the chunk's own forward pass, so the
    # chunk and all its windows cost one pass (SciFact: 9,343 passes instead of 47,958). "standalone": each
    # window, prefixed with the title, is embedded alone (nDCG@10 0.7359 vs 0.7300 on SciFact test, each with
    # the weights train chose for it; 5x the model time).
    method: str = "late"

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 8:
            raise ValueError(f"window size={self.size} is out of range [1, 8]")
        if not 1 <= self.stride <= self.size:
            raise ValueError(f"window stride={self.stride} must be in [1, size={self.size}]")
        if not 1 <= self.max_windows <= 256:
            raise ValueError(f"max_windows={self.max_windows} is out of range [1, 256]")
        if self.method not in METHODS:
            raise ValueError(f"window method={self.method!r} is not one of {METHODS}")

    def canonical(self) -> dict:
        out = {"splitter": "nltk-punkt-english", "min_sentence_chars": MIN_SENTENCE_CHARS,
               "size": self.size, "stride": self.stride, "max_windows": self.max_windows, "method": self.method}
        if self.method == "late":
            # A window past the model's input length (or with no tokens) is embedded alone, titled.
            return {**out, "pooling": "mean-of-chunk-tokens", "overflow": "standalone-titled"}
        return {**out, "title_prefix": True}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Window:
    start: int  # character span of its sentences in the chunk text
    end: int
    text: str   # what is embedded when the window is embedded alone


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`; pieces shorter than MIN_SENTENCE_CHARS join the next."""
    out: list[tuple[int, int]] = []
    carry: tuple[int, int] | None = None
    for a, b in english().span_tokenize(text):
        if not text[a:b].strip():
            continue
        carry = (carry[0], b) if carry else (a, b)
        if len(_squash(text[carry[0]:carry[1]])) >= MIN_SENTENCE_CHARS:
            out.append(carry)
            carry = None
    if carry:
        if out:
            out[-1] = (out[-1][0], carry[1])
        else:
            out.append(carry)
    return out


def _squash(s: str) -> str:
    return " ".join(s.split())


def sentences(text: str) -> list[str]:
    return [_squash(text[a:b]) for a, b in sentence_spans(text)]


def _body_start(text: str, title: str) -> int:
    """Where a chunk's body starts: past a title line it opens with (the first chunk of a document)."""
    start = len(text) - len(text.lstrip())
    if title and _squash(text[start:start + len(title) + 8]).startswith(title):
        start += len(title)
        start += len(text[start:]) - len(text[start:].lstrip(" \n#:."))
    return start


def chunk_windows(text: str, title: str | None, config: WindowConfig) -> list[Window]:
    """Windows of `size` consecutive sentences, `stride` apart; the last sentence is always covered. A chunk
    that opens with its title line leaves it out; embedded alone, a window is prefixed with the title."""
    title = _squash(title or "")
    offset = _body_start(text, title)
    spans = [(a + offset, b + offset) for a, b in sentence_spans(text[offset:])]
    if not spans:
        return [Window(0, 0, title)] if title else []  # an empty span: late pooling has no tokens for it
    last_start = max(len(spans) - config.size, 0)
    starts = list(range(0, last_start + 1, config.stride))
    if starts[-1] != last_start:
        starts.append(last_start)
    out = []
    for i in starts[: config.max_windows]:
        picked = spans[i:i + config.size]
        body = " ".join(_squash(text[a:b]) for a, b in picked)
        out.append(Window(picked[0][0], picked[-1][1], f"{title}. {body}" if title else body))
    return out


def sentence_windows(text: str, title: str | None, config: WindowConfig) -> list[str]:
    return [w.text for w in chunk_windows(text, title, config)]


def windows_of(text: str, title: str | None, config: WindowConfig) -> dict[str, str]:
    """A chunk's standalone windows keyed by content hash (the embedding cache's key), in order."""
    return {content_hash(w): w for w in sentence_windows(text, title, config)}


def window_texts(chunks: Mapping[str, tuple[str, str | None]], config: WindowConfig) -> dict[str, str]:
    """Every standalone window of the given chunks (chunk hash -> (text, title)), keyed by content hash."""
    out: dict[str, str] = {}
    for text, title in chunks.values():
        out.update(windows_of(text, title, config))
    return out


@dataclass
class EmbeddedChunks:
    vectors: dict[str, np.ndarray]   # chunk hash -> its vector
    windows: dict[str, np.ndarray]   # chunk hash -> its window vectors (n, dim); chunks without windows absent
    embedded: int                    # chunks that went through the model now (the rest came from the cache)


def chunk_passage(chunk_hash: str, text: str, title: str | None, config: WindowConfig | None) -> Passage:
    """What to embed for one chunk: its text, and its windows as spans of it (planned only if the cache lacks
    them); late windows are cached together under a key of their own, standalone ones each by its text."""
    if config is None:
        return Passage(chunk_hash, text)

    def parts() -> list[Part]:
        return [Part(w.start, w.end, w.text, content_hash(w.text)) for w in chunk_windows(text, title, config)]

    return Passage(chunk_hash, text, parts, _late_key(config, chunk_hash, title) if config.method == "late" else None)


def embed_chunks(embedding: EmbeddingService, chunks: Mapping[str, tuple[str, str | None]],
                 config: WindowConfig | None, batch_size: int = 256, gate: Gate | None = None) -> EmbeddedChunks:
    """Chunk vectors and their window vectors (chunk hash -> (text, title)), from the cache where they are.
    Ingest calls this to fill the cache, and the snapshot build to read it back. `gate`: see EmbeddingService."""
    got = embedding.passages([chunk_passage(h, text, title, config) for h, (text, title) in chunks.items()],
                             batch_size, gate)
    return EmbeddedChunks(got.vectors, got.parts, got.embedded)


def _late_key(config: WindowConfig, chunk_hash: str, title: str | None) -> str:
    # The windows of one chunk text depend on the title too (its title line is left out, and windows past the
    # model's input are embedded titled), so one chunk under two titles has two entries.
    return "late-" + content_hash(f"{config.fingerprint()}\0{chunk_hash}\0{_squash(title or '')}")
