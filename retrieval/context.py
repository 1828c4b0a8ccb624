"""Context a chat backend can put in a prompt as is: the answer's hits grown into passages of their documents,
within a token budget, each with a citation and its place in the document's stored text.

A hit's chunk is a span of its document's stored text (the snapshot payload records where, and which chunks are its
neighbours: ingest/chunking.py, index_snapshots/builder.py). Passages are runs of adjacent chunks of one document
joined without repeating the overlap between them, so the text of a passage is exactly stored_text[start:end] and no
token is paid twice. Hits are taken best first; each grows by its neighbours (or its heading section) while the
budget lasts; a passage that does not fit is cut at a sentence boundary and closes the context.

Highlights reuse the late-interaction stage's sentence windows: a hit's window vectors are read back with the hit and
scored against the same query vector that ranked it (a dot product per window, no model), so the best window's score
is the hit's `windows` score.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Callable, Sequence

import numpy as np

from errors import InvalidInput
from retrieval.cache import BoundedCache
from retrieval.types import Candidate
from store.base import WINDOWS, VectorStore
from wire.retrieve import MAX_NEIGHBORS

TIKTOKEN_ENCODINGS = ("cl100k_base", "o200k_base")
SECTION_STEPS = 256  # chunks a section may grow by on each side; the budget ends it long before, in practice
HIGHLIGHTS_PER_HIT = 3
HIGHLIGHT_MARGIN = 0.05  # windows within this much of the best one are highlighted too
CHARS_PER_TOKEN = 8  # English prose averages ~4.5 characters a word piece (cl100k: ~4); twice that is a safe reach


@dataclass(frozen=True)
class ContextConfig:
    max_tokens: int
    expand: str | int = 0          # "section", or neighbours on each side (0: the hits alone)
    max_per_document: int | None = None  # passages of one document
    tokenizer: str | None = None   # None: the embedder's; or a tiktoken encoding

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= 1_000_000:
            raise InvalidInput(f"context max_tokens={self.max_tokens} is out of range [1, 1000000]")
        if isinstance(self.expand, str):
            if self.expand != "section":
                raise InvalidInput(f"context expand={self.expand!r} is not 'section' nor {{'neighbors': n}}")
        elif not 0 <= self.expand <= MAX_NEIGHBORS:
            raise InvalidInput(f"context expand neighbors={self.expand} is out of range [0, {MAX_NEIGHBORS}]")
        if self.max_per_document is not None and not 1 <= self.max_per_document <= 100:
            raise InvalidInput(f"context max_per_document={self.max_per_document} is out of range [1, 100]")


# --------------------------------------------------------------------------- tokenizers


@dataclass(frozen=True)
class TokenCounter:
    name: str
    count: Callable[[Sequence[str]], list[int]]
    # No token crosses white space or punctuation (BERT's pre-tokenizer): two texts joined where one of them has
    # such a character count as the sum of their counts (less the special tokens a count adds once).
    splits_at_spaces: bool = False
    # The special tokens a count adds and where each other token starts in a text: every prefix's count from one
    # pass (a passage cut at the budget tries many prefixes).
    starts: Callable[[str], tuple[int, list[int]]] | None = None


def _splits(a: str, b: str) -> bool:
    """Whether a join of `a` and `b` falls at white space or punctuation (where BERT's pre-tokenizer splits)."""
    return any(c.isspace() or (c.isascii() and not c.isalnum()) or unicodedata.category(c).startswith("P")
               for c in (a[-1:], b[:1]) if c)


_TIKTOKEN_LOCK = threading.Lock()


@cache
def _tiktoken(name: str):
    import llama_index.core
    import tiktoken

    # llama-index ships the cl100k and o200k files in its package: tiktoken reads them from there, never the network.
    shipped = os.path.join(os.path.dirname(llama_index.core.__file__), "_static", "tiktoken_cache")
    with _TIKTOKEN_LOCK:
        before = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = before or shipped
        try:
            return tiktoken.get_encoding(name)
        except Exception as e:
            raise InvalidInput(f"tokenizer {name!r} is not available offline here ({type(e).__name__}); "
                               f"available: 'embedder', {', '.join(map(repr, available_tiktoken()))}") from e
        finally:
            if before is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]


