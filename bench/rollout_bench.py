"""/retrieve latency with an interleaved rollout running, against none (issue 35: at most 1.3x at p95).

One keyed `snapdex serve` (embedded default, the real model) with two tenants holding the same first --docs SciFact
abstracts, each with two snapshots (B without the last 10 % of those documents, then A with them, live). Tenant
`rolled` runs an interleaved rollout of B against A on all of its traffic (steps [1.0], a min_feedback no run
reaches); tenant `plain` runs none. The result cache is off, so every request runs the retrieval (an interleaved one
runs it on both snapshots). Two measurements, from one client (httpx, keep-alive), the tenants in turns:

- `as_sent`: requests as a chat backend sends them: every SciFact query (train and test) asked once, by one tenant
  (alternating), so each request embeds its query with the model, once, whatever the arms.
- `vectors_cached`: the worst case for the ratio: the 300 test queries, their vectors made by a first pass over both
  tenants, then --passes times each query on both tenants one right after the other, the order alternating. What
  is compared is the retrieval and the interleaving alone.

Reported: p50/p95 client-side milliseconds of each and their ratios.

Usage: .venv/bin/python bench/rollout_bench.py [--docs 1000] [--passes 3] [--out bench/results/rollout.json]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, percentiles, scifact_bench, snapdex_serve, write_result  # noqa: E402
from harness.procs import key_for  # noqa: E402

TENANTS = ("plain", "rolled")
TOP_K = 8


def _ingest(svc, tenant: str, docs: list[dict]) -> str:
    headers = {"Authorization": f"Bearer {key_for(tenant)}"}
    job = svc.client.post("/ingest", json={"documents": docs}, headers=headers)
    job.raise_for_status()
    done = svc.wait_job(job.json()["job_id"], timeout=3600, headers=headers)
    if done["status"] != "succeeded":
        raise SystemExit(f"ingest failed: {done}")
    return done["snapshot"]


class Asker:
    """One keep-alive client per tenant; ask() times one /retrieve at the client."""

    def __init__(self, url: str) -> None:
        self.clients = {t: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_for(t)}"},
                                        timeout=120) for t in TENANTS}
        self.times: dict[str, list[float]] = {t: [] for t in TENANTS}

    def ask(self, tenant: str, q: str, record: bool = True) -> None:
        started = time.perf_counter()
        r = self.clients[tenant].post("/retrieve", json={"query": q, "top_k": TOP_K})
        took = (time.perf_counter() - started) * 1000
        r.raise_for_status()
        if (r.json()["rollout"] is not None) != (tenant == "rolled"):
            raise SystemExit(f"tenant {tenant} answered with rollout {r.json()['rollout']}")
        if record:
            self.times[tenant].append(took)

    def result(self) -> dict:
        for c in self.clients.values():
            c.close()
        plain, rolled = percentiles(self.times["plain"]), percentiles(self.times["rolled"])
        return {"no_rollout_ms": plain, "interleaved_ms": rolled,
                "ratio": {"p50": round(rolled["p50"] / plain["p50"], 2),
                          "p95": round(rolled["p95"] / plain["p95"], 2)}}


def measure_as_sent(url: str, queries: list[str]) -> dict:
    """Each query once, by one tenant, the tenants in turns: every request embeds a query the server has not seen."""
    asker = Asker(url)
    for i, q in enumerate(queries):
        asker.ask(TENANTS[i % 2], q)
    return asker.result()


def measure_cached(url: str, queries: list[str], passes: int) -> dict:
    asker = Asker(url)
    for q in queries:  # each query's vector made once, outside the timing
        for t in TENANTS:
            asker.ask(t, q, record=False)
    for p in range(passes):
        for i, q in enumerate(queries):
            for t in (TENANTS if (i + p) % 2 == 0 else TENANTS[::-1]):
                asker.ask(t, q)
    return asker.result()


def main() -> int:
    args, docs, ds, queries = scifact_bench(__doc__, REPO / "bench" / "results" / "rollout.json")
    test = set(queries)
    fresh = list(dict.fromkeys(queries + [q for q in ds.queries(set(ds.qrels("train"))).values() if q not in test]))
    cut = len(docs) * 9 // 10
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp, \
            snapdex_serve(Path(tmp) / "data", tenants=TENANTS, SNAPDEX_RATE_LIMIT_RETRIEVE="",
                          SNAPDEX_GATE_FLOORS="{}", SNAPDEX_RESULT_CACHE_SIZE="0") as svc:
        snaps = {t: (_ingest(svc, t, docs[:cut]), _ingest(svc, t, docs[cut:])) for t in TENANTS}
        b, _ = snaps["rolled"]
        r = svc.client.post("/rollouts", json={"candidate": b, "mode": "interleave", "steps": [1.0],
                                               "min_feedback": 1_000_000},
                            headers={"Authorization": f"Bearer {key_for('rolled')}"})
        r.raise_for_status()
        load_before = os.getloadavg()[0]
        as_sent = {"queries": len(fresh), **measure_as_sent(svc.url, fresh)}
        cached = {"queries": len(queries), "passes": args.passes, **measure_cached(svc.url, queries, args.passes)}
        load_after = os.getloadavg()[0]
    write_result(args.out, {
        "what": "POST /retrieve with an interleaved rollout running (two snapshots searched, team-draft merged) "
                "against no rollout, result cache off, the real model; as_sent: every request a query not seen "
                "before; vectors_cached: query vectors made beforehand (retrieval alone); client-side milliseconds",
        "machine": machine(), "documents": len(docs), "top_k": TOP_K, "as_sent": as_sent, "vectors_cached": cached,
        "load_average_1m": [round(load_before, 2), round(load_after, 2)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
