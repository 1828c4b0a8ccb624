"""A million chunks on one host, embedded engine: the dense first stage by exact scan and by Qdrant's HNSW graph.

Vectors: the real chunk vectors of the corpora indexed here (every `snap-eval-*` collection in --source-data, which
`snapdex eval run` made with the real model: SciFact and the bench/data sets), read once and cached in --cache.
Each of the --chunks points is one of them, drawn at random, plus Gaussian noise whose expected length is the median
distance of a real chunk to its nearest other real chunk, then renormalised: copies of one chunk sit about as far
from it, and from each other, as its nearest real neighbour does, so no vector repeats and the neighbourhoods keep
the corpora's shape (uniform random vectors, which no approximate index handles and no user has, are not used).
Each point carries its source chunk's BM25 vector and a small payload, the tenant's keyword index included.

Queries: SciFact's test queries, embedded once by the service's embedder (cached in --cache).

Each graph (m, ef_construct) is built in a process of its own, through snapdex's store layer as a snapshot build
writes (EdgeStore.create_collection, upsert in batches, flush, which builds the graph), its peak RSS read at the
end. Then every query asks for the first stage's 100 dense candidates within the tenant (search_dense, as
retrieval/pipeline.py does), by exact scan (the truth) and by the graph at each ef: recall@10 and @100 against the
exact scan, p50/p95 of the call. --exact-sizes times the exact scan alone on smaller collections (the auto
threshold).

Usage: nice .venv/bin/python bench/million_bench.py --source-data /path/used/by/snapdex-eval --work /tmp/m1
       [--chunks 1000000] [--graphs 16:100 32:200] [--efs 64 128 256]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import bench_embedder, machine, write_result  # noqa: E402
from bench.retrieve_bench import SCIFACT, percentiles  # noqa: E402

TENANT = "bench-1m"
CANDIDATES = 100  # the first stage's dense candidates (Settings.retrieval_candidates)
DATATYPE = "turbo8"  # the embedded engine's default storage


def source_chunks(source_data: Path, cache: Path) -> dict:
    """Every real chunk indexed in `source_data`, once (cached): "dense" (a matrix), "bm25" (SparseVectors),
    "windows" (a matrix each) and "payload" (as a build wrote it), in the order of their ids."""
    import pickle

    cached = cache / "chunks.pkl"
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    import qdrant_edge as qe

    from store.types import SparseVector

    found: dict[str, tuple] = {}
    for folder in sorted((source_data / "qdrant").glob("snap-eval-*")):
        copy = cache / "copy"  # a copy: the source's own folder may be open (and locked) by its service
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy)
        shard, offset = qe.EdgeShard.load(str(copy)), None
        while True:
            records, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=2048, with_payload=True,
                                                            with_vector=True))
            for r in records:
                found[str(r.id)] = (np.asarray(r.vector["dense"], dtype=np.float32),
                                    SparseVector(list(r.vector["bm25"].indices), list(r.vector["bm25"].values)),
                                    np.asarray(r.vector["windows"], dtype=np.float32), dict(r.payload))
            if offset is None:
                break
        shard.close()
        shutil.rmtree(copy)
    if not found:
        raise SystemExit(f"no snap-eval-* collection in {source_data}/qdrant: run `snapdex eval run` there first")
    rows = [found[i] for i in sorted(found)]
    got = {"dense": np.stack([r[0] for r in rows]), "bm25": [r[1] for r in rows], "windows": [r[2] for r in rows],
           "payload": [r[3] for r in rows]}
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(pickle.dumps(got))
    return got


def query_vectors(cache: Path) -> np.ndarray:
    cached = cache / "queries.npy"
    if cached.exists():
        return np.load(cached)
    from eval.beir import BeirDataset

    data = BeirDataset(SCIFACT)
    texts = list(data.queries(set(data.qrels("test"))).values())
    vectors = np.asarray(bench_embedder().embed(texts), dtype=np.float32)
    np.save(cached, vectors)
    return vectors


def noise_scale(dense: np.ndarray, sample: int = 2000, seed: int = 3) -> float:
    """The median distance of a real chunk to its nearest other real chunk (unit vectors)."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(dense), size=min(sample, len(dense)), replace=False)
    sims = dense[picked] @ dense.T
    sims[np.arange(len(picked)), picked] = -1.0  # not itself
    best = np.sort(sims, axis=1)[:, -1]
    # Exact duplicates (the same chunk in two corpora) would make the scale 0: they are left out.
    best = best[best < 0.9999]
    return float(np.median(np.sqrt(np.maximum(0.0, 2.0 - 2.0 * best))))


