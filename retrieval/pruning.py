"""Pruning before hits leave: near-identical chunks collapsed, an optional cap of chunks per document.

Exact duplicates never reach here (one chunk per content hash); what remains are chunks that differ in a
header, a date or a line ending, e.g. the same policy paragraph in two handbooks. A chat backend gains nothing
from seeing both, so the lower-ranked one is dropped and the kept hit lists the dropped one's sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from errors import InvalidInput
from options import GROUP_BYS, KNOBS, TWIN_POLICIES
from retrieval.cache import BoundedCache
from retrieval.types import Candidate

_WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE = 3  # words per shingle: short enough to survive small edits, long enough to ignore shared vocabulary


@dataclass(frozen=True)
class PruneConfig:
    near_duplicate: float = 0.8        # Jaccard of word shingles at or above which two hits are one
    max_per_document: int | None = None
    # Near-duplicate documents (twins, e.g. a policy's v1 and v2 under two ids) are all indexed; "collapse" keeps
    # the hits of the newest twin among the candidates and drops the older twins' (each hit names its twins in
    # its sources); "keep-all" ranks every twin's hits like any others.
    twins: str = "collapse"

    def __post_init__(self) -> None:
        if not 0 < self.near_duplicate <= 1:
            raise InvalidInput(f"near_duplicate={self.near_duplicate} is out of range (0, 1]")
        KNOBS["max_per_document"].check(self.max_per_document)
        if self.twins not in TWIN_POLICIES:
            raise InvalidInput(f"near-duplicate policy {self.twins!r} is not one of {TWIN_POLICIES}")

    def recipe(self) -> dict:
        # "newest_twin": which twin collapse keeps, the last sent (twins sent together all stay); in the recipe
        # evaluation runs are keyed by, so runs scored under "the last written" are computed again
        return {"near_duplicate_jaccard": self.near_duplicate, "shingle_words": SHINGLE,
                "max_per_document": self.max_per_document, "twins": self.twins, "newest_twin": "last sent"}


SKETCH = 16  # smallest shingle hashes kept per hit: a cheap first look before the exact Jaccard


def shingles(text: str) -> np.ndarray:
    """Every run of SHINGLE consecutive words (one shingle of all the words if there are fewer), each as a 64-bit
    hash: sorted, without repeats. Hashed in numpy from the words' hashes: this runs on every hit of every answer,
    and building a set of word tuples was most of pruning's cost at top_k 100 (two sets share a hash by chance
    about once in 2^64 pairs of shingles)."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE:
        return np.array([hash(tuple(words))], dtype=np.int64)
    h = np.fromiter(map(hash, words), dtype=np.int64, count=len(words))
    mixed = h[:-2].copy()
    for k in range(1, SHINGLE):  # int64 arithmetic wraps: a polynomial hash of the run, position-sensitive
        mixed *= _MIX
        mixed += h[k:len(h) - SHINGLE + 1 + k]
    return np.unique(mixed)


