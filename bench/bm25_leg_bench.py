"""The BM25 leg against bm25s on every dataset shape, same documents, at the document level (issue 32).

For each shape (BEIR folder, one split) it ranks documents by
- bm25s, default settings (k1 1.5, b 0.75, lucene; its tokenizer: lowercase, words of 2+ characters, no stemming,
  its English stop words on English sets, its German ones on manpages-de), over whole documents (title + text, as
  eval/beir.py ingests them) and over the service's chunks;
- the service's BM25 leg over the same chunks: each chunk's terms as a build counts them (`term_counts` in its
  document's detected language), `document_vector` with the snapshot's average chunk length, the query as
  `query_vector` makes it under the snapshot's languages, IDF as Qdrant's modifier computes it over the chunks.
  The scores are computed here with numpy; `--check-qdrant` writes one shape into an in-process Qdrant
  (store/edge.py, as a build does) and checks that its sparse search ranks and scores the same;
- ablations of the leg, one difference to bm25s at a time (tokenizer, stemming, stop words, k1/b, chunk or whole
  document, the query's analysis languages).

A document's score is its best chunk's; metrics are eval.metrics' nDCG@10 and recall@100.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/bm25_leg_bench.py [--split test] [--check-qdrant] \
        [--out bench/results/bm25-leg-test.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import Stemmer
from scipy import sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402
from eval.beir import BeirDataset  # noqa: E402
from eval.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from eval.tuning import paired_bootstrap  # noqa: E402

DATA = REPO / "bench" / "data"
SHAPES = {
    "scifact": REPO.parent / "shared" / "data" / "scifact",
    "pydocs-passages": DATA / "pydocs-passages",
    "pydocs-docstrings": DATA / "pydocs-docstrings",
    "pydocs-headings": DATA / "pydocs-headings",
    "pydocs-faq": DATA / "pydocs-faq",
    "pydocs-topics": DATA / "pydocs-topics",
    "manpages-de": DATA / "manpages-de",
}
DEV = {"scifact": "train"}  # the split tuned on where a set has no dev split
CACHE = Path("/tmp/snapdex-bm25-leg-cache")


@dataclass
class Corpus:
    doc_ids: list[str]
    doc_texts: list[str]
    doc_langs: list[str]
    doc_titles: list[str]
    chunk_texts: list[str]
    chunk_docs: list[list[int]]  # the documents (indexes) each unique chunk is served for; the first decides language

    @property
    def chunk_langs(self) -> list[str]:
        return [self.doc_langs[d[0]] for d in self.chunk_docs]

    @property
    def languages(self) -> tuple[str, ...]:
        """The snapshot's languages (index_snapshots/builder.py: LANGUAGES_KEY)."""
        return tuple(sorted(set(self.doc_langs)))


def load_corpus(path: Path) -> Corpus:
    """The corpus as ingest makes it: JSON text parsed by parse_text, chunked by the default Chunker, each document's
    language from its metadata or detected; unique chunks by content hash. Cached by the corpus file's digest."""
    from eval.beir import corpus_documents
    from ingest.chunking import Chunker, ChunkerConfig
    from ingest.language import document_language
    from ingest.formats import parse_text

    corpus = (path / "corpus.jsonl").resolve()
    config = ChunkerConfig()
    key = hashlib.sha256(b"v2" + corpus.read_bytes() + config.fingerprint().encode()).hexdigest()[:16]
    cached = CACHE / f"{key}.json"
    if cached.exists():
        return Corpus(**json.loads(cached.read_text()))
    chunker = Chunker(config)
    ids, texts, langs, titles, chunk_index, chunk_texts, chunk_docs = [], [], [], [], {}, [], []
    for i, d in enumerate(corpus_documents(corpus)):
        parsed = parse_text(d["text"])
        ids.append(d["id"])
        titles.append(d["metadata"].get("title") or "")
        texts.append(parsed.text)
        langs.append(document_language(parsed.text, d["metadata"]))
        for c in chunker.chunks(parsed.text, parsed.structured, parsed.pages):
            j = chunk_index.setdefault(c.hash, len(chunk_texts))
            if j == len(chunk_texts):
                chunk_texts.append(c.text)
                chunk_docs.append([])
            if i not in chunk_docs[j]:
                chunk_docs[j].append(i)
    out = Corpus(ids, texts, langs, titles, chunk_texts, chunk_docs)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out.__dict__))
    return out