def points(src: dict, total: int, scale: float, seed: int = 11, windows: bool = False):
    """`total` store Points, each a real chunk drawn at random plus noise of expected length `scale`, renormalised;
    with `windows`, its window vectors moved by the same noise, and its payload as a build writes it (the chunk's
    own text and spans, in a document of its own every 3 points), so that the served pipeline has real work."""
    from store.types import Point

    rng = np.random.default_rng(seed)
    dense = src["dense"]
    dim, batch = dense.shape[1], 4096
    for start in range(0, total, batch):
        n = min(batch, total - start)
        picked = rng.integers(0, len(dense), size=n)
        # Per-dimension sigma scale/sqrt(dim): the noise's expected length is `scale`.
        noise = rng.normal(0.0, scale / np.sqrt(dim), size=(n, dim)).astype(np.float32)
        v = dense[picked] + noise
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        for k in range(n):
            i, j = start + k, picked[k]
            doc, digest = f"d{i // 3}", f"{i:064x}"
            if not windows:
                yield Point(str(uuid.UUID(int=i + 1)), v[k], src["bm25"][j],
                            {"tenant": TENANT, "chunk_hash": digest, "doc_ids": [doc], "access": ["*"], "text": ""})
                continue
            w = src["windows"][j] + noise[k]
            payload = {**src["payload"][j], "tenant": TENANT, "chunk_hash": digest, "doc_ids": [doc],
                       "sources": [{**src["payload"][j]["sources"][0], "doc_id": doc, "prev": None, "next": None}]}
            yield Point(str(uuid.UUID(int=i + 1)), v[k], src["bm25"][j], payload,
                        windows=w / np.linalg.norm(w, axis=1, keepdims=True))


def build(args, m: int, ef_construct: int, chunks: int) -> dict:
    """One collection of `chunks` points (a graph if m > 0) through the store layer; its timings and peak RSS."""
    from index_snapshots.builder import KEYWORD_INDEXES
    from store import EdgeStore
    from store.common import DenseIndex

    src = source_chunks(args.source_data, args.cache)
    scale = noise_scale(src["dense"])
    path = args.work / f"store-{m}-{ef_construct}-{chunks}"
    shutil.rmtree(path, ignore_errors=True)
    store = EdgeStore(path)
    index = DenseIndex(m, ef_construct) if m else None
    store.create_collection("c", src["dense"].shape[1], keyword_indexes=KEYWORD_INDEXES, datatype=DATATYPE,
                            dense_index=index)
    started, batch = time.perf_counter(), []
    for p in points(src, chunks, scale):
        batch.append(p)
        if len(batch) == 1024:
            store.upsert("c", batch)
            batch = []
    store.upsert("c", batch)
    written = time.perf_counter()
    store.flush("c")  # with a graph: builds it
    done = time.perf_counter()
    result = {"chunks": chunks, "m": m, "ef_construct": ef_construct, "noise_scale": round(scale, 4),
              "source_chunks": len(src["dense"]), "upsert_s": round(written - started, 1),
              "graph_s": round(done - written, 1), "build_s": round(done - started, 1)}
    result["search"] = search(store, "c", index, query_vectors(args.cache), args.efs)
    store.close()
    result["peak_rss_mib"] = peak_rss_mib()
    shutil.rmtree(path, ignore_errors=True)
    return result


