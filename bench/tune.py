"""Choose the late-interaction weights on a labelled split (SciFact train), through the code `/retrieve` runs.

The z-score fusion is unchanged by scaling every weight, so BM25's weight is held at 1 (plus two settings
without BM25) and the dense and windows weights are searched on a grid. Each setting runs every query of the
split through the real pipeline on the live snapshot of the data folder; query vectors are embedded once and
kept, so a setting costs the first stage and the rescoring in Qdrant. The best setting is printed with the
environment variables that make it the default; report it on the test split with `snapdex eval run`.

Usage (after `snapdex eval run --dataset ../shared/data/scifact --split train --data-dir D` indexed it):
    .venv/bin/python bench/tune.py --data-dir D [--dataset ../shared/data/scifact] [--split train]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine  # noqa: E402

DENSE = (0.0, 0.25, 0.5, 1.0)
WINDOWS = (0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def grid() -> list[tuple[float, float, float]]:
    """(dense, bm25, windows) settings."""
    return [(d, 1.0, w) for d in DENSE for w in WINDOWS] + [(0.0, 0.0, 1.0), (1.0, 0.0, 1.0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="a folder `snapdex eval run` indexed")
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    ap.add_argument("--split", default="train")
    ap.add_argument("--tenant", help="default: eval-<dataset name>")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tune-late.json")
    args = ap.parse_args()

    from eval.beir import BeirDataset
    from eval.runner import run_queries
    from retrieval.late_interaction import LateInteractionReranker, LateInteractionWeights
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    dataset = BeirDataset(args.dataset)
    tenant = args.tenant or f"eval-{''.join(c if c.isalnum() else '-' for c in dataset.name.lower())}"
    rt = Runtime(Settings(data_dir=args.data_dir))
    snap = rt.manifest.live(tenant)
    if snap is None:
        raise SystemExit(f"tenant {tenant} has no live snapshot in {args.data_dir}: run `snapdex eval run` first")
    qrels = dataset.qrels(args.split)
    queries = dataset.queries(set(qrels))
    default = rt.pipeline.rerankers["late-interaction"]

    def search(text: str) -> list[list[str]]:
        answer = rt.searcher.search(tenant, text, 100, snapshot=snap.hash, use_cache=False,
                                    first_stage="hybrid", rerank="late-interaction", rewrite="none")
        return [h.payload["doc_ids"] for h in answer.hits]

    rows = []
    started = time.perf_counter()
    try:
        for dense, bm25, windows in grid():
            weights = LateInteractionWeights(dense, bm25, windows)
            rt.pipeline.rerankers["late-interaction"] = LateInteractionReranker(weights)
            run = run_queries("late", search, queries, qrels)
            rows.append({"weights": weights.as_dict(), **{m: run.metrics[m] for m in
                                                          ("ndcg@10", "recall@10", "recall@100", "mrr@10")}})
            print(f"dense {dense:<5} bm25 {bm25:<4} windows {windows:<5} nDCG@10 {run.metrics['ndcg@10']:.4f} "
                  f"recall@10 {run.metrics['recall@10']:.4f}", flush=True)
    finally:
        rt.pipeline.rerankers["late-interaction"] = default
        rt.close()
    best = max(rows, key=lambda r: (round(r["ndcg@10"], 4), r["recall@10"]))
    w = best["weights"]
    print(f"\nbest on {dataset.name} {args.split} ({len(queries)} queries, snapshot {snap.hash[:12]}): {w}, "
          f"nDCG@10 {best['ndcg@10']:.4f}\nSNAPDEX_LATE_WEIGHT_DENSE={w['dense']} SNAPDEX_LATE_WEIGHT_BM25={w['bm25']} "
          f"SNAPDEX_LATE_WEIGHT_WINDOWS={w['windows']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "dataset": dataset.name, "split": args.split, "queries": len(queries), "snapshot": snap.hash,
        "config": snap.config, "machine": machine(), "seconds": round(time.perf_counter() - started, 1),
        "best": best, "grid": sorted(rows, key=lambda r: -r["ndcg@10"])}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