# ---- analysers: text -> terms. The service's own, bm25s's, and the service's with one part changed.

def bm25s_stopwords(languages: tuple[str, ...]) -> list[str]:
    import bm25s.stopwords as s

    return list(s.STOPWORDS_GERMAN) if languages == ("de",) else list(s.STOPWORDS_EN)


def bm25s_analyser(stop: list[str], stemmer=None):
    import bm25s

    def analyse(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords=stop, stemmer=stemmer, return_ids=False, show_progress=False)
    return analyse


@dataclass(frozen=True)
class Analysis:
    """The service's analysis with parts swapped: stop words ("spacy", "lucene": bm25s's list, "none"), stemming,
    the shortest token kept. Language handling (prefixes, CJK) as in encoders.lexical."""

    stop: str = "spacy"
    stem: bool = True
    min_len: int = 1

    def tokenize(self, text: str, language: str) -> list[str]:
        from encoders import lexical

        if self == Analysis():
            return lexical.tokenize(text, language)
        stemmer, spacy_stop = lexical._analyser(language)
        stop = {"spacy": spacy_stop, "lucene": frozenset(bm25s_stopwords((language,))), "none": frozenset()}[self.stop]
        prefix = "" if language == lexical.DEFAULT_LANGUAGE else f"{language}:"
        words = [w for w in lexical._WORD.findall(text.lower()) if w not in stop and len(w) >= self.min_len]
        return [prefix + w for w in (stemmer.stemWords(words) if self.stem else words)]

    def query(self, text: str, languages: tuple[str, ...] | str | None, snapshot: tuple[str, ...]) -> Counter:
        """The query's terms in `languages` at weight 1 ("all": the snapshot's), or (None) weighed as the service
        does for a snapshot of these languages."""
        from encoders import lexical
        from ingest.language import query_language_weights

        weights = query_language_weights(text, snapshot) if languages is None else \
            dict.fromkeys(snapshot if languages == "all" else languages, 1.0)
        if self == Analysis():
            return lexical.query_counts(text, weights)
        counts: Counter = Counter()
        for language, weight in weights.items():
            for t, n in Counter(self.tokenize(text, language)).items():
                counts[t] = max(counts[t], n * weight)
        return counts


# ---- scoring

def saturated(units: list[Counter], vocab: dict[str, int], k1: float, b: float) -> sp.csr_matrix:
    """Units x terms: BM25's saturated term frequency with the units' own average length (document_vector)."""
    rows, cols, tfs = [], [], []
    for i, counts in enumerate(units):
        for t, n in counts.items():
            rows.append(i)
            cols.append(vocab.setdefault(t, len(vocab)))
            tfs.append(n)
    tf = np.asarray(tfs, dtype=np.float64)
    dl = np.asarray([sum(c.values()) for c in units], dtype=np.float64)
    avgdl = dl.mean() if len(dl) else 0.0
    norm = k1 * (1.0 - b + b * dl / avgdl) if avgdl > 0 else np.full_like(dl, k1)
    w = tf * (k1 + 1.0) / (tf + norm[np.asarray(rows, dtype=np.int64)])
    return sp.csr_matrix((w, (rows, cols)), shape=(len(units), 1 << 24))


class Index:
    """BM25 over units (chunks or documents): weights as encoders.lexical.document_vector makes them, IDF as Qdrant's
    modifier (ln(1 + (N - df + 0.5) / (df + 0.5)), df counted over the units), query terms weighted by their count."""

    def __init__(self, units: list[Counter], k1: float, b: float) -> None:
        self.vocab: dict[str, int] = {}
        self.set(saturated(units, self.vocab, k1, b))

    def set(self, matrix: sp.spmatrix) -> None:
        self.matrix = sp.csc_matrix(matrix[:, :max(len(self.vocab), 1)])
        self.matrix.eliminate_zeros()
        df = np.diff(self.matrix.indptr)
        self.idf = np.log(1.0 + (self.matrix.shape[0] - df + 0.5) / (df + 0.5))

    def scores(self, query: Counter) -> np.ndarray:
        cols = [(self.vocab[t], n) for t, n in query.items() if t in self.vocab]
        if not cols:
            return np.zeros(self.matrix.shape[0])
        idx = np.asarray([c for c, _ in cols])
        weights = np.asarray([n for _, n in cols], dtype=np.float64) * self.idf[idx]
        return np.asarray(self.matrix[:, idx] @ weights).ravel()


