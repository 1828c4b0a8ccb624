"""Where the default differs from the plain z-fusion of its own two legs, one step at a time (issue 32).

For each shape and split, every chunk of the snapshot is scored on both legs (as bench/shapes.py scores the legs),
and these rankings are computed from those scores, each changing one step of the plain fusion toward the
pipeline's:

- **A plain**: a document's score on each leg is its best chunk's, z-scored over every document, 0.5/0.5 (the
  floor, "z(legs)" in bench/shapes.py);
- **E{P} pool docs only**: A's scores, but only the documents of the candidate pool ranked (each leg's P best
  chunks): what the candidate depth costs;
- **B{P} documents over the pool**: each document's best candidate chunk per leg, z-scored over the pool's
  documents: what normalising over the candidates instead of the corpus costs;
- **C{P} chunks over the pool**: chunks z-scored and fused over the pool, a document ranked by its best fused
  chunk (the pipeline's zscore before it fused documents);
- **D chunks over the corpus**: the same over every chunk;
- **pipeline**: the default through `SnapshotSearcher.search` with `group_by="document"`, under the runtime's
  settings (e.g. SNAPDEX_NEAR_DUPLICATE_POLICY=keep-all to measure the twin collapse).

A multilingual snapshot's BM25 leg is scored both with the query's language weights (`/w`, what `/retrieve`
does) and with every language at weight 1 (`/u`).

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/fusion_steps.py --data-dir D --split tune \
        --max-queries 150 --shapes manpages-de pydocs-topics ... [--pipeline-only] [--out F]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402
from bench.shapes import SHAPES, Corpus, Shape, ranked, tenant_of  # noqa: E402

POOLS = (200, 1000)  # chunks per leg: the pipeline's pool for 100 documents (2 x 100), and a deep one


def light_shape(rt, name: str, folder: Path) -> Shape:
    """A Shape with its snapshot and chunks only: no bm25s index, no whole-document vectors."""
    from eval.beir import BeirDataset
    from index_snapshots.builder import LANGUAGES_KEY
    from snapdex.evaluate import index_dataset

    s = object.__new__(Shape)
    s.rt, s.name = rt, name
    s.dataset, s.tenant = BeirDataset(folder), tenant_of(folder)
    s.snapshot = index_dataset(rt, s.dataset, s.tenant)
    docs = sorted(s.dataset.documents(), key=lambda d: d["id"])
    s.corpus = Corpus([d["id"] for d in docs], [d["text"] for d in docs], {d["id"]: i for i, d in enumerate(docs)})
    snap = rt.searcher.resolver.resolve(s.tenant, s.snapshot)
    s.collection = snap.collection
    s.languages = tuple(snap.config.get(LANGUAGES_KEY) or ()) or ("en",)
    s._chunks()
    return s


def step_rankings(s: Shape, cd: np.ndarray, cb: np.ndarray) -> dict[str, np.ndarray]:
    """Each step's document scores (-inf: not ranked) from every chunk's dense and BM25 scores."""
    from retrieval.fusion import zscores

    nd = len(s.corpus.ids)
    dd, db = s.doc_scores(cd, -1.0), s.doc_scores(cb, 0.0)
    plain = zscores(dd) + zscores(db)
    out = {"A plain: best chunk per leg, z over the corpus": plain,
           "D chunks z over the corpus, document = best chunk": s.doc_scores(zscores(cd) + zscores(cb), -np.inf)}
    for p in POOLS:
        pool = np.zeros(len(cd), bool)
        pool[ranked(cd)[:p]] = True
        top_bm25 = ranked(cb)[:p]
        pool[top_bm25[cb[top_bm25] > 0]] = True  # the sparse leg returns only chunks sharing a term
        pc = np.flatnonzero(pool)
        in_pool = np.zeros(nd, bool)
        in_pool[s.pair_doc[pool[s.pair_chunk]]] = True
        chunk_fused = np.full(len(cd), -np.inf)
        chunk_fused[pc] = zscores(cd[pc]) + zscores(cb[pc])
        out[f"C{p} chunks z over the pool, document = best chunk"] = s.doc_scores(chunk_fused, -np.inf)
        legs = []
        for c in (cd, cb):
            only = np.full(len(c), -np.inf)
            only[pc] = c[pc]
            legs.append(s.doc_scores(only, -np.inf))
        by_doc = np.full(nd, -np.inf)
        by_doc[in_pool] = zscores(legs[0][in_pool]) + zscores(legs[1][in_pool])
        out[f"B{p} best pool chunk per leg, z over the pool's documents"] = by_doc
        out[f"E{p} A's scores, the pool's documents only"] = np.where(in_pool, plain, -np.inf)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--shapes", nargs="*", default=None)
    ap.add_argument("--split", choices=("report", "tune"), default="tune")
    ap.add_argument("--max-queries", type=int, default=150)
    ap.add_argument("--pipeline-only", action="store_true", help="only the pipeline's own ranking")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fusion-steps.json")
    args = ap.parse_args()

    from encoders.lexical import query_vector
    from eval.metrics import evaluate
    from ingest.language import query_language_weights
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    rt = Runtime(Settings(data_dir=args.data_dir))
    out: dict = {"machine": machine(), "split": args.split, "shapes": {}}
    try:
        rt.warm_up()
        out["near_duplicate_policy"] = rt.settings.near_duplicate_policy
        for name in args.shapes or [n for n, (p, _, _) in SHAPES.items() if p.exists()]:
            folder, report, tune = SHAPES[name]
            split = report if args.split == "report" else tune
            s = light_shape(rt, name, folder)
            qrels = s.dataset.qrels(split)
            queries = s.dataset.queries(set(qrels))
            if len(queries) > args.max_queries:  # the sample bench/shapes.py draws
                keep = set(random.Random(f"{name}/{split}").sample(sorted(queries), args.max_queries))
                queries = {q: t for q, t in queries.items() if q in keep}
            qrels = {q: r for q, r in qrels.items() if q in queries}
            runs: dict[str, dict[str, list]] = {}
            t0 = time.perf_counter()
            for qid, text in queries.items():
                if not args.pipeline_only:
                    vector = rt.pipeline.embed_query((text,)).vector
                    analyses = {"w": query_language_weights(text, s.languages)}
                    if len(s.languages) > 1:
                        analyses["u"] = s.languages
                    for tag, languages in analyses.items():
                        scored = rt.store.rescore(s.collection, s.chunk_ids, dense=vector,
                                                  sparse=query_vector(text, languages=languages))
                        cd = np.array([scored[i].get("dense", -1.0) for i in s.chunk_ids])
                        cb = np.array([scored[i].get("bm25", 0.0) for i in s.chunk_ids])
                        for step, scores in step_rankings(s, cd, cb).items():
                            order = ranked(scores)[:100]
                            runs.setdefault(f"{step} /{tag}", {})[qid] = [
                                s.corpus.ids[i] for i in order[np.isfinite(scores[order])]]
                answer = rt.searcher.search(s.tenant, text, 100, snapshot=s.snapshot, use_cache=False,
                                            group_by="document")
                seen: dict[str, None] = {}
                for h in answer.hits:
                    for d in h.payload["doc_ids"]:
                        seen.setdefault(d, None)
                runs.setdefault("pipeline", {})[qid] = list(seen)[:100]
                # the answer's own document list (what a grouped answer ranks), beside its hits' documents in
                # order (what evaluation counts)
                runs.setdefault("pipeline, documents", {})[qid] = [g.doc_id for g in answer.documents][:100]
            result = {}
            for step, run in runs.items():
                means, _ = evaluate(qrels, run, ks=(10, 100))
                result[step] = {m: round(means[m], 4) for m in ("ndcg@10", "recall@100")}
            out["shapes"][f"{name} {split}"] = {"queries": len(queries), "seconds": round(time.perf_counter() - t0),
                                                "steps": result}
            print(f"== {name} {split}, {len(queries)} q", flush=True)
            for step, m in sorted(result.items()):
                print(f"  {step:<62} {m['ndcg@10']:.4f} {m['recall@100']:.4f}", flush=True)
    finally:
        rt.close()
    write_result(args.out, out, echo=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
