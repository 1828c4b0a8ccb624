"""What embedding a 300-word query costs under each bound on the word pieces the dense leg embeds
(SNAPDEX_QUERY_EMBED_TOKENS, issue 34), in process, on the service's model.

The queries are bench/latency_bench.py's long ones (a test query followed by the text of other documents up to 300
words). Each is embedded once under every bound, the bounds in turns (so load on a shared machine falls on each
alike), the query-vector cache off (every call reaches the model). Reported per bound: p50/p95 of the wall time of
`RetrievalPipeline.embed_query`, the CPU time it took (all threads), and the word pieces the model read.

    HF_HUB_OFFLINE=1 nice -n 19 .venv/bin/python bench/long_query_bench.py --data-dir D [--queries 60]
        [--bounds 0 128 256 384 512] [--keep ends] [--out bench/results/long-query.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import bench_embedder, machine, percentiles, write_result  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="a service's data folder (its exported model)")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--bounds", type=int, nargs="+", default=[0, 128, 256, 384, 512])
    ap.add_argument("--keep", default="ends", choices=["head", "tail", "ends"])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "long-query.json")
    args = ap.parse_args()

    from bench.latency_bench import requests
    from retrieval.pipeline import RetrievalPipeline, StageConfig
    from retrieval.pruning import PruneConfig

    embedder = bench_embedder(data=args.data_dir)
    pipeline = RetrievalPipeline(None, embedder, {"none": None}, {"none": None}, StageConfig(), PruneConfig(),
                                 vector_cache_bytes=0, query_embed_keep=args.keep)
    queries = [q for kind, q, _ in requests(args.queries) if kind.startswith("300 words")]
    pipeline.embed_query(("warm the model up " * 60,), 0)
    wall: dict[int, list[float]] = {b: [] for b in args.bounds}
    cpu: dict[int, list[float]] = {b: [] for b in args.bounds}
    read: dict[int, list[int]] = {b: [] for b in args.bounds}
    tokens = []
    loads = []
    for i, query in enumerate(queries):
        order = args.bounds[i % len(args.bounds):] + args.bounds[:i % len(args.bounds)]
        for bound in order:
            started, cpu_started = time.perf_counter(), time.process_time()
            got = pipeline.embed_query((query,), bound)
            wall[bound].append((time.perf_counter() - started) * 1000)
            cpu[bound].append((time.process_time() - cpu_started) * 1000)
            read[bound].append(got.embedded or got.tokens)
        tokens.append(got.tokens)
        loads.append(os.getloadavg()[0])
    result = {
        "machine": machine(), "embedding": embedder.model_id, "keep": args.keep, "queries": len(queries),
        "query_word_pieces": percentiles(tokens), "load_average": {"min": min(loads), "max": max(loads),
                                                                   "mean": round(sum(loads) / len(loads), 1)},
        "bounds": {str(b): {"wall_ms": percentiles(wall[b]), "cpu_ms": percentiles(cpu[b]),
                            "word_pieces_read": percentiles(read[b])} for b in args.bounds},
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