def available_tiktoken() -> list[str]:
    import hashlib

    import llama_index.core

    shipped = os.path.join(os.path.dirname(llama_index.core.__file__), "_static", "tiktoken_cache")
    out = []
    for name in TIKTOKEN_ENCODINGS:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        if os.path.exists(os.path.join(os.environ.get("TIKTOKEN_CACHE_DIR") or shipped,
                                       hashlib.sha1(url.encode()).hexdigest())):
            out.append(name)
    return out


def token_counter(name: str | None, embedder) -> TokenCounter:
    """The embedder's word pieces (special tokens included) by default, or a tiktoken encoding."""
    if name in (None, "embedder"):
        splits = getattr(embedder, "splits_at_spaces", None)
        return TokenCounter(f"embedder:{embedder.model_id}", embedder.count_tokens, bool(splits and splits()),
                            getattr(embedder, "token_starts", None))
    if name not in TIKTOKEN_ENCODINGS:
        raise InvalidInput(f"tokenizer {name!r} is not one of {('embedder', *TIKTOKEN_ENCODINGS)}")
    enc = _tiktoken(name)
    # One text at a time: encode_ordinary_batch starts a thread pool per call, slower than the encoding itself here.
    return TokenCounter(f"tiktoken:{name}", lambda texts: [len(enc.encode_ordinary(t)) for t in texts],
                        starts=lambda text: (0, enc.decode_with_offsets(enc.encode_ordinary(text))[1]))


# --------------------------------------------------------------------------- highlights


def window_vectors(store: VectorStore, collection: str, ids: list[str], memo: BoundedCache | None = None
                   ) -> dict[str, np.ndarray]:
    """The sentence-window vectors of these points (those that have any), one row per window. `memo`: those read
    before, by (collection, id): a snapshot's collection never changes, and reading vectors from the engine and
    converting them from Python lists was most of a deep answer's highlight time."""
    out: dict[str, np.ndarray] = {}
    for i in ids:
        got = memo.get((collection, i)) if memo is not None else None
        if got is not None:
            out[i] = got
    todo = [i for i in ids if i not in out]
    if todo:
        # Only the window vectors: the hits carry their payloads already, and reading and converting every point's
        # payload and other vectors again was most of this step's time at 100k chunks.
        for r in store.retrieve(collection, todo, with_vectors=[WINDOWS], with_payload=False):
            if r.windows:
                out[r.id] = np.asarray(r.windows, dtype=np.float32)
                if memo is not None:
                    memo.put((collection, r.id), out[r.id])
    return out


def add_highlights(store: VectorStore, collection: str, hits: list[Candidate], query: np.ndarray | None,
                   memo: BoundedCache | None = None) -> None:
    """Set each hit's highlights: its best sentence windows by the late-interaction score (max-sim of `query`, one
    vector or one row per query window, against each window's vector). `memo`: see window_vectors."""
    with_windows = [h for h in hits if h.payload.get("windows")]
    if query is None or not with_windows:
        return
    rows = np.atleast_2d(np.asarray(query, dtype=np.float32))
    vectors = window_vectors(store, collection, [h.id for h in with_windows], memo)
    for h in with_windows:
        windows = vectors.get(h.id)
        if windows is None:
            continue
        # A window's score is the sum over query rows of its similarity (one row: the cosine): the best one is
        # what max-sim gave the hit.
        scores = (windows @ rows.T).sum(axis=1)
        spans = h.payload["windows"][:len(scores)]
        best = float(scores.max())
        ranked = sorted(range(len(spans)), key=lambda i: -scores[i])
        picked = [i for i in ranked if scores[i] >= best - HIGHLIGHT_MARGIN and spans[i][1] > spans[i][0]]
        h.highlights = sorted((spans[i][0], spans[i][1], round(float(scores[i]), 6))
                              for i in picked[:HIGHLIGHTS_PER_HIT])


# --------------------------------------------------------------------------- passages


@dataclass(frozen=True)
class Piece:
    """One chunk at its place in one document."""

    chunk_hash: str
    text: str
    start: int
    end: int
    headings: tuple[str, ...]
    pages: tuple[int, ...]
    prev: str | None
    next: str | None
    after: str  # the stored text between this chunk and the next one


def place(payload: dict, doc_id: str) -> Piece | None:
    """The chunk of a point at its place in document `doc_id`, or None if the snapshot recorded no offsets."""
    for s in payload.get("sources", []):
        if s.get("doc_id") == doc_id and s.get("start") is not None:
            return Piece(payload["chunk_hash"], payload["text"], s["start"], s["end"], tuple(s.get("headings") or ()),
                         tuple(s.get("pages") or ()), s.get("prev"), s.get("next"), s.get("after") or "")
    return None


