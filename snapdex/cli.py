"""`snapdex`: serve (embedded default), worker and beat (production), keys (API keys of tenants), ingest (a folder or
a BEIR corpus.jsonl), sources (folders, buckets, repositories and sites kept in sync), mcp (an MCP server on stdio
over a running service), eval (BEIR: import a split as a labelled query set, or run every retrieval variant in
process), bench (import a benchmark run into the dashboard's history)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from wire.files import FILE_TYPES


def _keep_torch_out(settings) -> None:
    """In a process whose model runs on ONNX Runtime (and with no cross-encoder, the one other torch user), mark
    torch absent: nothing here would use it (~190 MB of RSS and 2 s when something imports it only because it is
    installed, as spaCy's thinc does; parsing runs in child processes that refuse it too). The ONNX export, which
    needs torch, runs in a child process of its own."""
    if settings.embedder_backend != "torch" and settings.cross_encoder_path is None and "torch" not in sys.modules:
        from ingest.parse_child import RefuseImports

        sys.meta_path.insert(0, RefuseImports(("torch",), "this process serves with ONNX Runtime"))


def _settings():
    """The settings, or an exit naming what is wrong with them (a bad SNAPDEX_DATABASE_URL, say)."""
    from pydantic import ValidationError

    from snapdex.settings import get_settings

    try:
        return get_settings()
    except ValidationError as e:
        raise SystemExit(f"bad settings: {e}") from e


def _serve(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    import uvicorn

    from db import check_url

    s = _settings()
    _keep_torch_out(s)
    mode = (
        f"embedded: {'qdrant-edge-py' if s.store_backend == 'edge' else 'qdrant ' + str(s.qdrant_url)}, "
        f"Celery worker {'in this process' if s.embedded_worker else 'in separate processes'} ({s.broker_url})"
    )
    catalog = "" if s.database_url is None else \
        f"; catalog {check_url(s.database_url).render_as_string(hide_password=True)}"
    print(f"snapdex listening on http://{args.host}:{args.port}  (data in {s.data_dir.resolve()}{catalog}; {mode})",
          flush=True)
    keys = _key_store(s)
    if keys.required():
        print(f"API keys required on every route but /health ({len(keys.list())} keys)", flush=True)
    else:
        print(f"KEYLESS: no API key is configured; every request is tenant {s.default_tenant!r}. "
              "`snapdex keys create --tenant NAME` makes keys required.", flush=True)
    from snapdex.logs import logging_config

    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, log_level=args.log_level,
                log_config=logging_config(s.log_format, args.log_level), timeout_graceful_shutdown=s.shutdown_grace_s)
    return 0


def _key_store(settings):
    from db import CatalogUnavailable, SchemaError, open_catalog
    from snapdex.keys import KeyStore

    # The catalog alone: keys can be managed beside a running service (SQLite in WAL mode, or PostgreSQL). Opening
    # it upgrades it; a catalog that cannot be reached or read stops here with the reason.
    try:
        return KeyStore(open_catalog(settings.catalog_url), settings.api_keys)
    except (CatalogUnavailable, SchemaError) as e:
        raise SystemExit(str(e)) from e


def _keys(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    from snapdex.keys import digest

    if args.keys_command == "hash":
        key = sys.stdin.readline().strip()
        if not key:
            raise SystemExit("give the key on standard input")
        print(digest(key))
        return 0
    store = _key_store(_settings())
    if args.keys_command == "create":
        if (args.tenant is None) == (not args.operator):
            raise SystemExit("give exactly one of --tenant NAME or --operator")
        try:
            groups = [g.strip() for g in (args.groups or "").split(",") if g.strip()]
            key, made = store.create(args.tenant, args.name, scope=args.scope or "admin", user=args.user,
                                     groups=groups)
        except ValueError as e:
            raise SystemExit(str(e)) from e
        print(key)
        whom = "the operator" if made.operator else f"tenant {made.tenant} ({made.scope}" + (
            f" as user {made.user}" if made.user else "") + ")"
        print(f"key {made.id} for {whom}: shown once, "
              "only its SHA-256 is kept; the service requires keys from now on (within 5 s)", file=sys.stderr)
    elif args.keys_command == "list":
        for k in store.list(include_revoked=args.all):
            state = f"revoked {time.strftime('%Y-%m-%d %H:%M', time.gmtime(k.revoked_at))}" if k.revoked_at else "active"
            made = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created_at)) if k.created_at else "-"
            scope = "-" if k.operator else k.scope + (f":{k.user}" if k.user else "")
            print(f"{k.id}  {k.tenant or '(operator)':<24} {scope:<16} {k.source:<9} {made:<17} {state:<26} {k.name}")
    elif args.keys_command == "revoke":
        k = store.revoke(args.id)
        if k is None:
            raise SystemExit(f"no key {args.id!r} in the catalog (keys from SNAPDEX_API_KEYS go by removing them)")
        print(f"key {k.id} of {k.tenant or 'the operator'} revoked; API processes stop taking it within 5 s")
    return 0


def _db(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    if args.database_url:
        os.environ["SNAPDEX_DATABASE_URL"] = args.database_url
    from db import CatalogUnavailable, Database, SchemaError, migrate, open_catalog, transfer

    settings = _settings()
    try:
        if args.db_command == "history":
            at = migrate.current(Database(settings.catalog_url)) if args.mark else None
            for r in migrate.history():
                print(f"{r.id}{' (current)' if r.id == at else ''}{' (head)' if r.id == migrate.head() else ''}  "
                      f"{r.title}")
            return 0
        if args.db_command == "current":
            db = Database(settings.catalog_url)
            at, head = migrate.current(db), migrate.head()
            state = "head" if at == head else "empty or written before migrations" if at is None else f"head is {head}"
            print(f"catalog {db.display_url}: revision {at or '-'} ({state})")
            return 0 if at == head else 1
        if args.db_command == "upgrade":
            db = Database(settings.catalog_url)
            before, after = migrate.upgrade(db, args.revision)
            print(f"catalog {db.display_url}: " + (f"at {after} already" if before == after
                                                   else f"upgraded from {before or 'nothing'} to {after}"))
            return 0
        if args.db_command == "downgrade":
            db = Database(settings.catalog_url)
            before, after = migrate.downgrade(db, args.revision)
            print(f"catalog {db.display_url}: downgraded from {before} to {after or 'nothing'}; run the release that "
                  "matches this revision")
            return 0
        if args.db_command == "export":
            db = Database(settings.catalog_url)
            if (at := migrate.current(db)) != migrate.head():
                raise SystemExit(f"the catalog at {db.display_url} is at revision {at or '-'}, this release writes "
                                 f"{migrate.head()}: run `snapdex db upgrade` first (or export with its own release)")
            out = sys.stdout if args.out in (None, Path("-")) else args.out.open("w", encoding="utf-8")
            try:
                counts = transfer.export(db, out, args.tenant or None)
            finally:
                if out is not sys.stdout:
                    out.close()
            what = f"tenants {', '.join(args.tenant)}" if args.tenant else "the whole catalog"
            print(f"exported {what}: {sum(counts.values())} rows ({_counts(counts)})", file=sys.stderr)
            return 0
        if args.db_command == "import":
            db = open_catalog(settings.catalog_url)
            with (sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")) as source:
                counts = transfer.import_(db, source, replace=args.replace)
            print(f"imported into {db.display_url}: {sum(counts.values())} rows ({_counts(counts)}); vectors are not "
                  "in the catalog: `POST /snapshots` rebuilds a restored tenant's live snapshot", file=sys.stderr)
            return 0
    except (CatalogUnavailable, SchemaError, transfer.ImportRefused, OSError) as e:
        raise SystemExit(str(e)) from e
    raise SystemExit(f"unknown db command {args.db_command!r}")


def _counts(counts) -> str:
    return ", ".join(f"{table} {n}" for table, n in sorted(counts.items()) if n) or "nothing"


def _client(args: argparse.Namespace):
    import httpx

    key = args.api_key or os.environ.get("SNAPDEX_API_KEY")
    return httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=300)


def _mcp(args: argparse.Namespace) -> int:
    from api.mcp_server.stdio import serve

    return serve(args.url, os.environ.get("SNAPDEX_API_KEY"), args.principal, _settings().mcp_allow_writes)


def _worker(args: argparse.Namespace) -> int:
    from snapdex.runtime import Runtime, set_runtime
    from workers.celery_app import configure

    from snapdex.logs import configure as configure_logging

    from db import CatalogUnavailable, SchemaError

    s = _settings()
    _keep_torch_out(s)
    configure_logging(s.log_format, args.log_level)
    try:
        rt = Runtime(s)
    except (CatalogUnavailable, SchemaError) as e:
        raise SystemExit(str(e)) from e
    set_runtime(rt)
    # Once per worker process, before it takes its first task. Prefork processes start parse children of their own.
    rt.warm_up(ingest=args.pool != "prefork")
    app = configure(s)
    app.Worker(pool=args.pool, concurrency=args.concurrency or s.worker_concurrency, loglevel=args.log_level.upper(),
               hostname=args.hostname, queues=args.queues.split(",")).start()
    return 0


def _beat(args: argparse.Namespace) -> int:
    """Celery beat beside Redis workers: it sends the sources' tick every SNAPDEX_SOURCE_TICK_S (the schedule itself is
    in the catalog). The embedded service runs its own; one beat per deployment is enough (a second only sends
    ticks that find nothing due)."""
    from snapdex.logs import configure as configure_logging
    from workers.celery_app import configure

    s = _settings()
    configure_logging(s.log_format, args.log_level)
    app = configure(s)
    app.Beat(loglevel=args.log_level.upper(), scheduler=app.conf.beat_scheduler).run()
    return 0


def _json_arg(value: str | None, what: str):
    """A JSON argument: the text itself, @FILE, or - for standard input (credentials stay off the command line)."""
    if value is None:
        return None
    if value == "-":
        value = sys.stdin.read()
    elif value.startswith("@"):
        value = Path(value[1:]).read_text(encoding="utf-8")
    try:
        return json.loads(value)
    except ValueError as e:
        raise SystemExit(f"{what} is not JSON: {e}") from e


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) if epoch else "-"


def _sources(args: argparse.Namespace) -> int:
    client = _client(args)

    def call(method: str, path: str, **kw) -> dict:
        r = client.request(method, path, **kw)
        if r.status_code >= 400:
            raise SystemExit(f"{method} {path} refused ({r.status_code}): {r.text[:1000]}")
        return r.json()

    if args.sources_command == "add":
        body = {"name": args.name, "kind": args.kind, "config": _json_arg(args.config, "--config") or {},
                "metadata": _json_arg(args.metadata, "--metadata") or {}}
        if args.schedule and args.every:
            raise SystemExit("give --schedule CRON or --every SECONDS, not both")
        body["schedule"] = args.schedule or ({"every_s": args.every} if args.every else None)
        if args.access:
            body["access"] = _json_arg(args.access, "--access")
        made = call("POST", "/sources", json=body)
        print(made["id"])
        print(f"source {made['id']} ({made['kind']}) named {made['name']!r}; "
              + (f"next sync {_when(made['next_sync_at'])} UTC" if made["next_sync_at"] else "syncs on request"),
              file=sys.stderr)
        if args.sync:
            return _sync_source(call, made["id"], args.wait)
    elif args.sources_command == "list":
        for src in call("GET", "/sources")["sources"]:
            last = src["last_sync"]
            counts = " ".join(f"{k}={v}" for k, v in (src["counts"] or {}).items()) or "-"
            print(f"{src['id']}  {src['name']:<24} {src['kind']:<6} {src['state']:<8} docs={src['documents']:<7} "
                  f"last={_when(last['finished_at'] if last else None)}  next={_when(src['next_sync_at'])}  {counts}"
                  + (f"  error: {src['last_error']}" if src["last_error"] else ""))
    elif args.sources_command == "sync":
        return _sync_source(call, args.id, args.wait)
    elif args.sources_command == "remove":
        gone = call("DELETE", f"/sources/{args.id}")
        print(f"source {args.id} removed; its {gone['documents']} documents leave the next snapshot")
    return 0


def _sync_source(call, source_id: str, wait: float) -> int:
    sync_id = call("POST", f"/sources/{source_id}/sync")["sync_id"]
    print(sync_id)
    if not wait:
        return 0
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        sync = next((s for s in call("GET", f"/sources/{source_id}/syncs")["syncs"] if s["sync_id"] == sync_id), None)
        if sync is not None and sync["status"] != "running":
            print(json.dumps({"status": sync["status"], "counts": sync["counts"], "seconds": sync["seconds"],
                              "chunks_embedded": sync["chunks_embedded"], "error": sync["error"]}))
            for f in sync["failures"]:
                print(f"failed: {f['item']}: {f['reason']}", file=sys.stderr)
            return 0 if sync["status"] == "succeeded" else 1
        time.sleep(POLL_S)
    raise SystemExit(f"sync {sync_id} still running after {wait} s (GET /sources/{source_id}/syncs)")


def _model_export(args: argparse.Namespace) -> int:
    """Export the ONNX models now (at set-up, or into an image), rather than on the service's first start."""
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    from encoders.dense import packaged_model_path
    from encoders.onnx_backend import ONNX_BACKENDS, ensure_exported
    from snapdex.settings import get_settings

    s = get_settings()
    folder = s.embedding_model_path or packaged_model_path()
    backends = sorted(ONNX_BACKENDS) if args.backend == "all" else [args.backend]
    for backend in backends:
        out = ensure_exported(folder, s.models_path, ONNX_BACKENDS[backend])
        meta = json.loads((out / "export.json").read_text())
        print(f"{backend}: {out} ({meta['bytes'] / 2**20:.1f} MiB; cosine to torch on sample texts "
              f">= {meta['min_cosine_to_torch']})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["SNAPDEX_DATA_DIR"] = str(args.data_dir)
    from snapdex.evaluate import main as evaluate

    return evaluate(args.dataset, args.split, args.tenant, args.out, args.only)


def _eval_import(args: argparse.Namespace) -> int:
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
    client = _client(args)
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


def _bench_import(args: argparse.Namespace) -> int:
    try:
        run = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"cannot read {args.file} as JSON: {e}") from e
    r = _client(args).post("/benchmarks", params={"name": args.name}, json=run)
    if r.status_code not in (200, 201):
        raise SystemExit(f"import refused ({r.status_code}): {r.text[:1000]}")
    b = r.json()
    print(f"benchmark {b['id']}: {b['name']} run of {b['date']}, commit {b['commit'][:10]}: "
          f"{'imported (new)' if b['created'] else 'imported before, kept as it was'}")
    t = b["targets"]
    missed = f"; missed: {', '.join(t['missed'])}" if t["missed"] else ""
    print(f"targets met {t['met']}/{t['total']}{missed}")
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


