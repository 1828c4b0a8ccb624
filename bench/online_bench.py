"""Staged rollouts decided online, simulated on SciFact: how often the sequential test decides right, how often an
A/A rollout is stopped, and how many feedback events a decision takes, for interleaving and for a canary split.

Rankings are snapdex's own: SciFact indexed in process (as `snapdex eval run` does) into two tenants, the whole
corpus and the corpus missing every third document, each queried with the service's default pipeline for the 300
test queries. They are computed once and cached (--work); the simulation then replays simulated users (the cascade
click model of online/click_model.py, relevance from the test qrels) over them, exactly as a rollout would see
them, and decides with online/sequential.py after every feedback event.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python bench/online_bench.py [--rollouts 200] [--work /tmp/snapdex-online-bench]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402
from online.click_model import ClickModel  # noqa: E402
from online.interleave import outcome, team_draft  # noqa: E402
from online.sequential import CanaryCounts, InterleaveCounts, decide  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
FULL, PARTIAL = "online-full", "online-partial"
DEPTH = 20  # documents kept per ranking: enough for team-draft to fill the shown k from either arm


def corpus(tenant: str) -> list[dict]:
    from eval.beir import BeirDataset

    docs = list(BeirDataset(SCIFACT).documents())
    # Every third document left out, by position in the corpus file: a fixed third, spread over every topic.
    return docs if tenant == FULL else [d for i, d in enumerate(docs) if i % 3 != 2]


def build_rankings(work: Path, tenant: str) -> dict:
    """query id -> doc ids, best first, from the tenant's index; indexes its corpus on the first call (the whole
    corpus takes long on a busy machine; the partial one reuses the embedding cache)."""
    from eval.beir import BeirDataset
    from eval.runner import doc_ranking
    from index_snapshots.evaluation import EVAL_GROUP_BY
    from index_snapshots.service import run_ingest_job
    from ingest.jobs import NewDocument
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    dataset = BeirDataset(SCIFACT)
    queries = dataset.queries(set(dataset.qrels("test")))
    docs = corpus(tenant)
    rt = Runtime(Settings(data_dir=work / "data"))
    try:
        if rt.manifest.live(tenant) is None:
            started = time.perf_counter()
            for i in range(0, len(docs), 1000):
                part = docs[i: i + 1000]
                job = rt.jobs.create(tenant, [NewDocument(d["id"], d["text"].encode("utf-8"), d["metadata"])
                                              for d in part])
                run_ingest_job(rt.ingestor, rt.jobs, job, access=rt.access_sync)
                print(f"{tenant}: {i + len(part)}/{len(docs)} documents", file=sys.stderr, flush=True)
            rt.snapshots.build_pending(tenant)
            print(f"{tenant}: indexed in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        snap = rt.manifest.live(tenant).hash
        rankings = {qid: doc_ranking([h.payload["doc_ids"] for h in rt.searcher.search(
                        tenant, text, DEPTH, snapshot=snap, use_cache=False, group_by=EVAL_GROUP_BY).hits])[:DEPTH]
                    for qid, text in queries.items()}
        return {"rankings": rankings, "snapshot": snap, "documents": len(docs),
                "pipeline": dict(vars(rt.pipeline.defaults))}
    finally:
        rt.close()


def cached_rankings(work: Path, tenants: set[str]) -> dict:
    """The rankings of these tenants, each built once and kept in `work`."""
    from eval.beir import BeirDataset

    out: dict = {"rankings": {}, "documents": {}, "snapshots": {}, "qrels": BeirDataset(SCIFACT).qrels("test")}
    for tenant in sorted(tenants):
        path = work / f"rankings-{tenant}.json"
        if not path.exists():
            work.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(build_rankings(work, tenant)))
        built = json.loads(path.read_text())
        out["rankings"][tenant], out["documents"][tenant] = built["rankings"], built["documents"]
        out["snapshots"][tenant], out["pipeline"] = built["snapshot"], built["pipeline"]
    return out


# (name, live index, candidate index, the right decision)
PAIRINGS = {"worse": ("worse candidate (a third of the documents missing)", FULL, PARTIAL, "stopped"),
            "better": ("better candidate (the reverse pairing)", PARTIAL, FULL, "promoted"),
            "aa": ("A/A (candidate = live)", FULL, FULL, "not stopped")}
RULE = {"min_feedback": 200, "max_regression": 0.02, "confidence": 0.95}
STEPS = (0.1, 0.5, 1.0)


def rollout(mode: str, live: dict, candidate: dict, qrels: dict, seed: int, cap: int, k: int) -> tuple[str, int]:
    """One staged rollout as the service runs it: a simulated user answers each answer, the test is checked after
    each feedback event on the rollout's counts so far (min_feedback new events per step), an advance at the last
    step promotes. An answer whose user gave no signal and no rating sends no feedback and is no event. Returns
    the end ("promoted", "stopped", or "undecided" at `cap` events) and the feedback events it took. Canary
    answers go to the candidate with the step's share (users are alike here, so a random answer stands for a
    sticky session); interleaved answers are every answer of the share."""
    rng, users = random.Random(seed), ClickModel(seed=seed)
    qids = sorted(qrels)
    step = step_events = 0
    wins = losses = ties = c_s = c_n = l_s = l_n = 0
    events = answers = 0
    # Users who never report anything would leave a rollout waiting for ever: give up after 50 answers per event.
    while events < cap and answers < 50 * cap:
        answers += 1
        qid = qids[rng.randrange(len(qids))]
        if mode == "interleave":
            shown = team_draft(live[qid], candidate[qid], k, rng)
            feedback = users.respond([doc for doc, _ in shown], qrels[qid])
        else:
            to_candidate = rng.random() < STEPS[step]
            feedback = users.respond((candidate if to_candidate else live)[qid][:k], qrels[qid])
        if not feedback.reported():
            continue
        events += 1
        if mode == "interleave":
            won = outcome(shown[rank][1] for rank in feedback.positive_ranks())
            wins, losses, ties = wins + (won == "candidate"), losses + (won == "live"), ties + (won == "tie")
            counts: InterleaveCounts | CanaryCounts = InterleaveCounts(wins, losses, ties)
        elif to_candidate:
            c_s, c_n = c_s + feedback.positive(), c_n + 1
            counts = CanaryCounts(c_s, c_n, l_s, l_n)
        else:
            l_s, l_n = l_s + feedback.positive(), l_n + 1
            counts = CanaryCounts(c_s, c_n, l_s, l_n)
        step_events += 1
        action = decide(counts, **RULE, step_events=step_events).action
        if action == "stop":
            return "stopped", events
        if action == "advance":
            step, step_events = step + 1, 0
            if step == len(STEPS):
                return "promoted", events
    return "undecided", events


def measure(pairing: tuple[str, str, str, str], mode: str, data: dict, rollouts: int, cap: int, k: int) -> dict:
    name, live, candidate, right = pairing
    qrels = {q: r for q, r in data["qrels"].items() if q in data["rankings"][live]}
    started = time.perf_counter()
    ends = [rollout(mode, data["rankings"][live], data["rankings"][candidate], qrels, seed, cap, k)
            for seed in range(rollouts)]
    decided = [events for end, events in ends if end != "undecided"]
    tally = {end: sum(e == end for e, _ in ends) for end in ("promoted", "stopped", "undecided")}
    correct = rollouts - tally["stopped"] if right == "not stopped" else tally[right]
    row = {"pairing": name, "mode": mode, "right": right, **tally, "correct_rate": correct / rollouts,
           "false_stop_rate": tally["stopped"] / rollouts if live == candidate else None,
           "median_events_to_decision": statistics.median(decided) if decided else None,
           "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def simulate(data: dict, pairings: list[str], rollouts: int, cap: int, k: int, jobs: int) -> list[dict]:
    """Each (pairing, mode), in `jobs` processes (each rollout is seeded: the figures do not depend on it)."""
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(PAIRINGS[p], mode) for p in pairings for mode in ("interleave", "canary")]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(measure, pairing, mode, data, rollouts, cap, k) for pairing, mode in tasks]
        return [f.result() for f in futures]


def offline_quality(data: dict, k: int) -> dict:
    from eval.metrics import evaluate

    out = {}
    for tenant, run in data["rankings"].items():
        qrels = {q: r for q, r in data["qrels"].items() if q in run}
        out[tenant] = {m: round(v, 4) for m, v in evaluate(qrels, run, ks=(k,), ndcg_k=k)[0].items()
                       if m in (f"ndcg@{k}", f"recall@{k}")}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| pairing | mode | right decision | correct | promoted / stopped / undecided | "
             "median feedback events to a decision |", "|---|---|---|---|---|---|"]
    for r in rows:
        median = "-" if r["median_events_to_decision"] is None else f"{r['median_events_to_decision']:.0f}"
        lines.append(f"| {r['pairing']} | {r['mode']} | {r['right']} | {r['correct_rate']:.1%} | "
                     f"{r['promoted']} / {r['stopped']} / {r['undecided']} | {median} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--work", type=Path, default=Path("/tmp/snapdex-online-bench"))
    p.add_argument("--rollouts", type=int, default=200)
    p.add_argument("--cap", type=int, default=15_000, help="feedback events after which a rollout is undecided")
    p.add_argument("--k", type=int, default=10, help="hits shown per answer")
    p.add_argument("--pairings", default="worse,better,aa", help="of worse, better, aa (comma-separated)")
    p.add_argument("--jobs", type=int, default=1, help="processes the simulation runs in")
    p.add_argument("--rankings-only", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "online.json")
    args = p.parse_args()
    pairings = [name.strip() for name in args.pairings.split(",") if name.strip()]
    if not pairings or set(pairings) - set(PAIRINGS):
        raise SystemExit(f"--pairings: choose from {', '.join(PAIRINGS)}; got {args.pairings!r}")
    data = cached_rankings(args.work, {t for name in pairings for t in PAIRINGS[name][1:3]})
    quality = offline_quality(data, args.k)
    print(machine(), data["documents"], quality, file=sys.stderr)
    if args.rankings_only:
        return 0
    rows = simulate(data, pairings, args.rollouts, args.cap, args.k, args.jobs)
    settings = {"rollouts": args.rollouts, "cap_events": args.cap, "k": args.k, "rule": RULE, "steps": list(STEPS)}
    # A run of some pairings keeps the rows of the others from an earlier run with the same settings and indexes.
    if args.out.exists():
        earlier = json.loads(args.out.read_text())
        if {key: earlier.get(key) for key in settings} == settings and all(
                earlier.get("snapshots", {}).get(t, h) == h for t, h in data["snapshots"].items()):
            done = {(r["pairing"], r["mode"]) for r in rows}
            rows = [r for r in earlier["rows"] if (r["pairing"], r["mode"]) not in done] + rows
            quality = {**earlier.get("offline", {}), **quality}
            data["snapshots"] = {**earlier.get("snapshots", {}), **data["snapshots"]}
            data["documents"] = {**earlier.get("documents", {}), **data["documents"]}
    order = [PAIRINGS[name][0] for name in PAIRINGS]
    rows.sort(key=lambda r: (order.index(r["pairing"]), r["mode"] != "interleave"))
    print(table(rows))
    write_result(args.out, {"machine": machine(), **settings, "pipeline": data["pipeline"],
                            "documents": data["documents"], "snapshots": data["snapshots"], "offline": quality,
                            "rows": rows}, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