def join_parts(pieces: list[Piece]) -> list[str] | None:
    """The stored text from the first piece's start to the last one's end, as the text each piece adds (pieces
    sorted by start, each overlapping or directly followed by the next); None if there is a gap the payload does
    not hold."""
    parts, end = [pieces[0].text], pieces[0].end
    for a, b in zip(pieces, pieces[1:]):
        if b.start <= end:
            if b.end > end:
                parts.append(b.text[end - b.start:])
        elif a.next == b.chunk_hash and len(a.after) == b.start - end:
            parts.append(a.after + b.text)
        else:
            return None
        end = max(end, b.end)
    return parts


def join(pieces: list[Piece]) -> str | None:
    parts = join_parts(pieces)
    return None if parts is None else "".join(parts)


@dataclass(eq=False)  # compared by identity: two passages may hold the same values for a moment
class _Run:
    """Adjacent chunks of one document: one passage."""

    doc_id: str
    title: str | None
    rank: int                     # the best hit's rank in it: the passage's order
    pieces: list[Piece]
    headings: tuple[str, ...]
    highlights: list[tuple[int, int, float]] = field(default_factory=list)
    text: str = ""
    tokens: int = 0
    cut: bool = False
    placed: bool = True  # False: the snapshot has no offsets for it (built before they were recorded)

    @property
    def start(self) -> int:
        return self.pieces[0].start

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    def hashes(self) -> set[str]:
        return {p.chunk_hash for p in self.pieces}

    def touches(self, piece: Piece) -> bool:
        """Whether `piece` overlaps this run or is a direct neighbour of one of its ends."""
        first, last = self.pieces[0], self.pieces[-1]
        return (piece.start < self.end and piece.end > self.start) or piece.chunk_hash in (first.prev, last.next)


@dataclass
class Passage:
    citation: str
    doc_id: str
    title: str | None
    text: str
    start: int | None
    end: int | None
    pages: list[int]
    headings: list[str]
    tokens: int
    highlights: list[tuple[int, int, float]]


@dataclass
class Context:
    tokenizer: str
    tokens: int
    passages: list[Passage]


_WORD_END = re.compile(r"\S+")


