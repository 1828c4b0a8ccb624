"""`/retrieve` latency by stage over HTTP, two builds side by side: where chat backends feel it (issue 34).

The index: 10,000 documents in one tenant (bench-latency), written straight into the store from the snapshots
`snapdex eval run` builds of SciFact (5,183 documents) and pydocs (the 2,168 sections the pydocs sets share), plus
2,649 SciFact documents again under new ids, reworded (every fourth word swapped for another of the same length)
with their vectors moved by a little noise: new chunks, not copies a near-duplicate check would fold (see build()).

The requests, each as a chat backend sends it (default pipeline, result cache off, highlights on as /retrieve
sets them):
- short query, top_k 10 and top_k 100: SciFact and pydocs test queries;
- a 300-word query, top_k 10: a test query followed by the text of other documents up to 300 words (a chat turn
  quoting what it is about); every one distinct, so none is answered from the query-vector cache.

Two `snapdex serve`, one per checkout (--before, e.g. /work/main, and --after, this one), each on its own copy of
the data folder, take the requests in turns (before, after, before, ...), so load on a shared machine falls on
both alike. Reported per build and request: p50/p95 of the wall time at the client and of each stage's
server-side `timings_ms`, and the load average during the run.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/latency_bench.py --data-dir D --before /work/main
        [--after .] [--queries 200] [--out bench/results/latency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
PYDOCS = REPO / "bench" / "data" / "pydocs-passages"
TENANT = "bench-latency"
SOURCES = ("eval-scifact", "eval-pydocs-passages")
DOCUMENTS = 10_000
LONG_WORDS = 300
_WORD = re.compile(r"[A-Za-z]+")


def _reworded(text: str, vocab: dict[int, list[str]], rng: random.Random) -> str:
    """Every fourth word swapped for another word of the corpus of the same length: other shingles and BM25 terms,
    every character offset (the sentence windows' spans) where it was."""
    count = iter(range(1 << 30))
    return _WORD.sub(lambda m: rng.choice(vocab.get(len(m.group()), [m.group()]))
                     if next(count) % 4 == 0 else m.group(), text)


def build(data_dir: Path) -> str:
    """A live snapshot of tenant bench-latency with 10,000 documents, written straight into the store from the
    SciFact and pydocs snapshots of `data_dir` (tenants eval-scifact and eval-pydocs-passages, as `snapdex eval run`
    builds them): their chunks as they are, and 2,649 SciFact documents again under new ids, each chunk reworded
    (every fourth word swapped for another of the same length) with its vectors moved by a little noise (sigma
    0.02 per dimension, then unit length). Embedding those copies on this shared machine would take most of an hour;
    latency depends on the index's size and shape, not on where a vector came from."""
    import hashlib
    import uuid

    from bench.common import write_snapshot
    from encoders.lexical import average_length, document_vector, term_counts
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings
    from store.types import Point

    rt = Runtime(Settings(data_dir=data_dir))
    try:
        live = rt.manifest.live(TENANT)
        if live is not None and rt.store.has_collection(live.collection):
            return live.hash
        sources = [rt.manifest.live(t) for t in SOURCES]
        if None in sources:
            raise SystemExit(f"{data_dir} lacks a snapshot of {SOURCES}: run snapdex eval run on both first")
        records = {}
        for snap in sources:
            records[snap.tenant] = page_all(rt, snap.collection)
        scifact = records[SOURCES[0]]
        docs = list(dict.fromkeys(r.payload["doc_ids"][0] for r in scifact))
        n_docs = len(docs) + len({r.payload["doc_ids"][0] for r in records[SOURCES[1]]})
        again = set(docs[:DOCUMENTS - n_docs])
        noise = np.random.default_rng(7)
        vocab: dict[int, list[str]] = {}
        for r in scifact:
            for w in set(_WORD.findall(r.payload["text"])):
                vocab.setdefault(len(w), []).append(w)
        for words in vocab.values():
            words.sort()
        copies = [r for r in scifact if r.payload["doc_ids"][0] in again]
        new_hash = {}
        rows = []  # (id, text, dense, windows, payload)
        for r in [r for recs in records.values() for r in recs]:
            rows.append((r.id, r.payload["text"], np.asarray(r.dense, dtype=np.float32), r.windows, r.payload))
        for r in copies:
            text = _reworded(r.payload["text"], vocab, random.Random(r.id))
            h = new_hash[r.payload["chunk_hash"]] = hashlib.sha256(text.encode()).hexdigest()

            def moved(v):
                v = np.asarray(v, dtype=np.float32)
                v = v + noise.normal(0, 0.02, v.shape).astype(np.float32)
                return v / np.linalg.norm(v, axis=-1, keepdims=True)

            src = [{k: v for k, v in s.items() if k not in ("twins", "twin_access")}
                   | {"doc_id": f"again:{s['doc_id']}"} for s in r.payload["sources"]]
            payload = {**r.payload, "tenant": TENANT, "text": text, "chunk_hash": h, "sources": src,
                       "doc_ids": [s["doc_id"] for s in src]}
            rows.append((str(uuid.UUID(bytes=hashlib.md5(h.encode()).digest())), text, moved(r.dense),
                         moved(r.windows) if r.windows else None, payload))
        for _, _, _, _, payload in rows[-len(copies):]:  # neighbours of a copy are copies
            for s in payload["sources"]:
                for side in ("prev", "next"):
                    if s.get(side):
                        s[side] = new_hash.get(s[side], s[side])
        counts = [term_counts(text) for _, text, _, _, _ in rows]
        avgdl = average_length(counts)
        config = sources[0].config  # the source's: another would read as config drift at start-up
        snap = hashlib.sha256(json.dumps([config, "latency", DOCUMENTS], sort_keys=True).encode()).hexdigest()
        points = (Point(pid, dense, document_vector(c, avgdl, rt.index_config.bm25), payload, windows=windows)
                  for (pid, _, dense, windows, payload), c in zip(rows, counts))
        seconds = write_snapshot(rt, TENANT, snap, config, len(rows[0][2]), points, documents=DOCUMENTS)
        print(f"bench-latency {snap[:12]}: {DOCUMENTS} documents, {len(rows)} chunks in {seconds:.0f} s",
              file=sys.stderr)
        return snap
    finally:
        rt.close()


def page_all(rt, collection: str) -> list:
    out, offset = [], None
    while True:
        page, offset = rt.store.scroll(collection, limit=1024, offset=offset, with_vectors=True)
        out += page
        if offset is None:
            return out


def requests(count: int, seed: int = 7) -> list[tuple[str, str, int]]:
    """(kind, query, top_k) in a shuffled order: `count` of each kind. Short queries: SciFact's and pydocs' test
    queries under 40 words; a kind's queries differ from another's by trailing spaces (which the tokenizers drop),
    so every request misses the query-vector cache and the kinds get the same vectors."""
    from eval.beir import BeirDataset

    rng = random.Random(seed)
    short = []
    for folder in (SCIFACT, REPO / "bench" / "data" / "pydocs-faq", REPO / "bench" / "data" / "pydocs-topics"):
        data = BeirDataset(folder)
        short += [q for q in data.queries(set(data.qrels("test"))).values() if len(q.split()) < 40]
    rng.shuffle(short)
    from eval.beir import corpus_documents

    texts = [d["text"].split() for folder in (SCIFACT, PYDOCS) for d in corpus_documents(folder / "corpus.jsonl")]
    out = []
    for i in range(count):
        q = short[i % len(short)]
        words = q.split()
        while len(words) < LONG_WORDS:
            words += texts[rng.randrange(len(texts))]
        out += [("short, top_k 10", q + " ", 10), ("short, top_k 100", q + "  ", 100),
                ("300 words, top_k 10", " ".join(words[:LONG_WORDS]), 10)]
    rng.shuffle(out)
    return out


def percentiles(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.1f} / {np.percentile(values, 95):.1f}"


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", type=Path, required=True, help="where the index is built (and copied from)")
    p.add_argument("--before", type=Path, required=True, help="the checkout to compare with, e.g. /work/main")
    p.add_argument("--after", type=Path, default=REPO)
    p.add_argument("--queries", type=int, default=200, help="requests of each kind, per build")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latency.json")
    args = p.parse_args()

    from harness.procs import auth, wait_until
    from bench.common import snapdex_serve

    build(args.data_dir)
    builds = {"before": args.before.resolve(), "after": args.after.resolve()}
    todo = requests(args.queries)
    stats: dict[str, dict[str, dict[str, list[float]]]] = {b: {} for b in builds}
    loads = [load_average()]
    with ExitStack() as stack:
        services = {}
        for name, repo in builds.items():
            # Each its own copy: the embedded store is one process's.
            data = args.data_dir.parent / f"latency-{name}"
            if not data.exists():
                shutil.copytree(args.data_dir, data)
            services[name] = stack.enter_context(snapdex_serve(
                data, tenants=(TENANT,), repo=repo, SNAPDEX_RESULT_CACHE_SIZE="0", SNAPDEX_RATE_LIMIT_RETRIEVE=""))
        for svc in services.values():
            wait_until(lambda: svc.client.get("/ready").status_code == 200, 300, "models loaded")
            for i in range(20):  # shards and model warm
                svc.client.post("/retrieve", json={"query": f"warm up {i}", "top_k": 100}, headers=auth(TENANT))
        started = time.perf_counter()
        for i, (kind, query, top_k) in enumerate(todo):
            # Turns: the build that goes first changes every request.
            for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
                t0 = time.perf_counter()
                r = services[name].client.post("/retrieve", json={"query": query, "top_k": top_k},
                                               headers=auth(TENANT))
                wall = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    raise SystemExit(f"{name}: /retrieve answered {r.status_code}: {r.text}")
                body = r.json()
                if len(body["hits"]) != top_k:
                    raise SystemExit(f"{name}: {len(body['hits'])} hits for top_k {top_k}")
                row = stats[name].setdefault(kind, {})
                row.setdefault("wall", []).append(wall)
                for stage, ms in body["timings_ms"].items():
                    row.setdefault(stage, []).append(ms)
            if i % 50 == 0:
                loads.append(load_average())
                print(f"{i}/{len(todo)}", file=sys.stderr, flush=True)
        seconds = time.perf_counter() - started
        loads.append(load_average())
        snaps = services["after"].client.get("/snapshots", headers=auth(TENANT)).json()
        live = next(s for s in snaps["snapshots"] if s["hash"] == snaps["live"])
    result = {"machine": machine(), "index": {"documents": live["documents"], "chunks": live["chunks"]},
              "requests_per_kind": args.queries, "seconds": round(seconds), "builds": {k: str(v) for k, v in
                                                                                       builds.items()},
              "load_average_1m": {"min": min(x[0] for x in loads), "max": max(x[0] for x in loads),
                                  "mean": round(float(np.mean([x[0] for x in loads])), 2)},
              "p50_p95_ms": {name: {kind: {stage: percentiles(v) for stage, v in row.items()}
                                    for kind, row in sorted(stats[name].items())} for name in builds}}
    write_result(args.out, result)
    print(table(result))
    return 0


def table(result: dict) -> str:
    """The Markdown table of the README: p50 / p95 per stage, before and after."""
    stages = ["wall", "embed", "first_stage", "prune", "highlights"]
    lines = ["| request | build | " + " | ".join(stages) + " |", "|" + " --- |" * (len(stages) + 2)]
    kinds = sorted(result["p50_p95_ms"]["after"])
    for kind in kinds:
        for name in ("before", "after"):
            row = result["p50_p95_ms"][name][kind]
            lines.append(f"| {kind} | {name} | " + " | ".join(row.get(s, "-") for s in stages) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build-only"]:
        build(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
