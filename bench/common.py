"""What every bench script prints and writes: the machine, and the result as JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def bench_embedder(backend: str | None = None, data: Path | None = None, batch_size: int | None = None):
    """The embedder a service on `data` runs with this backend (default: the service's default backend), unloaded."""
    from encoders.embedding import open_embedder
    from snapdex.settings import Settings

    settings = Settings(**({"data_dir": data} if data else {}))
    return open_embedder(backend or settings.embedder_backend, settings.embedding_model_path, settings.models_path,
                         batch_size=batch_size or settings.embedding_batch_size)


def embedded_texts(data: Path, tenant: str = "default", backend: str | None = None) -> tuple[list[str], int, int]:
    """What a cold build sent to the model, read back from the catalog and the embedding cache (the texts the
    benches time the raw model on): every chunk, and every sentence window that was embedded alone (all of them
    with standalone windows; with late windows, those past the model's input, which the cache holds by text)."""
    from db import open_catalog
    from encoders.dense import SqliteEmbeddingCache
    from ingest.catalog import Catalog
    from ingest.windows import WindowConfig, window_texts
    from snapdex.settings import Settings

    settings = Settings(data_dir=data)
    catalog = Catalog(open_catalog(settings.catalog_url))
    docs = list(catalog.documents(tenant, status="indexed"))
    hashes = sorted({h for d in docs for h in d.chunk_hashes})
    rows = catalog.chunks(tenant, hashes)
    title = {h: d.title for d in reversed(docs) for h in d.chunk_hashes}
    windows = window_texts({h: (rows[h].text, title[h]) for h in hashes},
                           WindowConfig(settings.window_size, min(settings.window_stride, settings.window_size))) \
        if settings.windows_enabled else {}
    alone = SqliteEmbeddingCache(settings.data_dir / "embeddings.sqlite3").get_many(
        bench_embedder(backend, data).model_id, list(windows))
    return [rows[h].text for h in hashes] + [windows[h] for h in alone], len(hashes), len(alone)


def corpus_head(corpus: Path, limit: int, work: Path) -> Path:
    """The corpus, or a copy of its first `limit` documents (0: all of it)."""
    if not limit:
        return corpus
    head = work / "corpus.jsonl"
    with corpus.open() as src, head.open("w") as dst:
        for line, _ in zip(src, range(limit)):
            dst.write(line)
    return head


def raw_embed_seconds(texts: list[str], data: Path, backend: str | None = None) -> float:
    """The raw embedder of the service on `data` (its backend unless named) on `texts`, batched as the pipeline
    batches them, timed once the model is loaded (as the service loads it at start-up)."""
    import time

    embedder = bench_embedder(backend, data)
    embedder.embed(texts[:8])
    started = time.perf_counter()
    step = max(256, embedder.batch_size * 4)  # the pipeline's call size
    for i in range(0, len(texts), step):
        embedder.embed(texts[i : i + step])
    return time.perf_counter() - started


SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95 (milliseconds, as measured) and how many values."""
    import numpy as np

    a = np.array(values)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "n": len(values)}


def scifact_bench(doc: str, out: Path, dataset: Path = SCIFACT):
    """The command line of a benchmark over the first --docs SciFact abstracts and --passes over its 300 test
    queries, and that data: (args, docs, dataset, test queries)."""
    import argparse
    from itertools import islice

    from eval.beir import BeirDataset, corpus_documents

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=1000, help="SciFact abstracts indexed (the first N)")
    ap.add_argument("--passes", type=int, default=3, help="passes over the 300 test queries")
    ap.add_argument("--out", type=Path, default=out)
    args = ap.parse_args()
    ds = BeirDataset(dataset)
    docs = list(islice(corpus_documents(dataset / "corpus.jsonl"), args.docs))
    return args, docs, ds, list(ds.queries(set(ds.qrels("test"))).values())


def snapdex_serve(data_dir: Path, **kwargs):
    """`snapdex serve` as a user runs it, on the service's default model: the tests' launcher (harness/procs.py,
    whose arguments this takes) serves with the fake embedder unless told otherwise, which measures no model."""
    from harness import procs

    return procs.snapdex_serve(data_dir, **{**procs.MODEL, **kwargs})


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_result(path: Path, result: dict, echo: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str) if echo else f"wrote {path}")


def write_snapshot(rt, tenant: str, snap: str, config: dict, dim: int, points,
                   documents: int | None = None, dense_index=None, resume: int = 0) -> float:
    """Write `points` (an iterable of store Points) straight into a new live snapshot of `tenant` named by `snap`,
    under `config` (the manifest's record of it); returns the seconds it took. For indexes too large to embed here.
    `documents`: what the manifest records (default: one per point). `dense_index`: the HNSW graph to build (a
    store.common.DenseIndex; `config` should then carry IndexConfig.dense_config for the service to take it as its
    own), built by the last flush as a snapshot build does. `resume`: how many points there are; when a run stopped
    during that last flush (a 1M graph takes long) left a collection holding all of them, `points` is not read and
    only the flush and the manifest's record are done again."""
    import time

    from index_snapshots.builder import KEYWORD_INDEXES, collection_name
    from index_snapshots.status import SnapshotStatus

    name = collection_name(tenant, snap)
    row = rt.manifest.get(tenant, snap)
    started, total, batch = time.perf_counter(), 0, []
    if (resume and row is not None and row.status == SnapshotStatus.BUILDING and rt.store.has_collection(name)
            and rt.store.count(name) == resume):
        total = resume
    else:
        rt.store.delete_collection(name)
        rt.manifest.begin(tenant, snap, name, None, config)
        # As the service stores them (its vector datatype; a graph if one is asked for).
        rt.store.create_collection(name, dim, keyword_indexes=KEYWORD_INDEXES, windows=True,
                                   datatype=rt.index_config.vectors, dense_index=dense_index)
        for point in points:
            batch.append(point)
            total += 1
            if len(batch) == 1024:
                rt.store.upsert(name, batch)
                batch = []
        if batch:
            rt.store.upsert(name, batch)
    rt.store.flush(name)
    seconds = time.perf_counter() - started
    rt.manifest.finish(tenant, snap, documents=documents or total, chunks=total, embedded=0, reused=total,
                       seconds=seconds)
    rt.manifest.promote(tenant, snap)
    return seconds