class _Builder:
    def __init__(self, store: VectorStore, collection: str, counter: TokenCounter, config: ContextConfig,
                 point_id: Callable[[str], str], sentences: Callable[[str], list[tuple[int, int]]],
                 exact: bool = False) -> None:
        self.store, self.collection, self.counter, self.config = store, collection, counter, config
        self.point_id, self.sentences = point_id, sentences
        # Growing a passage chunk by chunk and recounting it whole each time costs O(n^2) tokenizer work (most of
        # the context's time). Instead a joined passage is counted as the sum of what each chunk adds (each counted
        # once), less the special tokens a count adds per call: exact for WordPiece and for tiktoken at the white
        # space and sentence ends chunks meet at. The passages are counted whole once at the end; should that ever
        # pass the budget, the context is built again counting every step whole (`exact`).
        self.exact = exact
        self.counted: set[str] = set()  # passage texts whose token count is exact as measured
        self.runs: list[_Run] = []
        self.total = 0
        self._counts: dict[str, int] = {}
        self._fetched: dict[str, dict | None] = {}

    def count(self, text: str) -> int:
        if text not in self._counts:
            self._counts[text] = self.counter.count([text])[0]
        return self._counts[text]

    def fits(self, extra: int) -> bool:
        return self.total + extra <= self.config.max_tokens

    def neighbour(self, doc_id: str, chunk_hash: str | None) -> Piece | None:
        if chunk_hash is None:
            return None
        self.fetch([chunk_hash])
        payload = self._fetched.get(chunk_hash)
        return place(payload, doc_id) if payload else None

    def fetch(self, hashes: list[str | None]) -> None:
        """Read the payloads of these chunks not read yet, in one request (a chunk the snapshot lacks reads None)."""
        ids = {self.point_id(h): h for h in dict.fromkeys(hashes) if h is not None and h not in self._fetched}
        if not ids:
            return
        for r in self.store.retrieve(self.collection, list(ids)):
            self._fetched[ids.get(r.id) or r.payload.get("chunk_hash")] = r.payload
            self._known(r.payload)
        for h in ids.values():
            self._fetched.setdefault(h, None)

    def measure(self, pieces: list[Piece]) -> tuple[str, int] | None:
        """The joined text of `pieces` and its tokens (see `exact`); None if they do not join exactly."""
        parts = join_parts(pieces)
        if parts is None:
            return None
        text = "".join(parts)
        if self.exact or len(parts) == 1:
            self.counted.add(text)
            return text, self.count(text)
        tokens = self._estimate(pieces)
        if self.counter.splits_at_spaces and all(_splits(a, b) for a, b in zip(parts, parts[1:])):
            self.counted.add(text)  # the sum is the count: nothing to count again at the end
        return text, tokens

    def _estimate(self, pieces: list[Piece]) -> int:
        """The tokens of the joined pieces as the sum of what each adds. Where the tokenizer splits at white space
        and punctuation, what a chunk adds past an overlap is its count (read from the snapshot) less the overlap's,
        and a chunk after white space adds its own count: short texts are counted, not the passage."""
        base, splits = self.count(""), self.counter.splits_at_spaces
        total, end = self.count(pieces[0].text), pieces[0].end
        for a, b in zip(pieces, pieces[1:]):
            if b.start <= end:
                if b.end > end:
                    head, tail = b.text[:end - b.start], b.text[end - b.start:]
                    total += self.count(b.text) - self.count(head) if splits and _splits(head, tail) \
                        else self.count(tail) - base
            elif splits and not a.after.strip():
                total += self.count(b.text) - base  # white space makes no word piece
            else:
                total += self.count(a.after + b.text) - base
            end = max(end, b.end)
        return total

    def _known(self, payload: dict) -> None:
        """Take the chunk's length in the model's word pieces from the snapshot (counted at build)."""
        known = (payload.get("tokens") or {}).get(self.counter.name.removeprefix("embedder:"))
        if known is not None and self.counter.name.startswith("embedder:"):
            self._counts.setdefault(payload.get("text", ""), known)

    def _try(self, run: _Run, pieces: list[Piece]) -> bool:
        """Make `pieces` the run's chunks if their text is exact and fits the budget."""
        pieces = sorted(pieces, key=lambda p: (p.start, p.end))
        measured = self.measure(pieces)
        if measured is None:
            return False
        text, tokens = measured
        if not self.fits(tokens - run.tokens):
            return False
        self.total += tokens - run.tokens
        run.pieces, run.text, run.tokens = pieces, text, tokens
        return True

    def add_hit(self, rank: int, hit: Candidate) -> bool:
        """Place one hit; False once the budget is spent (the context is then complete)."""
        doc_id = hit.payload["doc_ids"][0]
        self._known(hit.payload)
        title = next((s.get("title") for s in hit.payload.get("sources", []) if s.get("doc_id") == doc_id), None)
        piece = place(hit.payload, doc_id)
        highlights = [(a, b, s) for a, b, s in hit.highlights]
        if piece is None:  # a snapshot without offsets: the hit's text alone, not placed in its document
            run = _Run(doc_id, title, rank, [Piece(hit.payload["chunk_hash"], hit.text, 0, len(hit.text), (), (),
                                                   None, None, "")], (), [], placed=False)
            run.text, run.tokens = hit.text, self.count(hit.text)
            return self._open(run, window_ends(hit.payload, hit.text))
        highlights = [(piece.start + a, piece.start + b, s) for a, b, s in highlights]
        same_doc = [r for r in self.runs if r.doc_id == doc_id]
        for run in same_doc:
            if piece.chunk_hash in run.hashes():
                run.highlights += highlights
                return True
        joined = next((r for r in same_doc if r.placed and not r.cut and r.touches(piece)), None)
        if joined is not None:
            if not self._try(joined, joined.pieces + [piece]):
                return False
            joined.highlights += highlights
            self._expand(self._merge_touching(joined), piece)
            return True
        if self.config.max_per_document and len(same_doc) >= self.config.max_per_document:
            return True  # this document has its passages: the next hit may be another's
        run = _Run(doc_id, title, rank, [piece], piece.headings, highlights, piece.text, self.count(piece.text))
        if not self._open(run, window_ends(hit.payload, piece.text)):
            return False
        self._expand(run, piece)
        return True

    def _open(self, run: _Run, sentence_ends: list[int]) -> bool:
        """Add a passage of one chunk; one that does not fit is cut at one of `sentence_ends` (or at a sentence end
        found now, if none are given) and closes the context."""
        if self.fits(run.tokens):
            self.runs.append(run)
            self.total += run.tokens
            return True
        cut = self._cut(run.text, self.config.max_tokens - self.total, sentence_ends)
        if cut:
            run.text, run.tokens, run.cut = cut, self.count(cut), True
            run.highlights = [(a, min(b, run.start + len(cut)), s) for a, b, s in run.highlights
                              if a < run.start + len(cut)]
            self.runs.append(run)
            self.total += run.tokens
        return False

    def _cut(self, text: str, budget: int, sentence_ends: list[int] | None = None) -> str:
        """The longest prefix of whole sentences within `budget` tokens (of whole words if not even the first
        sentence fits); never a word cut in two."""
        if budget <= 0:
            return ""
        sentence_ends = sentence_ends or [b for _, b in self.sentences(text)]
        if self.counter.starts is not None:
            # Only the text the budget can reach is tokenized: a prefix ending at a sentence end past CHARS_PER_TOKEN
            # characters per token of budget holds more tokens than the budget in any prose (if not, the whole text
            # is tokenized). Ends past that prefix then count as all of it, more than the budget: never taken.
            reach = next((e for e in sentence_ends if e >= CHARS_PER_TOKEN * budget), len(text))
            specials, starts = self.counter.starts(text[:reach])
            if reach < len(text) and specials + len(starts) <= budget:
                specials, starts = self.counter.starts(text)
            for ends in _cut_points(text, sentence_ends):
                cut = self._cut_at_starts(text, specials, starts, ends, budget)
                if cut is None:
                    break  # not exact here: count the candidates below
                if cut:
                    return cut
            else:
                if self.counter.splits_at_spaces:
                    return ""  # exact: not even the first word fits
        fast = self._cut_additive(text, sentence_ends, budget)
        if fast is not None:
            return fast
        for ends in _cut_points(text, sentence_ends):
            lo, hi = 0, len(ends)  # the largest k with count(text[:ends[k-1]]) <= budget
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count(text[:ends[mid - 1]]) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            if lo:
                return text[:ends[lo - 1]]
        return ""

    def _cut_at_starts(self, text: str, specials: int, starts: list[int], ends: list[int], budget: int
                       ) -> str | None:
        """The longest prefix ending at one of `ends` within `budget`, from one pass of the tokenizer (`specials`,
        `starts`: TokenCounter.starts): a prefix ending at `end` holds the tokens that start before it. Exact where
        no token crosses the white space after the cut (a tokenizer that splits there); otherwise the cut is counted
        again, and None if that count passes the budget. "" if no end fits."""
        best = 0
        for end in ends:
            if specials + bisect.bisect_left(starts, end) > budget:
                break
            best = end
        if not best:
            return ""
        cut = text[:best]
        if self.counter.splits_at_spaces and (best == len(text) or text[best].isspace()):
            self._counts.setdefault(cut, specials + bisect.bisect_left(starts, best))
            return cut
        return cut if self.count(cut) <= budget else None

    def _cut_additive(self, text: str, ends: list[int], budget: int) -> str | None:
        """The same cut with each sentence counted once, where counts add up across the white space between
        sentences (see TokenCounter.splits_at_spaces); None where they may not, or no sentence fits."""
        if not self.counter.splits_at_spaces or not ends:
            return None
        base, total, at, best = self.count(""), self.count(""), 0, 0
        for end in ends:
            piece = text[at:end]
            if at and not _splits(text[:at], piece):
                return None
            total += self.count(piece) - base
            if total > budget:
                break
            best, at = end, end
        if not best:
            return None
        cut = text[:best]
        return cut if self.count(cut) <= budget else None

    def _expand(self, run: _Run, seed: Piece) -> None:
        """Grow the run from its ends: `neighbors` chunks each side of the seed, or while the heading path stays
        the seed's ("section"), one chunk at a time (next first) while the budget lasts."""
        section = self.config.expand == "section"
        steps = SECTION_STEPS if section else int(self.config.expand)
        grown = {"prev": 0, "next": 0}
        open_sides = [side for side in ("next", "prev") if steps]
        while open_sides:
            # Both ends' next chunks in one request: most steps grow both sides.
            self.fetch([getattr(run.pieces[-1] if side == "next" else run.pieces[0], side) for side in open_sides])
            for side in list(open_sides):
                edge = run.pieces[-1] if side == "next" else run.pieces[0]
                other = self.neighbour(run.doc_id, getattr(edge, side))
                linked = other is not None and getattr(other, "prev" if side == "next" else "next") == edge.chunk_hash
                if (not linked or (section and other.headings != seed.headings) or grown[side] >= steps
                        or other.chunk_hash in run.hashes() or self._taken(run, other)
                        or not self._try(run, run.pieces + [other])):
                    open_sides.remove(side)
                    continue
                grown[side] += 1
                run = self._merge_touching(run)

    def _taken(self, run: _Run, piece: Piece) -> bool:
        # A chunk another passage of the document holds: the two passages would repeat text if both kept it.
        return any(r is not run and r.doc_id == run.doc_id and piece.chunk_hash in r.hashes() for r in self.runs)

    def _merge_touching(self, run: _Run) -> _Run:
        """Join another passage of the document that this one now reaches, so no overlap is paid twice; returns the
        passage `run` is now part of."""
        for other in [r for r in self.runs if r is not run and r.doc_id == run.doc_id and not r.cut and r.placed]:
            if any(run.touches(p) for p in other.pieces) or any(other.touches(p) for p in run.pieces):
                keep, gone = (run, other) if run.rank <= other.rank else (other, run)
                before = keep.tokens + gone.tokens
                merged = sorted({p.chunk_hash: p for p in keep.pieces + gone.pieces}.values(),
                                key=lambda p: (p.start, p.end))
                measured = self.measure(merged)
                if measured is None:
                    continue
                text, tokens = measured
                if self.total - before + tokens > self.config.max_tokens:
                    continue
                self.total += tokens - before
                keep.pieces, keep.text, keep.tokens = merged, text, tokens
                keep.highlights += gone.highlights
                self.runs.remove(gone)
                return self._merge_touching(keep)
        return run

    def result(self) -> Context | None:
        """The passages, each counted whole; None if those counts pass the budget (then build it `exact`)."""
        runs = sorted(self.runs, key=lambda r: r.rank)
        for r in runs:
            if r.text not in self.counted:
                r.tokens = self.count(r.text)
        if sum(r.tokens for r in runs) > self.config.max_tokens:
            return None
        passages = []
        for i, r in enumerate(runs, 1):
            placed = r.placed
            spans = sorted({(a, b): s for a, b, s in r.highlights if a < r.end and b > r.start}.items())
            passages.append(Passage(
                citation=f"[{i}]", doc_id=r.doc_id, title=r.title, text=r.text,
                start=r.start if placed else None, end=r.end if placed else None,
                pages=sorted({p for piece in r.pieces for p in piece.pages}), headings=list(r.headings),
                tokens=r.tokens, highlights=[(a, min(b, r.end), s) for (a, b), s in spans]))
        return Context(self.counter.name, sum(p.tokens for p in passages), passages)


