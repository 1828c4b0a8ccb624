"""What request filters cost in the engine: the first stage `/retrieve` runs (hybrid: dense exact and BM25, 100
candidates a leg, DBSF), timed under each filter shape three ways, side by side: as the flat top-level conditions
before issue 31 (which matched through any document of a chunk, a hidden one included); as ingest/filters.py
translates it for the payload built so far (every condition on one document of a chunk, one the reader may read: a
nested condition over `sources`, or the top level for a point of one document); and as it translates it where every
source carries its document's metadata (one nested condition; the builder change the module proposes).

A synthetic snapshot of --chunks chunks in an EdgeStore, the payload written by the builder's own `_point`: a share
(--shared) of the chunks are exact duplicates across two or three documents (one point, several sources), each
document with a team, a year, a title and an access list over --users users and --groups groups (a fifth of them
tenant-wide), as bench/acl_bench.py draws them. Store level, no model and no HTTP: the filter's cost alone (a
/retrieve adds the query embedding, the second stage and the answer around it). Each query runs every mode in turn,
interleaved, so that a slow moment of the machine falls on all alike. Reported: p50/p95 per mode, and the hits.

Usage: .venv/bin/python bench/filter_bench.py [--chunks 50000] [--shared 0.3] [--queries 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.acl_bench import draw_access  # noqa: E402
from bench.common import machine, write_result  # noqa: E402
from bench.retrieve_bench import percentiles  # noqa: E402
from encoders.lexical import query_vector  # noqa: E402
from index_snapshots.builder import KEYWORD_INDEXES  # noqa: E402
from ingest.access import Reader  # noqa: E402
from ingest.catalog import DocumentRow  # noqa: E402
from ingest.filters import DOCUMENT_FIELDS, parse_request_filters, request_filter  # noqa: E402
from store import EdgeStore  # noqa: E402
from store.filters import Condition, Filter  # noqa: E402
from harness.helpers import builder_points  # noqa: E402

DIM = 384
TEAMS = [f"team{i}" for i in range(20)]
VOCABULARY = 5000


def flat(filters: dict | None, reader: Reader | None) -> Filter | None:
    """The translation before this change: each condition on the point's top-level union of its documents."""
    must = tuple(c._replace(key=DOCUMENT_FIELDS.get(c.key, c.key)) for c in parse_request_filters(filters))
    if reader is not None:
        must += (Condition("any", "access", reader.tokens() or ["-"]),)
    return Filter(must=must) if must else None


def corpus(rng: np.random.Generator, chunks: int, shared: float, users: int, groups: int):
    documents = max(chunks // 10, 1)
    docs = []
    for i in range(documents):
        docs.append(DocumentRow(tenant="bench", doc_id=f"doc-{i:06d}", status="indexed", content_hash=None,
                                raw_hash=None, source=f"doc-{i}.pdf", title=f"Title {i % 500}",
                                metadata={"team": TEAMS[int(rng.integers(0, len(TEAMS)))],
                                          "year": int(rng.integers(2010, 2028))},
                                access=draw_access(rng, users, groups)))
    per_chunk = [[docs[j] for j in rng.choice(documents, size=1 if rng.random() >= shared
                                              else int(rng.integers(2, 4)), replace=False)]
                 for _ in range(chunks)]
    return docs, per_chunk


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=50_000)
    ap.add_argument("--shared", type=float, default=0.3, help="share of chunks held by 2-3 documents")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=1_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "filters.json")
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    docs, per_chunk = corpus(rng, args.chunks, args.shared, args.users, args.groups)
    t0 = time.perf_counter()
    layouts = {}
    for name, every in (("snap", False), ("every", True)):
        for d in docs:
            d.chunk_hashes = []
        layouts[name] = builder_points(per_chunk, DIM, seed=11, vocabulary=VOCABULARY, words=(20, 60),
                                       every_source=every)
    payload_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp))
        try:
            t0 = time.perf_counter()
            for name, points in layouts.items():
                store.create_collection(name, DIM, keyword_indexes=KEYWORD_INDEXES, datatype="float16")
                store.upsert(name, points)
                store.flush(name)
            load_s = time.perf_counter() - t0
            del layouts
            results = run(store, rng, docs, args)
        finally:
            store.close()
    result = {"benchmark": "filters", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "chunks": args.chunks, "shared": args.shared, "documents": len(docs), "users": args.users,
              "groups": args.groups, "queries": args.queries, "payload_seconds": round(payload_s, 1),
              "load_seconds": round(load_s, 1), "search": "hybrid, 100 candidates a leg, limit 100, dbsf",
              "modes": results}
    write_result(args.out, result)
    return 0


def run(store: EdgeStore, rng: np.random.Generator, docs: list[DocumentRow], args) -> dict:
    def reader() -> Reader:
        return Reader.of(f"user{rng.integers(0, args.users)}",
                         [f"group{g}" for g in rng.integers(0, args.groups, size=rng.integers(1, 6))], True)

    def doc() -> DocumentRow:
        return docs[int(rng.integers(0, len(docs)))]

    # mode -> a (filters, reader) for one query; each is timed both ways.
    modes = {
        "reader": lambda: (None, reader()),
        "reader + metadata.team": lambda: ({"metadata.team": TEAMS[int(rng.integers(0, len(TEAMS)))]}, reader()),
        "reader + doc_id": lambda: ({"doc_id": doc().doc_id}, reader()),
        "reader + title": lambda: ({"title": doc().title}, reader()),
        "reader + team and year range": lambda: ({"metadata.team": TEAMS[int(rng.integers(0, len(TEAMS)))],
                                                  "metadata.year": {"gte": 2020}}, reader()),
        "admin + team and year range": lambda: ({"metadata.team": TEAMS[int(rng.integers(0, len(TEAMS)))],
                                                 "metadata.year": {"gte": 2020}}, None),
    }
    # way -> (collection, translation)
    ways = {"flat": ("snap", flat), "nested": ("snap", request_filter),
            "nested, every source": ("every", lambda f, r: request_filter(f, r, every_source=True))}
    timings = {m: {way: [] for way in ways} for m in modes}
    hits = {m: {way: 0 for way in ways} for m in modes}
    for i in range(args.queries + 10):  # the first 10 warm the collection up, untimed
        dense = rng.normal(size=DIM).astype(np.float32)
        sparse = query_vector(" ".join(f"w{j}" for j in rng.integers(0, VOCABULARY // 10, size=3)))
        for mode, draw in modes.items():
            filters, who = draw()
            for way, (name, translate) in ways.items():
                flt = translate(filters, who)
                t0 = time.perf_counter()
                got = store.search_hybrid(name, dense, sparse, 100, 100, fusion="dbsf", filters=flt)
                took = (time.perf_counter() - t0) * 1000
                if i >= 10:
                    timings[mode][way].append(took)
                    hits[mode][way] += len(got)
    return {m: {way: {**percentiles(t), "mean_hits": round(hits[m][way] / len(t), 1),
                      "p95_vs_flat": round(np.percentile(t, 95) / np.percentile(times["flat"], 95), 3)}
                for way, t in times.items()}
            for m, times in timings.items()}


if __name__ == "__main__":
    raise SystemExit(main())