POLL_S = 0.5
POLL_MISSES = 60  # polls in a row that could not read a job (30 s) before giving up


def _watch_jobs(client, jobs: list[str], quiet: bool) -> dict[str, dict]:
    """Each job's view (GET /jobs/{id}) once every one has settled, with a progress bar meanwhile. A poll that
    gets a 5xx or loses the connection is asked again (the jobs run on regardless); a 4xx ends the watch."""
    import httpx
    from tqdm import tqdm

    from wire.jobs import SETTLED

    views: dict[str, dict] = {}
    settled: set[str] = set()
    misses, last_error = 0, ""
    with tqdm(total=None, unit="doc", desc="ingest", disable=quiet) as bar:
        while True:
            missed = False
            # A settled job's view no longer changes: only the others are asked again (each view counts its
            # documents in the catalog, and the server is busy ingesting the rest).
            for j in [j for j in jobs if j not in settled]:
                try:
                    r = client.get(f"/jobs/{j}")
                except httpx.TransportError as e:
                    missed, last_error = True, f"{type(e).__name__}: {e}"
                    continue
                if r.status_code >= 500:
                    missed, last_error = True, f"{r.status_code}: {r.text[:300]}"
                    continue
                if r.status_code != 200:
                    raise SystemExit(f"reading job {j} failed ({r.status_code}): {r.text[:500]}")
                views[j] = r.json()
            settled = {j for j, v in views.items() if v["status"] in SETTLED}
            misses = misses + 1 if missed else 0
            if misses >= POLL_MISSES:
                raise SystemExit(f"could not read the jobs' status {misses} times in a row; last: {last_error}. "
                                 f"The jobs go on: GET /jobs/{{id}} for {', '.join(jobs)}")
            bar.total = sum(v["progress"]["documents_total"] for v in views.values())
            bar.n = sum(v["progress"]["documents_done"] for v in views.values())
            chunks = sum(v["progress"]["chunks_done"] for v in views.values())
            bar.set_postfix(chunks=chunks, settled=len(settled))
            bar.refresh()
            if len(settled) == len(jobs):
                return views
            time.sleep(POLL_S)