def peak_rss_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def build_snapshot(args, chunks: int) -> dict:
    """A live snapshot of `chunks` points for tenant bench-1m in the service data dir --keep, windows and payloads
    included, written as a build writes (bench.common.write_snapshot) under the service's own config: the graph is
    the one SNAPDEX_DENSE_INDEX (auto) picks for that size, so `snapdex serve` takes it as its own, without drift."""
    from bench.common import write_snapshot
    from index_snapshots.builder import LANGUAGES_KEY
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    src = source_chunks(args.source_data, args.cache)
    scale = noise_scale(src["dense"])
    rt = Runtime(Settings(data_dir=args.keep))
    try:
        config = rt.index_config.canonical()
        config[LANGUAGES_KEY] = ["en"]
        config.update(rt.index_config.dense_config(chunks))
        index = rt.index_config.dense_for(chunks)
        snap = hashlib.sha256(json.dumps([config, "million", chunks], sort_keys=True).encode()).hexdigest()
        written = {}

        def stream():
            yield from points(src, chunks, scale, windows=True)
            written["at"] = time.perf_counter()  # every point handed over: what follows is the last flush

        started = time.perf_counter()
        write_snapshot(rt, TENANT, snap, config, rt.index_config.dim, stream(), documents=(chunks + 2) // 3,
                       dense_index=index, resume=chunks)
        done = time.perf_counter()
        resumed = "at" not in written  # a run stopped in the graph build had written every point: graph only
        written.setdefault("at", started)
    finally:
        rt.close()
    return {"chunks": chunks, "m": index.m if index else 0, "ef_construct": index.ef_construct if index else 0,
            "noise_scale": round(scale, 4), "source_chunks": len(src["dense"]), "windows": True,
            "datatype": rt.index_config.vectors, "resumed": resumed, "upsert_s": round(written["at"] - started, 1),
            "graph_s": round(done - written["at"], 1), "build_s": round(done - started, 1),
            "build_peak_rss_mib": peak_rss_mib(), "load_average": load()}


def kept_collection(data_dir: Path) -> tuple[str, int]:
    """The live snapshot's collection of tenant bench-1m in `data_dir`, and its chunks."""
    from index_snapshots.builder import collection_name
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    rt = Runtime(Settings(data_dir=data_dir))
    try:
        live = rt.manifest.live(TENANT)
        if live is None:
            raise SystemExit(f"{data_dir} holds no live snapshot of {TENANT}: build it with --keep first")
        return collection_name(TENANT, live.hash), live.chunks
    finally:
        rt.close()


def store_level(args, data_dir: Path) -> dict:
    """The first stage's dense call on the kept snapshot: exact scan against its graph at each --efs."""
    from store import EdgeStore

    name, chunks = kept_collection(data_dir)
    store = EdgeStore(data_dir / "qdrant")
    try:
        index = store.dense_index(name)
        return {"chunks": chunks, "graph": index.canonical() if index else None,
                "search": search(store, name, index, query_vectors(args.cache), args.efs), "load_average": load()}
    finally:
        store.close()


def over_http(args, data_dir: Path) -> dict:
    """`/retrieve` over HTTP on the kept snapshot, the default pipeline with the real model: SciFact's test
    queries (short questions), top_k 10, the result cache off; wall and the server's `timings_ms`."""
    from eval.beir import BeirDataset
    from harness.procs import auth, snapdex_serve, wait_until
    from snapdex.settings import Settings

    data = BeirDataset(SCIFACT)
    queries = list(data.queries(set(data.qrels("test"))).values())[:args.queries]
    backend = Settings.model_fields["embedder_backend"].default
    stats: dict[str, list[float]] = {}
    hits: list[int] = []
    with snapdex_serve(data_dir, tenants=(TENANT,), SNAPDEX_EMBEDDER_BACKEND=backend, SNAPDEX_RESULT_CACHE_SIZE="0",
                       SNAPDEX_RATE_LIMIT_RETRIEVE="") as svc:
        wait_until(lambda: svc.client.get("/ready").status_code == 200, 600, "models loaded")
        snaps = svc.client.get("/snapshots", headers=auth(TENANT)).json()
        live = next(s for s in snaps["snapshots"] if s["hash"] == snaps["live"])
        for i in range(20):  # the collection opened and paged in, the model warm
            svc.client.post("/retrieve", json={"query": f"warm up {i}", "top_k": 10}, headers=auth(TENANT))
        loads = [load()]
        for query in queries:
            t0 = time.perf_counter()
            r = svc.client.post("/retrieve", json={"query": query, "top_k": 10}, headers=auth(TENANT))
            wall = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise SystemExit(f"/retrieve answered {r.status_code}: {r.text[:300]}")
            # Fewer than 10 at times: ~46 points share each source chunk's text, and pruning keeps one of a kind.
            hits.append(len(r.json()["hits"]))
            stats.setdefault("wall", []).append(wall)
            for stage, ms in r.json()["timings_ms"].items():
                stats.setdefault(stage, []).append(ms)
        loads.append(load())
    return {"chunks": live["chunks"], "documents": live["documents"], "top_k": 10, "queries": len(queries),
            "embedder_backend": backend, "hits_mean": round(float(np.mean(hits)), 2),
            "ms": {k: percentiles(v) for k, v in stats.items()},
            "load_average": loads}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def timed(store, name: str, queries: np.ndarray) -> tuple[list[list[str]], dict]:
    ids, took = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search_dense(name, q, CANDIDATES, filters={"tenant": TENANT})
        took.append((time.perf_counter() - t0) * 1000)
        ids.append([h.id for h in hits])
    return ids, percentiles(took)


