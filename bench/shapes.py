"""Every system on every shape of data, in one run: is snapdex's default at least the plain fusion of its own legs?

For each dataset (a BEIR folder) and split, on the same documents and queries:

- **bm25s**: bm25s 0.3 (k1 1.2, b 0.75, lucene) over whole documents (title + text, as eval/beir.py ingests them),
  with bm25s's own analysis (its English stop words, PyStemmer's English stemmer): what a user writes by hand.
  **bm25s, snapdex analysis**: the same with `encoders.lexical.tokenize` (the snapshot's languages) on both sides,
  and **bm25s chunked**: that over the service's own chunks, a document scored by its best chunk. The three part
  the BM25 leg's gap into analysis, granularity and engine.
- **MiniLM exact**: the service's own embedder (onnx-int8 by default) on whole documents and queries, both cut at
  the model's 256 word pieces, cosine against every document.
- **the service's legs**: its dense leg and its BM25 leg read from the snapshot (Qdrant), every chunk scored
  (`rescore` of all of them), a document scored by its best chunk.
- **fusions** of each pair: RRF (k 60, each leg's 1,000 best documents) and the 0.5/0.5 z-score fusion: each
  leg's document scores z-scored over every document of the corpus, summed with weight 0.5 each. No candidate
  pool, no constant: the plain fusion a user writes in twenty lines, and the floor of issue 32.
- **snapdex stages**, through the code `/retrieve` runs (`SnapshotSearcher.search`): BM25 alone, dense alone, the
  first stage, each second stage, and the default, with `group_by="document"` so that 100 results are 100
  documents (without it, 100 chunks hold fewer).

Metrics: nDCG@10 and recall@100 over documents (eval.metrics, checked against ranx in the tests). The margin of the
default over each fusion is reported with a paired bootstrap interval over queries.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/shapes.py --data-dir D [--shapes scifact pydocs-passages ...]
        [--split report|tune] [--configs '{"fusion": "rrf"}' ...] [--out bench/results/shapes.json]

A dataset is indexed into D first (as `snapdex eval run` does; a second run finds it built, vectors come from the
embedding cache). Whole-document MiniLM vectors are kept in D/shapes-vectors/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402

DATA = REPO / "bench" / "data"
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
# name -> (folder, the split reported, the split defaults are chosen on)
SHAPES: dict[str, tuple[Path, str, str]] = {
    "scifact": (SCIFACT, "test", "train"),
    "pydocs-passages": (DATA / "pydocs-passages", "test", "dev"),
    "pydocs-docstrings": (DATA / "pydocs-docstrings", "test", "dev"),
    "pydocs-headings": (DATA / "pydocs-headings", "test", "dev"),
    "pydocs-faq": (DATA / "pydocs-faq", "test", "dev"),
    "pydocs-topics": (DATA / "pydocs-topics", "test", "dev"),
    "manpages-de": (DATA / "manpages-de", "test", "dev"),
}
KS = (10, 100)
METRICS = ("ndcg@10", "recall@100")
DEPTH = 100          # documents per answer
RRF_K = 60
RRF_DEPTH = 1000     # documents of each leg that RRF counts
RESAMPLES = 2000


def tenant_of(path: Path) -> str:
    return f"eval-{''.join(c if c.isalnum() else '-' for c in path.resolve().name.lower())}"


# --- fusion of two legs' document scores ------------------------------------------------------------------------

def zfuse(a: np.ndarray, b: np.ndarray, wa: float = 0.5, wb: float = 0.5) -> np.ndarray:
    """Each leg z-scored over every document, then summed with these weights (the service's own fusion code)."""
    from retrieval.fusion import weighted_zscore

    return weighted_zscore({"a": a, "b": b}, {"a": wa, "b": wb})


def rrf(dense: np.ndarray, bm25: np.ndarray, k: int = RRF_K, depth: int = RRF_DEPTH) -> np.ndarray:
    """Reciprocal rank fusion, ranks from 1, over each leg's `depth` best documents; a document sharing no term
    with the query is not in the BM25 leg's list."""
    out = np.zeros(len(dense))
    for x, positive in ((dense, False), (bm25, True)):
        order = ranked(x)[:depth]
        if positive:
            order = order[x[order] > 0]
        out[order] += 1.0 / (k + np.arange(1, len(order) + 1))
    return out


def ranked(scores: np.ndarray) -> np.ndarray:
    """Document indices best first; ties by index (documents are sorted by id), so the order is reproducible."""
    return np.lexsort((np.arange(len(scores)), -scores))


# --- one dataset ----------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]
    index: dict[str, int]


class Shape:
    """A dataset indexed into the runtime, with what every system needs to score its queries."""

    def __init__(self, rt, name: str, folder: Path, vectors_dir: Path) -> None:
        from eval.beir import BeirDataset
        from snapdex.evaluate import index_dataset

        self.rt, self.name = rt, name
        self.dataset = BeirDataset(folder)
        self.tenant = tenant_of(folder)
        t0 = time.perf_counter()
        self.snapshot = index_dataset(rt, self.dataset, self.tenant)
        self.index_seconds = round(time.perf_counter() - t0, 1)
        docs = sorted(self.dataset.documents(), key=lambda d: d["id"])
        self.corpus = Corpus([d["id"] for d in docs], [d["text"] for d in docs],
                             {d["id"]: i for i, d in enumerate(docs)})
        snap = rt.searcher.resolver.resolve(self.tenant, self.snapshot)
        self.collection = snap.collection
        from index_snapshots.builder import LANGUAGES_KEY
        self.languages = tuple(snap.config.get(LANGUAGES_KEY) or ()) or ("en",)
        self._chunks()
        self._bm25s()
        self._minilm(vectors_dir)

    def _chunks(self) -> None:
        """Every chunk of the snapshot: its point id, text and documents (a chunk may serve several)."""
        ids, texts, docs, offset = [], [], [], None
        while True:
            records, offset = self.rt.store.scroll(self.collection, limit=1024, offset=offset)
            for r in records:
                ids.append(r.id)
                texts.append(r.payload.get("text", ""))
                docs.append([self.corpus.index[d] for d in r.payload.get("doc_ids", []) if d in self.corpus.index])
            if offset is None:
                break
        self.chunk_ids, self.chunk_texts, self.chunk_docs = ids, texts, docs
        # (chunk, document) pairs, to take each document's best chunk with one np.maximum.at
        self.pair_chunk = np.array([c for c, ds in enumerate(docs) for _ in ds], dtype=np.int64)
        self.pair_doc = np.array([d for ds in docs for d in ds], dtype=np.int64)

    def doc_scores(self, chunk_scores: np.ndarray, floor: float) -> np.ndarray:
        """A document's score is its best chunk's; a document with no chunk scored gets `floor`."""
        out = np.full(len(self.corpus.ids), floor, dtype=np.float64)
        np.maximum.at(out, self.pair_doc, chunk_scores[self.pair_chunk])
        return out

    def _bm25s(self) -> None:
        import bm25s
        import Stemmer

        from encoders.lexical import query_counts

        self.stemmer = Stemmer.Stemmer("english")
        self.bm25_own = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        self.bm25_own.index(bm25s.tokenize(self.corpus.texts, stopwords="en", stemmer=self.stemmer,
                                           show_progress=False), show_progress=False)

        def analysed(text: str) -> list[str]:
            return [t for t, n in query_counts(text, self.languages).items() for _ in range(n)]

        self.analysed = analysed
        self.bm25_ours = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        self.bm25_ours.index([analysed(t) for t in self.corpus.texts], show_progress=False)
        self.bm25_chunks = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        self.bm25_chunks.index([analysed(t) for t in self.chunk_texts], show_progress=False)

    def _minilm(self, vectors_dir: Path) -> None:
        embedder = self.rt.embedder
        digest = hashlib.sha256(("\0".join(self.corpus.texts) + embedder.model_id).encode()).hexdigest()[:16]
        path = vectors_dir / f"{self.name}-{digest}.npy"
        # shapes sharing a corpus (pydocs-headings, -faq, -topics) share its vectors
        for cached in [path, *sorted(vectors_dir.glob(f"*-{digest}.npy"))]:
            if cached.exists():
                self.doc_vectors = np.load(cached)
                return
        vectors_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        out = [np.asarray(embedder.embed(self.corpus.texts[i:i + 256]), dtype=np.float32)
               for i in range(0, len(self.corpus.texts), 256)]
        self.doc_vectors = np.concatenate(out)
        np.save(path, self.doc_vectors)
        print(f"{self.name}: embedded {len(self.corpus.texts)} whole documents in {time.perf_counter() - t0:.0f} s",
              flush=True)

    # --- per query ---

    def bm25s_scores(self, model, tokens: list[str]) -> np.ndarray:
        tokens = [t for t in tokens if t in model.vocab_dict]
        n = model.scores["num_docs"]
        return np.asarray(model.get_scores(tokens), dtype=np.float64) if tokens else np.zeros(n)

    def legs(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The service's dense and BM25 legs on every chunk, as document scores (best chunk)."""
        from encoders.lexical import query_vector
        from ingest.language import query_language_weights

        vector = self.rt.pipeline.embed_query((text,)).vector
        # the BM25 leg as /retrieve queries it: each of the snapshot's languages weighed by how likely the query is
        # in it (index_snapshots.querying)
        sparse = query_vector(text, languages=query_language_weights(text, self.languages))
        scored = self.rt.store.rescore(self.collection, self.chunk_ids, dense=vector, sparse=sparse)
        dense = np.array([scored[i].get("dense", -1.0) for i in self.chunk_ids])
        bm25 = np.array([scored[i].get("bm25", 0.0) for i in self.chunk_ids])
        return self.doc_scores(dense, -1.0), self.doc_scores(bm25, 0.0)


def baseline_runs(shape: Shape, queries: dict[str, str], query_vectors: np.ndarray) -> dict[str, dict[str, list]]:
    """Every system that is not the pipeline: name -> query id -> ranked document ids."""
    ids = shape.corpus.ids
    runs: dict[str, dict[str, list]] = {}

    def put(name: str, qid: str, scores: np.ndarray, positive: bool = False) -> None:
        order = ranked(scores)[:DEPTH]
        if positive:
            order = order[scores[order] > 0]
        runs.setdefault(name, {})[qid] = [ids[i] for i in order]

    import bm25s
    for (qid, text), qv in zip(queries.items(), query_vectors):
        own = shape.bm25s_scores(shape.bm25_own, bm25s.tokenize([text], stopwords="en", stemmer=shape.stemmer,
                                                               show_progress=False, return_ids=False)[0])
        ours = shape.bm25s_scores(shape.bm25_ours, shape.analysed(text))
        chunked = shape.doc_scores(shape.bm25s_scores(shape.bm25_chunks, shape.analysed(text)), 0.0)
        cosine = shape.doc_vectors @ qv
        dense_leg, bm25_leg = shape.legs(text)
        put("bm25s", qid, own, positive=True)
        put("bm25s, snapdex analysis", qid, ours, positive=True)
        put("bm25s chunked, snapdex analysis", qid, chunked, positive=True)
        put("MiniLM exact", qid, cosine)
        put("RRF(bm25s, MiniLM)", qid, rrf(cosine, own))
        put("z(bm25s, MiniLM) 0.5/0.5", qid, zfuse(own, cosine))
        put("dense leg", qid, dense_leg)
        put("BM25 leg", qid, bm25_leg, positive=True)
        put("RRF(legs)", qid, rrf(dense_leg, bm25_leg))
        put("z(legs) 0.5/0.5", qid, zfuse(dense_leg, bm25_leg))
    return runs


def stage_variants(rt, configs: list[dict]) -> dict[str, dict]:
    """The pipeline's stages, as `snapdex eval run` names them, then the default, then any extra configurations."""
    from snapdex.evaluate import variants

    stages = variants(rt)
    out = {f"snapdex: {k}": v for k, v in stages.items() if "rewrite:" not in k and k != "default pipeline"}
    # the default's own stages: a stage variant naming the same ones is scored once (pipeline_runs)
    out["snapdex default"] = stages["default pipeline"]
    for c in configs:
        out[f"snapdex {json.dumps(c, sort_keys=True)}"] = c
    return out


def pipeline_runs(rt, shape: Shape, queries: dict[str, str], variants: dict[str, dict]) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    latency: dict[str, list] = {}
    done: dict[str, str] = {}  # the same overrides under two names (a stage that is the default) run once
    for name, overrides in variants.items():
        key = json.dumps(overrides, sort_keys=True)
        if key in done:
            runs[name], latency[name] = runs[done[key]], latency[done[key]]
            continue
        done[key] = name
        run = runs.setdefault(name, {})
        for qid, text in queries.items():
            t0 = time.perf_counter()
            answer = rt.searcher.search(shape.tenant, text, DEPTH, snapshot=shape.snapshot, use_cache=False,
                                        group_by="document", **overrides)
            latency.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
            seen: dict[str, None] = {}
            for h in answer.hits:
                for d in h.payload["doc_ids"]:
                    seen.setdefault(d, None)
            run[qid] = list(seen)[:DEPTH]
    return runs, {n: {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
                  for n, v in latency.items()}


def zero_label(rt, shape: Shape) -> dict:
    """Tune the shape's tenant on queries made from its own documents, as POST /tuning {"synthetic": true} does;
    the tenant is put back on the global default afterwards, so every other system runs under it."""
    from index_snapshots.tuning import TuningRequest

    run = rt.profiles.create_tuning(shape.tenant, TuningRequest(synthetic=True).as_dict())
    try:
        result = rt.tuner.run(shape.tenant, run.id)
    finally:
        rt.profiles.activate(shape.tenant, 0)
    print(f"{shape.name}: zero-label tuning {result['decision']}: {result['reason']}", flush=True)
    return {k: result[k] for k in ("decision", "reason", "params", "seconds")} | {
        "scores": {k: result["scores"][k] for k in ("synthetic", "tuned_cv", "live", "test")}}


def margin(ours: np.ndarray, theirs: np.ndarray) -> dict:
    from eval.tuning import paired_bootstrap

    t = paired_bootstrap(ours, theirs, resamples=RESAMPLES)
    return {"mean": round(t.mean, 4), "ci_low": round(t.low, 4), "ci_high": round(t.high, 4), "wins": t.wins,
            "losses": t.losses}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--merge", nargs="*", type=Path, default=None, help=(
        "no run: merge these result files (runs over different shapes) into --out and print the table"))
    ap.add_argument("--shapes", nargs="*", default=None, help=f"of {', '.join(SHAPES)} (default: those present)")
    ap.add_argument("--split", choices=("report", "tune", "both"), default="report",
                    help="report: the held-out split of each shape; tune: the one defaults are chosen on")
    ap.add_argument("--configs", nargs="*", default=[], help="JSON stage overrides scored beside the default")
    ap.add_argument("--no-stages", action="store_true", help="only the default among the pipeline's stages")
    ap.add_argument("--zero-label", action="store_true",
                    help="also tune each shape's tenant without labels (POST /tuning synthetic) and score the profile "
                         "it chose on the real queries beside the default")
    ap.add_argument("--max-queries", type=int, default=None,
                    help="score at most this many queries of each split (a seeded sample): a quicker tuning pass")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "shapes.json")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(f.read_text()) for f in args.merge]
        merged = {**parts[0], "shapes": {k: v for r in parts for k, v in r["shapes"].items()},
                  "runs": [{"file": f.name, "shapes": list(r["shapes"]), "seconds": r.get("seconds")}
                           for f, r in zip(args.merge, parts)]}
        print(table(merged["shapes"]))
        print(margins_table(merged["shapes"]))
        write_result(args.out, merged, echo=False)
        return 0
    if args.data_dir is None:
        ap.error("--data-dir is required for a run")

    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    names = args.shapes or [n for n, (p, _, _) in SHAPES.items() if p.exists()]
    rt = Runtime(Settings(data_dir=args.data_dir))
    started = time.perf_counter()
    out: dict = {"machine": machine(), "embedding": None, "split": args.split, "defaults": None, "shapes": {}}
    try:
        rt.warm_up()
        out["embedding"] = rt.embedder.model_id
        from dataclasses import asdict
        out["defaults"] = asdict(rt.pipeline.defaults)
        variants = stage_variants(rt, [json.loads(c) for c in args.configs])
        if args.no_stages:
            variants = {k: v for k, v in variants.items() if not k.startswith("snapdex: ")}
        for name in names:
            folder, report, tune = SHAPES[name]
            shape = Shape(rt, name, folder, args.data_dir / "shapes-vectors")
            extra = zero_label(rt, shape) if args.zero_label else None
            for split in {"report": [report], "tune": [tune], "both": [tune, report]}[args.split]:
                key = name if args.split != "both" else f"{name} {split}"
                todo = dict(variants)
                if extra is not None:
                    todo["snapdex zero-label profile"] = extra["params"]
                out["shapes"][key] = measure(rt, shape, split, todo, args.max_queries)
                if extra is not None:
                    out["shapes"][key]["zero_label"] = extra
                print(table({key: out["shapes"][key]}), flush=True)
        out["seconds"] = round(time.perf_counter() - started, 1)
        print(table(out["shapes"]))
        print(margins_table(out["shapes"]))
        write_result(args.out, out, echo=False)
    finally:
        rt.close()
    return 0