def _cut_points(text: str, sentence_ends: list[int]):
    """Where a cut may end, best first: at a sentence end, else at a word's end (found only if asked for)."""
    yield sentence_ends
    yield [m.end() for m in _WORD_END.finditer(text)]


def window_ends(payload: dict, text: str) -> list[int]:
    """The sentence ends in a chunk's `text` that its late-interaction windows mark (sentences found by the same
    splitter when the snapshot was built): a window ends at a sentence end, and the text before any window but the
    first ends at one. Ascending; empty where the chunk has no windows (then the cut finds its sentences itself).
    Windows stop at `max_windows`, so in a very long chunk the last sentences give no ends: the cut is then coarser,
    never inside a sentence."""
    spans = [(a, b) for a, b in payload.get("windows") or () if b > a]
    if not spans or payload.get("text") != text:
        return []
    first = min(a for a, _ in spans)
    ends = {b for _, b in spans} | {len(text[:a].rstrip()) for a, _ in spans if a > first}
    return sorted(e for e in ends if 0 < e <= len(text))


def build_context(hits: list[Candidate], store: VectorStore, collection: str, counter: TokenCounter,
                  config: ContextConfig, point_id: Callable[[str], str],
                  sentences: Callable[[str], list[tuple[int, int]]]) -> Context:
    """The hits (best first) as passages within `config.max_tokens` counted by `counter`. `point_id` names a chunk's
    point, `sentences` gives the sentence spans of a text (where a passage the budget ends in is cut): the
    snapshot builder's and the chunker's own."""
    for exact in (False, True):
        builder = _Builder(store, collection, counter, config, point_id, sentences, exact)
        for rank, hit in enumerate(hits):
            if not builder.add_hit(rank, hit):
                break
        block = builder.result()
        if block is not None:
            return block
    raise RuntimeError("a context counted step by step passed its budget")  # unreachable: exact steps are exact
