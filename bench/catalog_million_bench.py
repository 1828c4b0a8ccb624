"""The catalog at a million chunks: listing and paging (GET /documents, GET /snapshots) and a snapshot build of 1 %
changed documents against a full build.

Embedding a million chunks with the model would take days on this host: the deterministic hash embedder
(SNAPDEX_EMBEDDER_BACKEND=hash) stands in for it, so the figures are the catalog's, the builder's and the store's
work, not the model's. Documents are made of 10-20 sentences drawn at random from SciFact's abstracts (real words
and sentence lengths; nearly every chunk unique), chunked by the service's own chunker and written as ingest writes
them (Catalog.put_chunks and put_document, a transaction per 500 documents), until the catalog holds --chunks chunks.

Phases (each optional):
- `--listing DIR`: DIR is a service data dir holding a live snapshot (bench/million_bench.py --keep writes one of
  1M chunks for tenant bench-1m, its documents named d0, d1, ...): the catalog there gets documents of the same ids
  up to --chunks chunks, then one `snapdex serve` answers GET /documents (the first page, consecutive pages by
  cursor from the start and from half way, limit 50) and GET /snapshots; the same is measured against a catalog of
  --small-chunks chunks in a data dir of its own, for the side by side.
- `--builds N`: a data dir under --work, a catalog of N chunks for tenant bench-catalog, the full build, then
  --changed of the documents given new text and the build again (in process, SnapshotService.rebuild as the
  worker runs it): seconds, chunks embedded and carried over, the rebuild's share of the full build.

Usage: nice -n 19 .venv/bin/python bench/catalog_million_bench.py --work /tmp/cm [--listing DIR --chunks 1000000]
       [--builds 100000] [--changed 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine, write_result  # noqa: E402
from bench.retrieve_bench import SCIFACT, percentiles  # noqa: E402

LISTED = "bench-1m"  # million_bench.py's tenant
BUILT = "bench-catalog"
PAGE = 50  # GET /documents' default limit


def sentences() -> list[str]:
    from ingest.sentences import split_sentences

    out: list[str] = []
    with (SCIFACT / "corpus.jsonl").open() as fh:
        for line in fh:
            out.extend(s for s in split_sentences(json.loads(line)["text"]) if len(s) > 20)
    return out


def hash_settings(data_dir: Path):
    from encoders.embedding import FAKE_BACKEND
    from snapdex.settings import Settings

    return Settings(data_dir=data_dir, embedder_backend=FAKE_BACKEND)


def write_documents(rt, tenant: str, ids, pool: list[str], rng: np.random.Generator, until_chunks: int,
                    templates: int = 0) -> int:
    """Documents named by `ids` (an iterator) written as ingest writes a new one, until `until_chunks` chunks (or
    the ids run out); returns the chunks written. With `templates`, only that many texts are drawn and chunked, and
    each document is one of them under its own content hash and chunk hashes: a catalog of the right size and row
    shapes for listing, at a fraction of the chunker's time (6.5 ms a document here); no build may read it."""
    import hashlib

    from encoders.lexical import DEFAULT_LANGUAGE
    from ingest.catalog import ChunkRow, DocumentRow, unique_chunks, unique_hashes
    from ingest.chunking import Chunker
    from ingest.normalize import bytes_hash, content_hash

    chunker = Chunker(rt.chunker_config)
    fingerprint = rt.chunker_config.fingerprint()
    written, pending, made = 0, [], []

    def draw():
        text = " ".join(pool[j] for j in rng.integers(0, len(pool), size=rng.integers(10, 21)))
        chunks = chunker.chunks(text, False)
        return text, chunks, [ChunkRow.of(c.hash, c.text, DEFAULT_LANGUAGE) for c in unique_chunks(chunks)]

    def commit():
        with rt.catalog.db.tx() as conn:
            for doc, rows in pending:
                rt.catalog.put_chunks(conn, tenant, rows)
                rt.catalog.put_document(conn, doc)
        pending.clear()

    for n, doc_id in enumerate(ids):
        if written >= until_chunks:
            break
        if not templates:
            text, chunks, rows = draw()
            own = content_hash(text)
        else:
            if len(made) < templates:
                made.append(draw())
            text, chunks, rows = made[n % len(made)]
            renamed = {r.chunk_hash: hashlib.sha256(f"{doc_id}:{r.chunk_hash}".encode()).hexdigest() for r in rows}
            rows = [ChunkRow(renamed[r.chunk_hash], r.text, r.terms) for r in rows]
            chunks = [replace(c, hash=renamed[c.hash]) for c in chunks]
            own = content_hash(f"{doc_id}\n{text}")
        doc = DocumentRow(tenant=tenant, doc_id=doc_id, status="indexed", content_hash=own,
                          raw_hash=bytes_hash(text.encode()), source=None, title=f"document {doc_id}", metadata={},
                          chunk_hashes=unique_hashes(chunks), text=text, chunker=fingerprint,
                          chunk_spans=[c.layout() for c in chunks], extracted={"language": DEFAULT_LANGUAGE})
        pending.append((doc, rows))
        written += len(doc.chunk_hashes)
        if len(pending) == 500:
            commit()
    commit()
    return written


