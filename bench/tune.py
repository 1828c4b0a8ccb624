"""Choose the global defaults by a protocol that does not fit one dataset: search the stage parameters on SciFact
train (the same coordinate search the per-tenant tuner runs, starting from today's defaults, ties going to the
default's value), estimate the search by k-fold cross-validation on train, then score today's defaults and the
train choice on data the search never saw: SciFact test and the held-out query sets of other shapes
(bench/data/pydocs-passages: paragraph-long queries; bench/data/pydocs-docstrings: docstrings against the library
reference). A change of default is worth making only where it holds there too.

Every configuration answers through the code `/retrieve` runs, on each dataset's live snapshot in the data folder
(indexed here first, as `snapdex eval run` does; vectors come from the embedding cache when it was done before).

Usage:
    .venv/bin/python bench/tune.py --data-dir D [--scifact ../shared/data/scifact]
        [--heldout bench/data/pydocs-passages bench/data/pydocs-docstrings] [--folds 5]
    .venv/bin/python bench/tune.py --data-dir D --configs '{"late_windows": 0.5}' '{"rerank": "none"}'  # score these
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

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
HELDOUT = (REPO / "bench" / "data" / "pydocs-passages", REPO / "bench" / "data" / "pydocs-docstrings")


def tenant_of(dataset) -> str:
    return f"eval-{''.join(c if c.isalnum() else '-' for c in dataset.name.lower())}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--scifact", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    ap.add_argument("--heldout", type=Path, nargs="*", default=list(HELDOUT))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--configs", nargs="*", default=None,
                    help="JSON stage overrides to score beside today's defaults, instead of searching")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tune-defaults.json")
    args = ap.parse_args()

    from eval.beir import BeirDataset
    from eval.tuning import SearchSpace, config_key, coordinate_search, cross_validate
    from index_snapshots.tuning import TrialRunner, search_space
    from snapdex.evaluate import index_dataset
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    rt = Runtime(Settings(data_dir=args.data_dir))
    started = time.perf_counter()
    try:
        datasets = [BeirDataset(args.scifact), *(BeirDataset(p) for p in args.heldout)]
        snapshots = {}
        for ds in datasets:
            t0 = time.perf_counter()
            snapshots[ds.name] = index_dataset(rt, ds, tenant_of(ds))
            print(f"{ds.name}: snapshot {snapshots[ds.name][:12]} ({time.perf_counter() - t0:.0f} s)", flush=True)
        rt.warm_up()

        def runner(ds, split: str) -> TrialRunner:
            qrels = ds.qrels(split)
            return TrialRunner(rt.searcher, tenant_of(ds), snapshots[ds.name], ds.queries(set(qrels)), qrels,
                               rt.settings.eval_ks)

        p = rt.pipeline
        space: SearchSpace = search_space(p.defaults, list(p.rerankers), list(p.rewriters))
        today = space.start(vars(p.defaults))
        train = runner(datasets[0], "train")
        out: dict = {"machine": machine(), "defaults": today, "snapshots": snapshots}
        if args.configs is None:
            t0 = time.perf_counter()
            chosen = coordinate_search(today, space, lambda c: float(train(c).mean()))
            cv = cross_validate(train, len(train.qids), today, space, folds=args.folds)
            out["search"] = {"seconds": round(time.perf_counter() - t0, 1), "configurations": len(train.per_query),
                             "chosen": chosen, "cv_ndcg@10": float(cv.heldout.mean()), "folds_chosen": cv.chosen}
            print(f"search on {datasets[0].name} train: {len(train.per_query)} configurations, "
                  f"{out['search']['seconds']} s; chosen {chosen}; {args.folds}-fold held-out nDCG@10 "
                  f"{cv.heldout.mean():.4f} (today's defaults in sample: {train.metrics(today)['ndcg@10']:.4f})",
                  flush=True)
            candidates = {"today's defaults": today, "chosen on SciFact train": chosen}
        else:
            candidates = {"today's defaults": today}
            for c in args.configs:
                overrides = json.loads(c)
                candidates[c] = {**today, **overrides}
        splits = [(datasets[0], "train"), (datasets[0], "test")]
        splits += [(ds, s) for ds in datasets[1:] for s in ds.splits()]
        table = {}
        for ds, split in splits:
            r = train if (ds is datasets[0] and split == "train") else runner(ds, split)
            for name, cfg in candidates.items():
                m = r.metrics(cfg)
                table.setdefault(f"{ds.name} {split}", {})[name] = {k: m[k] for k in METRICS}
                print(f"{ds.name + ' ' + split:<26} {name:<28} " + "  ".join(f"{k} {m[k]:.4f}" for k in METRICS),
                      flush=True)
        out["candidates"] = {name: cfg for name, cfg in candidates.items()}
        out["keys"] = {name: config_key(cfg) for name, cfg in candidates.items()}
        out["table"] = table
        out["seconds"] = round(time.perf_counter() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
    finally:
        rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
