"""Issue 31, parsing is contained: what it costs, and what a hostile file costs now.

1. Ingest overhead of the parse child: the first N SciFact abstracts (JSON text, as `snapdex ingest` sends them)
   ingested in process with the fake embedder (HashEmbedder: parsing, chunking and dedup are then nearly all the
   time, so the child's round trips weigh the most) and with the default model, by this checkout and by `--base`, a
   checkout of the code before (e.g. `git archive <parent> | tar -x -C /tmp/base`), alternately, `--rounds` times
   each. Only the ingest is timed (run_ingest_job), not the build; the model is loaded before the clock.
2. Hostile files against `snapdex serve` with the default limits and two tenants: A sends a looping document and a
   good one, B a document right after. Seconds from A's request until the looping document's failure is recorded,
   B's wait (from its request until its job started, and until it settled), for the 591-byte looping PDF (PDFium
   grows ~240 MB/s: the memory limit ends it) and a JSON text the Markdown sniffer is quadratic on (CPU only: the
   clock ends it). Before the change neither ended: B waited for ever.
3. Resident memory: the serving process after a file was ingested, this checkout and `--base` (which parsed in
   process), and the parse child, with only the parser imported and with unstructured and spaCy loaded.

Usage: .venv/bin/python bench/parse_limits_bench.py --base /tmp/base [--limit 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, snapdex_serve, write_result  # noqa: E402
from harness.procs import auth, parse_children, wait_until  # noqa: E402
from harness.runaway_inputs import looping_pdf, slow_text  # noqa: E402

KEEPERS = "The keeper trims the wick at dusk."
# (what A sends, as files or as JSON documents): the looping document first, a good one after it.
HOSTILE = [
    ("looping PDF (591 bytes)", [("files", ("loop.pdf", looping_pdf())),
                                 ("files", ("keepers.md", f"# Keepers\n\n{KEEPERS}\n".encode()))], None),
    # 400,000: ~6 min here, well past the 60 s clock (150,000 took 52-60 s, too close to it).
    ("JSON text of 400,000 '['", None, [{"id": "brackets", "text": slow_text(400_000).decode()},
                                        {"id": "keepers", "text": KEEPERS}]),
]

INGEST = """
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from encoders.dense import HashEmbedder
from eval.beir import corpus_documents
from index_snapshots.service import run_ingest_job
from ingest.jobs import NewDocument
from snapdex.runtime import Runtime
from snapdex.settings import Settings
docs = [NewDocument(d["id"], d["text"].encode(), d["metadata"])
        for d, _ in zip(corpus_documents(Path(sys.argv[2])), range(int(sys.argv[3])))]
rt = Runtime(Settings(data_dir=Path(tempfile.mkdtemp()) / "data"),
             embedder=HashEmbedder(dim=384) if sys.argv[4] == "fake" else None)
if sys.argv[4] != "fake":
    rt.embedder.embed(["loaded before the clock, as the service loads it at start-up"])
job = rt.jobs.create("default", docs)
cpu, wall = time.process_time(), time.perf_counter()
run_ingest_job(rt.ingestor, rt.jobs, job)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
view = rt.jobs.get(job)
rt.close()  # the parse child exits and is reaped: its CPU time joins RUSAGE_CHILDREN
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "children_cpu_s": children.ru_utime + children.ru_stime,
                  "new": view.counts["new"], "chunks": view.chunks_total}))
"""


def ingest_once(tree: Path, corpus: Path, limit: int, embedder: str) -> dict:
    out = subprocess.run([sys.executable, "-c", INGEST, str(tree), str(corpus), str(limit), embedder], cwd=tree,
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        raise SystemExit(f"ingest in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def overhead(base: Path, corpus: Path, limit: int, rounds: int, embedder: str) -> dict:
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(rounds):
        runs["before"].append(ingest_once(base, corpus, limit, embedder))
        runs["after"].append(ingest_once(REPO, corpus, limit, embedder))
    # The machine is shared: the fastest run of each is the least disturbed one; the median is given beside it.
    best = {k: min(r["wall_s"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_s"] + r["children_cpu_s"] for r in v) for k, v in runs.items()}
    return {"documents": limit, "rounds": rounds, "embedder": embedder, "runs": runs,
            "best_wall_s": {k: round(v, 2) for k, v in best.items()},
            "median_wall_s": {k: round(statistics.median(r["wall_s"] for r in v), 2) for k, v in runs.items()},
            "median_cpu_s_with_children": {k: round(v, 2) for k, v in cpu.items()},
            "overhead_pct": round(100 * (best["after"] / best["before"] - 1), 1),
            **({"round_trip": round_trip(corpus, limit)} if embedder == "fake" else {})}


def round_trip(corpus: Path, limit: int) -> dict:
    """The parse child's own cost per document, isolated: parse_text in process against a ParserPool's, and the
    transaction that counts a parse start."""
    from encoders.dense import HashEmbedder
    from eval.beir import corpus_documents
    from ingest import formats
    from ingest.jobs import NewDocument
    from ingest.parse_process import ParserPool
    from snapdex.runtime import Runtime
    from snapdex.settings import Settings

    texts = [d["text"] for d, _ in zip(corpus_documents(corpus), range(limit))]
    pool = ParserPool()
    pool.parse_text(b"a child started before the clock")
    started = time.perf_counter()
    for text in texts:
        formats.parse_text(text)
    here = time.perf_counter() - started
    started = time.perf_counter()
    for text in texts:
        pool.parse_text(text.encode())
    child = time.perf_counter() - started
    pool.close()
    rt = Runtime(Settings(data_dir=Path(tempfile.mkdtemp()) / "data"), embedder=HashEmbedder(dim=32))
    job = rt.jobs.create("default", [NewDocument(str(i), b"x") for i in range(limit)])
    started = time.perf_counter()
    for seq in range(limit):
        rt.jobs.parse_started(job, seq)
    counted = time.perf_counter() - started
    rt.close()
    return {"in_process_ms": round(1000 * here / limit, 3), "child_ms": round(1000 * child / limit, 3),
            "parse_start_count_ms": round(1000 * counted / limit, 3)}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _failures_or_end(c, job_id: str) -> list[dict]:
    """The job's failed documents; [{}] if it settled with none (the document was not hostile enough here)."""
    view = c.get(f"/jobs/{job_id}", headers=auth("a")).json()
    return view["failures"] or ([{}] if view["status"] in ("succeeded", "failed") else [])


