"""IR metrics for labelled query sets: recall, precision, MRR, nDCG and hit rate at a cutoff.

Conventions follow trec_eval / BEIR / pytrec_eval (and ranx's default metrics), so figures
reported here can be compared with published numbers:

- A document is relevant when its qrels grade is > 0. Grade 0 means "judged, not relevant".
- precision@k divides by k even when fewer than k documents were retrieved (trec_eval P_k).
- mrr@k only looks at the top k: a first relevant document below k scores 0.
- nDCG uses linear gains (gain = grade, Järvelin & Kekäläinen), discount log2(rank + 1),
  and the ideal ranking is built from the qrels, not from the retrieved documents.
- A ranking may repeat a document id (e.g. several chunks of one document merged back to doc
  ids); only its first occurrence counts, so one document cannot be credited twice and the
  top k always holds k distinct documents when the ranking has that many.
- The aggregate is the mean over queries with at least one relevant document. Queries with no
  relevant document have undefined recall/nDCG; averaging them in as 0 (as ranx does) would
  drag the mean down for a reason that has nothing to do with the retriever.

Per-query functions take the qrels of one query (`{doc_id: grade}`) and one ranked list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

from errors import InvalidInput

Qrels = dict[str, dict[str, int]]  # query id -> {doc id: graded relevance (> 0 relevant)}
Run = dict[str, list[str]]  # query id -> ranked doc ids, best first

__all__ = [
    "Qrels",
    "Run",
    "QueryResult",
    "recall_at_k",
    "precision_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "hit_rate_at_k",
    "evaluate",
    "compare",
    "drilldown",
    "metric_names",
]


# --- input checks -------------------------------------------------------------------------


def _check_k(k: object, name: str = "k") -> int:
    # bool is an Integral too, but k=True is a bug, not a cutoff of 1.
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def _check_relevant(relevant: object, query_id: str | None = None) -> dict[str, int]:
    where = f" for query {query_id!r}" if query_id is not None else ""
    if not isinstance(relevant, dict):
        raise ValueError(
            f"relevance judgments{where} must be a dict {{doc_id: int >= 0}}, "
            f"got {type(relevant).__name__}"
        )
    for doc_id, grade in relevant.items():
        # Int doc ids against str ids in the run would silently score 0 everywhere.
        if not isinstance(doc_id, str):
            raise ValueError(f"doc id{where} must be a str, got {doc_id!r}")
        if isinstance(grade, bool) or not isinstance(grade, Integral) or grade < 0:
            raise ValueError(
                f"relevance of doc {doc_id!r}{where} must be an integer >= 0, got {grade!r}"
            )
    return relevant


def _check_ranked(ranked: object, query_id: str | None = None) -> None:
    where = f" for query {query_id!r}" if query_id is not None else ""
    # A bare string is a sequence of characters: almost certainly a caller mistake.
    if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence):
        raise ValueError(
            f"ranking{where} must be a list of doc ids (str), got {type(ranked).__name__}"
        )
    for doc_id in ranked:
        if not isinstance(doc_id, str):
            raise ValueError(f"ranked doc id{where} must be a str, got {doc_id!r}")


def _dedupe(ranked: Sequence[str]) -> list[str]:
    """Drop repeated doc ids, keeping each at its first (best) position."""
    seen: set[str] = set()
    out: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
    return out


# --- core formulas on a deduplicated ranking (no checks: callers validated) --------------


def _n_relevant(relevant: dict[str, int]) -> int:
    return sum(1 for grade in relevant.values() if grade > 0)


def _hits(relevant: dict[str, int], ranking: list[str], k: int) -> int:
    return sum(1 for doc_id in ranking[:k] if relevant.get(doc_id, 0) > 0)


def _recall(relevant: dict[str, int], ranking: list[str], k: int) -> float:
    n_rel = _n_relevant(relevant)
    if n_rel == 0:
        return 0.0  # undefined; evaluate() leaves such queries out of the mean
    return _hits(relevant, ranking, k) / n_rel


def _precision(relevant: dict[str, int], ranking: list[str], k: int) -> float:
    return _hits(relevant, ranking, k) / k


def _mrr(relevant: dict[str, int], ranking: list[str], k: int) -> float:
    for rank, doc_id in enumerate(ranking[:k], start=1):
        if relevant.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def _dcg(gains: Sequence[int]) -> float:
    # rank r (1-based) is discounted by log2(r + 1): rank 1 -> 1, rank 2 -> log2(3), ...
    return math.fsum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def _ndcg(relevant: dict[str, int], ranking: list[str], k: int) -> float:
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = _dcg(ideal)
    if idcg == 0.0:
        return 0.0  # no relevant document: undefined, skipped by evaluate()
    return _dcg([relevant.get(doc_id, 0) for doc_id in ranking[:k]]) / idcg


def _hit_rate(relevant: dict[str, int], ranking: list[str], k: int) -> float:
    return 1.0 if _hits(relevant, ranking, k) > 0 else 0.0


# --- public per-query metrics ------------------------------------------------------------


def _per_query(fn, relevant, ranked, k) -> float:
    k = _check_k(k)
    _check_relevant(relevant)
    _check_ranked(ranked)
    return fn(relevant, _dedupe(ranked), k)


def recall_at_k(relevant: dict[str, int], ranked: list[str], k: int) -> float:
    """|relevant ∩ top k| / |relevant|; 0.0 when the query has no relevant document."""
    return _per_query(_recall, relevant, ranked, k)


def precision_at_k(relevant: dict[str, int], ranked: list[str], k: int) -> float:
    """|relevant ∩ top k| / k (k, not the number retrieved, as trec_eval P_k)."""
    return _per_query(_precision, relevant, ranked, k)


def mrr_at_k(relevant: dict[str, int], ranked: list[str], k: int) -> float:
    """1 / rank of the first relevant document within the top k, else 0.0."""
    return _per_query(_mrr, relevant, ranked, k)


def ndcg_at_k(relevant: dict[str, int], ranked: list[str], k: int) -> float:
    """DCG@k / ideal DCG@k with gain = grade and discount log2(rank + 1)."""
    return _per_query(_ndcg, relevant, ranked, k)


def hit_rate_at_k(relevant: dict[str, int], ranked: list[str], k: int) -> float:
    """1.0 if any relevant document is in the top k, else 0.0."""
    return _per_query(_hit_rate, relevant, ranked, k)


# --- whole query sets ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    query_id: str
    metrics: dict[str, float]
    # 1-based rank of each relevant doc within `retrieved`, None if it is not there.
    ranks: dict[str, int | None]
    # The deduplicated ranking cut at the deepest cutoff evaluated.
    retrieved: list[str]


def metric_names(ks: Sequence[int], mrr_k: int = 10, ndcg_k: int = 10) -> list[str]:
    """The names evaluate() reports for these cutoffs, in its order."""
    names = []
    for k in ks:
        names += [f"recall@{k}", f"precision@{k}", f"hit_rate@{k}"]
    names += [f"mrr@{mrr_k}", f"ndcg@{ndcg_k}"]
    return names


def evaluate(
    qrels: Qrels,
    run: Run,
    ks: Sequence[int] = (1, 5, 10, 20, 100),
    mrr_k: int = 10,
    ndcg_k: int = 10,
) -> tuple[dict[str, float], list[QueryResult]]:
    """Score `run` against `qrels`; return (mean per metric, per-query results).

    Only queries of `qrels` with at least one relevant document are scored; queries of the run
    that are not in qrels are ignored, and a qrels query missing from the run counts as an empty
    ranking (every metric 0). Per-query results come in qrels order.
    """
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {ks!r}")
    ks = [_check_k(k, "each k in ks") for k in ks]
    ks = list(dict.fromkeys(ks))  # (5, 5) would only repeat the same names
    mrr_k = _check_k(mrr_k, "mrr_k")
    ndcg_k = _check_k(ndcg_k, "ndcg_k")
    if not isinstance(qrels, dict):
        raise ValueError(
            f"qrels must be a dict {{query_id: {{doc_id: int}}}}, got {type(qrels).__name__}"
        )
    if not isinstance(run, dict):
        raise ValueError(
            f"run must be a dict {{query_id: [doc_id, ...]}}, got {type(run).__name__}"
        )
    for query_id, relevant in qrels.items():
        if not isinstance(query_id, str):
            raise ValueError(f"query id in qrels must be a str, got {query_id!r}")
        _check_relevant(relevant, query_id)
    for query_id, ranked in run.items():
        if not isinstance(query_id, str):
            raise ValueError(f"query id in run must be a str, got {query_id!r}")
        _check_ranked(ranked, query_id)

    depth = max([*ks, mrr_k, ndcg_k])
    names = metric_names(ks, mrr_k, ndcg_k)
    results: list[QueryResult] = []
    for query_id, relevant in qrels.items():
        if _n_relevant(relevant) == 0:
            continue
        ranking = _dedupe(run.get(query_id, []))[:depth]
        metrics: dict[str, float] = {}
        for k in ks:
            metrics[f"recall@{k}"] = _recall(relevant, ranking, k)
            metrics[f"precision@{k}"] = _precision(relevant, ranking, k)
            metrics[f"hit_rate@{k}"] = _hit_rate(relevant, ranking, k)
        metrics[f"mrr@{mrr_k}"] = _mrr(relevant, ranking, mrr_k)
        metrics[f"ndcg@{ndcg_k}"] = _ndcg(relevant, ranking, ndcg_k)
        position = {doc_id: rank for rank, doc_id in enumerate(ranking, start=1)}
        ranks = {doc_id: position.get(doc_id) for doc_id, g in relevant.items() if g > 0}
        results.append(QueryResult(query_id, metrics, ranks, ranking))

    if not results:
        raise ValueError(
            "no query in qrels has a relevant document (relevance > 0): nothing to evaluate"
        )
    aggregate = {
        name: math.fsum(r.metrics[name] for r in results) / len(results) for name in names
    }
    return aggregate, results


def _cutoff(metric: str) -> int:
    _, sep, k = metric.rpartition("@")
    if not sep or not k.isdecimal() or int(k) < 1:  # isdigit() passes '²', which int() refuses
        raise InvalidInput(f"metric must be named 'name@k' with k >= 1, got {metric!r}")
    return int(k)


def compare(before: list[QueryResult], after: list[QueryResult], metric: str) -> dict:
    """Per-query changes of `metric` between two evaluations of the same queries.

    Returns {"gained": [...], "lost": [...]}; each entry is a dict with query_id, before,
    after, delta (after - before), dropped (relevant docs in the top k before but not after)
    and entered (relevant docs in the top k after but not before), k being the metric's
    cutoff. Both lists are sorted by the size of the change, largest first (ties by query id).
    Queries whose value did not change are in neither list.
    """
    k = _cutoff(metric)
    by_id_before = {r.query_id: r for r in before}
    by_id_after = {r.query_id: r for r in after}
    if by_id_before.keys() != by_id_after.keys():
        only_before = sorted(by_id_before.keys() - by_id_after.keys())
        only_after = sorted(by_id_after.keys() - by_id_before.keys())
        raise ValueError(
            "before and after must cover the same queries; "
            f"only in before: {only_before[:10]}, only in after: {only_after[:10]}"
        )
    for label, results in (("before", before), ("after", after)):
        for r in results:
            if metric not in r.metrics:
                raise InvalidInput(
                    f"metric {metric!r} missing from {label} result of query {r.query_id!r}; "
                    f"available: {sorted(r.metrics)}"
                )

    gained, lost = [], []
    for query_id, old in by_id_before.items():
        new = by_id_after[query_id]
        delta = new.metrics[metric] - old.metrics[metric]
        # Same value reached by a different float path (e.g. nDCG sums) is not a change.
        if abs(delta) <= 1e-12:
            continue
        top_before = {d for d, rank in old.ranks.items() if rank is not None and rank <= k}
        top_after = {d for d, rank in new.ranks.items() if rank is not None and rank <= k}
        entry = {
            "query_id": query_id,
            "before": old.metrics[metric],
            "after": new.metrics[metric],
            "delta": delta,
            "dropped": sorted(top_before - top_after),
            "entered": sorted(top_after - top_before),
        }
        (gained if delta > 0 else lost).append(entry)

    gained.sort(key=lambda e: (-e["delta"], e["query_id"]))
    lost.sort(key=lambda e: (e["delta"], e["query_id"]))
    return {"gained": gained, "lost": lost}


def drilldown(before: list[QueryResult], after: list[QueryResult], metric: str,
              qrels: Qrels) -> dict:
    """compare(), with what an operator needs to see per changed query: the rank of every relevant document
    before and after (None: not retrieved), the relevant documents outside the top k after the change
    (`missed`), and the documents that took their place (`retrieved_instead`): the non-relevant documents of
    the top k ranked above a relevant document that fell (all of the top k when one fell out of it)."""
    k = _cutoff(metric)
    changes = compare(before, after, metric)
    by_id_before = {r.query_id: r for r in before}
    by_id_after = {r.query_id: r for r in after}
    for entry in changes["gained"] + changes["lost"]:
        old, new = by_id_before[entry["query_id"]], by_id_after[entry["query_id"]]
        relevant = qrels.get(entry["query_id"], {})
        entry["ranks_before"], entry["ranks_after"] = dict(old.ranks), dict(new.ranks)
        entry["missed"] = sorted(d for d, rank in new.ranks.items() if rank is None or rank > k)
        fell = [new.ranks.get(d) for d, rank in old.ranks.items()
                if rank is not None and (new.ranks.get(d) is None or new.ranks[d] > rank)]
        above = k if any(r is None or r > k for r in fell) else max(fell, default=1) - 1
        entry["retrieved_instead"] = [d for d in new.retrieved[:above] if relevant.get(d, 0) <= 0]
    changes["unchanged"] = len(after) - len(changes["gained"]) - len(changes["lost"])
    return changes
