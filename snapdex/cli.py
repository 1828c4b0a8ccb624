"""`snapdex`: serve (embedded default), worker (production), ingest (a folder or a BEIR corpus.jsonl), eval (BEIR:
import a split as a labelled query set, or run every retrieval variant in process)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator

FILE_TYPES = {".txt", ".md", ".markdown", ".html", ".htm", ".docx", ".pdf"}


def _serve(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    import uvicorn

    from snapdex.settings import get_settings

    s = get_settings()
    mode = (
        f"embedded: {'qdrant-edge-py' if s.store_backend == 'edge' else 'qdrant ' + str(s.qdrant_url)}, "
        f"Celery worker {'in this process' if s.embedded_worker else 'in separate processes'} ({s.broker_url})"
    )
    print(f"snapdex listening on http://{args.host}:{args.port}  (data in {s.data_dir.resolve()}; {mode})", flush=True)
    from snapdex.logs import logging_config

    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, log_level=args.log_level,
                log_config=logging_config(s.log_format, args.log_level))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from snapdex.runtime import Runtime, set_runtime
    from snapdex.settings import get_settings
    from workers.celery_app import configure

    from snapdex.logs import configure as configure_logging

    s = get_settings()
    configure_logging(s.log_format, args.log_level)
    rt = Runtime(s)
    set_runtime(rt)
    rt.warm_up()  # once per worker process, before it takes its first task
    app = configure(s)
    app.Worker(pool=args.pool, concurrency=args.concurrency or s.worker_concurrency, loglevel=args.log_level.upper(),
               hostname=args.hostname).start()
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    from snapdex.evaluate import main as evaluate

    return evaluate(args.dataset, args.split, args.tenant, args.out, args.only)


def _eval_import(args: argparse.Namespace) -> int:
    import httpx

    from eval.beir import BeirDataset

    dataset = BeirDataset(args.dataset)
    qrels = dataset.qrels(args.split)
    texts = dataset.queries(set(qrels))
    missing = sorted(set(qrels) - set(texts))
    if missing:
        print(f"{len(missing)} labelled queries have no text in queries.jsonl and are left out: {missing[:5]}",
              file=sys.stderr)
    name = args.name or f"{dataset.name}-{args.split}".lower()
    body = {"name": name, "description": f"BEIR {dataset.name}, split {args.split}",
            "queries": [{"id": q, "text": texts[q], "relevant": [{"doc_id": d, "grade": g} for d, g in rel.items()]}
                        for q, rel in qrels.items() if q in texts]}
    client = httpx.Client(base_url=args.url, headers={"X-Tenant": args.tenant} if args.tenant else {}, timeout=300)
    r = client.post("/eval/query-sets", json=body)
    if r.status_code not in (200, 201):
        raise SystemExit(f"upload refused ({r.status_code}): {r.text[:500]}")
    qs = r.json()
    print(f"query set {qs['name']} v{qs['version']}: {qs['queries']} queries "
          f"({'new version' if qs['created'] else 'unchanged, kept'}); kept snapshots are being scored")
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        live = client.get("/snapshots").json().get("live")
        runs = [x for x in client.get("/eval/runs", params={"query_set": name}).json()["runs"]
                if x["version"] == qs["version"] and x["snapshot"] == live and x["status"] != "running"]
        if runs or live is None:
            break
        time.sleep(1)
    else:
        raise SystemExit(f"no finished run of {name} v{qs['version']} on the live snapshot after {args.wait} s")
    if live is None:
        print("no live snapshot yet: the set runs after the first build")
        return 0
    run = runs[0]
    if run["status"] == "failed":
        raise SystemExit(f"evaluation failed: {run['error']}")
    print(f"live snapshot {live[:12]} on {name} v{qs['version']} ({run['queries']} queries, "
          f"p50 {run['latency_ms']['p50']:.1f} ms):")
    for metric, value in run["metrics"].items():
        print(f"  {metric:<16}{value:.4f}")
    return 0


def _beir_batches(path: Path, batch: int) -> Iterator[list[dict]]:
    from eval.beir import corpus_documents

    docs: list[dict] = []
    for doc in corpus_documents(path):
        docs.append(doc)
        if len(docs) >= batch:
            yield docs
            docs = []
    if docs:
        yield docs


def _folder_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_TYPES)


def _ingest(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    path: Path = args.path
    headers = {"X-Tenant": args.tenant} if args.tenant else {}
    client = httpx.Client(base_url=args.url, headers=headers, timeout=300)
    jobs: list[str] = []

    def submit(**kw) -> None:
        r = client.post("/ingest", **kw)
        if r.status_code != 202:
            raise SystemExit(f"ingest refused ({r.status_code}): {r.text[:500]}")
        jobs.append(r.json()["job_id"])

    if path.is_file() and path.suffix == ".jsonl":
        for docs in _beir_batches(path, args.batch_size):
            submit(json={"documents": docs})
    elif path.is_dir() or path.is_file():
        files = _folder_files(path) if path.is_dir() else [path]
        if not files:
            raise SystemExit(f"no {', '.join(sorted(FILE_TYPES))} files under {path}")
        base = path if path.is_dir() else path.parent
        step = max(1, min(args.batch_size, 32))
        for i in range(0, len(files), step):
            part = files[i : i + step]
            submit(files=[("files", (str(f.relative_to(base)), f.read_bytes())) for f in part])
    else:
        raise SystemExit(f"{path} is neither a folder, a file nor a BEIR corpus.jsonl")

    views: dict[str, dict] = {}
    with tqdm(total=None, unit="doc", desc="ingest", disable=args.quiet) as bar:
        while True:
            views = {j: client.get(f"/jobs/{j}").json() for j in jobs}
            bar.total = sum(v["progress"]["documents_total"] for v in views.values())
            bar.n = sum(v["progress"]["documents_done"] for v in views.values())
            chunks = sum(v["progress"]["chunks_done"] for v in views.values())
            bar.set_postfix(chunks=chunks, settled=sum(v["status"] in ("succeeded", "failed") for v in views.values()))
            bar.refresh()
            if all(v["status"] in ("succeeded", "failed") for v in views.values()):
                break
            time.sleep(0.5)
    totals: dict[str, int] = {}
    for v in views.values():
        for k, n in v["counts"].items():
            totals[k] = totals.get(k, 0) + n
    failed_jobs = [v for v in views.values() if v["status"] == "failed"]
    print(json.dumps({"jobs": len(jobs), "failed_jobs": len(failed_jobs), "counts": totals,
                      "snapshot": next((v["snapshot"] for v in reversed(list(views.values())) if v["snapshot"]), None)}))
    for v in views.values():
        for f in v["failures"]:
            print(f"failed: {f['doc_id']}: {f['reason']}", file=sys.stderr)
        if v["status"] == "failed":
            print(f"job {v['job_id']} failed: {v['error']}", file=sys.stderr)
    return 1 if failed_jobs else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="snapdex", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the API (embedded default: qdrant-edge-py on disk, Celery in-process)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--data-dir", type=Path)
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=_serve)

    w = sub.add_parser("worker", help="a Celery worker process (production: Redis broker, Qdrant server)")
    w.add_argument("--concurrency", type=int)
    w.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    w.add_argument("--hostname", default=None)
    w.add_argument("--log-level", default="info")
    w.set_defaults(func=_worker)

    i = sub.add_parser("ingest", help="send a folder of files or a BEIR corpus.jsonl to a running service")
    i.add_argument("path", type=Path)
    i.add_argument("--url", default=os.environ.get("SNAPDEX_URL", "http://127.0.0.1:8000"))
    i.add_argument("--tenant", default=None)
    i.add_argument("--batch-size", type=int, default=1000, help="documents per request")
    i.add_argument("--quiet", action="store_true")
    i.set_defaults(func=_ingest)

    ev = sub.add_parser("eval", help="labelled queries: import a BEIR split as a query set, or compare variants")
    esub = ev.add_subparsers(dest="eval_command", required=True)
    e = esub.add_parser("run", help="index a BEIR dataset in process and print every retrieval variant's metrics")
    e.add_argument("--dataset", type=Path, required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    e.add_argument("--split", default="test")
    e.add_argument("--data-dir", type=Path, help="where the index lives (default: SNAPDEX_DATA_DIR)")
    e.add_argument("--tenant", default=None, help="default: eval-<dataset name>")
    e.add_argument("--only", nargs="+", help="variant names to run (default: all)")
    e.add_argument("--json", type=Path, dest="out", help="also write the results here")
    e.set_defaults(func=_eval)
    im = esub.add_parser("import", help="upload a BEIR split (queries.jsonl + qrels/<split>.tsv) to a running "
                                        "service as a labelled query set of a tenant")
    im.add_argument("--dataset", type=Path, required=True, help="folder with queries.jsonl and qrels/")
    im.add_argument("--split", default="test")
    im.add_argument("--name", default=None, help="query set name (default: <dataset>-<split>)")
    im.add_argument("--url", default=os.environ.get("SNAPDEX_URL", "http://127.0.0.1:8000"))
    im.add_argument("--tenant", default=None)
    im.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                    help="wait this long for the live snapshot's run and print its metrics")
    im.set_defaults(func=_eval_import)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
