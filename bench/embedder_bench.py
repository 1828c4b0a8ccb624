"""The embedder backends side by side, in one run, with the peer benchmark's harness (bench/peer_bench.py): torch
fp32 (sentence-transformers), ONNX Runtime fp32 and ONNX Runtime int8, each a fresh `snapdex serve` on a data
folder of its own fed by `snapdex ingest` over HTTP, and the LlamaIndex peer for reference.

Per backend:
- quality over HTTP on SciFact test (nDCG@10, recall@10, recall@100), default pipeline and first stage only;
- cold ingest: from the first POST /ingest until the snapshot holding every document is live (the model, and an
  ONNX export when the models folder lacks it, load before: /ready waits for them);
- pipeline overhead against the raw embedder of the same backend, at the service's batch and call sizes, on the
  very texts the service embedded (chunks, and windows embedded alone; --raw-sample 1 times all of them), and
  against the model time the server itself counted during the build (snapdex_embedding_model_seconds in /metrics:
  the same calls, the same minutes);
- /retrieve latency over HTTP, query embedded every time, first stage and default pipeline: on SciFact (the
  backends and the peer take turns query by query) and at 100k chunks (bench/retrieve_bench.py's synthetic
  snapshot made from that backend's SciFact snapshot, one server at a time);
- peak RSS (VmHWM) of the `snapdex serve` that served the 100k index, against the peer's process.

The servers share one models folder (in the run's work folder), so each ONNX model is exported once per run.
Builds run one after another; nothing else of this run uses the CPU meanwhile. Each backend's raw embedder is
timed right after its build (the machine's speed drifts over a long run).

Usage: .venv/bin/python bench/embedder_bench.py [--backends torch,onnx,onnx-int8] [--limit N] [--synthetic 100000]
       [--raw-sample 1] [--no-peer] [--out bench/results/embedders.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import embedded_texts, machine  # noqa: E402
from bench.peer_bench import (PASSES, PEER, Phases, Server, Worker, _cpu, git_head, ingest_and_wait, percentiles,  # noqa: E402
                              raw_embedder, score, scifact, stage_medians, take_turns, write_corpus)

BACKENDS = ("torch", "onnx", "onnx-int8")
MODES = {"default": {}, "first stage": {"rerank": "none"}}


def run_100k(args: argparse.Namespace, backend: str, env: dict, queries: dict[str, str], data: Path,
             work: Path) -> dict:
    from bench.retrieve_bench import BIG, build_synthetic

    started = time.perf_counter()
    build_synthetic(data, "default", args.synthetic)
    made = time.perf_counter() - started
    svc = Server(data, work / f"serve-100k-{backend}.log", **{**env, "SNAPDEX_DEFAULT_TENANT": BIG})
    try:
        stages: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
        systems = {m: svc.search(o, stages[m]) for m, o in MODES.items()}
        pads = {m: {p: " " * (1 + i + 3 * j) for i, (p, _) in enumerate(PASSES)} for j, m in enumerate(MODES)}
        answers = take_turns(systems, queries, pads, PASSES[:2])
        rss = svc.rss_mib()
    finally:
        svc.stop()
    return {"synthetic_build_s": round(made, 1), "rss_mib": rss,
            **{m: {"latency_ms": answers[m]["latency_ms"], "server_stage_ms_p50": stage_medians(stages[m], len(queries))}
               for m in MODES}}


def table(result: dict) -> str:
    big_n = f"{result.get('synthetic_chunks', 0) // 1000}k"
    lines = ["| backend | nDCG@10 | recall@10 | recall@100 | cold ingest s | vs torch | overhead % (raw; in run) | "
             f"SciFact p50/p95 ms (first, default) | {big_n} p50/p95 ms (first, default) | "
             f"peak RSS MiB (SciFact; {big_n}) |",
             "| " + " | ".join(["---"] * 10) + " |"]
    torch_s = result["backends"].get("torch", {}).get("cold", {}).get("seconds")
    for backend, b in result["backends"].items():
        q = b["default"]["quality"]
        lat = "; ".join(f"{b[m]['latency_ms']['p50']:.1f} / {b[m]['latency_ms']['p95']:.1f}" for m in ("first stage", "default"))
        big = b.get("100k")
        lat100 = "; ".join(f"{big[m]['latency_ms']['p50']:.1f} / {big[m]['latency_ms']['p95']:.1f}"
                           for m in ("first stage", "default")) if big else "-"
        # SciFact: the server that ingested it and answered the quality and latency queries (the peer's like).
        rss = f"{b['rss_mib']['peak']:,.0f}; " + (f"{big['rss_mib']['peak']:,.0f}" if big else "-")
        speed = f"{torch_s / b['cold']['seconds']:.2f}x" if torch_s else "-"
        over = "; ".join([f"{b['overhead_pct']:.1f}" if "overhead_pct" in b else "-",
                          f"{b['model_in_pipeline']['overhead_pct']:.1f}" if "model_in_pipeline" in b else "-"])
        lines.append(f"| {backend} | {q['ndcg@10']:.4f} | {q['recall@10']:.4f} | {q['recall@100']:.4f} | "
                     f"{b['cold']['seconds']:,.1f} | {speed} | {over} | {lat} | {lat100} | {rss} |")
    if "peer" in result:
        p = result["peer"]
        lines.append(f"| peer (LlamaIndex, in process) | {p['quality']['ndcg@10']:.4f} | {p['quality']['recall@10']:.4f} | "
                     f"{p['quality']['recall@100']:.4f} | {p['build_s']:,.1f} | - | - | "
                     f"{p['latency_ms']['p50']:.1f} / {p['latency_ms']['p95']:.1f} | - | {p['peak_rss_mib']:,.0f}; - |")
    return "\n".join(lines)


def targets(result: dict) -> dict:
    b = result["backends"]
    out: dict[str, tuple] = {}
    best = b.get("onnx-int8")
    if best and "torch" in b:
        for m in ("ndcg@10", "recall@100"):
            out[f"quality: int8 {m} within 0.005 of torch"] = (
                round(abs(best["default"]["quality"][m] - b["torch"]["default"]["quality"][m]), 4), 0.005, "<=")
        out["ingest: int8 cold ingest >= 2x faster than torch"] = (
            round(b["torch"]["cold"]["seconds"] / best["cold"]["seconds"], 2), 2.0, ">=")
    if best and "overhead_pct" in best:
        out["ingest: int8 pipeline overhead <= 10 %"] = (best["overhead_pct"], 10.0, "<=")
    if best and "100k" in best:
        out["latency: 100k first stage p95 <= 20 ms"] = (best["100k"]["first stage"]["latency_ms"]["p95"], 20.0, "<=")
        out["latency: 100k default p95 <= 25 ms"] = (best["100k"]["default"]["latency_ms"]["p95"], 25.0, "<=")
        out["memory: peak RSS serving 100k <= 1,200 MiB"] = (best["100k"]["rss_mib"]["peak"], 1200.0, "<=")
        if "peer" in result:
            out["memory: SciFact peak RSS below the peer's (both ingested and served SciFact)"] = (
                best["rss_mib"]["peak"], result["peer"]["peak_rss_mib"], "<")
            out["memory: peak RSS serving 100k below the peer's (which served SciFact)"] = (
                best["100k"]["rss_mib"]["peak"], result["peer"]["peak_rss_mib"], "<")
    check = {">=": lambda v, x: v >= x, "<=": lambda v, x: v <= x, "<": lambda v, x: v < x}
    return {name: {"value": v, "bound": x, "met": bool(check[op](v, x))} for name, (v, x, op) in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, from torch, onnx, onnx-int8")
    p.add_argument("--limit", type=int, default=0, help="first N documents only (0 = all of SciFact)")
    p.add_argument("--synthetic", type=int, default=100_000, help="chunks of the large index (0: skip it)")
    p.add_argument("--raw-sample", type=float, default=1.0, help="fraction of the embedded texts the raw embedder "
                                                                 "times (1: all; 0: skip)")
    p.add_argument("--no-peer", action="store_true", help="leave the LlamaIndex peer out")
    p.add_argument("--batch-size", type=int, help="the service's embedding batch size, and the peer's (default: the "
                                                  "service's default)")
    p.add_argument("--work", type=Path, help="a new or empty folder for data and logs (default: a temporary one)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "embedders.json")
    args = p.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if bad := [b for b in backends if b not in BACKENDS]:
        raise SystemExit(f"unknown backends {bad}: choose from {BACKENDS}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="snapdex-embedders-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        raise SystemExit(f"{work} is not empty: every system is built from scratch here")
    args.settings = {}  # what peer_bench's helpers read for the service under test; backends are set per server
    if args.batch_size is None:
        from snapdex.settings import Settings

        args.batch_size = Settings().embedding_batch_size
    wall = time.perf_counter()
    docs, queries, qrels = scifact(args.limit)
    corpus = work / "corpus.jsonl"
    write_corpus(docs, corpus)
    result: dict = {"machine": machine(), "cpu": _cpu(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "git": git_head(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "corpus": {"dataset": "BEIR SciFact", "documents": len(docs), "split": "test", "queries": len(queries)},
                    "synthetic_chunks": args.synthetic, "backends": {}}
    phases = phase = Phases()

    peer = None if args.no_peer else phase("peer build", lambda: Worker("peer", args))
    models = work / "models"
    envs = {b: {"SNAPDEX_EMBEDDER_BACKEND": b, "SNAPDEX_MODELS_DIR": str(models),
                "SNAPDEX_EMBEDDING_BATCH_SIZE": str(args.batch_size)} for b in backends}
    servers: dict[str, Server] = {}
    try:
        for b in backends:
            svc = servers[b] = phase(f"{b}: start", lambda b=b: Server(work / f"data-{b}", work / f"serve-{b}.log", **envs[b]))
            before = _model_time(svc)
            cold = phase(f"{b}: cold ingest", lambda svc=svc: ingest_and_wait(svc, corpus, len(docs), None))
            svc.wait_idle()
            result["backends"][b] = r = {"cold": cold, "export": _export_info(models, b)}
            after = _model_time(svc)
            # The model's share of the cold ingest as the server itself timed it, in the same minutes.
            inside = {"seconds": round(after[0] - before[0], 1), "texts": int(after[1] - before[1])}
            r["model_in_pipeline"] = {**inside, "overhead_pct": round(100 * (cold["seconds"] / inside["seconds"] - 1), 1)}
            if args.raw_sample:
                # Right after the build, its server idle: this machine's speed drifts by 15-20 % over tens of
                # minutes, so the two sides of the overhead are timed minutes apart, not an hour.
                os.environ["SNAPDEX_MODELS_DIR"] = str(models)  # the raw embedder loads the export the server used
                texts = embedded_texts(work / f"data-{b}", backend=b)
                raw = phase(f"{b}: raw embedder", lambda: raw_embedder(args, *texts, backend=b, data=work / f"data-{b}"))
                r["raw_embedder"] = raw
                r["overhead_pct"] = round(100 * (cold["seconds"] / raw["estimated_all_s"] - 1), 1)
        stages = {(b, m): {} for b in backends for m in MODES}
        systems = {f"{b} {m}": servers[b].search(o, stages[(b, m)]) for b in backends for m, o in MODES.items()}
        if peer is not None:
            systems[PEER] = peer.search("peer")
        # Trailing spaces: no snapdex pass shares a query text with another, so every request embeds its query.
        pads = {name: {p: " " * (1 + i + 3 * j) for i, (p, _) in enumerate(PASSES)} for j, name in enumerate(systems)}
        answers = phase("queries", lambda: take_turns(systems, queries, pads))
        for b in backends:
            r = result["backends"][b]
            for m in MODES:
                a = answers[f"{b} {m}"]
                r[m] = {"quality": score(a["rankings"], qrels), "latency_ms": a["latency_ms"],
                        "server_stage_ms_p50": stage_medians(stages[(b, m)], len(queries))}
            r["rss_mib"] = servers[b].rss_mib()
        if peer is not None:
            a = answers[PEER]
            result["peer"] = {**peer.info, "quality": score(a["rankings"], qrels), "latency_ms": a["latency_ms"],
                              "peak_rss_mib": peer.stats()["peak_rss_mib"]}
    finally:
        for svc in servers.values():
            svc.stop()
        if peer is not None:
            peer.close()

    for b in backends:
        if args.synthetic:
            data = work / f"data-{b}"
            result["backends"][b]["100k"] = phase(f"{b}: 100k", lambda: run_100k(args, b, envs[b], queries, data, work))
    result["phases_s"] = phases
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    result["targets"] = targets(result)
    result["table"] = table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{result['corpus']['dataset']} {result['corpus']['split']}: {len(queries)} queries, {len(docs)} documents; "
          f"{result['machine']}, {result['cpu']}; {result['date']}, commit {result['git']['commit'][:10]}")
    print(result["table"])
    for name, t in result["targets"].items():
        print(f"  [{'met' if t['met'] else 'MISSED'}] {name}: {t['value']} (bound {t['bound']})")
    print(f"wall time {result['wall_s']:.0f} s; phases (s) {phases}")
    return 0


def _model_time(svc: Server) -> tuple[float, float]:
    """The server's snapdex_embedding_model_seconds and _texts counters (/metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    got = {s.name: s.value for f in text_string_to_metric_families(svc.client.get("/metrics").text) for s in f.samples}
    return got.get("snapdex_embedding_model_seconds_total", 0.0), got.get("snapdex_embedding_model_texts_total", 0.0)


def _export_info(models: Path, backend: str) -> dict | None:
    if backend == "torch":
        return None
    found = sorted(models.glob(f"*-onnx-*/export.json"))
    metas = [json.loads(f.read_text()) for f in found]
    want = {"onnx": "none", "onnx-int8": None}[backend]
    for m in metas:
        if (m["config"]["quantization"] == "none") == (want == "none"):
            return {k: m[k] for k in ("config", "bytes", "min_cosine_to_torch", "seconds")}
    return None


if __name__ == "__main__":
    sys.exit(main())