def document_ranking(scores: np.ndarray, unit_docs: list[list[int]] | None, n_docs: int,
                     depth: int = 100) -> np.ndarray:
    """The best `depth` documents by their best unit's score (units are documents when unit_docs is None)."""
    if unit_docs is not None:
        best = np.full(n_docs, -np.inf)
        for u in np.flatnonzero(scores > 0):
            for d in unit_docs[u]:
                best[d] = max(best[d], scores[u])
        scores = best
    order = np.argsort(-scores, kind="stable")[:depth]
    return order[np.isfinite(scores[order]) & (scores[order] > 0)]


def per_query(rank, corpus: Corpus, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict:
    """Each query's nDCG@10 and recall@100, in the order of `queries`."""
    out: dict[str, list[float]] = {"ndcg@10": [], "recall@100": []}
    for qid, text in queries.items():
        ranked = [corpus.doc_ids[d] for d in rank(text)]
        out["ndcg@10"].append(ndcg_at_k(qrels[qid], ranked, 10))
        out["recall@100"].append(recall_at_k(qrels[qid], ranked, 100))
    return out


def evaluate(rank, corpus: Corpus, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict:
    return {m: round(float(np.mean(v)), 4) for m, v in per_query(rank, corpus, queries, qrels).items()}


def leg(corpus: Corpus, analysis: Analysis = Analysis(), languages: tuple[str, ...] | str | None = None, **parts):
    """A ranker for the service's leg with these parts (defaults: the leg as it is; see `leg_index`)."""
    index, unit_docs = leg_index(corpus, analysis, **parts)
    return lambda q: document_ranking(index.scores(analysis.query(q, languages, corpus.languages)), unit_docs,
                                      len(corpus.doc_ids))


def leg_index(corpus: Corpus, analysis: Analysis = Analysis(), k1: float = 1.2, b: float = 0.75, unit: str = "chunk",
              title: bool = False, document: float = 0.0) -> tuple[Index, list[list[int]] | None]:
    """The index of the leg with these parts, and each unit's documents (None: units are documents). `title`: a
    chunk that does not open with its document's title gets the title's terms too. `document`: each chunk's weights
    are (1 - document) * its own + document * its document's (SNAPDEX_BM25_DOCUMENT_WEIGHT)."""
    if unit == "chunk":
        units = [Counter(analysis.tokenize(t, lang)) for t, lang in zip(corpus.chunk_texts, corpus.chunk_langs)]
        unit_docs = corpus.chunk_docs
        if title:
            for u, t, d in zip(units, corpus.chunk_texts, corpus.chunk_docs):
                head = corpus.doc_titles[d[0]]
                if head and not t.startswith(head):
                    u.update(analysis.tokenize(head, corpus.doc_langs[d[0]]))
    else:
        units = [Counter(analysis.tokenize(t, lang)) for t, lang in zip(corpus.doc_texts, corpus.doc_langs)]
        unit_docs = None
    index = Index(units, k1, b)
    if document and unit == "chunk":
        docs = saturated([Counter(analysis.tokenize(t, lang)) for t, lang in zip(corpus.doc_texts, corpus.doc_langs)],
                         index.vocab, k1, b)
        first = sp.csr_matrix((np.ones(len(unit_docs)), (np.arange(len(unit_docs)), [d[0] for d in unit_docs])),
                              shape=(len(unit_docs), len(corpus.doc_ids)))  # each chunk -> its first document
        own = saturated(units, index.vocab, k1, b)
        index.set((1.0 - document) * own + document * (first @ docs))
    return index, unit_docs


def bm25s_ranker(corpus: Corpus, unit: str, stop: list[str], stemmer=None, **params):
    import bm25s

    analyse = bm25s_analyser(stop, stemmer)
    texts = corpus.chunk_texts if unit == "chunk" else corpus.doc_texts
    retriever = bm25s.BM25(**params)
    retriever.index(bm25s.tokenize(texts, stopwords=stop, stemmer=stemmer, show_progress=False), show_progress=False)

    def rank(q: str) -> np.ndarray:
        tokens = analyse([q])[0]
        scores = retriever.get_scores(tokens) if retriever.get_tokens_ids(tokens) else np.zeros(len(texts))
        return document_ranking(np.asarray(scores, dtype=np.float64), corpus.chunk_docs if unit == "chunk" else None,
                                len(corpus.doc_ids))
    return rank


# ---- the real leg in Qdrant, for one shape: the numpy scores above must be its scores

def check_qdrant(corpus: Corpus, queries: dict[str, str], work: Path, k1: float = 1.2, b: float = 0.75,
                 document: float = 0.0) -> dict:
    """Write the chunks into an in-process Qdrant collection as a build does (with these BM25 parameters) and
    compare its sparse search with `leg_index`'s: the same top 10 chunks, scores within float32 rounding."""
    import uuid

    from encoders.lexical import BM25Params, average_length, document_vector, query_counts, query_vector, term_counts
    from ingest.language import query_language_weights
    from store.edge import EdgeStore
    from store.types import Point

    params = BM25Params(k1, b, document)
    counts = [term_counts(t, lang) for t, lang in zip(corpus.chunk_texts, corpus.chunk_langs)]
    whole = [term_counts(t, lang) for t, lang in zip(corpus.doc_texts, corpus.doc_langs)]
    avgdl, whole_avgdl = average_length(counts), average_length(whole)
    store = EdgeStore(work)
    name = "bm25-leg-check"
    store.delete_collection(name)
    store.create_collection(name, 4)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(counts))]
    store.upsert(name, [Point(ids[i], [1.0, 0.0, 0.0, 0.0],
                              document_vector(c, avgdl, params, whole[corpus.chunk_docs[i][0]], whole_avgdl), {"i": i})
                        for i, c in enumerate(counts)])
    index, _ = leg_index(corpus, k1=k1, b=b, document=document)
    same_top, worst = 0, 0.0
    for text in queries.values():
        weights = query_language_weights(text, corpus.languages)
        hits = store.search_sparse(name, query_vector(text, languages=weights), 10)
        ours = index.scores(query_counts(text, weights))
        top = np.argsort(-ours, kind="stable")[:len(hits)]
        # The same chunks in the same order, ties aside (float32 in Qdrant may order equal scores otherwise).
        same_top += np.allclose([h.score for h in hits], ours[top], rtol=1e-4)
        worst = max([worst, *(abs(h.score - ours[h.payload["i"]]) / max(h.score, 1e-9) for h in hits)])
    store.delete_collection(name)
    store.close()
    return {"k1": k1, "b": b, "document": document, "queries": len(queries), "same_top10": same_top,
            "max_relative_score_difference": float(f"{worst:.2e}")}


