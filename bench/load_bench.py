"""Load test: 8 concurrent clients on `/retrieve` for 60 s while an ingest and a rebuild run.

One `snapdex serve` (embedded default, real MiniLM, result cache off so every request does the whole work) on a
fresh data folder. It is seeded with a slice of SciFact and a labelled query set (so the rebuild under load is
also evaluated by the gate), then:

- 8 asyncio clients (httpx) send SciFact test queries back to back for --seconds;
- a few seconds in, another slice of SciFact is ingested over HTTP: parsing, chunking, embedding, the snapshot
  build, the gate's evaluation and the switch of the live snapshot all happen while the clients run.

Webhooks too: a receiver on loopback subscribed to every event type, and a webhook.test event sent every
--event-every seconds during the load: the delivery latency from an event's `created_at` to its arrival is reported
(p50/p95), with the events seen.

Reported: requests, errors (any non-200 or transport error), throughput, p50/p95/p99, which snapshots answered,
the ingest job's timeline and the webhook delivery latency. Usage:

    .venv/bin/python bench/load_bench.py [--seconds 60] [--clients 8] [--base-docs 300] [--new-docs 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, snapdex_serve, write_result  # noqa: E402
from eval.beir import BeirDataset  # noqa: E402
from notify import EVENT_TYPES  # noqa: E402
from harness.procs import auth, wait_until  # noqa: E402
from harness.receiver import Receiver  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
H = auth("load")


def pct(ms: list[float]) -> dict[str, float]:
    a = np.array(ms) if ms else np.zeros(1)
    return {q: round(float(np.percentile(a, int(q[1:]))), 2) for q in ("p50", "p95", "p99")} | {"n": len(ms)}


def seed(svc, docs: list[dict], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict:
    job = svc.client.post("/ingest", json={"documents": docs}, headers=H)
    job.raise_for_status()
    view = svc.wait_job(job.json()["job_id"], timeout=1800, headers=H)
    if view["status"] != "succeeded":
        raise SystemExit(f"seeding failed: {view}")
    in_corpus = {d["id"] for d in docs}
    labelled = [{"id": q, "text": queries[q], "relevant": sorted(rel)} for q, rel in qrels.items()
                if q in queries and set(rel) & in_corpus]
    r = svc.client.post("/eval/query-sets", json={"name": "scifact-slice", "queries": labelled}, headers=H)
    r.raise_for_status()
    wait_until(lambda: any(x["status"] == "done" for x in svc.client.get("/eval/runs", headers=H).json()["runs"]),
               600, "the query set's first run")
    return {"snapshot": view["snapshot"], "labelled_queries": len(labelled)}


async def clients(url: str, texts: list[str], n: int, seconds: float, log: list) -> None:
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=H, timeout=30) as c:
            k = i
            while time.monotonic() < deadline:
                q = texts[k % len(texts)]
                k += n
                t0 = time.perf_counter()
                try:
                    r = await c.post("/retrieve", json={"query": q, "top_k": 10})
                    ok = r.status_code == 200
                    log.append((time.monotonic(), (time.perf_counter() - t0) * 1000, r.status_code,
                                r.json().get("snapshot") if ok else r.text[:200]))
                except httpx.HTTPError as e:
                    log.append((time.monotonic(), (time.perf_counter() - t0) * 1000, 0, f"{type(e).__name__}: {e}"))

    await asyncio.gather(*(one(i) for i in range(n)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--base-docs", type=int, default=300)
    p.add_argument("--new-docs", type=int, default=40)
    p.add_argument("--ingest-after", type=float, default=5, help="seconds into the load before the ingest starts")
    p.add_argument("--event-every", type=float, default=0.5, help="seconds between webhook.test events under load")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    args = p.parse_args()

    data = BeirDataset(SCIFACT)
    docs = list(data.documents())
    base, new = docs[: args.base_docs], docs[args.base_docs: args.base_docs + args.new_docs]
    qrels = data.qrels("test")
    queries = data.queries(set(qrels))
    texts = list(queries.values())

    receiver = Receiver().start()
    with tempfile.TemporaryDirectory() as tmp, \
            snapdex_serve(Path(tmp) / "data", log_level="warning", tenants=("load",), SNAPDEX_RESULT_CACHE_SIZE="0",
                          SNAPDEX_RATE_LIMIT_RETRIEVE="", SNAPDEX_WEBHOOK_ALLOW_PRIVATE="true") as svc:
        hook = svc.client.post("/webhooks", json={"url": receiver.url, "events": list(EVENT_TYPES)}, headers=H)
        hook.raise_for_status()
        hook_id = hook.json()["id"]
        t0 = time.perf_counter()
        seeded = seed(svc, base, queries, qrels)
        seed_s = time.perf_counter() - t0
        print(f"seeded {len(base)} documents, snapshot {seeded['snapshot'][:12]}, "
              f"{seeded['labelled_queries']} labelled queries, in {seed_s:.0f} s", file=sys.stderr)

        log: list = []
        job_timeline: dict = {}

        async def events() -> None:
            async with httpx.AsyncClient(base_url=svc.url, headers=H, timeout=30) as c:
                deadline = time.monotonic() + args.seconds
                while time.monotonic() < deadline:
                    (await c.post(f"/webhooks/{hook_id}/test")).raise_for_status()
                    await asyncio.sleep(args.event_every)

        async def run() -> None:
            load = asyncio.create_task(clients(svc.url, texts, args.clients, args.seconds, log))
            tests = asyncio.create_task(events())
            await asyncio.sleep(args.ingest_after)
            async with httpx.AsyncClient(base_url=svc.url, headers=H, timeout=120) as c:
                r = await c.post("/ingest", json={"documents": new})
                job_id = r.json()["job_id"]
                job_timeline["submitted"] = time.monotonic()
                while not load.done():
                    view = (await c.get(f"/jobs/{job_id}")).json()
                    job_timeline.setdefault(f"phase:{view['phase']}", time.monotonic())
                    if view["status"] in ("succeeded", "failed"):
                        job_timeline["settled"] = time.monotonic()
                        job_timeline["job"] = {k: view[k] for k in ("status", "snapshot", "snapshot_status", "counts")}
                        break
                    await asyncio.sleep(0.5)
            await load
            await tests

        sent = len([1 for d in svc.client.get(f"/webhooks/{hook_id}/deliveries?limit=500", headers=H).json()["deliveries"]])
        wait_until(lambda: len(receiver.events()) >= sent, 60, "the last webhook deliveries")
        started = time.monotonic()
        asyncio.run(run())
        ended = max(t for t, *_ in log)

    receiver.stop()
    seen: dict[str, float] = {}
    for at, _, body in receiver.received:  # the first arrival of each event id
        event = json.loads(body)
        seen.setdefault(event["id"], (at - event["created_at"]) * 1000)
    types = Counter(json.loads(b)["type"] for _, _, b in receiver.received)
    ok = [ms for _, ms, code, _ in log if code == 200]
    errors = [(code, detail) for _, _, code, detail in log if code != 200]
    answered_by = Counter(detail[:12] for _, _, code, detail in log if code == 200)
    during = [ms for t, ms, code, _ in log if code == 200 and job_timeline.get("submitted", 1e18) <= t
              <= job_timeline.get("settled", ended)]
    result = {
        "machine": machine(),
        "params": vars(args) | {"out": str(args.out)},
        "seeded": seeded | {"seconds": round(seed_s, 1)},
        "requests": len(log), "errors": len(errors), "error_samples": errors[:5],
        "throughput_rps": round(len(log) / (ended - started), 1),
        "latency_ms": pct(ok),
        "latency_ms_while_ingest_and_rebuild_ran": pct(during),
        "answered_by_snapshot": dict(answered_by),
        "ingest": {k: (round(v - started, 1) if isinstance(v, float) else v) for k, v in job_timeline.items()},
        # From the event's created_at (written with the change) to its arrival at the receiver: the sweep interval
        # (SNAPDEX_WEBHOOK_SWEEP_INTERVAL_S), the queue and the POST.
        "webhook_delivery_ms": pct(list(seen.values())) | {"events_seen": dict(types)},
    }
    write_result(args.out, result)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