def measure(rt, shape: Shape, split: str, variants: dict[str, dict], max_queries: int | None = None) -> dict:
    from eval.metrics import evaluate

    qrels = shape.dataset.qrels(split)
    queries = shape.dataset.queries(set(qrels))
    if max_queries is not None and len(queries) > max_queries:
        keep = set(random.Random(f"{shape.name}/{split}").sample(sorted(queries), max_queries))
        queries = {q: t for q, t in queries.items() if q in keep}
    qrels = {q: r for q, r in qrels.items() if q in queries}
    t0 = time.perf_counter()
    query_vectors = np.asarray(rt.embedder.embed(list(queries.values())), dtype=np.float64)
    runs = baseline_runs(shape, queries, query_vectors)
    baseline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    stage_runs, latency = pipeline_runs(rt, shape, queries, variants)
    runs.update(stage_runs)
    result = {"split": split, "queries": len(queries), "documents": len(shape.corpus.ids),
              "chunks": len(shape.chunk_ids),
              "relevant_per_query": round(float(np.mean([len(r) for r in qrels.values()])), 2),
              "snapshot": shape.snapshot, "systems": {}, "latency_ms": latency,
              "seconds": {"index": shape.index_seconds, "baselines": round(baseline_s, 1),
                          "pipeline": round(time.perf_counter() - t0, 1)}}
    per_query = {}
    for system, run in runs.items():
        means, rows = evaluate(qrels, run, ks=KS)
        per_query[system] = {m: np.array([r.metrics[m] for r in sorted(rows, key=lambda r: r.query_id)])
                             for m in METRICS}
        result["systems"][system] = {m: round(means[m], 4) for m in METRICS}
    result["margins"] = {
        f"snapdex default - {floor}": {m: margin(per_query["snapdex default"][m], per_query[floor][m])
                                       for m in METRICS}
        for floor in ("z(legs) 0.5/0.5", "RRF(legs)", "z(bm25s, MiniLM) 0.5/0.5", "RRF(bm25s, MiniLM)")}
    return result


