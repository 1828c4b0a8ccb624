"""BM25 with per-language analysis on SciFact (issue 19): does the lex4 tokenizer keep English as it was?

In process, no service and no model: the corpus is analysed as ingest does it (each document's language detected
from its parsed text, its terms counted in that language) and scored with the service's BM25 (k1 1.2, b 0.75,
Lucene IDF, through bm25s on the same tokens), queries analysed as /retrieve does: in every language of the
snapshot. Reported, on the chosen split:
  - the detected languages of the corpus and the detection time per document;
  - BM25 nDCG@10 with the queries analysed in the snapshot's languages (what /retrieve does);
  - the same with the queries also analysed in de, es and fr, as a tenant holding documents of those languages
    would have it, with and without the language prefix of non-English stems (the reason the prefix exists).
Also whether every document's English terms and every query's are what lex3 made (same stemmer and stop list,
word pattern `\\w+`): then the whole pipeline's scores are unchanged, since BM25 is the only leg the tokenizer
touches.
    .venv/bin/python bench/languages_bench.py [--dataset ../shared/data/scifact] [--split test]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402


def lex3(text: str) -> list[str]:
    """The tokenizer before languages (lex3): lowercase, \\w+, spaCy's English stop words, Snowball English."""
    import Stemmer

    from encoders.stopwords import spacy_stop_words

    stop = spacy_stop_words("en")
    return Stemmer.Stemmer("english").stemWords([w for w in re.findall(r"\w+", text.lower()) if w not in stop])


def ndcg10(doc_ids: list[str], doc_tokens: list[list[str]], queries: dict[str, list[str]],
           qrels: dict[str, dict[str, int]]) -> float:
    import bm25s
    import numpy as np

    from eval.metrics import ndcg_at_k

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in doc_tokens]
    model = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    model.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    total = 0.0
    for qid, relevant in qrels.items():
        terms = [vocab[t] for t in queries[qid] if t in vocab]
        scores = model.get_scores(terms) if terms else np.zeros(len(doc_ids))
        top = np.argsort(-scores, kind="stable")[:10]
        total += ndcg_at_k(relevant, [doc_ids[i] for i in top], 10)
    return total / len(qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "languages-scifact.json")
    args = parser.parse_args()

    from encoders.lexical import TOKENIZER_VERSION, query_counts, tokenize
    from eval.beir import BeirDataset
    from ingest.language import detect_language
    from ingest.formats import parse_text

    data = BeirDataset(args.dataset)
    docs = list(data.documents())
    texts = [parse_text(d["text"]).text for d in docs]
    started = time.perf_counter()
    languages = [detect_language(t) for t in texts]
    detect_ms = (time.perf_counter() - started) * 1000 / len(docs)
    qrels = data.qrels(args.split)
    queries = data.queries(set(qrels))
    doc_ids = [d["id"] for d in docs]
    doc_tokens = [tokenize(t, lang) for t, lang in zip(texts, languages)]
    present = tuple(sorted(set(languages)))

    def analysed(langs: tuple[str, ...], prefix: bool = True) -> dict[str, list[str]]:
        out = {}
        for qid, q in queries.items():
            counts = query_counts(q, langs)
            if not prefix:  # what an unprefixed analysis would give: other languages' stems as bare terms
                merged: Counter = Counter()
                for term, n in counts.items():
                    bare = term.split(":", 1)[-1]
                    merged[bare] = max(merged[bare], n)
                counts = merged
            out[qid] = [t for t, n in counts.items() for _ in range(n)]
        return out

    many = tuple(sorted({*present, "de", "es", "fr"}))
    unprefixed_docs = [[t.split(":", 1)[-1] for t in toks] for toks in doc_tokens]
    result = {
        "machine": machine(), "dataset": data.name, "split": args.split, "tokenizer": TOKENIZER_VERSION,
        "documents": len(docs), "queries": len(qrels),
        "languages_detected": dict(Counter(languages)), "detect_ms_per_document": round(detect_ms, 2),
        "english_terms_as_lex3": {
            "documents": sum(tokenize(t, "en") == lex3(t) for t in texts),
            "queries": sum(tokenize(q, "en") == lex3(q) for q in data.queries().values()),
            "queries_total": len(data.queries())},
        "bm25_ndcg@10": {
            "lex3": round(ndcg10(doc_ids, [lex3(t) for t in texts], {q: lex3(t) for q, t in queries.items()},
                                 qrels), 4),
            f"lex4, queries in {'+'.join(present)} (the snapshot's)": round(
                ndcg10(doc_ids, doc_tokens, analysed(present), qrels), 4),
            f"lex4, queries in {'+'.join(many)}": round(ndcg10(doc_ids, doc_tokens, analysed(many), qrels), 4),
            f"lex4 without language prefixes, queries in {'+'.join(many)}": round(
                ndcg10(doc_ids, unprefixed_docs, analysed(many, prefix=False), qrels), 4),
        },
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
