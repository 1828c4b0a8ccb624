"""`/retrieve` p95 with a principal's access filter against the same queries unfiltered, over a synthetic index.

A snapshot of --chunks chunks (default 100,000) is written straight into tenant bench-acl (as bench/retrieve_bench.py
does for its 100k index: embedding that many chunks here would take hours, and latency depends on the index's size
and shape, not on its text): texts recombined from a word list, random unit vectors and window vectors, and each
chunk an access list over --users users and --groups groups (a fifth of them tenant-wide). One `snapdex serve` with
the result cache off answers the same queries twice: as the admin key (no filter) and on behalf of random principals
(the access condition inside the one Qdrant request). Reported: p50/p95 of both and the ratio of the p95s.

Usage: .venv/bin/python bench/acl_bench.py [--chunks 100000] [--users 10000] [--groups 1000] [--queries 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, snapdex_serve, write_result, write_snapshot  # noqa: E402
from bench.retrieve_bench import percentiles  # noqa: E402
from harness.procs import auth  # noqa: E402

TENANT = "bench-acl"


def draw_access(rng: np.random.Generator, users: int, groups: int) -> dict | None:
    """A document's access list: a fifth of them tenant-wide (None), the rest 0-3 users and 1-3 groups."""
    return None if rng.random() < 0.2 else {
        "users": [f"user{u}" for u in rng.integers(0, users, size=rng.integers(0, 4))],
        "groups": [f"group{g}" for g in rng.integers(0, groups, size=rng.integers(1, 4))]}


def build(data_dir: Path, total: int, users: int, groups: int, seed: int = 17) -> list[str]:
    """A live snapshot of `total` chunks with access tokens; returns the word list the texts are made of."""
    from encoders.lexical import average_length, document_vector, term_counts
    from ingest.access import document_tokens
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from store.types import Point

    rng = np.random.default_rng(seed)
    words = [f"w{i}x" for i in range(20_000)]
    rt = Runtime(Settings(data_dir=data_dir))
    try:
        config = rt.index_config.canonical()  # the service's own: no config drift, no rebuild at start-up
        dim = rt.index_config.dim
        snap = hashlib.sha256(json.dumps([config, "acl", total, users, groups, seed], sort_keys=True).encode()).hexdigest()
        texts = [" ".join(words[j] for j in rng.zipf(1.3, size=40) % len(words)) for _ in range(total)]
        counts = [term_counts(t) for t in texts]
        avgdl = average_length(counts)

        def points():
            for i, (text, c) in enumerate(zip(texts, counts)):
                v = rng.normal(size=dim)
                v /= np.linalg.norm(v)
                w = v + rng.normal(0, 0.3, size=(4, dim))
                tokens = document_tokens(draw_access(rng, users, groups))
                doc = f"doc-{i}"
                payload = {"tenant": TENANT, "chunk_hash": hashlib.sha256(text.encode()).hexdigest(), "text": text,
                           "doc_ids": [doc], "access": sorted(set(tokens)),
                           "sources": [{"doc_id": doc, "source": None, "title": None, "position": 0,
                                        "access": tokens}], "metadata": {}}
                yield Point(str(uuid.UUID(bytes=hashlib.md5(doc.encode()).digest())), v,
                            document_vector(c, avgdl, rt.index_config.bm25), payload,
                            windows=w / np.linalg.norm(w, axis=1, keepdims=True))

        seconds = write_snapshot(rt, TENANT, snap, config, dim, points())
        print(f"snapshot {snap[:12]}: {total} chunks in {seconds:.0f} s", file=sys.stderr)
        return words
    finally:
        rt.close()


def timed(client, body: dict) -> float:
    t0 = time.perf_counter()
    r = client.post("/retrieve", json=body, headers=auth(TENANT))
    took = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise SystemExit(f"/retrieve answered {r.status_code}: {r.text[:300]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "acl.json")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        words = build(data, args.chunks, args.users, args.groups)
        build_s = time.perf_counter() - t0
        queries = [" ".join(rng.choice(words[:2000], size=3)) for _ in range(args.queries)]
        principals = [{"user": f"user{rng.integers(0, args.users)}",
                       "groups": [f"group{g}" for g in rng.integers(0, args.groups, size=rng.integers(1, 6))]}
                      for _ in queries]
        with snapdex_serve(data, tenants=(TENANT,), SNAPDEX_RESULT_CACHE_SIZE="0",
                           SNAPDEX_RATE_LIMIT_RETRIEVE="") as svc:
            c = svc.client
            for q in queries[:20]:  # warm up: the collection opened, query vectors of the model path loaded
                timed(c, {"query": q, "top_k": 10})
            # Interleaved, so that a slow moment of the machine falls on both alike.
            plain, filtered = [], []
            for q, p in zip(queries, principals):
                plain.append(timed(c, {"query": q, "top_k": 10}))
                filtered.append(timed(c, {"query": q, "top_k": 10, "principal": p}))
    a, b = percentiles(plain), percentiles(filtered)
    result = {"benchmark": "acl", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "chunks": args.chunks, "users": args.users, "groups": args.groups, "queries": args.queries,
              "build_seconds": round(build_s, 1), "unfiltered_ms": a, "principal_ms": b,
              "p95_ratio": round(b["p95"] / a["p95"], 3), "target_ratio": 1.2}
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