def table(shapes: dict) -> str:
    """Markdown: one row per system, nDCG@10 / recall@100 per shape."""
    names = list(shapes)
    systems = list(dict.fromkeys(s for r in shapes.values() for s in r["systems"]))
    head = "| system | " + " | ".join(f"{n} ({shapes[n]['split']})" for n in names) + " |"
    lines = [head, "| --- |" + " --- |" * len(names)]
    for s in systems:
        cells = []
        for n in names:
            m = shapes[n]["systems"].get(s)
            cells.append(f"{m['ndcg@10']:.3f} / {m['recall@100']:.3f}" if m else "")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margins_table(shapes: dict) -> str:
    """Markdown: per shape, the default's mean gain over each fusion of its legs (95 % bootstrap interval)."""
    floors = ("z(legs) 0.5/0.5", "RRF(legs)")
    lines = ["| shape | " + " | ".join(f"{m} - {f}" for f in floors for m in METRICS) + " |",
             "| --- |" + " --- |" * (len(floors) * len(METRICS))]
    for name, r in shapes.items():
        cells = []
        for f in floors:
            for m in METRICS:
                g = r["margins"][f"snapdex default - {f}"][m]
                cells.append(f"{g['mean']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]")
        lines.append(f"| {name} ({r['split']}, {r['queries']} q) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
