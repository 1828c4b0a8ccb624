"""`/retrieve` latency over HTTP: p50/p95 with and without the second stage, and throughput at 8 clients.

Two indexes, served by one `snapdex serve` (embedded default) with the result cache off, so every request
does the whole work:
- SciFact: the snapshot `snapdex eval run` built (tenant eval-scifact in --data-dir; run that first), 300 test
  queries.
- 100k chunks: SciFact's chunks plus synthetic ones made by recombining SciFact sentences, written straight
  into a snapshot (tenant bench-100k) with vectors mixed from the real chunk and window vectors: embedding
  100k chunks here would take hours, and latency depends on the index's size and shape, not on the text.

Usage: .venv/bin/python bench/retrieve_bench.py --data-dir /path/used/by/snapdex-eval [--synthetic 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, snapdex_serve, write_result, write_snapshot  # noqa: E402
from harness.procs import auth  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
BIG = "bench-100k"


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.array(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "n": len(ms)}


def build_synthetic(data_dir: Path, source_tenant: str, total: int, seed: int = 7, **settings) -> str:
    """A live snapshot of `total` chunks for tenant bench-100k: the source tenant's chunks, then synthetic ones.
    `settings`: Settings fields for the service the index is written for (e.g. vector_datatype)."""
    from encoders.lexical import average_length, document_vector, term_counts
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from store.types import Point

    rt = Runtime(Settings(data_dir=data_dir, **settings))
    try:
        live = rt.manifest.live(BIG)
        # A catalog copied without its collections names a live snapshot that is not there: build it again.
        if live is not None and live.chunks == total and rt.store.has_collection(live.collection):
            return live.hash
        src = rt.manifest.live(source_tenant)
        if src is None:
            raise SystemExit(f"tenant {source_tenant} has no snapshot in {data_dir}: run snapdex eval run first")
        records, offset = [], None
        while True:
            page, offset = rt.store.scroll(src.collection, limit=1024, offset=offset, with_vectors=True)
            records.extend(page)
            if offset is None:
                break
        rng = np.random.default_rng(seed)
        sents = [s for r in records for s in r.payload["text"].split(". ") if len(s) > 30]
        dense = np.stack([np.asarray(r.dense, dtype=np.float32) for r in records])
        texts, vecs = [], []
        for i in range(total - len(records)):
            pick = rng.integers(0, len(sents), size=5)
            texts.append(". ".join(sents[j] for j in pick) + ".")
            mix = dense[rng.integers(0, len(dense), size=3)].mean(0) + rng.normal(0, 0.02, dense.shape[1])
            vecs.append(mix / np.linalg.norm(mix))
        all_texts = [r.payload["text"] for r in records] + texts
        counts = [term_counts(t) for t in all_texts]
        avgdl = average_length(counts)
        # The same config as the source snapshot: a different one would read as config drift at start-up and
        # send the service rebuilding this tenant from its (empty) catalog.
        config = src.config
        snap = hashlib.sha256(json.dumps([config, "synthetic", total, seed], sort_keys=True).encode()).hexdigest()

        def points():
            for i, (text, c) in enumerate(zip(all_texts, counts)):
                v = dense[i] if i < len(records) else vecs[i - len(records)]
                # Four windows near the chunk vector: the stage's cost depends on how many there are per chunk.
                w = v + rng.normal(0, 0.05, size=(4, len(v)))
                pid = records[i].id if i < len(records) else str(uuid.UUID(bytes=hashlib.md5(f"syn{i}".encode()).digest()))
                payload = records[i].payload if i < len(records) else {
                    "tenant": BIG, "chunk_hash": hashlib.sha256(text.encode()).hexdigest(), "text": text,
                    "doc_ids": [f"syn-{i}"], "sources": [{"doc_id": f"syn-{i}", "source": None, "title": None,
                                                         "position": 0}], "metadata": {}}
                yield Point(pid, v, document_vector(c, avgdl, rt.index_config.bm25), payload,
                            windows=w / np.linalg.norm(w, axis=1, keepdims=True))

        seconds = write_snapshot(rt, BIG, snap, config, dense.shape[1], points())
        print(f"synthetic snapshot {snap[:12]}: {total} chunks in {seconds:.0f} s",
              file=sys.stderr)
        return snap
    finally:
        rt.close()


def sequential(client, tenant: str, queries: list[str], options: dict) -> list[float]:
    took = []
    for q in queries:
        t0 = time.perf_counter()
        r = client.post("/retrieve", json={"query": q, "top_k": 10, "options": options}, headers=auth(tenant))
        took.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"/retrieve answered {r.status_code}: {r.text}")
    return took


def concurrent(url: str, tenant: str, queries: list[str], options: dict, clients: int, seconds: float) -> dict:
    import httpx

    deadline = time.perf_counter() + seconds

    def worker(k: int) -> tuple[list[float], int]:
        took, errors = [], 0
        with httpx.Client(base_url=url, timeout=30) as c:
            i = k
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = c.post("/retrieve", json={"query": queries[i % len(queries)], "top_k": 10, "options": options},
                           headers=auth(tenant))
                took.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200
                i += clients
        return took, errors

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(worker, range(clients)))
    wall = time.perf_counter() - started
    took = [t for ts, _ in results for t in ts]
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(took),
            "errors": sum(e for _, e in results), "throughput_rps": round(len(took) / wall, 1), **percentiles(took)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", type=Path, required=True, help="the data folder snapdex eval run indexed SciFact into")
    p.add_argument("--tenant", default="eval-scifact")
    p.add_argument("--synthetic", type=int, default=100_000, help="chunks in the large index (0: skip it)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each 8-client run")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieve.json")
    args = p.parse_args()

    from eval.beir import BeirDataset

    data = BeirDataset(SCIFACT)
    queries = list(data.queries(set(data.qrels("test"))).values())
    if args.synthetic:
        build_synthetic(args.data_dir, args.tenant, args.synthetic)
    stages = {"first stage only": {"rerank": "none"}, "with late interaction": {"rerank": "late-interaction"}}
    result = {"machine": machine(), "queries": len(queries), "cache": "off", "indexes": {}}
    # Result cache and rate limit off: every request does the whole work, and none is refused.
    with snapdex_serve(args.data_dir, tenants=(args.tenant, BIG), SNAPDEX_RESULT_CACHE_SIZE="0",
                       SNAPDEX_RATE_LIMIT_RETRIEVE="") as svc:
        from harness.procs import wait_until

        wait_until(lambda: svc.client.get("/ready").status_code == 200, 180, "models loaded")
        for label, tenant in (("scifact", args.tenant), (f"{args.synthetic} chunks", BIG)):
            if tenant == BIG and not args.synthetic:
                continue
            snaps = svc.client.get("/snapshots", headers=auth(tenant)).json()
            chunks = next(s["chunks"] for s in snaps["snapshots"] if s["hash"] == snaps["live"])
            entry = {"chunks": chunks}
            sequential(svc.client, tenant, [f"warm up {i}" for i in range(20)], {})  # load the shards
            for k, (name, options) in enumerate(stages.items()):
                # The first pass embeds every query; the repeat pass finds its vectors in the query-vector
                # cache (the result cache is off). Trailing spaces, which the model's tokenizer drops, give
                # each mode and index a cold first pass with the same query vectors.
                mode_queries = [q + " " * (1 + k + 2 * len(result["indexes"])) for q in queries]
                cold = sequential(svc.client, tenant, mode_queries, options)
                warm = sequential(svc.client, tenant, mode_queries, options)
                entry[name] = {"first_pass": percentiles(cold), "repeat_pass": percentiles(warm),
                               "8_clients": concurrent(svc.url, tenant, mode_queries, options, 8, args.seconds)}
                print(label, name, json.dumps(entry[name]), file=sys.stderr)
            result["indexes"][label] = entry
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
