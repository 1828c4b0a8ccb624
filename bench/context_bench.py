"""Context blocks against what a caller does today, on SciFact test, over HTTP (`snapdex serve`, result cache off).

- Budgeted recall: the share of queries whose context holds the full stored text of at least one relevant document,
  at budgets of 500, 1,000 and 2,000 tokens (tiktoken cl100k_base, what a chat model counts), for
  (a) the top-k hits' chunks taken in order and cut at the budget (today), and
  (b) the `context` block with expansion ("section": for SciFact's heading-less abstracts, the whole document;
  and {"neighbors": 1}).
- Tokens spent on text the context already holds (chunk overlaps, a chunk twice): (a) against (b).
- /retrieve p50/p95 with `context` on and off (interleaved, the same queries), and one /retrieve/batch of 32 queries
  against 32 single calls (queries never asked before, so no query vector comes from the cache).

Usage: .venv/bin/python bench/context_bench.py [--limit 50] [--data-dir DIR] [--out bench/results/context.json]
(--limit: the first N test queries, over a corpus of their relevant documents plus the first 10*N others; 0, the
default: all 300 queries over the whole corpus.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, percentiles, snapdex_serve, write_result  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
BUDGETS = (500, 1000, 2000)
TOP_K = 20
TENANT_DOCS_BATCH = 500
# Groups of 32 new queries, alternately one batch call and 32 single calls: one sample of each is noise (a long
# query in one group, a pause of the machine), so several and their medians.
BATCH_GROUPS = 12
EXPANSIONS = {"section": "section", "neighbors-1": {"neighbors": 1}}


def _covered(spans: list[tuple[int, int]], text: str) -> bool:
    """Whether the spans hold every non-blank character of `text`."""
    mask = np.zeros(len(text) + 1, dtype=np.int32)
    for a, b in spans:
        mask[a] += 1
        mask[b] -= 1
    held = np.cumsum(mask)[:len(text)] > 0
    return all(held[i] or c.isspace() for i, c in enumerate(text))


def _repeated_tokens(spans: list[tuple[int, int]], text: str, count) -> int:
    """Tokens of the text each span repeats of the spans before it (of one document)."""
    seen = np.zeros(len(text), dtype=bool)
    out = 0
    for a, b in spans:
        again = seen[a:b]
        if again.any():
            idx = np.flatnonzero(again) + a
            # the repeated characters, as runs of text
            runs, start, prev = [], idx[0], idx[0]
            for i in idx[1:]:
                if i != prev + 1:
                    runs.append((start, prev + 1))
                    start = i
                prev = i
            runs.append((start, prev + 1))
            out += sum(count(text[x:y]) for x, y in runs)
        seen[a:b] = True
    return out


def topk_cut(hits: list[dict], budget: int, enc) -> list[tuple[str, int, int]]:
    """(doc, start, end) of what a caller puts in the prompt today: hits in order, whole while they fit, the next
    one cut at the budget."""
    out, used = [], 0
    for h in hits:
        tokens = enc.encode_ordinary(h["text"])
        if used + len(tokens) <= budget:
            out.append((h["doc_id"], h["start"], h["end"]))
            used += len(tokens)
            continue
        room = budget - used
        if room > 0:
            out.append((h["doc_id"], h["start"], h["start"] + len(enc.decode(tokens[:room]))))
        break
    return out


def score(pieces: list[tuple[str, int, int]], relevant: set[str], texts: dict[str, str], count) -> tuple[bool, int]:
    by_doc: dict[str, list[tuple[int, int]]] = {}
    for d, a, b in pieces:
        by_doc.setdefault(d, []).append((a, b))
    full = any(d in relevant and _covered(spans, texts[d]) for d, spans in by_doc.items())
    return full, sum(_repeated_tokens(spans, texts[d], count) for d, spans in by_doc.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=SCIFACT)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=0, help="test queries (0: all, over the whole corpus)")
    ap.add_argument("--data-dir", type=Path, help="keep the index here between runs (default: a temporary folder)")
    ap.add_argument("--latency-only", action="store_true",
                    help="only /retrieve with the context on and off (to bench/results/context-latency.json)")
    ap.add_argument("--latency-passes", type=int, default=3, help="passes over the queries, context on and off")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    args.out = args.out or REPO / "bench" / "results" / ("context-latency.json" if args.latency_only else "context.json")

    from eval.beir import BeirDataset
    from retrieval.context import _tiktoken
    from snapdex.client import Client

    ds = BeirDataset(args.dataset)
    qrels = ds.qrels(args.split)
    qids = sorted(qrels)[: args.limit or None]
    queries = ds.queries(set(qids))
    others = [q for q in ds.queries() if q not in qrels]  # never asked in the timed runs before the batch part
    wanted = {d for q in qids for d in qrels[q]}
    docs = [d for i, d in enumerate(ds.documents())
            if not args.limit or d["id"] in wanted or i < 10 * args.limit]
    enc = _tiktoken("cl100k_base")

    def count(text: str) -> int:
        return len(enc.encode_ordinary(text))

    work = args.data_dir or Path(tempfile.mkdtemp(prefix="context-bench-")) / "data"
    with snapdex_serve(work, SNAPDEX_RESULT_CACHE_SIZE="0", SNAPDEX_RATE_LIMIT_RETRIEVE="") as svc:
        sx = Client(svc.url, timeout=600)
        started = time.perf_counter()
        for i in range(0, len(docs), TENANT_DOCS_BATCH):
            job = sx.ingest(docs[i:i + TENANT_DOCS_BATCH], timeout=7200)
            if job.status != "succeeded":
                raise SystemExit(f"ingest failed: {job.error}")
        ingest_s = time.perf_counter() - started
        texts: dict[str, str] = {}

        def text_of(doc_id: str) -> str:
            if doc_id not in texts:
                texts[doc_id] = sx.document(doc_id).text or ""
            return texts[doc_id]

        recall = {b: {"topk_cut": 0, **{f"context_{e}": 0 for e in EXPANSIONS}} for b in BUDGETS}
        repeated = {b: {"topk_cut": 0, **{f"context_{e}": 0 for e in EXPANSIONS}} for b in BUDGETS}
        over_budget = 0
        for qid in ([] if args.latency_only else qids):
            rel = set(qrels[qid])
            plain = sx.http.post("/retrieve", json={"query": queries[qid], "top_k": TOP_K}).json()
            for h in plain["hits"]:
                text_of(h["doc_id"])
            for d in rel:
                text_of(d)
            for b in BUDGETS:
                full, rep = score(topk_cut(plain["hits"], b, enc), rel, texts, count)
                recall[b]["topk_cut"] += full
                repeated[b]["topk_cut"] += rep
                for name, expand in EXPANSIONS.items():
                    ctx = sx.http.post("/retrieve", json={
                        "query": queries[qid], "top_k": TOP_K,
                        "context": {"max_tokens": b, "expand": expand, "tokenizer": "cl100k_base"}}).json()["context"]
                    over_budget += ctx["tokens"] > b
                    for p in ctx["passages"]:
                        text_of(p["doc_id"])
                    full, rep = score([(p["doc_id"], p["start"], p["end"]) for p in ctx["passages"]], rel, texts,
                                      count)
                    recall[b][f"context_{name}"] += full
                    repeated[b][f"context_{name}"] += rep

        # Latency: the same queries with the context on and off, interleaved (the query vector is cached after the
        # first call either way; the result cache is off).
        if args.latency_only:  # as after the recall part: every query's vector made once, untimed
            for qid in qids:
                sx.http.post("/retrieve", json={"query": queries[qid], "top_k": 10}).raise_for_status()
        load_before = os.getloadavg()
        # Several passes: a p95 over a few hundred requests on a shared machine moves by more than the 5 ms asked.
        on, off, built = [], [], []
        body_ctx = {"max_tokens": 1000, "expand": "section"}
        for _ in range(args.latency_passes):
            for qid in qids:
                for with_ctx in (False, True) if len(on) % 2 == 0 else (True, False):
                    body = {"query": queries[qid], "top_k": 10, **({"context": body_ctx} if with_ctx else {})}
                    t = time.perf_counter()
                    r = sx.http.post("/retrieve", json=body)
                    ms = (time.perf_counter() - t) * 1000
                    r.raise_for_status()
                    (on if with_ctx else off).append(ms)
                    if with_ctx:
                        built.append(r.json()["timings_ms"]["context"])  # the block alone, in the server

        # A batch of 32 against 32 single calls, each on queries not seen before (their vectors are made now).
        load_after = os.getloadavg()
        groups = [others[i * 32:(i + 1) * 32] for i in range(0 if args.latency_only else BATCH_GROUPS)]
        batch_ms, single_ms = [], []
        for i, group in enumerate(groups):
            if len(group) < 32:
                break
            t = time.perf_counter()
            if i % 2 == 0:
                sx.http.post("/retrieve/batch", json={"requests": [{"query": q, "top_k": 10} for q in group]}
                             ).raise_for_status()
                batch_ms.append((time.perf_counter() - t) * 1000)
            else:
                for q in group:
                    sx.http.post("/retrieve", json={"query": q, "top_k": 10}).raise_for_status()
                single_ms.append((time.perf_counter() - t) * 1000)
        sx.close()

    n = len(qids)
    latency = {"context_off": percentiles(off), "context_on": percentiles(on),
               "p95_difference": round(float(np.percentile(on, 95) - np.percentile(off, 95)), 2),
               "context_stage_in_server": percentiles(built), "passes": args.latency_passes,
               "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)]}  # before and after: 2 cores
    if args.latency_only:
        write_result(args.out, {"what": "/retrieve over HTTP with the context on (1,000 tokens, section) and off, "
                                        f"SciFact {args.split}", "machine": machine(), "queries": n,
                                "retrieve_ms": latency})
        return 0
    result = {
        "what": "context blocks vs top-k chunks cut at a token budget (tiktoken cl100k_base), SciFact "
                f"{args.split}, over HTTP",
        "machine": machine(),
        "queries": n, "documents": len(docs), "top_k": TOP_K, "ingest_s": round(ingest_s, 1),
        "budgeted_recall": {b: {k: round(v / n, 4) for k, v in r.items()} for b, r in recall.items()},
        "repeated_tokens_total": repeated,
        "context_over_budget": over_budget,
        "retrieve_ms": latency,
        "batch_32_ms": {"batch": [round(x, 1) for x in batch_ms], "32_singles": [round(x, 1) for x in single_ms],
                        "median_batch": round(float(np.median(batch_ms)), 1),
                        "median_32_singles": round(float(np.median(single_ms)), 1)},
        "limit": args.limit,
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
