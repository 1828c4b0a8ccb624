"""Shared test wiring: a Runtime on a temporary folder with the deterministic embedder."""

from __future__ import annotations

from pathlib import Path

from encoders.dense import HashEmbedder
from index_snapshots.service import run_ingest_job
from ingest.jobs import NewDocument
from ingest.windows import windows_of
from snapdex.runtime import Runtime
from snapdex.settings import Settings


def make_runtime(tmp_path: Path, **overrides) -> Runtime:
    settings = Settings(**{"data_dir": tmp_path / "data", "chunk_size": 64, "chunk_overlap": 8, **overrides})
    return Runtime(settings, embedder=HashEmbedder(dim=32))


def text_doc(doc_id: str, text: str, **metadata) -> NewDocument:
    return NewDocument(doc_id, text.encode("utf-8"), metadata)


def ingest(rt: Runtime, docs: list[NewDocument], tenant: str = "default"):
    job_id = rt.jobs.create(tenant, docs)
    if run_ingest_job(rt.ingestor, rt.jobs, job_id, access=rt.access_sync):
        rt.snapshots.build_pending(tenant)
    return rt.jobs.get(job_id)


def embedded_texts(rt: Runtime, tenant: str, doc_id: str, chunk_hashes=None) -> set[str]:
    """Content hashes a document sends to the model: its chunks, and their sentence windows when those are
    embedded alone (late windows are pooled from the chunk's own pass)."""
    doc = rt.catalog.get_document(tenant, doc_id)
    hashes = list(doc.chunk_hashes if chunk_hashes is None else chunk_hashes)
    out = set(hashes)
    for h, row in rt.catalog.chunks(tenant, hashes).items():
        if rt.window_config and rt.window_config.method == "standalone":
            out |= set(windows_of(row.text, doc.title, rt.window_config))
    return out