def _ingest(args: argparse.Namespace) -> int:
    path: Path = args.path
    client = _client(args)
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

    views = _watch_jobs(client, jobs, args.quiet)
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
    w.add_argument("--queues", default="celery,snapdex-webhooks",
                   help="comma-separated; webhook deliveries go to snapdex-webhooks: a worker with only that queue "
                        "keeps alerts flowing while the others ingest")
    w.add_argument("--log-level", default="info")
    w.set_defaults(func=_worker)

    bt = sub.add_parser("beat", help="Celery beat beside Redis workers: starts the sources' scheduled syncs "
                                     "(the embedded service runs its own)")
    bt.add_argument("--log-level", default="info")
    bt.set_defaults(func=_beat)

    so = sub.add_parser("sources", help="folders, S3 buckets, Git repositories and websites kept in sync")
    so.add_argument("--url", default=os.environ.get("SNAPDEX_URL", "http://127.0.0.1:8000"))
    so.add_argument("--api-key", default=None, help="the tenant's admin key (default: $SNAPDEX_API_KEY)")
    sosub = so.add_subparsers(dest="sources_command", required=True)
    sa = sosub.add_parser("add", help="register a source and print its id")
    sa.add_argument("name")
    sa.add_argument("kind", choices=["folder", "s3", "git", "web"])
    sa.add_argument("--config", required=True, help='JSON, @FILE or - (standard input: keep credentials off the '
                                                    'command line), e.g. \'{"path": "/srv/handbook"}\'')
    sa.add_argument("--schedule", help='a cron expression in UTC, e.g. "*/30 * * * *"')
    sa.add_argument("--every", type=float, metavar="SECONDS", help="sync every this many seconds")
    sa.add_argument("--metadata", help="JSON object every document of the source carries")
    sa.add_argument("--access", help='JSON {"users": [...], "groups": [...]}: who may read its documents')
    sa.add_argument("--sync", action="store_true", help="sync it now")
    sa.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="with --sync: wait for it, print counts")
    sosub.add_parser("list", help="the tenant's sources, each with its last sync")
    ss = sosub.add_parser("sync", help="sync a source now and print the sync id")
    ss.add_argument("id")
    ss.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait for it and print its counts")
    sr = sosub.add_parser("remove", help="delete a source; its documents leave the next snapshot")
    sr.add_argument("id")
    so.set_defaults(func=_sources)

    d = sub.add_parser("db", help="the catalog database: migrations (also run at every start), backup and restore")
    d.add_argument("--data-dir", type=Path, help="the service's data folder (default: SNAPDEX_DATA_DIR)")
    d.add_argument("--database-url", help="the catalog (default: SNAPDEX_DATABASE_URL, else SQLite in the data folder)")
    dsub = d.add_subparsers(dest="db_command", required=True)
    du = dsub.add_parser("upgrade", help="bring the catalog to this release's schema (under a lock)")
    du.add_argument("--revision", default="head", help="a revision id (default: head)")
    dd = dsub.add_parser("downgrade", help="take the catalog back to an older revision, for an older release")
    dd.add_argument("revision", help="a revision id, or base")
    dsub.add_parser("current", help="the catalog's revision; exit status 1 when it is not at this release's head")
    dh = dsub.add_parser("history", help="every revision, oldest first")
    dh.add_argument("--mark", action="store_true", help="mark the catalog's current revision")
    de = dsub.add_parser("export", help="back up the catalog, or some tenants of it, as JSON lines")
    de.add_argument("--tenant", action="append", help="only this tenant (repeatable); default: everything, with "
                                                      "the service-wide rows (operator keys, benchmark runs)")
    de.add_argument("--out", type=Path, help="a file (default: standard output)")
    di = dsub.add_parser("import", help="restore an export into the catalog, in one transaction")
    di.add_argument("file", type=Path, help="a file written by `snapdex db export` (- for standard input)")
    di.add_argument("--replace", action="store_true", help="delete the rows the file's tenants have first")
    d.set_defaults(func=_db)

    k = sub.add_parser("keys", help="API keys: each maps to one tenant (or the operator); only SHA-256s are kept")
    k.add_argument("--data-dir", type=Path, help="the service's data folder (default: SNAPDEX_DATA_DIR)")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="make a key and print it once")
    kc.add_argument("--tenant", help="the tenant the key reaches")
    kc.add_argument("--operator", action="store_true", help="a key for /metrics and /ready, no tenant's data")
    kc.add_argument("--name", default="", help="a label, e.g. who holds it")
    kc.add_argument("--scope", choices=["service", "user", "admin"], help=(
        "admin (default): the whole tenant; service: retrieves on behalf of the principal each request names; "
        "user: reads as the fixed --user/--groups"))
    kc.add_argument("--user", help="a user key's user name (what documents' access lists name)")
    kc.add_argument("--groups", help="a user key's groups, comma-separated: G1,G2")
    kl = ksub.add_parser("list", help="keys by id and tenant (never the keys themselves)")
    kl.add_argument("--all", action="store_true", help="revoked ones too")
    kr = ksub.add_parser("revoke", help="stop a key working")
    kr.add_argument("id")
    ksub.add_parser("hash", help="print the SHA-256 of a key read from standard input, for SNAPDEX_API_KEYS")
    k.set_defaults(func=_keys)

    i = sub.add_parser("ingest", help="send a folder of files or a BEIR corpus.jsonl to a running service")
    i.add_argument("path", type=Path)
    i.add_argument("--url", default=os.environ.get("SNAPDEX_URL", "http://127.0.0.1:8000"))
    i.add_argument("--api-key", default=None, help="the tenant's API key (default: $SNAPDEX_API_KEY); a keyless service needs none")
    i.add_argument("--batch-size", type=int, default=1000, help="documents per request")
    i.add_argument("--quiet", action="store_true")
    i.set_defaults(func=_ingest)

    mc = sub.add_parser("mcp", help="an MCP server on stdio (a desktop client starts it) answering from a running "
                                    "service; its key comes from $SNAPDEX_API_KEY")
    mc.add_argument("--url", default=os.environ.get("SNAPDEX_URL", "http://127.0.0.1:8000"))
    mc.add_argument("--principal", default=os.environ.get("SNAPDEX_PRINCIPAL"), help=(
        'service keys: the end user to read for when a tool call names nobody, JSON {"user": ..., "groups": [...]} '
        "(default: $SNAPDEX_PRINCIPAL)"))
    mc.set_defaults(func=_mcp)

    mo = sub.add_parser("model", help="the embedding model: export it for the ONNX backends ahead of the first start")
    mosub = mo.add_subparsers(dest="model_command", required=True)
    me = mosub.add_parser("export", help="export (and quantise) the model into the models folder, if not there yet")
    me.add_argument("--backend", default="all", choices=["all", "onnx", "onnx-int8"])
    me.add_argument("--data-dir", type=Path, help="the service's data folder (default: SNAPDEX_DATA_DIR)")
    me.set_defaults(func=_model_export)

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
    im.add_argument("--api-key", default=None, help="the tenant's API key (default: $SNAPDEX_API_KEY); a keyless service needs none")
    im.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                    help="wait this long for the live snapshot's run and print its metrics")
    im.set_defaults(func=_eval_import)

    b = sub.add_parser("bench", help="benchmark runs: add bench/peer_bench.py's results to the dashboard's history")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bi = bsub.add_parser("import", help="send a results JSON (e.g. bench/results/peers.json) to a running service")
    bi.add_argument("file", type=Path, metavar="FILE", help="a results JSON, e.g. bench/results/peers.json")
    bi.add_argument("--name", default="peers", help="which benchmark the run belongs to (default: peers)")
    bi.add_argument("--url", default=os.environ.get("SNAPDEX_URL", "http://127.0.0.1:8000"))
    bi.add_argument("--api-key", default=None,
                    help="an operator key (default: $SNAPDEX_API_KEY); a keyless service needs none")
    bi.set_defaults(func=_bench_import)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
