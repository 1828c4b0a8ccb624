"""Sentence windows: the small passages a chunk is scored by in the late-interaction second stage.

A 256-token chunk embedded as one vector blurs the one or two sentences a query is about; scoring a chunk by its
best window of consecutive sentences (each prefixed with the document title, which carries the topic) recovers
them. Measured on SciFact: MiniLM over whole abstracts nDCG@10 0.645, by best two-sentence window 0.699.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Mapping

from ingest.normalize import content_hash

MIN_SENTENCE_CHARS = 24  # punkt cuts after "et al." or "Fig."; shorter pieces are joined to the next one


@dataclass(frozen=True)
class WindowConfig:
    size: int = 2     # sentences per window
    stride: int = 1   # first sentences of consecutive windows are this far apart
    max_windows: int = 32  # per chunk: bounds the multivector (a 256-token chunk rarely has more sentences)

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 8:
            raise ValueError(f"window size={self.size} is out of range [1, 8]")
        if not 1 <= self.stride <= self.size:
            raise ValueError(f"window stride={self.stride} must be in [1, size={self.size}]")
        if not 1 <= self.max_windows <= 256:
            raise ValueError(f"max_windows={self.max_windows} is out of range [1, 256]")

    def canonical(self) -> dict:
        return {"splitter": "nltk-punkt-english", "min_sentence_chars": MIN_SENTENCE_CHARS,
                "size": self.size, "stride": self.stride, "max_windows": self.max_windows, "title_prefix": True}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


@cache
def _punkt():
    # llama-index ships nltk's punkt_tab inside its package; putting that folder on nltk's path means nothing
    # is ever downloaded (this machine, and production, may have no network).
    import nltk
    from llama_index.core.utils import globals_helper
    from nltk.tokenize import PunktTokenizer

    globals_helper.wait_for_nltk_check()
    if globals_helper._nltk_data_dir not in nltk.data.path:
        nltk.data.path.append(globals_helper._nltk_data_dir)

    return PunktTokenizer("english")


def sentences(text: str) -> list[str]:
    pieces = [" ".join(s.split()) for s in _punkt().tokenize(text)]
    out: list[str] = []
    carry = ""
    for piece in pieces:
        if not piece:
            continue
        carry = f"{carry} {piece}".strip()
        if len(carry) >= MIN_SENTENCE_CHARS:
            out.append(carry)
            carry = ""
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out


def sentence_windows(text: str, title: str | None, config: WindowConfig) -> list[str]:
    """Windows of `size` consecutive sentences, `stride` apart, each prefixed with the title; the last sentence
    is always covered. A chunk that opens with its title does not repeat it."""
    title = " ".join((title or "").split())
    body = text.strip()
    if title and " ".join(body[: len(title) + 8].split()).startswith(title):
        body = body[len(title):].lstrip(" \n#:.")  # the first chunk opens with the title line
    sents = sentences(body) if body else []
    if not sents:
        return [title] if title else []
    last_start = max(len(sents) - config.size, 0)
    starts = list(range(0, last_start + 1, config.stride))
    if starts[-1] != last_start:
        starts.append(last_start)
    windows = [" ".join(sents[i:i + config.size]) for i in starts][: config.max_windows]
    return [f"{title}. {w}" if title else w for w in windows]


def windows_of(text: str, title: str | None, config: WindowConfig) -> dict[str, str]:
    """A chunk's windows keyed by content hash (the embedding cache's key), in order."""
    return {content_hash(w): w for w in sentence_windows(text, title, config)}


def window_texts(chunks: Mapping[str, tuple[str, str | None]], config: WindowConfig) -> dict[str, str]:
    """Every window of the given chunks (chunk hash -> (text, title)), keyed by content hash."""
    out: dict[str, str] = {}
    for text, title in chunks.values():
        out.update(windows_of(text, title, config))
    return out
