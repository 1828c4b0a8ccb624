"""`snapdex eval run`: index a BEIR dataset in process and score every retrieval variant on one snapshot.

All variants query the same snapshot through the same code `/retrieve` runs (SnapshotSearcher), so the
table compares stages, not indexes. The corpus is ingested once per data folder; a second run finds the
documents unchanged and the snapshot built, and goes straight to the queries.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from eval.beir import BeirDataset
from eval.runner import EvalRun, run_queries
from index_snapshots.evaluation import EVAL_GROUP_BY
from index_snapshots.service import run_ingest_job
from ingest.jobs import NewDocument
from snapdex.runtime import Runtime

# Published nDCG@10 on SciFact (BEIR), for the table's last column.
REFERENCES = {
    "BM25 (BEIR paper, Anserini)": "0.665",
    "BM25 (bm25s / Pyserini multifield)": "0.687",
    "all-MiniLM-L6-v2 (SBERT / MTEB)": "0.645",
    "bge-small-en-v1.5 (MTEB)": "0.713",
    "RRF of BM25 and bge-base-en-v1.5": "0.744",
}
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def variants(rt: Runtime) -> dict[str, dict]:
    """name -> stage overrides. The service's default pipeline is one of them and is marked."""
    p = rt.pipeline
    out = {
        "bm25": {"first_stage": "bm25", "rerank": "none", "rewrite": "none"},
        "dense": {"first_stage": "dense", "rerank": "none", "rewrite": "none"},
        "hybrid": {"first_stage": "hybrid", "rerank": "none", "rewrite": "none"},
    }
    for name in p.rerankers:
        if name != "none":
            out[f"hybrid + {name}"] = {"first_stage": "hybrid", "rerank": name, "rewrite": "none"}
    for name in p.rewriters:
        if name != "none":
            out[f"hybrid + rewrite:{name}"] = {"first_stage": "hybrid", "rerank": "none", "rewrite": name}
    d = p.defaults
    out["default pipeline"] = {"first_stage": d.first_stage, "rerank": d.rerank, "rewrite": d.rewrite}
    return out


def index_dataset(rt: Runtime, dataset: BeirDataset, tenant: str, batch: int = 1000, progress=None) -> str:
    """Ingest the corpus (unchanged documents cost nothing) and build; returns the live snapshot hash."""
    docs = list(dataset.documents())
    for i in range(0, len(docs), batch):
        part = docs[i : i + batch]
        job = rt.jobs.create(tenant, [NewDocument(d["id"], d["text"].encode("utf-8"), d["metadata"]) for d in part])
        run_ingest_job(rt.ingestor, rt.jobs, job, access=rt.access_sync)
        if progress:
            progress(min(i + batch, len(docs)), len(docs))
    rt.snapshots.build_pending(tenant)
    live = rt.manifest.live(tenant)
    if live is None:
        raise RuntimeError(f"no snapshot was built for tenant {tenant}")
    return live.hash


def evaluate_dataset(rt: Runtime, dataset: BeirDataset, split: str, tenant: str, top_k: int = 100,
                     only: list[str] | None = None) -> tuple[str, dict[str, EvalRun]]:
    qrels = dataset.qrels(split)
    queries = dataset.queries(set(qrels))
    snap = rt.manifest.live(tenant)
    if snap is None:
        raise RuntimeError(f"tenant {tenant} has no live snapshot: index the dataset first")
    runs = {}
    for name, overrides in variants(rt).items():
        if only and name not in only:
            continue

        def search(text: str, overrides=overrides):
            answer = rt.searcher.search(tenant, text, top_k, snapshot=snap.hash, use_cache=False,
                                        group_by=EVAL_GROUP_BY, **overrides)
            return [h.payload["doc_ids"] for h in answer.hits]

        runs[name] = run_queries(name, search, queries, qrels)
    return snap.hash, runs


def table(runs: dict[str, EvalRun]) -> str:
    head = f"{'variant':<34}" + "".join(f"{m:>12}" for m in METRICS) + f"{'p50 ms':>10}{'p95 ms':>10}"
    lines = [head, "-" * len(head)]
    for name, r in runs.items():
        lines.append(f"{name:<34}" + "".join(f"{r.metrics[m]:>12.4f}" for m in METRICS)
                     + f"{r.latency_ms['p50']:>10.1f}{r.latency_ms['p95']:>10.1f}")
    lines.append("")
    lines.append("published nDCG@10 on SciFact for reference:")
    lines.extend(f"  {k:<40}{v}" for k, v in REFERENCES.items())
    return "\n".join(lines)


def main(dataset_path: Path, split: str, tenant: str | None, out: Path | None, only: list[str] | None) -> int:
    from snapdex.settings import get_settings

    dataset = BeirDataset(dataset_path)
    tenant = tenant or f"eval-{''.join(c if c.isalnum() else '-' for c in dataset.name.lower())}"
    rt = Runtime(get_settings())
    try:
        t0 = time.perf_counter()
        snap = index_dataset(rt, dataset, tenant, progress=lambda n, total: print(
            f"\rindexing {dataset.name}: {n}/{total} documents", end="", file=sys.stderr, flush=True))
        print(f"\nsnapshot {snap[:12]} ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        snap, runs = evaluate_dataset(rt, dataset, split, tenant, only=only)
        print(f"{dataset.name} {split}: {len(next(iter(runs.values())).per_query)} queries, snapshot {snap[:12]}")
        print(table(runs))
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({
                "dataset": dataset.name, "split": split, "snapshot": snap,
                "config": rt.manifest.get(tenant, snap).config,
                "defaults": asdict(rt.pipeline.defaults),
                "runs": {n: {"metrics": r.metrics, "latency_ms": r.latency_ms} for n, r in runs.items()},
                "references_ndcg@10": REFERENCES,
            }, indent=2))
    finally:
        rt.close()
    return 0