def search(store, name: str, index, queries: np.ndarray, efs: list[int]) -> dict:
    store.search_dense(name, queries[0], CANDIDATES)  # loads what the first query pages in
    # The bench sets the graph's query-time ef (and the exact scan) on the open store: the collection stays as built.
    store._indexes[name] = None
    truth, exact_ms = timed(store, name, queries)
    out = {"exact": exact_ms}
    if index is None:
        return out
    for ef in efs:
        store._indexes[name] = replace(index, ef=ef)
        got, ms = timed(store, name, queries)
        out[f"ef={ef}"] = {**ms, **{f"recall@{k}": round(float(np.mean(
            [len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth)])), 4) for k in (10, CANDIDATES)}}
    store._indexes[name] = index
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-data", type=Path, required=True, help="holds indexes `snapdex eval run` made")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None, help="default: <work>/cache")
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--graphs", nargs="*", default=["16:100", "32:200"], help="m:ef_construct")
    ap.add_argument("--efs", nargs="+", type=int, default=[64, 128, 256])
    ap.add_argument("--exact-sizes", nargs="*", type=int, default=[100_000, 250_000])
    ap.add_argument("--keep", type=Path, default=None,
                    help="a service data dir: build a live snapshot of --chunks there (windows, payloads, the graph "
                         "the service's settings pick) and keep it; then the store-level and HTTP phases on it")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="a data dir --keep built: only the store-level and HTTP phases (e.g. on a quieter machine)")
    ap.add_argument("--skip-http", action="store_true", help="with --keep/--reuse: the store-level phase only")
    ap.add_argument("--queries", type=int, default=300, help="HTTP phase: SciFact test queries asked")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # m:ef_construct:chunks, in a child process
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "million.json")
    args = ap.parse_args()
    args.cache = args.cache or args.work / "cache"
    args.work.mkdir(parents=True, exist_ok=True)
    if args.one:
        m, efc, chunks = map(int, args.one.split(":"))
        print(json.dumps(build(args, m, efc, chunks)))
        return
    source_chunks(args.source_data, args.cache)
    query_vectors(args.cache)
    result: dict = {"machine": machine(), "datatype": DATATYPE, "candidates": CANDIDATES, "runs": []}
    if args.keep or args.reuse:
        # Beside the grid's runs in the same file, under "kept"; a --reuse run keeps the build's figures.
        data_dir = args.keep or args.reuse
        whole = json.loads(args.out.read_text()) if args.out.exists() else result
        kept = {**whole.get("kept", {}), "machine": machine(), "candidates": CANDIDATES}
        if args.keep:
            kept["build"] = build_snapshot(args, args.chunks)
            print(json.dumps(kept["build"]), flush=True)
        kept["store_level"] = store_level(args, data_dir)
        print(json.dumps(kept["store_level"]), flush=True)
        write_result(args.out, {**whole, "kept": kept}, echo=False)
        if not args.skip_http:
            kept["http"] = over_http(args, data_dir)
        write_result(args.out, {**whole, "kept": kept})
        return
    runs = [(0, 0, n) for n in args.exact_sizes] + [(*map(int, g.split(":")), args.chunks) for g in args.graphs]
    for m, efc, chunks in runs:
        child = [sys.executable, __file__, "--source-data", str(args.source_data), "--work", str(args.work),
                 "--cache", str(args.cache), "--efs", *map(str, args.efs), "--one", f"{m}:{efc}:{chunks}"]
        got = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
        result["runs"].append(got)
        print(json.dumps(got), flush=True)
        write_result(args.out, result, echo=False)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
