"""Snapshot costs on SciFact, in process with the embedded default (qdrant-edge-py, packaged MiniLM):

- cold build: ingest every document and build the first snapshot (wall time, chunks embedded);
- rebuild after changing 1% of the documents: wall time and embeddings computed, as fractions of the cold build;
- a rebuild with nothing new (a no-op);
- promote latency: p50/p95 of switching the live snapshot (promote and rollback alternately).

Usage: .venv/bin/python bench/snapshot_bench.py [--limit N] [--changed-fraction 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from encoders.dense import SentenceTransformerEmbedder  # noqa: E402
from index_snapshots.service import run_ingest_job  # noqa: E402
from ingest.jobs import NewDocument  # noqa: E402
from snapdex.runtime import Runtime  # noqa: E402
from snapdex.settings import Settings  # noqa: E402


class CountingEmbedder(SentenceTransformerEmbedder):
    texts = 0

    def embed(self, texts):
        self.texts += len(texts)
        return super().embed(texts)


def load(corpus: Path, limit: int) -> list[dict]:
    docs = []
    with corpus.open() as fh:
        for line in fh:
            d = json.loads(line)
            docs.append({"id": d["_id"], "text": f"{d['title']}\n\n{d['text']}", "title": d["title"]})
            if limit and len(docs) >= limit:
                break
    return docs


def ingest(rt: Runtime, docs: list[dict]) -> tuple[float, str]:
    started = time.perf_counter()
    job_id = rt.jobs.create("default", [NewDocument(d["id"], d["text"].encode(), {"title": d["title"]}) for d in docs])
    run_ingest_job(rt.ingestor, rt.jobs, job_id)
    result = rt.snapshots.build_pending("default")
    return time.perf_counter() - started, result.hash


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--changed-fraction", type=float, default=0.01)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "snapshots.json")
    args = p.parse_args()

    docs = load(args.corpus, args.limit)
    embedder = CountingEmbedder()
    embedder.embed(["load the model outside the timings"])
    embedder.texts = 0
    rt = Runtime(Settings(data_dir=Path(tempfile.mkdtemp(prefix="snapdex-snapbench-"))), embedder=embedder)

    cold_s, cold_hash = ingest(rt, docs)
    cold_embedded = embedder.texts

    step = max(1, int(round(1 / args.changed_fraction)))
    changed = [dict(d, text=d["text"] + " (Revised abstract.)") if i % step == 0 else d for i, d in enumerate(docs)]
    n_changed = sum(1 for i in range(len(docs)) if i % step == 0)
    embedder.texts = 0
    warm_s, warm_hash = ingest(rt, changed)
    warm_embedded = embedder.texts

    noop_s, noop_hash = ingest(rt, changed)

    switches = []
    for i in range(200):
        started = time.perf_counter()
        if i % 2 == 0:
            rt.snapshots.rollback("default")
        else:
            rt.snapshots.promote("default", warm_hash)
        switches.append((time.perf_counter() - started) * 1000)
    switches.sort()
    snap = rt.manifest.get("default", warm_hash)
    result = {
        "machine": machine(),
        "documents": len(docs),
        "chunks": snap.chunks,
        "cold_build_s": round(cold_s, 2),
        "cold_embedded": cold_embedded,
        "changed_documents": n_changed,
        "rebuild_s": round(warm_s, 2),
        "rebuild_fraction_of_cold": round(warm_s / cold_s, 4),
        "rebuild_embedded": warm_embedded,
        "rebuild_embedded_fraction": round(warm_embedded / cold_embedded, 4),
        "rebuild_snapshot": {"embedded": snap.embedded, "reused": snap.reused, "build_s": round(snap.build_seconds, 2)},
        "noop_rebuild_s": round(noop_s, 2),
        "noop_same_hash": noop_hash == warm_hash,
        "promote_ms_p50": round(statistics.median(switches), 3),
        "promote_ms_p95": round(switches[int(0.95 * len(switches)) - 1], 3),
    }
    rt.close()
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