ABLATIONS = {
    # name -> leg(...) keyword arguments: one part of the leg changed at a time, then together
    "leg, k1 1.5": {"k1": 1.5},
    "leg, whole documents": {"unit": "document"},
    "leg, bm25s's stop words": {"analysis": Analysis(stop="lucene")},
    "leg, no stop words": {"analysis": Analysis(stop="none")},
    "leg, no stemming": {"analysis": Analysis(stem=False)},
    "leg, tokens of 2+ characters": {"analysis": Analysis(min_len=2)},
    "leg, query in English only": {"languages": ("en",)},
    "leg, query in every language at weight 1 (before)": {"languages": "all"},
    "leg, bm25s's stop words, tokens 2+": {"analysis": Analysis(stop="lucene", min_len=2)},
    "leg, b 0.5": {"b": 0.5},
    "leg, b 0.9": {"b": 0.9},
    "leg, title in every chunk": {"title": True},
    "leg, chunk + 0.2 document": {"document": 0.2},
    "leg, chunk + 0.4 document": {"document": 0.4},
    "leg, chunk + 0.4 document, b 0.9": {"document": 0.4, "b": 0.9},
}


def run_shape(name: str, path: Path, split: str, ablations: bool) -> dict:
    data = BeirDataset(path)
    qrels = data.qrels(split)
    queries = data.queries(set(qrels))
    corpus = load_corpus(path)
    stop = bm25s_stopwords(corpus.languages if name == "manpages-de" else ("en",))
    # bm25s as its own benchmarks run it (PyStemmer's Snowball of the set's language), for the record.
    stemmer = Stemmer.Stemmer("german" if name == "manpages-de" else "english")
    systems = {
        "bm25s, whole documents": bm25s_ranker(corpus, "document", stop),
        "bm25s, chunks": bm25s_ranker(corpus, "chunk", stop),
        "bm25s stemmed, whole documents": bm25s_ranker(corpus, "document", stop, stemmer),
        "bm25s stemmed, chunks": bm25s_ranker(corpus, "chunk", stop, stemmer),
        "leg": leg(corpus),
    }
    if ablations:
        systems.update({k: leg(corpus, **v) for k, v in ABLATIONS.items()})
    out = {"queries": len(queries), "documents": len(corpus.doc_ids), "chunks": len(corpus.chunk_texts),
           "languages": dict(Counter(corpus.doc_langs).most_common()), "systems": {}}
    scores = {}
    for system, rank in systems.items():
        scores[system] = per_query(rank, corpus, queries, qrels)
        out["systems"][system] = {m: round(float(np.mean(v)), 4) for m, v in scores[system].items()}
        print(f"{name:18} {system:40} {out['systems'][system]}", file=sys.stderr, flush=True)
    # Is the leg's difference to bm25s more than resampling the queries explains? (95 % paired bootstrap)
    out["leg_minus"] = {
        other: {m: {k: round(v, 4) if isinstance(v, float) else v
                    for k, v in paired_bootstrap(scores["leg"][m], scores[other][m]).as_dict().items()}
                for m in ("ndcg@10", "recall@100")}
        for other in ("bm25s, whole documents", "bm25s, chunks", "bm25s stemmed, whole documents",
                      "bm25s stemmed, chunks")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", help="test, or dev (train for SciFact) to tune on")
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--check-qdrant", default="", choices=["", *SHAPES],
                    help="check the numpy leg against Qdrant on this shape (manpages-de: two languages)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    started = time.perf_counter()
    result = {"machine": machine(), "split": args.split, "shapes": {}}
    from encoders.lexical import TOKENIZER_VERSION

    result["tokenizer"] = TOKENIZER_VERSION
    for name in args.shapes:
        split = DEV.get(name, "dev") if args.split == "dev" else args.split
        result["shapes"][name] = run_shape(name, SHAPES[name], split, not args.no_ablations)
    if args.check_qdrant:
        data = BeirDataset(SHAPES[args.check_qdrant])
        queries = data.queries(set(data.qrels("test")))
        corpus = load_corpus(SHAPES[args.check_qdrant])
        # The leg as it is, and with a share of each document's weights (SNAPDEX_BM25_DOCUMENT_WEIGHT).
        result["qdrant_check"] = {"shape": args.check_qdrant, "checks": [
            check_qdrant(corpus, queries, CACHE / "qdrant"),
            check_qdrant(corpus, queries, CACHE / "qdrant", b=0.9, document=0.4)]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(table(result))
    if "qdrant_check" in result:
        print("Qdrant check (test split):", result["qdrant_check"])
    if args.out:
        write_result(args.out, result, echo=False)


def table(result: dict) -> str:
    """nDCG@10 / recall@100 per system; the leg's nDCG@10 gain over each bm25s with its 95 % bootstrap interval."""
    systems = ["bm25s, whole documents", "bm25s, chunks", "bm25s stemmed, whole documents", "bm25s stemmed, chunks",
               "leg"]
    lines = ["| shape | " + " | ".join(systems) + " | leg - bm25s whole (nDCG@10) | leg - bm25s chunks (nDCG@10) |",
             "| --- " * (len(systems) + 3) + "|"]
    for name, shape in result["shapes"].items():
        s = shape["systems"]
        cells = [f"{s[k]['ndcg@10']:.3f} / {s[k]['recall@100']:.3f}" for k in systems]
        for other in systems[:2]:
            t = shape["leg_minus"][other]["ndcg@10"]
            cells.append(f"{t['mean_gain']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
