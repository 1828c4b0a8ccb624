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
import json
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


def source_vectors(source_data: Path, cache: Path) -> tuple[np.ndarray, list]:
    """(dense matrix, BM25 vectors) of every real chunk indexed in `source_data`, once (cached)."""
    import pickle

    cached = cache / "source.pkl"
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    import qdrant_edge as qe

    from store.types import SparseVector

    dense, sparse = {}, {}
    for folder in sorted((source_data / "qdrant").glob("snap-eval-*")):
        copy = cache / "copy"  # a copy: the source's own folder may be open (and locked) by its service
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy)
        shard, offset = qe.EdgeShard.load(str(copy)), None
        while True:
            records, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=2048, with_payload=False,
                                                            with_vector=True))
            for r in records:
                dense[str(r.id)] = np.asarray(r.vector["dense"], dtype=np.float32)
                sparse[str(r.id)] = SparseVector(list(r.vector["bm25"].indices), list(r.vector["bm25"].values))
            if offset is None:
                break
        shard.close()
        shutil.rmtree(copy)
    if not dense:
        raise SystemExit(f"no snap-eval-* collection in {source_data}/qdrant: run `snapdex eval run` there first")
    ids = sorted(dense)
    got = (np.stack([dense[i] for i in ids]), [sparse[i] for i in ids])
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


def points(dense: np.ndarray, sparse: list, total: int, scale: float, seed: int = 11):
    from store.types import Point

    rng = np.random.default_rng(seed)
    dim, batch = dense.shape[1], 4096
    for start in range(0, total, batch):
        n = min(batch, total - start)
        picked = rng.integers(0, len(dense), size=n)
        # Per-dimension sigma scale/sqrt(dim): the noise's expected length is `scale`.
        v = dense[picked] + rng.normal(0.0, scale / np.sqrt(dim), size=(n, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        for k in range(n):
            i = start + k
            yield Point(str(uuid.UUID(int=i + 1)), v[k], sparse[picked[k]],
                        {"tenant": TENANT, "chunk_hash": f"{i:064x}", "doc_ids": [f"d{i // 3}"], "access": ["*"],
                         "text": ""})


def build(args, m: int, ef_construct: int, chunks: int) -> dict:
    """One collection of `chunks` points (a graph if m > 0) through the store layer; its timings and peak RSS."""
    from index_snapshots.builder import KEYWORD_INDEXES
    from store import EdgeStore
    from store.common import DenseIndex

    dense, sparse = source_vectors(args.source_data, args.cache)
    scale = noise_scale(dense)
    path = args.work / f"store-{m}-{ef_construct}-{chunks}"
    shutil.rmtree(path, ignore_errors=True)
    store = EdgeStore(path)
    index = DenseIndex(m, ef_construct) if m else None
    store.create_collection("c", dense.shape[1], keyword_indexes=KEYWORD_INDEXES, datatype=DATATYPE,
                            dense_index=index)
    started, batch = time.perf_counter(), []
    for p in points(dense, sparse, chunks, scale):
        batch.append(p)
        if len(batch) == 1024:
            store.upsert("c", batch)
            batch = []
    store.upsert("c", batch)
    written = time.perf_counter()
    store.flush("c")  # with a graph: builds it
    done = time.perf_counter()
    result = {"chunks": chunks, "m": m, "ef_construct": ef_construct, "noise_scale": round(scale, 4),
              "source_chunks": len(dense), "upsert_s": round(written - started, 1),
              "graph_s": round(done - written, 1), "build_s": round(done - started, 1)}
    result["search"] = search(store, index, query_vectors(args.cache), args.efs)
    store.close()
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    shutil.rmtree(path, ignore_errors=True)
    return result


def timed(store, queries: np.ndarray) -> tuple[list[list[str]], dict]:
    ids, took = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search_dense("c", q, CANDIDATES, filters={"tenant": TENANT})
        took.append((time.perf_counter() - t0) * 1000)
        ids.append([h.id for h in hits])
    return ids, percentiles(took)


def search(store, index, queries: np.ndarray, efs: list[int]) -> dict:
    store.search_dense("c", queries[0], CANDIDATES)  # loads what the first query pages in
    # The bench sets the graph's query-time ef (and the exact scan) on the open store: the collection stays as built.
    store._indexes["c"] = None
    truth, exact_ms = timed(store, queries)
    out = {"exact": exact_ms}
    if index is None:
        return out
    for ef in efs:
        store._indexes["c"] = replace(index, ef=ef)
        got, ms = timed(store, queries)
        out[f"ef={ef}"] = {**ms, **{f"recall@{k}": round(float(np.mean(
            [len(set(g[:k]) & set(t[:k])) / k for g, t in zip(got, truth)])), 4) for k in (10, CANDIDATES)}}
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
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # m:ef_construct:chunks, in a child process
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "million.json")
    args = ap.parse_args()
    args.cache = args.cache or args.work / "cache"
    args.work.mkdir(parents=True, exist_ok=True)
    if args.one:
        m, efc, chunks = map(int, args.one.split(":"))
        print(json.dumps(build(args, m, efc, chunks)))
        return
    source_vectors(args.source_data, args.cache)
    query_vectors(args.cache)
    result: dict = {"machine": machine(), "datatype": DATATYPE, "candidates": CANDIDATES, "runs": []}
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
