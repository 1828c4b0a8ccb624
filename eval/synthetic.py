"""Labelled queries a tenant never wrote: made from its own documents, for tuning without labels.

Three kinds, each against the document it came from (labels name documents, as a tenant's own would):
- title: a document's title (at least MIN_WORDS words, and no other document has it);
- heading: a heading of the document's sections (the last of a chunk's heading path; the same rules);
- sentence: one sentence of the document (SENTENCE_WORDS words), *held out*: the chunk that holds it is left out of
  the ranking when the query is scored, so the document must be found through its other chunks (only documents of
  two chunks or more give one). A sentence still in the index would be found by its own words, and a tuner fitted
  to that would learn nothing but "trust BM25".

Deterministic: documents in id order, choices from random.Random seeded with the seed and the document id.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

KINDS = ("title", "heading", "sentence")
MIN_WORDS = 2
SENTENCE_WORDS = (8, 40)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ0-9\"'(])")


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str
    title: str | None
    chunks: Sequence[tuple[str, str, Sequence[str]]]  # (chunk hash, text, heading path), in document order


@dataclass
class SyntheticSet:
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    # query id -> chunk hashes left out of its ranking (a held-out sentence's own chunk)
    exclude: dict[str, frozenset[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {k: sum(v == k for v in self.kinds.values()) for k in KINDS}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.replace("\n", " ")) if s.strip()]


def synthetic_queries(documents: Iterable[SourceDocument], per_kind: int = 100, seed: int = 0) -> SyntheticSet:
    """Up to `per_kind` queries of each kind, drawn (seeded) from every candidate the documents give."""
    docs = sorted(documents, key=lambda d: d.doc_id)
    titles: dict[str, list[str]] = {}
    headings: dict[str, set[str]] = {}
    for d in docs:
        if d.title and len(_norm(d.title).split()) >= MIN_WORDS:
            titles.setdefault(_norm(d.title).lower(), []).append(d.doc_id)
        for _, _, path in d.chunks:
            if path and len(_norm(path[-1]).split()) >= MIN_WORDS:
                headings.setdefault(_norm(path[-1]).lower(), set()).add(d.doc_id)
    candidates: dict[str, list[tuple[str, str, frozenset[str]]]] = {k: [] for k in KINDS}
    for d in docs:
        title = _norm(d.title or "")
        if title and titles.get(title.lower()) == [d.doc_id]:
            candidates["title"].append((title, d.doc_id, frozenset()))
        seen: set[str] = set()
        for _, _, path in d.chunks:
            head = _norm(path[-1]) if path else ""
            if head and head.lower() not in seen and headings.get(head.lower()) == {d.doc_id} \
                    and head.lower() != title.lower():
                seen.add(head.lower())
                candidates["heading"].append((head, d.doc_id, frozenset()))
        if len({h for h, _, _ in d.chunks}) >= 2:
            rng = random.Random(f"{seed}/sentence/{d.doc_id}")
            options = [(s, h) for h, text, _ in d.chunks for s in sentences_of(text)
                       if SENTENCE_WORDS[0] <= len(s.split()) <= SENTENCE_WORDS[1]]
            if options:
                sentence, chunk = rng.choice(options)
                # every chunk holding that sentence (overlapping chunks share text) is held out
                held = frozenset(h for h, text, _ in d.chunks if sentence in text.replace("\n", " "))
                if len(held) < len({h for h, _, _ in d.chunks}):
                    candidates["sentence"].append((sentence, d.doc_id, held or frozenset([chunk])))
    out = SyntheticSet()
    for kind in KINDS:
        pool = candidates[kind]
        chosen = random.Random(f"{seed}/{kind}").sample(pool, min(per_kind, len(pool)))
        for text, doc_id, held in sorted(chosen, key=lambda c: (c[1], c[0])):
            qid = f"{kind}/{len(out.queries) + 1:05d}"
            out.queries[qid], out.qrels[qid], out.kinds[qid] = text, {doc_id: 1}, kind
            if held:
                out.exclude[qid] = held
    return out