def hostile(name: str, files: list | None, documents: list | None) -> dict:
    """A sends the looping document (and a good one), B one document right after; the default limits."""
    work = Path(tempfile.mkdtemp(prefix="snapdex-hostile-"))
    with snapdex_serve(work / "data", tenants=("a", "b"), SNAPDEX_GATE_FLOORS="{}",
                       SNAPDEX_RATE_LIMIT_INGEST="") as svc:
        wait_until(lambda: svc.client.get("/ready").status_code == 200, 300, "models loaded (/ready)")
        c = svc.client
        sent = time.perf_counter()
        a = (c.post("/ingest", files=files, headers=auth("a")) if files else
             c.post("/ingest", json={"documents": documents}, headers=auth("a"))).json()["job_id"]
        b_sent = time.perf_counter()
        b = c.post("/ingest", json={"documents": [{"id": "b-otters", "text": "Sea otters hold hands while they "
                                                                          "sleep on the water."}]},
                   headers=auth("b")).json()["job_id"]
        failed = wait_until(lambda: _failures_or_end(c, a), 600, "A's failure")
        failed_after = time.perf_counter() - sent
        b_view = svc.wait_job(b, headers=auth("b"), timeout=600)
        b_settled_after = time.perf_counter() - b_sent
        a_view = svc.wait_job(a, headers=auth("a"), timeout=600)
    return {"document": name, "reason": failed[0].get("reason"), "failure_recorded_s": round(failed_after, 1),
            "b_started_after_s": round(b_view["started_at"] - b_view["created_at"], 1),
            "b_settled_after_s": round(b_settled_after, 1), "b_status": b_view["status"],
            "a_status": a_view["status"], "a_counts": a_view["counts"], "a_attempts": a_view["attempts"]}


def serve_rss(tree: Path) -> dict:
    """RSS of `snapdex serve` of `tree` (its own harness.procs starts it from its own checkout) once serving, after a
    JSON text, after a Markdown file; and of its parse children then."""
    work = Path(tempfile.mkdtemp(prefix="snapdex-rss-"))
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "try:\n"
            "    from harness.procs import snapdex_serve, wait_until\n"
            "except ModuleNotFoundError:  # a checkout from before harness/, whose launcher was tests/procs.py\n"
            "    from tests.procs import snapdex_serve, wait_until\n"
            "import json, time; from pathlib import Path\n"
            "with snapdex_serve(Path(sys.argv[2]), SNAPDEX_GATE_FLOORS='{}') as s:\n"
            "    wait_until(lambda: s.client.get('/ready').status_code == 200, 300, 'ready')\n"
            "    print(json.dumps({'pid': s.proc.pid, 'url': s.url}), flush=True)\n"
            "    sys.stdin.readline()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tree), str(work / "data")], cwd=tree, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        info = json.loads(proc.stdout.readline())
        import httpx

        c = httpx.Client(base_url=info["url"], timeout=120)
        serving = _rss_mib(info["pid"])
        job = c.post("/ingest", json={"documents": [{"id": "t", "text": "Plain words about harbour seals."}]})
        wait_until(lambda: c.get(f"/jobs/{job.json()['job_id']}").json()["status"] == "succeeded", 120, "text job")
        children = parse_children(info["pid"])
        after_text = {"serve": _rss_mib(info["pid"]), "child": [_rss_mib(p) for p in children]}
        job = c.post("/ingest", files=[("files", ("k.md", b"# Keepers\n\nThe keeper trims the wick at dusk.\n"))])
        wait_until(lambda: c.get(f"/jobs/{job.json()['job_id']}").json()["status"] == "succeeded", 120, "file job")
        children = parse_children(info["pid"])
        after_file = {"serve": _rss_mib(info["pid"]), "child": [_rss_mib(p) for p in children]}
        return {"serving_only_mib": serving, "after_text_mib": after_text, "after_file_mib": after_file}
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(60)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base", type=Path, required=True, help="a checkout of the code before the change")
    p.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parts", default="overhead,overhead-model,rss,hostile",
                   help="comma-separated, which to run: overhead (fake embedder), overhead-model (the default "
                        "onnx-int8 model), rss, hostile")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "parse-limits.json")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    result = json.loads(args.out.read_text()) if args.out.exists() else {}  # parts not run keep their last figures
    result["machine"] = machine()
    if "overhead" in parts:
        result["overhead"] = overhead(args.base, args.corpus, args.limit, args.rounds, "fake")
    if "overhead-model" in parts:
        result["overhead_model"] = overhead(args.base, args.corpus, args.limit, args.rounds, "onnx-int8")
    if "rss" in parts:
        result["rss"] = {"before": serve_rss(args.base), "after": serve_rss(REPO)}
    if "hostile" in parts:
        result["hostile"] = [hostile(name, files, documents) for name, files, documents in HOSTILE]
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