def numbered(start: int = 0):
    i = start
    while True:
        yield f"d{i}"
        i += 1


def timed_get(client, path: str, headers: dict, **params) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = client.get(path, params=params, headers=headers)
    took = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:300]}")
    return took, r.json()


def listing(data_dir: Path, tenant: str, pages: int, rounds: int, backend: str) -> dict:
    """GET /documents and GET /snapshots over HTTP on `data_dir`, served with the embedder its snapshot was made
    with (another would be config drift, and a rebuild at start-up)."""
    import base64

    from harness.procs import auth, snapdex_serve

    headers = auth(tenant)
    out: dict = {}
    with snapdex_serve(data_dir, tenants=(tenant,), SNAPDEX_EMBEDDER_BACKEND=backend) as svc:
        c = svc.client
        first, snaps = [], []
        for _ in range(rounds):
            first.append(timed_get(c, "/documents", headers, limit=PAGE)[0])
            snaps.append(timed_get(c, "/snapshots", headers)[0])
        out["first_page_ms"], out["snapshots_ms"] = percentiles(first), percentiles(snaps)
        _, body = timed_get(c, "/snapshots", headers)
        # A catalog copied without its store has no live snapshot: the listing is then the catalog's work alone.
        out["live_chunks"] = next((s["chunks"] for s in body["snapshots"] if s["hash"] == body["live"]), 0)
        docs = int(rt_documents(data_dir, tenant))
        out["catalog_documents"] = docs
        # Half way: the cursor of the document in the middle of the id order, as the service would have given it.
        ids = sorted(f"d{i}" for i in range(docs))
        middle = base64.urlsafe_b64encode(ids[docs // 2].encode()).decode().rstrip("=")
        for name, cursor in (("pages_from_start_ms", None), ("pages_from_middle_ms", middle)):
            took, held = [], 0
            for _ in range(pages):
                ms, body = timed_get(c, "/documents", headers, limit=PAGE, **({"cursor": cursor} if cursor else {}))
                took.append(ms)
                held += sum(1 for d in body["documents"] if d["snapshots"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            out[name] = percentiles(took)
            out[name.replace("_ms", "_held_by_a_snapshot")] = held
    return out


def rt_documents(data_dir: Path, tenant: str) -> int:
    from sqlalchemy import func, select

    from db.tables import documents
    from snapdex.runtime import Runtime

    rt = Runtime(hash_settings(data_dir))
    try:
        return rt.catalog.db.first(select(func.count().label("n")).select_from(documents)
                                   .where(documents.c.tenant == tenant))["n"]
    finally:
        rt.close()


def fill(data_dir: Path, tenant: str, chunks: int, pool: list[str], seed: int, templates: int = 0) -> dict:
    """The tenant's catalog filled up to `chunks` chunks; a run stopped half way is carried on (documents d0, d1,
    ... are written 500 to a transaction, in order)."""
    from sqlalchemy import func, select

    from db.tables import chunks as chunks_table
    from db.tables import documents
    from snapdex.runtime import Runtime

    rt = Runtime(hash_settings(data_dir))
    try:
        def count(table) -> int:
            return rt.catalog.db.first(select(func.count().label("n")).select_from(table)
                                       .where(table.c.tenant == tenant))["n"]

        have, docs = count(chunks_table), count(documents)
        t0 = time.perf_counter()
        write_documents(rt, tenant, numbered(docs), pool, np.random.default_rng(seed + docs), chunks - have,
                        templates)
        return {"chunks": count(chunks_table), "documents": count(documents), "templates": templates,
                "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        rt.close()


def small_index(work: Path, chunks: int, pool: list[str]) -> Path:
    """A data dir with a catalog of `chunks` chunks for bench-1m and its snapshot built (hash embedder)."""
    from snapdex.runtime import Runtime

    data_dir = work / f"listing-{chunks}"
    if not (data_dir / "catalog.sqlite3").exists():
        fill(data_dir, LISTED, chunks, pool, seed=5)
        rt = Runtime(hash_settings(data_dir))
        try:
            rt.snapshots.rebuild(LISTED)
        finally:
            rt.close()
    return data_dir


def builds(work: Path, chunks: int, changed: float, pool: list[str]) -> dict:
    from snapdex.runtime import Runtime

    data_dir = work / f"builds-{chunks}"
    if data_dir.exists():
        raise SystemExit(f"{data_dir} exists: remove it for a fresh run")
    filled = fill(data_dir, BUILT, chunks, pool, seed=7)
    rt = Runtime(hash_settings(data_dir))
    try:
        t0 = time.perf_counter()
        full = rt.snapshots.rebuild(BUILT)
        full_s = time.perf_counter() - t0
        docs = [d.doc_id for d in rt.catalog.documents(BUILT)]
        rng = np.random.default_rng(9)
        picked = sorted(rng.choice(len(docs), size=max(1, round(len(docs) * changed)), replace=False))
        # The changed documents get new text under the same ids, as a re-ingest of an edited file does.
        rewritten = write_documents(rt, BUILT, iter([docs[i] for i in picked]), pool, rng, 10**12)
        t0 = time.perf_counter()
        again = rt.snapshots.rebuild(BUILT)
        again_s = time.perf_counter() - t0
    finally:
        rt.close()
    return {"catalog": filled, "documents": len(docs),
            "full": {"seconds": round(full_s, 1), "chunks": full.chunks, "embedded": full.embedded},
            "changed_documents": len(picked), "changed_chunks": rewritten,
            "rebuild": {"seconds": round(again_s, 1), "chunks": again.chunks, "embedded": again.embedded,
                        "reused": again.reused},
            "rebuild_fraction_of_full": round(again_s / full_s, 3)}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--listing", type=Path, default=None, help="a data dir with a live snapshot of bench-1m")
    ap.add_argument("--chunks", type=int, default=1_000_000, help="the listing catalog's chunks")
    ap.add_argument("--small-chunks", type=int, default=10_000, help="the small catalog listed for comparison")
    ap.add_argument("--pages", type=int, default=100, help="consecutive pages walked from each start")
    ap.add_argument("--rounds", type=int, default=100, help="first pages and snapshot listings asked")
    ap.add_argument("--templates", type=int, default=3000,
                    help="the listing catalog's distinct texts (0: every document drawn and chunked)")
    ap.add_argument("--listing-backend", default=None,
                    help="the embedder serving DIR (default: the model's, which million_bench.py wrote it for)")
    ap.add_argument("--fill-only", action="store_true",
                    help="with --listing: fill the catalogs, serve nothing (while another process holds DIR's store)")
    ap.add_argument("--builds", type=int, default=0, help="chunks of the full-build / 1 %% rebuild catalog")
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "catalog-million.json")
    args = ap.parse_args()
    if not 0 < args.changed <= 1:
        raise SystemExit(f"--changed={args.changed} must be in (0, 1]")
    args.work.mkdir(parents=True, exist_ok=True)
    pool = sentences()
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update({"machine": machine(), "embedder": "hash (SNAPDEX_EMBEDDER_BACKEND=hash)",
                   "sentences": len(pool)})
    if args.listing:
        filled = fill(args.listing, LISTED, args.chunks, pool, seed=3, templates=args.templates)
        if filled["seconds"] > 1:
            result["listing_fill"] = {**filled, "load_average": load()}
            print(json.dumps(result["listing_fill"]), flush=True)
            write_result(args.out, result, echo=False)
        small = small_index(args.work, args.small_chunks, pool)
        if not args.fill_only:
            from encoders.embedding import FAKE_BACKEND
            from snapdex.settings import Settings

            # million_bench.py wrote the large snapshot for the model the service loads by default.
            large = args.listing_backend or Settings.model_fields["embedder_backend"].default
            result["listing"] = {
                "large": {**listing(args.listing, LISTED, args.pages, args.rounds, large), "load_average": load()},
                "small": {**listing(small, LISTED, args.pages, args.rounds, FAKE_BACKEND), "load_average": load()}}
            write_result(args.out, result, echo=False)
    if args.builds:
        result["builds"] = {**builds(args.work, args.builds, args.changed, pool), "load_average": load()}
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
