"""Choose the global defaults by a protocol that does not fit one dataset, and score them where the choice was not
made.

A. Search: the stage parameters on SciFact train, by the coordinate search the per-tenant tuner runs (starting from
   today's defaults; a gain under 0.002 is a tie that keeps today's value), with a k-fold estimate of the search.
B. Long queries: whether queries longer than T word pieces should get other late-interaction weights. Scored on the
   development splits of every shape at once (SciFact train, pydocs-passages dev: paragraph-long queries,
   pydocs-docstrings dev: docstrings), each rule (T, weights) against A's choice for every query: the rule kept is
   the one with the best mean gain over the sets that costs no set more than 0.002, ties (within 0.001) going to
   the smaller change (no rule at all first, then a higher threshold, then weights nearer the short ones).
C. Report: today's defaults, A's choice, and A + B (the new defaults, run as one configuration), on every split:
   the test splits were seen by neither A nor B.

Every configuration answers through the code `/retrieve` runs, on each dataset's live snapshot in the data folder
(indexed here first, as `snapdex eval run` does; vectors come from the embedding cache when it was done before).

Usage:
    .venv/bin/python bench/tune.py --data-dir D [--scifact ../shared/data/scifact]
        [--heldout bench/data/pydocs-passages bench/data/pydocs-docstrings] [--folds 5]
    .venv/bin/python bench/tune.py --data-dir D --configs '{"late_windows": 0.5}' '{"rerank": "none"}'  # score these
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
HELDOUT = (REPO / "bench" / "data" / "pydocs-passages", REPO / "bench" / "data" / "pydocs-docstrings")
THRESHOLDS = (256, 128, 64)  # word pieces; higher first: a rule that touches fewer queries is the smaller change
# Windows 0 leaves a z-score fusion of the two first-stage legs: late interaction without its windows, which is
# what a paragraph that matches whole chunks may want.
LONG_WEIGHTS = [(d, 1.0, w) for d in (0.25, 0.5, 1.0, 1.5) for w in (1.0, 0.5, 0.0)]
MAX_LOSS = 0.002  # no set may lose more than this against A's choice
TIE = 0.001


def tenant_of(dataset) -> str:
    return f"eval-{''.join(c if c.isalnum() else '-' for c in dataset.name.lower())}"


def long_rule(dev: dict, base: dict, tokens: dict, candidates: dict) -> dict:
    """B: the rule (threshold, weights) by the protocol above. `dev[name](config)` gives per-query nDCG@10,
    `tokens[name]` each query's word pieces, `candidates` weights -> config."""
    base_scores = {name: dev[name](base) for name in dev}
    rows = [{"threshold": 0, "weights": None, "gains": {n: 0.0 for n in dev}, "mean_gain": 0.0}]
    for t, (w, cfg) in itertools.product(THRESHOLDS, candidates.items()):
        gains = {}
        for name, scores in dev.items():
            long = tokens[name] > t
            gains[name] = float(np.where(long, scores(cfg), base_scores[name]).mean() - base_scores[name].mean())
        rows.append({"threshold": t, "weights": w, "gains": gains, "mean_gain": float(np.mean(list(gains.values())))})
    allowed = [r for r in rows if min(r["gains"].values()) >= -MAX_LOSS]
    best = max(r["mean_gain"] for r in allowed)
    # The smaller change among the ties: rows are in that order already (none, then high thresholds first, then
    # weights nearer the short ones), so the first row within the tie wins.
    chosen = next(r for r in allowed if r["mean_gain"] >= best - TIE)
    return {"chosen": chosen, "rows": sorted(rows, key=lambda r: -r["mean_gain"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--scifact", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    ap.add_argument("--heldout", type=Path, nargs="*", default=list(HELDOUT))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--configs", nargs="*", default=None,
                    help="JSON stage overrides to score beside today's defaults, instead of A and B")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tune-defaults.json")
    ap.add_argument("--reuse-search", type=Path, default=None,
                    help="take A from this earlier result (same snapshot and embedding model only) and run B and C")
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
        runners: dict[str, TrialRunner] = {}

        def runner(ds, split: str) -> TrialRunner:
            key = f"{ds.name} {split}"
            if key not in runners:
                qrels = ds.qrels(split)
                runners[key] = TrialRunner(rt.searcher, tenant_of(ds), snapshots[ds.name], ds.queries(set(qrels)),
                                           qrels, rt.settings.eval_ks)
            return runners[key]

        p = rt.pipeline
        space: SearchSpace = search_space(p.defaults, list(p.rerankers), list(p.rewriters))
        # Today's defaults as one full configuration (the long-query rule included, whatever the settings say).
        today = {**space.start(vars(p.defaults)), **{k: getattr(p.defaults, k) for k in
                                                      ("late_long_tokens", "late_long_dense", "late_long_bm25",
                                                       "late_long_windows")}}
        train = runner(datasets[0], "train")
        out: dict = {"machine": machine(), "embedding": rt.embedder.model_id, "defaults": today,
                     "snapshots": snapshots}
        if args.configs is None and args.reuse_search is not None:
            # A is deterministic given the snapshot and the model: an earlier run on the same ones is reused as is.
            earlier = json.loads(args.reuse_search.read_text())
            if (earlier["snapshots"].get(datasets[0].name) != snapshots[datasets[0].name]
                    or earlier["embedding"] != rt.embedder.model_id):
                raise SystemExit(f"{args.reuse_search}: its search ran on another snapshot or model; run A again")
            out["search"] = {**earlier["search"], "reused_from": str(args.reuse_search)}
            chosen = {**today, **{k: v for k, v in earlier["search"]["chosen"].items() if not k.startswith("late_long")}}
        elif args.configs is None:
            t0 = time.perf_counter()
            chosen = {**today, **coordinate_search(space.start(today), space, lambda c: float(train({**today, **c}).mean()))}
            cv = cross_validate(lambda c: train({**today, **c}), len(train.qids), space.start(today), space,
                                folds=args.folds)
            out["search"] = {"seconds": round(time.perf_counter() - t0, 1), "configurations": len(train.per_query),
                             "chosen": chosen, "cv_ndcg@10": float(cv.heldout.mean()), "folds_chosen": cv.chosen}
        if args.configs is None:
            a = out["search"]
            reused = f" (reused from {a['reused_from']})" if "reused_from" in a else ""
            print(f"A. search on {datasets[0].name} train{reused}: {a['configurations']} configurations, "
                  f"{a['seconds']} s; chosen {chosen}; {args.folds}-fold held-out nDCG@10 {a['cv_ndcg@10']:.4f} (today's defaults in "
                  f"sample: {train.metrics(today)['ndcg@10']:.4f})", flush=True)

            base = {**chosen, "late_long_tokens": 0}
            dev = {"scifact train": train}
            dev.update({f"{ds.name} dev": runner(ds, "dev") for ds in datasets[1:] if "dev" in ds.splits()})
            tokens = {name: np.array(rt.embedder.count_tokens([r.queries[q] for q in r.qids])) for name, r in dev.items()}
            candidates = {w: {**base, "late_dense": w[0], "late_bm25": w[1], "late_windows": w[2]} for w in LONG_WEIGHTS}
            rule = long_rule({n: (lambda c, r=r: r(c)) for n, r in dev.items()}, base, tokens, candidates)
            out["long_queries"] = rule
            c = rule["chosen"]
            print(f"B. long queries: threshold {c['threshold']} word pieces, weights {c['weights']}, gains "
                  + ", ".join(f"{n} {g:+.4f}" for n, g in c["gains"].items()), flush=True)
            final = dict(base)
            if c["weights"] is not None:
                d, b, w = c["weights"]
                final.update(late_long_tokens=c["threshold"], late_long_dense=d, late_long_bm25=b, late_long_windows=w)
            candidates = {"today's defaults": today, "A: searched on SciFact train": base, "A + B: new defaults": final}
        else:
            candidates = {"today's defaults": today}
            for c in args.configs:
                candidates[c] = {**today, **json.loads(c)}
        splits = [(datasets[0], "train"), (datasets[0], "test")]
        splits += [(ds, s) for ds in datasets[1:] for s in ds.splits()]
        table = {}
        for ds, split in splits:
            r = runner(ds, split)
            for name, cfg in candidates.items():
                m = r.metrics(cfg)
                table.setdefault(f"{ds.name} {split}", {})[name] = {k: m[k] for k in METRICS}
                print(f"{ds.name + ' ' + split:<26} {name:<30} " + "  ".join(f"{k} {m[k]:.4f}" for k in METRICS),
                      flush=True)
        out["candidates"] = candidates
        out["keys"] = {name: config_key(cfg) for name, cfg in candidates.items()}
        out["table"] = table
        out["seconds"] = round(time.perf_counter() - started, 1)
        write_result(args.out, out, echo=False)
    finally:
        rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
