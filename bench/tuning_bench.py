"""Self-tuning on SciFact: the train split is the tenant's labelled query set, the tuner searches its retrieval
profile (k-fold cross-validation, adopted only past the paired bootstrap), and the test split, which the tuner never
sees, scores the tuned profile against the global default. Also the time the tuning took.

It runs the service's own code in process on a data folder (the tenant gets its own snapshot of the corpus; vectors
come from the embedding cache when `snapdex eval run` indexed SciFact there before):
    .venv/bin/python bench/tuning_bench.py --data-dir D [--dataset ../shared/data/scifact] [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    ap.add_argument("--tenant", default="tune-scifact")
    ap.add_argument("--train", default="train")
    ap.add_argument("--test", default="test")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tuning-scifact.json")
    args = ap.parse_args()

    from eval.beir import BeirDataset
    from eval.profiles import Profile
    from eval.runner import run_queries
    from eval.store import LabelledQuery
    from index_snapshots.tuning import TuningRequest
    from snapdex.evaluate import index_dataset
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    dataset = BeirDataset(args.dataset)
    rt = Runtime(Settings(data_dir=args.data_dir))
    try:
        t0 = time.perf_counter()
        snap = index_dataset(rt, dataset, args.tenant)
        print(f"snapshot {snap[:12]} of {args.tenant} ready in {time.perf_counter() - t0:.1f} s", flush=True)
        rt.warm_up()
        train = dataset.qrels(args.train)
        texts = dataset.queries(set(train))
        labelled = [LabelledQuery(q, texts[q], rel) for q, rel in train.items() if q in texts]
        ref, _ = rt.evals.put_query_set(args.tenant, f"{dataset.name}-{args.train}", labelled)
        before = rt.profiles.live(args.tenant)
        run = rt.profiles.create_tuning(args.tenant, TuningRequest(query_sets=(ref.name,), folds=args.folds).as_dict())
        t0 = time.perf_counter()
        result = rt.tuner.run(args.tenant, run.id)
        seconds = time.perf_counter() - t0
        print(f"tuning: {result['decision']} in {seconds:.1f} s, {result['configurations']} configurations: "
              f"{result['reason']}", flush=True)

        test = dataset.qrels(args.test)
        test_texts = dataset.queries(set(test))
        tuned = Profile(args.tenant, -1, result["params"])
        rows = {}
        for name, profile in (("global default", Profile(args.tenant, 0)), ("tuned on train", tuned)):
            def search(text: str, profile=profile):
                answer = rt.searcher.search(args.tenant, text, 100, snapshot=snap, use_cache=False, profile=profile)
                return [h.payload["doc_ids"] for h in answer.hits]

            r = run_queries(name, search, test_texts, test)
            rows[name] = {"metrics": {m: r.metrics[m] for m in METRICS}, "latency_ms": r.latency_ms}
            print(f"{name:<16} " + "  ".join(f"{m} {r.metrics[m]:.4f}" for m in METRICS), flush=True)
        # The bench tenant goes back to the profile it had: a later run starts from the same place.
        if rt.profiles.live(args.tenant).version != before.version:
            rt.profiles.activate(args.tenant, before.version, action="manual")
        write_result(args.out, {"dataset": dataset.name, "train": args.train, "test": args.test, "snapshot": snap,
                                "machine": machine(), "tuning_seconds": round(seconds, 1), "tuning": result,
                                "test_split": rows}, echo=False)
    finally:
        rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
