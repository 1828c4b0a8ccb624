"""Run labelled queries through a search function and score the ranking of documents it implies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from eval.metrics import QueryResult, evaluate

# query text -> hits, each hit carrying the doc ids it stands for (a chunk may serve several documents)
SearchFn = Callable[[str], Sequence[Sequence[str]]]


@dataclass
class EvalRun:
    name: str
    metrics: dict[str, float]
    per_query: list[QueryResult]
    latency_ms: dict[str, float]


def doc_ranking(hits: Sequence[Sequence[str]]) -> list[str]:
    """Documents in the order their first chunk appears."""
    seen: dict[str, None] = {}
    for doc_ids in hits:
        for d in doc_ids:
            seen.setdefault(d, None)
    return list(seen)


def run_queries(name: str, search: SearchFn, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                ks: Sequence[int] = (1, 5, 10, 20, 100)) -> EvalRun:
    run, took = {}, []
    for qid in qrels:
        if qid not in queries:
            continue
        t0 = time.perf_counter()
        hits = search(queries[qid])
        took.append((time.perf_counter() - t0) * 1000)
        run[qid] = doc_ranking(hits)
    metrics, per_query = evaluate({q: r for q, r in qrels.items() if q in queries}, run, ks=ks)
    lat = np.array(took) if took else np.zeros(1)
    latency = {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
               "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())}
    return EvalRun(name, metrics, per_query, latency)
