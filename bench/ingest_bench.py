"""Ingest throughput on SciFact, against the raw embedder on the same chunks, in one run.

1. `snapdex serve` (embedded default) on a fresh data folder; `snapdex ingest corpus.jsonl` over HTTP;
   wall time until every job has settled -> documents/s and chunks/s.
2. The raw embedder (same model, same batch size) on exactly the texts that ingest embedded: the chunks and
   their sentence windows -> pipeline overhead = ingest wall / raw embed time - 1.
3. The same corpus ingested again -> wall time as a fraction of the first.

Usage: .venv/bin/python bench/ingest_bench.py [--corpus ../shared/data/scifact/corpus.jsonl] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import corpus_head, embedded_texts, machine, raw_embed_seconds, write_result  # noqa: E402

from harness.procs import wait_until  # noqa: E402  (the same launcher the tests use)
from bench.common import snapdex_serve  # noqa: E402


def run_cli_ingest(url: str, corpus: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "snapdex", "ingest", str(corpus), "--url", url, "--quiet"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"snapdex ingest failed:\n{out.stdout}\n{out.stderr}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl")
    p.add_argument("--limit", type=int, default=0, help="first N documents only (0 = all)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="snapdex-bench-"))
    corpus = corpus_head(args.corpus, args.limit, work)
    data = work / "data"
    with snapdex_serve(data, SNAPDEX_RATE_LIMIT_INGEST="") as svc:
        # The model loads once per process, at start-up: the raw embedder below is timed after its load too.
        wait_until(lambda: svc.client.get("/ready").status_code == 200, 300, "models loaded (/ready)")
        cold_wall, cold = run_cli_ingest(svc.url, corpus)
        warm_wall, warm = run_cli_ingest(svc.url, corpus)

    from snapdex.settings import Settings

    # What the pipeline sent to the model: every chunk, and the sentence windows embedded alone.
    texts, n_chunks, n_windows = embedded_texts(data)
    raw = raw_embed_seconds(texts, data)

    from ingest.jobs import OUTCOMES

    n_docs = sum(cold["counts"][k] for k in OUTCOMES)
    result = {
        "machine": machine(),
        "documents": n_docs,
        "chunks": n_chunks,
        "window_texts": n_windows,
        "texts_embedded_raw": len(texts),
        "cold_ingest_s": round(cold_wall, 2),
        "documents_per_s": round(n_docs / cold_wall, 2),
        "chunks_per_s": round(n_chunks / cold_wall, 2),
        "raw_embed_s": round(raw, 2),
        "raw_texts_per_s": round(len(texts) / raw, 2),
        "pipeline_overhead_pct": round(100 * (cold_wall / raw - 1), 1),
        "reingest_s": round(warm_wall, 2),
        "reingest_fraction_of_cold": round(warm_wall / cold_wall, 4),
        "cold_counts": cold["counts"],
        "reingest_counts": warm["counts"],
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