_MIX = np.int64(1_000_003)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Of two sorted shingle hash arrays without repeats."""
    both = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - both
    return both / union if union else 1.0


class _Shingled:
    """A hit's shingles and a bottom-k sketch of them. Two sets with Jaccard J share about J * SKETCH of their
    smallest hashes; pairs sharing far fewer are skipped without the exact intersection, which is what made
    pruning 100 hits cost 40 ms."""

    __slots__ = ("set", "sketch")

    def __init__(self, text: str, memo: BoundedCache | None = None, key: str | None = None) -> None:
        """`memo`: shingles already made, by `key` (a chunk's content hash: its text never changes)."""
        got = memo.get(key) if memo is not None and key else None
        if got is None:
            hashes = shingles(text)
            got = (hashes, frozenset(hashes[:SKETCH].tolist()))  # the array is sorted: its first are the smallest
            if memo is not None and key:
                memo.put(key, got)
        self.set, self.sketch = got

    def similar(self, other: _Shingled, threshold: float) -> bool:
        floor = max(threshold - 0.35, 0.0) * min(len(self.sketch), len(other.sketch))
        small, big = sorted((self.set.size, other.set.size))
        if small < threshold * big or len(self.sketch & other.sketch) < floor:
            return False  # Jaccard <= small / big, and the sketches barely meet
        return jaccard(self.set, other.set) >= threshold


class _NearIndex:
    """The kept hits by their sketches' hashes: a new hit is compared only with the kept ones whose sketches share
    enough hashes to pass `_Shingled.similar`'s first look, found by lookup, not by a scan of every kept hit (which
    made pruning grow with the square of top_k). The first such kept hit in rank order is the one a scan would
    find: the same answer, whatever the list's length."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.hits: list[tuple[Candidate, _Shingled]] = []
        self.by_hash: dict[int, list[int]] = {}
        # At or below this Jaccard the first look passes pairs sharing no sketch hash: only a scan finds them all.
        self.scan = threshold - 0.35 <= 0

    def add(self, c: Candidate, sh: _Shingled) -> None:
        for h in sh.sketch:
            self.by_hash.setdefault(h, []).append(len(self.hits))
        self.hits.append((c, sh))

    def first(self, sh: _Shingled) -> Candidate | None:
        if self.scan:
            order = range(len(self.hits))
        else:
            shared: dict[int, int] = {}
            for h in sh.sketch:
                for i in self.by_hash.get(h, ()):
                    shared[i] = shared.get(i, 0) + 1
            order = sorted(shared)
        return next((self.hits[i][0] for i in order if sh.similar(self.hits[i][1], self.threshold)), None)


def document_of(payload: dict, point_id: str) -> str:
    """The document a chunk counts for: the first its payload names (a chunk several documents share names them
    all), or the chunk itself where none is named."""
    return (payload.get("doc_ids") or [point_id])[0]


def _first_doc(c: Candidate) -> str:
    return document_of(c.payload, c.id)


def _sent(source: dict) -> float:
    """When a twin was sent: its sending request's time where the snapshot records it, else when it was written
    (snapshots built before `sent_at`)."""
    return source.get("sent_at", source.get("updated_at")) or 0.0


def _older_twins(candidates: list[Candidate]) -> set[str]:
    """Documents among the candidates' whose near-duplicate twin among them was sent later. Twins sent in one
    request are equally new, and all are kept: which one it wrote last says nothing of which is meant (one manual
    page under several names, sent together, is one twin group; a policy's v2 sent after v1 is the case collapse
    is for). A chunk two twins share names the newest first, so it is kept as the newest's hit."""
    stamp: dict[str, float] = {}
    groups: dict[str, set[str]] = {}
    for c in candidates:
        sources = c.payload.get("sources") or []
        if not any(s.get("twins") for s in sources):
            continue
        for s in sources:
            stamp[s["doc_id"]] = _sent(s)
            groups[s["doc_id"]] = {s["doc_id"], *s.get("twins", [])}
        # The newest twin among this chunk's documents is its hit's document.
        sources.sort(key=lambda s: -_sent(s) if s.get("twins") else 0.0)
        if c.payload.get("doc_ids"):
            c.payload["doc_ids"] = [s["doc_id"] for s in sources] + [d for d in c.payload["doc_ids"]
                                                                      if d not in {s["doc_id"] for s in sources}]
    older: set[str] = set()
    for doc, group in groups.items():
        present = [d for d in group if d in stamp]
        newest = max(stamp[d] for d in present)
        older.update(d for d in present if stamp[d] < newest)
    return older


def prune(candidates: list[Candidate], top_k: int, config: PruneConfig, memo: BoundedCache | None = None
          ) -> tuple[list[Candidate], int]:
    """The first `top_k` distinct hits in order, and how many were dropped on the way. `memo`: the shingles of
    chunks seen before, by content hash (making them is most of the cost; the same chunks come back in answer
    after answer)."""
    kept: list[Candidate] = []
    near = _NearIndex(config.near_duplicate)
    per_doc: dict[str, int] = {}
    dropped = 0
    older = _older_twins(candidates) if config.twins == "collapse" else set()
    for c in candidates:
        if len(kept) == top_k:
            break
        if older and _first_doc(c) in older:
            dropped += 1
            continue
        sh = _Shingled(c.text, memo, c.payload.get("chunk_hash"))
        twin = near.first(sh)
        if twin is not None:
            known = {s.get("doc_id") for s in twin.payload.get("sources", [])}
            twin.payload.setdefault("sources", []).extend(
                s for s in c.payload.get("sources", []) if s.get("doc_id") not in known)
            dropped += 1
            continue
        doc = _first_doc(c)
        if config.max_per_document is not None and per_doc.get(doc, 0) >= config.max_per_document:
            dropped += 1
            continue
        per_doc[doc] = per_doc.get(doc, 0) + 1
        kept.append(c)
        near.add(c, sh)
    return kept, dropped


GROUP_BY = GROUP_BYS
# Chunks a grouped answer shows per document when the stages set no max_per_document: the best few say where in
# the document the match is, without one long document's chunks filling the answer.
GROUP_CHUNKS = 3


@dataclass(frozen=True)
class DocumentGroup:
    doc_id: str
    score: float          # its best chunk's
    hits: tuple[int, ...]  # positions of its chunks in the answer's hits, best first


def group_documents(candidates: list[Candidate], top_k: int, config: PruneConfig
                    ) -> tuple[list[Candidate], list[DocumentGroup], int]:
    """The best `top_k` documents, each ranked by its best chunk, with up to max_per_document (else GROUP_CHUNKS)
    of its chunks among the candidates; the hits come document by document. A chunk counts for the first document
    its (visible) payload names. Older near-duplicate twins are left out as `prune` leaves them; near-identical
    chunks of two different documents are not collapsed: both documents are answers to a document query."""
    per_doc = config.max_per_document or GROUP_CHUNKS
    older = _older_twins(candidates) if config.twins == "collapse" else set()
    order: dict[str, list[Candidate]] = {}
    dropped = 0
    for c in candidates:
        doc = _first_doc(c)
        if doc in older:
            dropped += 1
            continue
        chunks = order.get(doc)
        if chunks is None:
            if len(order) == top_k:
                continue
            chunks = order[doc] = []
        if len(chunks) < per_doc:
            chunks.append(c)
        else:
            dropped += 1
    hits: list[Candidate] = []
    groups: list[DocumentGroup] = []
    for doc, chunks in order.items():
        groups.append(DocumentGroup(doc, chunks[0].score, tuple(range(len(hits), len(hits) + len(chunks)))))
        hits.extend(chunks)
    return hits, groups, dropped


def documents_in(candidates: list[Candidate]) -> int:
    return len({_first_doc(c) for c in candidates})
